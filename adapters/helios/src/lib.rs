//! The Hélios adapter: PES V2 files between a commune and its Trésorerie (DGFiP Hélios).
//! Knows nothing of AMQP; the `helios.titres` and `helios.returns` stages wire it.
//!
//! * [`config`]: `[tenants.helios]` — codique, bordereau kind, ASAP, file naming, encoding,
//!   and every unconfirmed fact of the specs as a setting.
//! * [`aller`]: the PES Aller recette writer (titres ordinaires and ORMC, direct debit,
//!   TIP SEPA and PayFiP through the ASAP), streaming, byte-reproducible.
//! * [`read`]: safe readers of `PES_ACQUIT` and `PES_Retour` (and a rule checker for PES
//!   Aller files), producing typed models or typed errors.
//! * [`reconcile`]: émargements reconciled by state (new payments, neutralised ones).
//! * [`events`]: reader results to canonical events, given the ledger's answers.
//! * [`acquit_retour`]: the `PES_ACQUIT_RETOUR` answering a PES Retour.
//! * [`keys`]: the ORMC keys `Cle1` (mod 11) and `Cle2` (mod 23).
//! * [`sim`]: a simulated Trésorerie answering our PES Aller files (tests, `encaisse demo`).
//!
//! `docs/helios.md` explains the choices and lists the unconfirmed facts.

pub mod acquit_retour;
pub mod aller;
pub mod codes;
pub mod config;
pub mod error;
pub mod events;
pub mod keys;
pub mod read;
pub mod reconcile;
pub mod sim;
pub mod template;
pub mod text;
pub mod xmlw;

pub use error::ErrorClass;

/// Where the official schemas sit under the specs directory (`encaisse_xml::specs`).
pub mod schemas {
    use std::path::PathBuf;

    fn root() -> PathBuf {
        encaisse_xml::specs::specs_dir().join("pes-v2/schemas_pes_v5.17/PES_V2")
    }

    /// `PES_Aller.xsd` (PES Aller, including the PES Facture inside ASAP PJ).
    pub fn pes_aller() -> PathBuf {
        root().join("Rev0/PES_Aller.xsd")
    }

    /// `PES_V2_Acquit_Autonome_V2.xsd` (`PES_ACQUIT`).
    pub fn acquit() -> PathBuf {
        root().join("Rev0/PES_V2_Acquit_Autonome_V2.xsd")
    }

    /// `PES_Retour.xsd`.
    pub fn retour() -> PathBuf {
        root().join("RETOUR/Rev0/PES_Retour.xsd")
    }

    /// `PES_V2_Acquit_Retour.xsd` (`PES_ACQUIT_RETOUR`).
    pub fn acquit_retour() -> PathBuf {
        root().join("RETOUR/Rev0/PES_V2_Acquit_Retour.xsd")
    }
}
