//! The `helios.returns` source: the Trésorerie's files dropped in `<tenant>/helios/inbox`
//! (through the shared inbox watcher).
//!
//! ```text
//! file ─► size limit ─► read_return_file (no DTD, no entities, bounded) ─► budget of the tenant?
//!   PES_ACQUIT ─► acquit_events (ledger lookup: NomFic → bordereau type) ─► titre.accepted /
//!                 titre.rejected; rejected bordereaux flagged in the ledger
//!   PES_Retour ─► retour_events (lookup + known émargements) ─► titre.accepted / .rejected,
//!                 payment.received / payment.reversed (reconciled by state);
//!                 PES_ACQUIT_RETOUR prepared
//! ─► publish (confirmed) ─► record state (line émargements, flags, facts, the file by
//!    content) in one transaction ─► PES_ACQUIT_RETOUR to helios/outbox ─► archive
//! ```
//!
//! A crash anywhere is harmless: before the record, handling the file again computes the
//! same events (same message ids: consumers deduplicate) against the same state; after it,
//! the same content publishes nothing and the answer is written with its recorded date.
//! Unknown, malformed, oversized or DTD-bearing files go to `helios/rejected` with the
//! reason; bordereaux and pièces that match nothing sent are reported
//! (`helios/rejected/<file>.<sha>.unmatched.txt`), logged and counted, never dropped.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use encaisse_helios::acquit_retour::acquit_retour;
use encaisse_helios::events::{AcquitOutcome, RetourOutcome, acquit_events, retour_events};
use encaisse_helios::read::{Acquit, PesRetour, ReturnFile, read_return_file};
use encaisse_ledger::files::sha256_hex;
use encaisse_ledger::journal::InvoiceFact;
use encaisse_ledger::{CoreStore, Tx};
use encaisse_schemas::TenantId;
use encaisse_schemas::events::{
    PaymentReceived, PaymentReversed, TitreAccepted, TitreRef, TitreRejected,
};
use futures::future::BoxFuture;

use super::error::{HeliosError, read_tx, write_tx};
use super::lookup::{LedgerLookup, line_state_date, store_line_state};
use super::metrics;
use super::reduction_store;
use super::settings::{HeliosSettings, TenantHelios};
use super::store::{Scope, ledger_now};
use crate::runtime::SourceContext;
use crate::stage::{Outgoing, StageError};
use crate::stages::inbox::{FileOutcome, InboxFile, InboxHandler};
use crate::stages::untrusted_file;
use encaisse_helios::aller::reduction::TYP_BORD_REDUCTION;

/// The source's name.
pub const RETURNS: &str = "helios.returns";

/// The file handler of `helios.returns`.
pub struct HeliosReturns {
    settings: HeliosSettings,
}

impl HeliosReturns {
    pub fn new(settings: HeliosSettings) -> Self {
        metrics::describe();
        HeliosReturns { settings }
    }
}

fn rejected(tenant: &TenantId, kind: &'static str, message: impl std::fmt::Display) -> FileOutcome {
    metrics::return_file_rejected(tenant.as_str(), kind);
    FileOutcome::Rejected {
        reason: format!("{kind}: {message}"),
    }
}

/// What a file's content was recorded as, when it was handled before.
#[derive(Debug, Clone)]
pub struct Seen {
    pub name: String,
    pub acquit_date: Option<NaiveDate>,
}

/// How the file with this content was first handled, if it was.
pub fn seen_before(
    tx: &mut Tx<'_>,
    tenant: &str,
    sha256: &str,
) -> Result<Option<Seen>, HeliosError> {
    let row = tx.query_opt(
        "SELECT name, acquit_date FROM helios_return_file WHERE tenant = ?1 AND sha256 = ?2",
        &[&tenant, &sha256],
        |r| Ok((r.get::<String>(0)?, r.get::<Option<String>>(1)?)),
    )?;
    row.map(|(name, date)| {
        let acquit_date = date
            .map(|d| {
                NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| {
                    HeliosError::Corrupt(format!("helios_return_file.acquit_date {d:?}"))
                })
            })
            .transpose()?;
        Ok(Seen { name, acquit_date })
    })
    .transpose()
}

