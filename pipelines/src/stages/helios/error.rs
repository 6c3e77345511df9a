//! The Hélios stages' failures and their retry class.

use encaisse_helios::aller::WriteError;
use encaisse_helios::{ErrorClass as AdapterClass, acquit_retour::AcquitRetourError};
use encaisse_ledger::{Ledger, LedgerError, Tx};

use crate::stage::{ErrorClass, StageError};

/// Why a Hélios stage could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum HeliosError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The adapter could not render a planned file.
    #[error("rendering the PES Aller file: {0}")]
    Render(#[from] WriteError),
    /// The PES_ACQUIT_RETOUR could not be written.
    #[error("answering the PES Retour: {0}")]
    AcquitRetour(#[from] AcquitRetourError),
    /// An invoice cannot join its billing run (sent twice with other content, after the run
    /// closed, or beyond the count announced).
    #[error("billing run: {0}")]
    Batch(String),
    /// The configuration does not allow the work (tenant without `[tenants.helios]`).
    #[error("{0}")]
    Setup(String),
    /// Publishing the file's events failed.
    #[error("publishing: {0}")]
    Publish(#[from] crate::runtime::PublishError),
    /// The ledger holds what this code never writes.
    #[error("ledger holds unexpected data: {0}")]
    Corrupt(String),
}

fn class_of(class: AdapterClass) -> ErrorClass {
    match class {
        AdapterClass::Transient => ErrorClass::Transient,
        AdapterClass::Permanent => ErrorClass::Permanent,
        AdapterClass::Poison => ErrorClass::Poison,
    }
}

impl HeliosError {
    pub fn class(&self) -> ErrorClass {
        match self {
            HeliosError::Ledger(e) if e.is_transient() => ErrorClass::Transient,
            HeliosError::Render(e) => class_of(e.class()),
            HeliosError::AcquitRetour(e) => class_of(e.class()),
            HeliosError::Publish(e) => e.class(),
            _ => ErrorClass::Permanent,
        }
    }

    /// Short machine kind (groups parked messages, labels metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            HeliosError::Ledger(e) => e.kind(),
            HeliosError::Render(_) => "pes_render",
            HeliosError::AcquitRetour(_) => "acquit_retour",
            HeliosError::Batch(_) => "batch_conflict",
            HeliosError::Publish(_) => "publish",
            HeliosError::Setup(_) => "no_helios_config",
            HeliosError::Corrupt(_) => "ledger_corrupt",
        }
    }

    pub fn into_stage_error(self) -> StageError {
        StageError::new(self.class(), self.kind(), self.to_string()).with_source(self)
    }
}

impl From<HeliosError> for StageError {
    fn from(e: HeliosError) -> Self {
        e.into_stage_error()
    }
}

/// Runs `work` in one ledger write transaction (SQLite or PostgreSQL). A [`HeliosError`]
/// rolls the whole transaction back (no batch closed, no number used) and comes back as
/// itself.
pub async fn write_tx<T, F>(ledger: &Ledger, work: F) -> Result<T, HeliosError>
where
    T: Send + 'static,
    F: FnOnce(&mut Tx<'_>) -> Result<T, HeliosError> + Send + 'static,
{
    ledger.transact(work).await
}

/// Runs `work` in a read-only transaction (a blocking thread); a [`HeliosError`] comes back
/// as itself.
pub async fn read_tx<T, F>(ledger: &Ledger, work: F) -> Result<T, HeliosError>
where
    T: Send + 'static,
    F: FnOnce(&mut Tx<'_>) -> Result<T, HeliosError> + Send + 'static,
{
    ledger.inspect(work).await
}