/// The row that says a file's content was handled: written in the transaction that
/// records its state.
pub struct HandledFile<'a> {
    pub tenant: &'a str,
    pub sha256: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub nom_fic: Option<&'a str>,
    pub events: usize,
    pub unmatched: usize,
    pub acquit_date: Option<NaiveDate>,
}

/// Records that a file's content was handled; `false` when it already was (by another
/// daemon meanwhile: the second insert waits for the first, then does nothing), and the
/// caller then records nothing of it again.
pub fn record_file(tx: &mut Tx<'_>, f: &HandledFile<'_>) -> Result<bool, HeliosError> {
    let changed = tx.execute(
        "INSERT INTO helios_return_file (tenant, sha256, name, kind, nom_fic, events, unmatched, acquit_date, handled_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (tenant, sha256) DO NOTHING",
        &[
            &f.tenant,
            &f.sha256,
            &f.name,
            &f.kind,
            &f.nom_fic,
            &i64::try_from(f.events).unwrap_or(i64::MAX),
            &i64::try_from(f.unmatched).unwrap_or(i64::MAX),
            &f.acquit_date.map(|d| d.to_string()),
            &ledger_now(),
        ],
    )?;
    Ok(changed == 1)
}

fn fact(
    tenant: &str,
    invoice_key: String,
    kind: &str,
    detail: serde_json::Value,
    dedupe: String,
) -> InvoiceFact {
    InvoiceFact {
        invoice_key,
        tenant: tenant.to_string(),
        at: ledger_now(),
        kind: kind.to_string(),
        detail: detail.to_string(),
        dedupe_key: Some(dedupe),
    }
}

/// The journal detail of a titre event: where the titre is (as `titre_emitted` says it, so
/// `encaisse trace` shows the reference), which file said what, when.
fn titre_detail(
    titre: &TitreRef,
    source: &str,
    file: &str,
    on: &chrono::DateTime<chrono::FixedOffset>,
    code: Option<&str>,
) -> serde_json::Value {
    let mut detail = serde_json::json!({
        "stage": RETURNS,
        "source": source,
        "file": file,
        "exercice": titre.exercice,
        "bordereau_type": titre.bordereau_type,
        "id_bord": titre.id_bord,
        "id_pce": titre.id_pce,
        "on": on.to_rfc3339(),
    });
    if let Some(code) = code {
        detail["code"] = code.into();
    }
    detail
}

/// Journal facts of titre events (no free text: the comptable's comment may name people).
fn titre_facts(
    tx: &mut Tx<'_>,
    tenant: &str,
    accepted: &[TitreAccepted],
    rejected: &[TitreRejected],
) -> Result<(), HeliosError> {
    for e in accepted {
        let source = e.source.as_str();
        tx.record_fact(&fact(
            tenant,
            e.invoice.key(),
            "titre_accepted",
            titre_detail(&e.titre, source, &e.file, &e.accepted_at, None),
            format!(
                "{RETURNS}:accepted:{source}:{}:{}",
                e.invoice.key(),
                e.titre.reference()
            ),
        ))?;
    }
    // A return file's rejections always name their titre (only helios.titres' local
    // refusals have none, and they are journalled there).
    for (e, titre) in rejected
        .iter()
        .filter_map(|e| e.titre.as_ref().map(|t| (e, t)))
    {
        let source = e.source.as_str();
        if titre.bordereau_type == TYP_BORD_REDUCTION {
            // A réduction titre the Trésorerie rejected takes nothing off its original.
            reduction_store::mark_rejected(
                tx,
                tenant,
                &e.invoice.key(),
                &format!("{} {}", e.code, e.text),
            )?;
        }
        tx.record_fact(&fact(
            tenant,
            e.invoice.key(),
            "titre_rejected",
            titre_detail(titre, source, &e.file, &e.rejected_at, Some(&e.code)),
            format!(
                "{RETURNS}:rejected:{source}:{}:{}:{}",
                e.invoice.key(),
                titre.reference(),
                e.code
            ),
        ))?;
    }
    Ok(())
}

fn payment_facts(
    tx: &mut Tx<'_>,
    tenant: &str,
    file: &str,
    payments: &[PaymentReceived],
    reversals: &[PaymentReversed],
) -> Result<(), HeliosError> {
    for p in payments {
        tx.record_fact(&fact(
            tenant,
            p.invoice.key(),
            "payment_received",
            serde_json::json!({"stage": RETURNS, "file": file, "payment_id": p.payment_id,
                "amount": p.amount.to_string(), "channel": p.channel, "on": p.paid_at.to_rfc3339()}),
            format!("{RETURNS}:payment:{}", p.payment_id),
        ))?;
    }
    for r in reversals {
        tx.record_fact(&fact(
            tenant,
            r.invoice.key(),
            "payment_reversed",
            serde_json::json!({"stage": RETURNS, "file": file, "payment_id": r.payment_id,
                "amount": r.amount.to_string()}),
            format!("{RETURNS}:reversed:{}:{file}", r.payment_id),
        ))?;
    }
    Ok(())
}

/// Publishes with confirms; a failure leaves the file in the inbox (transient) or rejects
/// it (a topology bug: permanent).
async fn publish(ctx: &SourceContext, outputs: Vec<Outgoing>) -> Result<(), HeliosError> {
    if outputs.is_empty() {
        return Ok(());
    }
    Ok(ctx.publisher.publish(outputs).await?)
}

fn sha_prefix(sha256: &str) -> String {
    sha256.chars().take(8).collect()
}

/// Drops what concerns lines a newer PES Retour already described (an older file read
/// late must not undo a newer one): their payments, reversals and states.
fn without_stale(
    mut outcome: RetourOutcome,
    stale: &HashSet<String>,
    tenant: &TenantId,
    file: &str,
) -> RetourOutcome {
    if stale.is_empty() {
        return outcome;
    }
    tracing::warn!(tenant = %tenant, file, lines = stale.len(), "PES Retour older than the state known for some lines: their émargements are ignored.");
    // payment_id = helios:<line key>/<OrgEma>-<date>-<cents>-<n>
    let line_of = |payment_id: &str| {
        payment_id
            .strip_prefix("helios:")
            .and_then(|rest| rest.rsplit_once('/'))
            .map(|(line, _)| line.to_string())
            .unwrap_or_default()
    };
    outcome
        .line_states
        .retain(|(line, _)| !stale.contains(&line.key()));
    outcome
        .payments
        .retain(|p| !stale.contains(&line_of(&p.payment_id)));
    outcome
        .reversals
        .retain(|r| !stale.contains(&line_of(&r.payment_id)));
    outcome
}

impl HeliosReturns {
    async fn handle_file(
        &self,
        ctx: &SourceContext,
        file: &InboxFile,
    ) -> Result<FileOutcome, StageError> {
        let Some(tenant) = self.settings.tenant(file.tenant.as_str()) else {
            return Ok(rejected(
                &file.tenant,
                "no_helios_config",
                format!("tenant {} has no [tenants.helios] section", file.tenant),
            ));
        };
        let limit = tenant.config.max_input_bytes;
        if file.size_bytes > limit {
            return Ok(rejected(
                &tenant.id,
                "too_large",
                format!(
                    "{} bytes, more than max_input_bytes = {limit}",
                    file.size_bytes
                ),
            ));
        }
        let bytes = untrusted_file::read_async(&file.path, limit).await?;
        let sha256 = sha256_hex(&bytes);
        let name = file.name.clone();
        let limits = encaisse_helios::read::Limits::new(limit)
            .with_elements(tenant.config.max_input_elements);
        let parsed = tokio::task::spawn_blocking(move || read_return_file(&name, &bytes, limits))
            .await
            .map_err(|e| untrusted_file::join_error("PES return reader", e))?;
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return Ok(rejected(&tenant.id, e.error.kind(), &e)),
        };
        let header = match &parsed {
            ReturnFile::Acquit(a) => &a.header,
            ReturnFile::Retour(r) => &r.header,
        };
        if tenant
            .budget_by_codes(&header.cod_col, &header.cod_bud)
            .is_none()
        {
            return Ok(rejected(
                &tenant.id,
                "unknown_budget",
                format!(
                    "CodCol {} / CodBud {} is not a budget of tenant {} ([[tenants.budgets]])",
                    header.cod_col, header.cod_bud, tenant.id
                ),
            ));
        }
        match parsed {
            ReturnFile::Acquit(acquit) => self.acquit(ctx, tenant, file, acquit, sha256).await,
            ReturnFile::Retour(retour) => self.retour(ctx, tenant, file, retour, sha256).await,
        }
        .map_err(StageError::from)
    }

    async fn acquit(
        &self,
        ctx: &SourceContext,
        tenant: &TenantHelios,
        file: &InboxFile,
        acquit: Acquit,
        sha256: String,
    ) -> Result<FileOutcome, HeliosError> {
        let (tenant_id, name, sha) = (tenant.id.clone(), file.name.clone(), sha256.clone());
        let header = acquit.header.clone();
        let nom_fic = acquit.envelope.nom_fic.clone();
        let (seen, outcome) = read_tx(&ctx.ledger, move |tx| {
            let seen = seen_before(tx, tenant_id.as_str(), &sha)?;
            let lookup = LedgerLookup::new(tx, &tenant_id);
            let outcome = acquit_events(&acquit, &name, &lookup);
            lookup.finish()?;
            Ok((seen, outcome))
        })
        .await?;
        if let Some(seen) = seen {
            tracing::info!(tenant = %tenant.id, file = %file.name, first_seen_as = %seen.name, "PES_ACQUIT already handled: nothing new.");
            return Ok(FileOutcome::Archived);
        }
        let AcquitOutcome {
            accepted,
            rejected: rejected_titres,
            bordereaux,
            attachments,
            unmatched,
        } = outcome;
        let mut outputs: Vec<Outgoing> = accepted.iter().map(Outgoing::event).collect();
        outputs.extend(rejected_titres.iter().map(Outgoing::event));
        let events = outputs.len();
        publish(ctx, outputs).await?;

        // The bordereau type of each bordereau of ours, from its titres.
        let types: BTreeMap<(u16, u64), String> = accepted
            .iter()
            .map(|e| &e.titre)
            .chain(rejected_titres.iter().filter_map(|e| e.titre.as_ref()))
            .map(|t| ((t.exercice, u64::from(t.id_bord)), t.bordereau_type.clone()))
            .collect();
        let flagged: Vec<_> = bordereaux
            .iter()
            .filter(|b| b.titres > 0)
            .filter_map(|b| {
                types
                    .get(&(b.exercice, b.id_bord))
                    .map(|typ| (b.clone(), typ.clone()))
            })
            .collect();
        let sha8 = sha_prefix(&sha256);
        let (tenant_id, name, unmatched_count) =
            (tenant.id.to_string(), file.name.clone(), unmatched.len());
        let (acc, rej, flags) = (accepted.clone(), rejected_titres.clone(), flagged.clone());
        write_tx(&ctx.ledger, move |tx| {
            let scope = Scope {
                tenant: &tenant_id,
                cod_col: &header.cod_col,
                cod_bud: &header.cod_bud,
            };
            // The file first: handled by another daemon meanwhile, it is recorded once.
            if !record_file(
                tx,
                &HandledFile {
                    tenant: &tenant_id,
                    sha256: &sha256,
                    name: &name,
                    kind: "acquit",
                    nom_fic: nom_fic.as_deref(),
                    events,
                    unmatched: unmatched_count,
                    acquit_date: None,
                },
            )? {
                return Ok(());
            }
            for (b, typ_bord) in &flags {
                tx.execute(
                    "UPDATE helios_bordereau SET ack_state = ?7, ack_file = ?8, ack_on = ?9, ack_errors = ?10
                     WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND typ_bord = ?5 AND id_bord = ?6",
                    &[
                        &scope.tenant,
                        &scope.cod_col,
                        &scope.cod_bud,
                        &b.exercice,
                        typ_bord,
                        &i64::try_from(b.id_bord).unwrap_or(-1),
                        &if b.accepted { "accepted" } else { "rejected" },
                        &name,
                        &header.date.to_string(),
                        &(!b.errors.is_empty()).then(|| b.errors.join("; ")),
                    ],
                )?;
            }
            titre_facts(tx, &tenant_id, &acc, &rej)
        })
        .await?;

        let id = tenant.id.as_str();
        metrics::return_file(id, "acquit");
        metrics::titres(
            id,
            "acquit",
            accepted.len() as u64,
            rejected_titres.len() as u64,
        );
        for (b, typ_bord) in &flagged {
            if b.accepted {
                tracing::info!(tenant = %tenant.id, file = %file.name, exercice = b.exercice, typ_bord = %typ_bord, id_bord = b.id_bord, titres = b.titres, "Bordereau accepted by the Hélios guichet.");
            } else {
                metrics::bordereau_rejected(id);
                tracing::error!(tenant = %tenant.id, file = %file.name, exercice = b.exercice, typ_bord = %typ_bord, id_bord = b.id_bord, titres = b.titres, errors = %b.errors.join("; "), "Bordereau rejected by the Hélios guichet: its titres are rejected (flagged in the ledger).");
            }
        }
        for (id_unique, _, errors) in attachments.iter().filter(|(_, ok, _)| !ok) {
            tracing::warn!(tenant = %tenant.id, file = %file.name, pj = %id_unique, errors = %errors.join("; "), "ASAP attachment rejected by the Hélios guichet.");
        }
        self.report_unmatched(ctx, tenant, file, "acquit", &sha8, &unmatched)
            .await?;
        Ok(FileOutcome::Archived)
    }

    async fn retour(
        &self,
        ctx: &SourceContext,
        tenant: &TenantHelios,
        file: &InboxFile,
        retour: PesRetour,
        sha256: String,
    ) -> Result<FileOutcome, HeliosError> {
        let today = self.settings.clock.today();
        let (tenant_id, name, sha) = (tenant.id.clone(), file.name.clone(), sha256.clone());
        let returns_config = tenant.config.returns.clone();
        let file_date = retour.header.date;
        let retour_for_read = retour.clone();
        let (seen, outcome, stale) = read_tx(&ctx.ledger, move |tx| {
            let seen = seen_before(tx, tenant_id.as_str(), &sha)?;
            let lookup = LedgerLookup::new(tx, &tenant_id);
            let outcome = retour_events(&retour_for_read, &name, &lookup, &lookup, &returns_config);
            lookup.finish()?;
            // Lines a newer PES Retour already described: this older file changes
            // nothing there.
            let mut stale = HashSet::new();
            for (line, _) in &outcome.line_states {
                if line_state_date(tx, tenant_id.as_str(), line)?
                    .is_some_and(|known| known > file_date)
                {
                    stale.insert(line.key());
                }
            }
            Ok((seen, outcome, stale))
        })
        .await?;
        // The answer first: a file that cannot be acknowledged is rejected before any effect.
        let acquit_date = seen.as_ref().and_then(|s| s.acquit_date).unwrap_or(today);
        let answer = match acquit_retour(&tenant.config, &retour, &file.name, acquit_date) {
            Ok(answer) => answer,
            Err(e) if e.class() == encaisse_helios::ErrorClass::Transient => {
                return Err(e.into());
            }
            Err(e) => return Ok(rejected(&tenant.id, "cannot_acknowledge", e)),
        };
        if let Some(seen) = &seen {
            tracing::info!(tenant = %tenant.id, file = %file.name, first_seen_as = %seen.name, "PES Retour already handled: nothing new; answered again.");
        } else {
            let outcome = without_stale(outcome, &stale, &tenant.id, &file.name);
            self.publish_retour(ctx, tenant, file, &retour, &sha256, outcome, acquit_date)
                .await?;
        }
        let path = self
            .settings
            .dir(&tenant.id, "outbox")
            .join(&answer.file_name);
        ctx.ledger
            .emit_file(
                tenant.id.as_str(),
                "pes_acquit_retour",
                &path,
                answer.bytes,
                &format!("{RETURNS} {}", file.name),
            )
            .await?;
        tracing::info!(tenant = %tenant.id, file = %file.name, answer = %answer.file_name, "PES Retour acknowledged (PES_ACQUIT_RETOUR in the outbox).");
        Ok(FileOutcome::Archived)
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish_retour(
        &self,
        ctx: &SourceContext,
        tenant: &TenantHelios,
        file: &InboxFile,
        retour: &PesRetour,
        sha256: &str,
        outcome: RetourOutcome,
        acquit_date: NaiveDate,
    ) -> Result<(), HeliosError> {
        let RetourOutcome {
            accepted,
            rejected: rejected_titres,
            payments,
            reversals,
            line_states,
            unmatched,
        } = outcome;
        let mut outputs: Vec<Outgoing> = accepted.iter().map(Outgoing::event).collect();
        outputs.extend(rejected_titres.iter().map(Outgoing::event));
        outputs.extend(payments.iter().map(Outgoing::event));
        outputs.extend(reversals.iter().map(Outgoing::event));
        let events = outputs.len();
        publish(ctx, outputs).await?;

        let (tenant_id, name, sha) = (tenant.id.to_string(), file.name.clone(), sha256.to_string());
        let nom_fic = retour.envelope.nom_fic.clone();
        let file_date = retour.header.date;
        let unmatched_count = unmatched.len();
        let (acc, rej, pay, rev) = (
            accepted.clone(),
            rejected_titres.clone(),
            payments.clone(),
            reversals.clone(),
        );
        write_tx(&ctx.ledger, move |tx| {
            // The file first: handled by another daemon meanwhile, it is recorded once.
            if !record_file(
                tx,
                &HandledFile {
                    tenant: &tenant_id,
                    sha256: &sha,
                    name: &name,
                    kind: "retour",
                    nom_fic: nom_fic.as_deref(),
                    events,
                    unmatched: unmatched_count,
                    acquit_date: Some(acquit_date),
                },
            )? {
                return Ok(());
            }
            for (line, sightings) in &line_states {
                store_line_state(tx, &tenant_id, line, sightings, &name, file_date)?;
            }
            titre_facts(tx, &tenant_id, &acc, &rej)?;
            payment_facts(tx, &tenant_id, &name, &pay, &rev)
        })
        .await?;

        let id = tenant.id.as_str();
        metrics::return_file(id, "retour");
        metrics::titres(
            id,
            "retour",
            accepted.len() as u64,
            rejected_titres.len() as u64,
        );
        for p in &payments {
            let channel = serde_json::to_value(p.channel)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            metrics::payment_received(id, &channel);
        }
        metrics::payments_reversed(id, reversals.len() as u64);
        for r in &reversals {
            tracing::warn!(tenant = %tenant.id, file = %file.name, invoice = %r.invoice.key(), payment_id = %r.payment_id, amount = %r.amount, "Émargement no longer listed by Hélios: payment reversed.");
        }
        tracing::info!(
            tenant = %tenant.id,
            file = %file.name,
            accepted = accepted.len(),
            rejected = rejected_titres.len(),
            payments = payments.len(),
            reversals = reversals.len(),
            unmatched = unmatched.len(),
            "PES Retour handled."
        );
        self.report_unmatched(ctx, tenant, file, "retour", &sha_prefix(sha256), &unmatched)
            .await
    }

    /// Reports what matches nothing sent: a file for people, a log line, a metric.
    async fn report_unmatched(
        &self,
        ctx: &SourceContext,
        tenant: &TenantHelios,
        file: &InboxFile,
        kind: &'static str,
        sha8: &str,
        unmatched: &[String],
    ) -> Result<(), HeliosError> {
        if unmatched.is_empty() {
            return Ok(());
        }
        metrics::unmatched(tenant.id.as_str(), kind, unmatched.len() as u64);
        tracing::warn!(tenant = %tenant.id, file = %file.name, unmatched = unmatched.len(), "Return file names bordereaux or pièces encaisse did not send (reported in helios/rejected).");
        let mut text = format!(
            "Return file {} ({kind}) names {} bordereau(x) or pièce(s) that match nothing encaisse sent.\n\
             The rest of the file was handled. Check with the Trésorerie (another software's titres,\n\
             or a ledger restored from an old backup).\n\n",
            file.name,
            unmatched.len()
        );
        for u in unmatched {
            text.push_str(u);
            text.push('\n');
        }
        let path = self
            .settings
            .dir(&tenant.id, "rejected")
            .join(format!("{}.{sha8}.unmatched.txt", file.name));
        ctx.ledger
            .emit_file(
                tenant.id.as_str(),
                "helios_report",
                &path,
                text.into_bytes(),
                &format!("{RETURNS} {}", file.name),
            )
            .await?;
        Ok(())
    }
}

impl InboxHandler for HeliosReturns {
    fn name(&self) -> &str {
        RETURNS
    }

    fn area(&self) -> &str {
        "helios"
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a SourceContext,
        file: &'a InboxFile,
    ) -> BoxFuture<'a, Result<FileOutcome, StageError>> {
        Box::pin(self.handle_file(ctx, file))
    }
}
