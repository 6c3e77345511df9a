//! The demo's story, step by step, against the running daemon: exports in, files out,
//! online payments, the Trésorerie's and the bank's answers, and what Polyfac gets back.
//! Each step checks what [`super::scenario`] expects and records it in the [`Report`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Europe::Paris;
use encaisse_ledger::{Ledger, OpsStore};
use encaisse_pipelines::stages::ops::store::Filter;
use encaisse_schemas::Money;
use encaisse_sepa::read::pain008::{SentFile, read_pain008};
use reqwest::Client;
use tokio_util::sync::CancellationToken;

use super::exports::{self, Dates};
use super::files::{self, Handled, Validation};
use super::kiosque::{self, Started};
use super::report::{
    ExportReport, FileReport, OnlineReport, ParkedReport, ReglementLine, ReglementsFile, Rejection,
    Report,
};
use super::scenario::{self, EXPORTS, Export, OnlinePayment};
use super::{DemoError, Progress, bank, tresorerie};
use crate::config::Config;

/// How long the daemon may take for one step (files read every 200 ms to 2 s, retries
/// within seconds): generous, so a loaded machine does not fail the demo.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the REGLEMENTS lines are watched once complete, for a line that should not be
/// there (a payment told twice).
const SETTLE: Duration = Duration::from_secs(3);
/// Largest file the demo reads back.
const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;

/// Today in Paris, the day the stages date everything.
pub fn today() -> NaiveDate {
    chrono::Utc::now().with_timezone(&Paris).date_naive()
}

fn now_paris() -> NaiveDateTime {
    chrono::Utc::now().with_timezone(&Paris).naive_local()
}

/// The story's state.
pub struct Story {
    config: Config,
    /// The daemon's base URL.
    daemon: String,
    validation: Validation,
    data_dir: PathBuf,
    shutdown: CancellationToken,
    http: Client,
    dates: Dates,
    report: Report,
    /// The ledger, opened for reading once the daemon created it.
    ledger: Option<Ledger>,
}

impl Story {
    pub fn new(
        config: Config,
        daemon: String,
        validation: Validation,
        data_dir: PathBuf,
        shutdown: CancellationToken,
    ) -> Result<Story, DemoError> {
        let http = kiosque::client().map_err(|e| DemoError::step("HTTP client", e.to_string()))?;
        let report = Report {
            data_dir: data_dir.display().to_string(),
            broker_prefix: config.broker.prefix.clone(),
            validation: validation.describe(),
            ..Report::default()
        };
        Ok(Story {
            config,
            daemon,
            validation,
            data_dir,
            shutdown,
            http,
            dates: Dates { today: today() },
            report,
            ledger: None,
        })
    }

    fn dir(&self, tenant: &str, area: &str) -> PathBuf {
        self.data_dir.join(tenant).join(area)
    }

    fn interrupted(&self) -> Result<(), DemoError> {
        if self.shutdown.is_cancelled() {
            return Err(DemoError::step("interrupted", "stop requested (Ctrl-C)"));
        }
        Ok(())
    }

    /// Tells the whole story; returns the report (whose checks say whether it held).
    pub async fn tell(&mut self, progress: &mut Progress<'_>) -> Result<Report, DemoError> {
        let exports: Vec<&Export> = EXPORTS.iter().collect();
        self.exports(progress, &exports).await?;
        self.interrupted()?;
        let (pes, pain008) = self.outgoing_files(progress).await?;
        self.interrupted()?;
        self.pay_online(progress).await?;
        self.interrupted()?;
        self.tresorerie_decides(progress, &pes).await?;
        self.interrupted()?;
        self.pay_titre_online(progress).await?;
        self.interrupted()?;
        self.tresorerie_sees_online_payment(progress, &pes).await?;
        self.interrupted()?;
        self.credit_note(progress).await?;
        self.interrupted()?;
        self.bank_rejects(progress, &pain008).await?;
        self.interrupted()?;
        self.back_to_polyfac(progress).await?;
        self.report.seconds = progress.elapsed().as_secs_f64();
        if let Err(e) = self.report.save() {
            tracing::warn!(error = %e, "Cannot write the demo report.");
        }
        Ok(self.report.clone())
    }

    /// Step 3: both exports dropped, read, invalid invoices reported (and, later, the
    /// credit note's export).
    async fn exports(
        &mut self,
        progress: &mut Progress<'_>,
        exports: &[&Export],
    ) -> Result<(), DemoError> {
        let mut dropped = Vec::new();
        for export in exports.iter().copied() {
            let name = format!("{}-{}.csv", export.stem, self.dates.month_tag());
            let inbox = self.dir(export.tenant, "polyfac").join("inbox");
            let bytes = exports::render(export.template, &self.dates);
            exports::drop_file(&inbox, &name, &bytes)
                .map_err(|e| DemoError::io(format!("dropping {name}"), e))?;
            dropped.push((export, name));
        }
        progress.step(&format!(
            "Exports dropped: {} (Windows-1252, dated {})",
            dropped
                .iter()
                .map(|(e, n)| format!("{}/polyfac/inbox/{n}", e.tenant))
                .collect::<Vec<_>>()
                .join(", "),
            self.dates.today.format("%d/%m/%Y")
        ));
        for (export, name) in dropped {
            let area = self.dir(export.tenant, "polyfac");
            let handled = files::wait_handled(&area, &name, STEP_TIMEOUT).await;
            if handled != Some(Handled::Archived) {
                return Err(DemoError::step(
                    "reading the exports",
                    format!("{name} was not archived by polyfac.ingest ({handled:?})"),
                ));
            }
            let read = read_rejections(&area.join("rejected"), &name)?;
            let lines = count_lines(&area.join("archive").join(&name));
            // One row per broken rule: an invoice may break several, or one rule twice.
            let found: Vec<(String, String)> = read
                .iter()
                .map(|r| (r.invoice.clone(), r.rule.clone()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let invoices: std::collections::BTreeSet<&str> =
                found.iter().map(|(i, _)| i.as_str()).collect();
            let summary = read_summary(&area.join("rejected"), &name);
            // No summary when nothing was refused: every invoice of the file is valid.
            let valid = match &summary {
                Some(s) => s["valid_invoices"].as_u64().unwrap_or(0),
                None => count_invoices(&area.join("archive").join(&name)),
            };
            let rejected = invoices.len() as u64;
            let expected: Vec<(String, String)> = export
                .rejected
                .iter()
                .map(|(i, r)| (i.to_string(), r.to_string()))
                .collect();
            self.report.expect(
                format!("{name}: {} valid invoices", export.valid),
                valid == export.valid,
                format!("{valid} valid"),
            );
            self.report.expect(
                format!("{name}: rejected invoices and rules {expected:?}"),
                found == expected,
                format!("{found:?}"),
            );
            progress.note(&format!(
                "{}: {} invoices read, {valid} valid, {rejected} rejected ({})",
                export.tenant,
                valid + rejected,
                found
                    .iter()
                    .map(|(invoice, rule)| format!("{invoice} {rule}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            self.report.exports.push(ExportReport {
                tenant: export.tenant.to_string(),
                file: format!("{}/polyfac/archive/{name}", export.tenant),
                lines,
                valid,
                rejected,
                rejections: read,
            });
        }
        Ok(())
    }

    /// Step 4: the PES Aller for Vitry's Trésorerie and the pain.008 for Ivry's bank.
    async fn outgoing_files(
        &mut self,
        progress: &mut Progress<'_>,
    ) -> Result<(PathBuf, PathBuf), DemoError> {
        let pes = files::wait_files(&self.dir("vitry", "helios/outbox"), "PES", 1, STEP_TIMEOUT)
            .await
            .and_then(|f| f.into_iter().next())
            .ok_or_else(|| DemoError::step("PES Aller", "helios.titres wrote no PES Aller file"))?;
        let pain = files::wait_files(&self.dir("ivry", "bank/outbox"), "", 1, STEP_TIMEOUT)
            .await
            .and_then(|f| f.into_iter().next())
            .ok_or_else(|| DemoError::step("pain.008", "sepa.batch wrote no pain.008 file"))?;
        let sent = read_pes(&pes)?;
        let titres = sent.pieces().count();
        self.report.expect(
            format!("the PES Aller holds {} titres", scenario::VITRY_TITRES),
            titres == scenario::VITRY_TITRES,
            format!("{titres} titres"),
        );
        let debits = read_sepa(&pain)?;
        let collections = debits
            .blocks
            .iter()
            .map(|b| b.collections.len())
            .sum::<usize>();
        self.report.expect(
            format!(
                "the pain.008 holds {} direct debits",
                scenario::IVRY_COLLECTIONS
            ),
            collections == scenario::IVRY_COLLECTIONS,
            format!("{collections} collections"),
        );
        progress.step(&format!(
            "Written: {} ({titres} titres) for the Trésorerie, {} ({collections} direct debits) for the bank",
            self.report.relative(&pes),
            self.report.relative(&pain)
        ));
        Ok((pes, pain))
    }

    fn token(&self, tenant: &str) -> String {
        let lookup = super::tokens();
        self.config
            .tenant(tenant)
            .and_then(|t| t.api.as_ref())
            .and_then(|api| lookup(&api.token_env))
            .unwrap_or_default()
    }

    async fn pay(
        &mut self,
        payment: &OnlinePayment,
        patience: Duration,
    ) -> Result<Started, DemoError> {
        let step = format!("paying {} online", payment.invoice);
        let started = kiosque::start_payment(
            &self.http,
            &self.daemon,
            payment.tenant,
            &self.token(payment.tenant),
            payment.invoice,
            patience,
        )
        .await
        .map_err(|e| DemoError::step(&step, e.to_string()))?;
        let status = kiosque::pay_on_gateway(&self.http, &started.redirect_url, payment.outcome)
            .await
            .map_err(|e| DemoError::step(&step, e.to_string()))?;
        self.report.expect(
            format!(
                "{}: the gateway takes the family's choice ({})",
                payment.invoice, payment.outcome
            ),
            (200..400).contains(&status),
            format!("HTTP {status}"),
        );
        self.report.online.push(OnlineReport {
            tenant: payment.tenant.to_string(),
            invoice: payment.invoice.to_string(),
            what: payment.what.to_string(),
            payment_id: started.payment_id.clone(),
            channel: started.channel.clone(),
            amount: started.amount.clone(),
        });
        Ok(started)
    }

    /// Step 5: Ivry's families pay crèche invoices online (web service).
    async fn pay_online(&mut self, progress: &mut Progress<'_>) -> Result<(), DemoError> {
        let mut done = Vec::new();
        for payment in &scenario::IVRY_ONLINE {
            let started = self.pay(payment, Duration::ZERO).await?;
            self.report.expect(
                format!(
                    "{}: régie invoice paid through the web service",
                    payment.invoice
                ),
                started.channel == "web_service",
                started.channel.clone(),
            );
            done.push(format!("{} {}", payment.invoice, payment.what));
        }
        progress.step(&format!(
            "Paid online on the Kiosque famille (Ivry, PayFiP web service): {}",
            done.join("; ")
        ));
        Ok(())
    }

    async fn drop_helios(
        &mut self,
        answer: &tresorerie::Answer,
        schema: &Path,
        what: &str,
    ) -> Result<(), DemoError> {
        if let Some(valid) = self
            .validation
            .check_bytes(schema, &answer.name, &answer.bytes)
        {
            self.report.expect(
                format!("the simulated Trésorerie's {what} is valid against its XSD"),
                valid.is_ok(),
                valid.err().unwrap_or_default(),
            );
        }
        let area = self.dir("vitry", "helios");
        exports::drop_file(&area.join("inbox"), &answer.name, &answer.bytes)
            .map_err(|e| DemoError::io(format!("dropping {}", answer.name), e))?;
        let handled = files::wait_handled(&area, &answer.name, STEP_TIMEOUT).await;
        if handled != Some(Handled::Archived) {
            let reason = std::fs::read_to_string(
                area.join("rejected")
                    .join(format!("{}.reason.txt", answer.name)),
            )
            .unwrap_or_default();
            return Err(DemoError::step(
                what,
                format!(
                    "helios.returns did not archive {} ({handled:?}) {reason}",
                    answer.name
                ),
            ));
        }
        Ok(())
    }

    /// Step 6: the guichet accepts the bordereau; the comptable takes the titres in charge,
    /// rejects one, and records the payments made so far.
    async fn tresorerie_decides(
        &mut self,
        progress: &mut Progress<'_>,
        pes: &Path,
    ) -> Result<(), DemoError> {
        let sent = read_pes(pes)?;
        let acquit = tresorerie::acquit(&sent, self.dates.today)
            .map_err(|e| DemoError::step("PES_ACQUIT", e.to_string()))?;
        self.drop_helios(&acquit, &encaisse_helios::schemas::acquit(), "PES_ACQUIT")
            .await?;
        let retour = tresorerie::retour(&sent, &scenario::VITRY_RETOUR, self.dates.today, 1)
            .map_err(|e| DemoError::step("PES Retour", e.to_string()))?;
        self.drop_helios(&retour, &encaisse_helios::schemas::retour(), "PES Retour")
            .await?;
        progress.step(&format!(
            "Trésorerie → Vitry: {} (bordereau accepted), {} (5 titres taken in charge, PERI-000105 rejected, 4 paid: direct debits, TIP, counter)",
            acquit.name, retour.name
        ));
        Ok(())
    }

    /// Step 7: a family pays its titre online once it was taken in charge (classic URL). The
    /// gateway's result on that channel is unsigned: the daemon records it as an announced
    /// payment (journal `payfip_announced`), tells the Kiosque a payment is in progress, and
    /// writes nothing for Polyfac yet.
    async fn pay_titre_online(&mut self, progress: &mut Progress<'_>) -> Result<(), DemoError> {
        let payment = &scenario::VITRY_ONLINE;
        let started = self.pay(payment, STEP_TIMEOUT).await?;
        self.report.expect(
            format!(
                "{}: titre paid through the classic PayFiP URL",
                payment.invoice
            ),
            started.channel == "classic",
            started.channel.clone(),
        );
        let announced = self.wait_fact(payment.invoice, "payfip_announced").await?;
        if !announced {
            return Err(DemoError::step(
                "online payment of a titre",
                format!("no payfip_announced fact for {}", payment.invoice),
            ));
        }
        let paye = self
            .reglements()
            .iter()
            .filter(|(t, l)| t == "vitry" && l.invoice == payment.invoice && l.statut == "PAYE")
            .count();
        self.report.expect(
            format!(
                "{}: the unsigned classic result is an announcement only (no PAYE line before the PES Retour)",
                payment.invoice
            ),
            paye == 0,
            format!("{paye} PAYE lines"),
        );
        let again = kiosque::start_payment(
            &self.http,
            &self.daemon,
            payment.tenant,
            &self.token(payment.tenant),
            payment.invoice,
            Duration::ZERO,
        )
        .await;
        let in_progress = matches!(&again, Err(kiosque::KiosqueError::Refused { status: 409, body, .. }) if body.contains("payment_in_progress"));
        self.report.expect(
            format!(
                "{}: the payments API answers payment_in_progress while the Trésorerie's confirmation is awaited",
                payment.invoice
            ),
            in_progress,
            format!("{again:?}"),
        );
        progress.step(&format!(
            "Paid online (Vitry, titre taken in charge, classic PayFiP URL): {} {} EUR, {} — announced, awaiting the PES Retour",
            payment.invoice, started.amount, started.payment_id
        ));
        Ok(())
    }

    /// Whether the journal of a Vitry invoice gets a fact of `kind` within the step timeout.
    async fn wait_fact(&mut self, invoice: &str, kind: &str) -> Result<bool, DemoError> {
        let key = format!("vitry/{}/{invoice}", self.dates.exercice());
        let ledger = self.ledger()?;
        let found = files::wait_for_async(STEP_TIMEOUT, || {
            let ledger = ledger.clone();
            let key = key.clone();
            async move {
                let facts = ledger.invoice_facts(&key).await.ok()?;
                facts.iter().any(|f| f.kind == kind).then_some(())
            }
        })
        .await;
        Ok(found.is_some())
    }

    /// Step 8: the next PES Retour shows that payment as a TIPI émargement (`OrgEma` 10): the
    /// Trésorerie's record is the proof — Polyfac gets its `PAYE` line, the announcement is
    /// confirmed.
    async fn tresorerie_sees_online_payment(
        &mut self,
        progress: &mut Progress<'_>,
        pes: &Path,
    ) -> Result<(), DemoError> {
        let sent = read_pes(pes)?;
        let invoice = scenario::VITRY_ONLINE.invoice;
        let retour = tresorerie::retour(
            &sent,
            &[(invoice, scenario::TitreFate::Paid("10"))],
            self.dates.today,
            2,
        )
        .map_err(|e| DemoError::step("PES Retour", e.to_string()))?;
        self.drop_helios(&retour, &encaisse_helios::schemas::retour(), "PES Retour")
            .await?;
        let confirmed = self.wait_fact(invoice, "payfip_claim_confirmed").await?;
        self.report.expect(
            format!("{invoice}: Hélios's TIPI émargement confirms the announced online payment (journal: payfip_claim_confirmed)"),
            confirmed,
            "no payfip_claim_confirmed fact",
        );
        let seen = files::wait_for(STEP_TIMEOUT, || {
            self.reglements()
                .iter()
                .any(|(t, l)| t == "vitry" && l.invoice == invoice && l.statut == "PAYE")
                .then_some(())
        })
        .await;
        if seen.is_none() {
            return Err(DemoError::step(
                "online payment of a titre",
                format!("no PAYE line for {invoice} in Vitry's REGLEMENTS after the PES Retour"),
            ));
        }
        progress.step(&format!(
            "Trésorerie → Vitry: {} (the online payment of {invoice} as a TIPI émargement: PAYE for Polyfac, the announcement confirmed)",
            retour.name
        ));
        Ok(())
    }

    /// Step 9: an absence credited after the titre was sent: Polyfac's credit note becomes
    /// a réduction titre (bordereau of type 02, `RattachPiece` naming the original), which
    /// the Trésorerie takes in charge (`TITRE_REDUIT`).
    async fn credit_note(&mut self, progress: &mut Progress<'_>) -> Result<(), DemoError> {
        let (note, origin, amount) = scenario::CREDIT_NOTE;
        self.exports(progress, &[&scenario::CREDIT_NOTE_EXPORT])
            .await?;
        let outbox = self.dir("vitry", "helios/outbox");
        let reduction = files::wait_for(STEP_TIMEOUT, || {
            files::list(&outbox)
                .into_iter()
                .find(|p| files::name(p).contains(&format!("_{}_02_", self.dates.exercice())))
        })
        .await
        .ok_or_else(|| {
            DemoError::step(
                "réduction titre",
                format!("helios.titres wrote no réduction titre for {note}"),
            )
        })?;
        let sent = read_pes(&reduction)?;
        let (bordereau, piece) = tresorerie::titre_of(&sent, note)
            .map_err(|e| DemoError::step("réduction titre", e.to_string()))?;
        let reduced = Money::sum(
            piece
                .lines
                .iter()
                .filter_map(|l| Money::parse(&l.amount).ok())
                .collect::<Vec<_>>()
                .iter(),
        )
        .unwrap_or(Money::ZERO);
        self.report.expect(
            format!("{note}: a réduction titre (bordereau type 02, TypPce 02) of {amount} EUR against {origin}"),
            bordereau.typ_bord == "02" && piece.typ_pce == "02" && reduced.to_dot_string() == amount,
            format!(
                "bordereau {} pièce {} of {reduced}",
                bordereau.typ_bord, piece.typ_pce
            ),
        );
        progress.step(&format!(
            "Credit note {note} (absences credited on {origin} after its titre was sent): réduction titre in {}",
            self.report.relative(&reduction)
        ));
        let retour = tresorerie::retour(
            &sent,
            &[(note, scenario::TitreFate::Taken)],
            self.dates.today,
            3,
        )
        .map_err(|e| DemoError::step("PES Retour", e.to_string()))?;
        self.drop_helios(&retour, &encaisse_helios::schemas::retour(), "PES Retour")
            .await?;
        progress.step(&format!(
            "Trésorerie → Vitry: {} (the réduction titre of {note} taken in charge: TITRE_REDUIT for Polyfac)",
            retour.name
        ));
        Ok(())
    }

    /// Step 10: the bank rejects two debits (AM04 re-presented, MD01 final).
    async fn bank_rejects(
        &mut self,
        progress: &mut Progress<'_>,
        pain: &Path,
    ) -> Result<(), DemoError> {
        let sent = read_sepa(pain)?;
        let answer = bank::status_report(&sent, &scenario::IVRY_BANK_REJECTS, now_paris())
            .map_err(|m| DemoError::step("pain.002", m))?;
        if let Some(valid) = self.validation.check_bytes(
            &self.validation.sepa_schema("pain.002.001.10.xsd"),
            &answer.name,
            &answer.bytes,
        ) {
            self.report.expect(
                "the simulated bank's pain.002 is valid against its XSD",
                valid.is_ok(),
                valid.err().unwrap_or_default(),
            );
        }
        let area = self.dir("ivry", "bank");
        exports::drop_file(&area.join("inbox"), &answer.name, &answer.bytes)
            .map_err(|e| DemoError::io(format!("dropping {}", answer.name), e))?;
        let handled = files::wait_handled(&area, &answer.name, STEP_TIMEOUT).await;
        if handled != Some(Handled::Archived) {
            return Err(DemoError::step(
                "pain.002",
                format!("sepa.returns did not archive {} ({handled:?})", answer.name),
            ));
        }
        let represented = files::wait_files(&area.join("outbox"), "", 2, STEP_TIMEOUT)
            .await
            .and_then(|f| f.into_iter().nth(1));
        let Some(represented) = represented else {
            return Err(DemoError::step(
                "re-presentation",
                "sepa.returns wrote no second pain.008 for the AM04 reject",
            ));
        };
        let again = read_sepa(&represented)?;
        let ids: Vec<String> = again
            .blocks
            .iter()
            .flat_map(|b| b.collections.iter().map(|c| c.end_to_end_id.clone()))
            .collect();
        let (am04, _) = scenario::IVRY_BANK_REJECTS[0];
        self.report.expect(
            format!("the re-presentation holds {am04} alone, second attempt"),
            ids.len() == 1 && ids[0].ends_with(&format!("-{am04}-2")),
            format!("{ids:?}"),
        );
        progress.step(&format!(
            "Bank → Ivry: {} ({}); re-presented: {}",
            answer.name,
            scenario::IVRY_BANK_REJECTS
                .iter()
                .map(|(i, c)| format!("{i} {c}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.report.relative(&represented)
        ));
        Ok(())
    }

    /// Step 10: everything Polyfac must hear of, nothing more; nothing parked; every file
    /// written valid.
    async fn back_to_polyfac(&mut self, progress: &mut Progress<'_>) -> Result<(), DemoError> {
        let mut expected: Vec<(String, String, String, String)> = scenario::REGLEMENTS
            .iter()
            .map(|(t, i, s, c)| (t.to_string(), i.to_string(), s.to_string(), c.to_string()))
            .collect();
        expected.sort();
        let complete = files::wait_for(STEP_TIMEOUT, || {
            (self.reglement_keys() == expected).then_some(())
        })
        .await;
        tokio::time::sleep(SETTLE).await;
        let found = self.reglement_keys();
        let (missing, extra) = difference(&expected, &found);
        self.report.expect(
            format!(
                "Polyfac gets exactly the {} expected REGLEMENTS lines",
                expected.len()
            ),
            complete.is_some() && missing.is_empty() && extra.is_empty(),
            format!("missing {missing:?}; unexpected {extra:?}"),
        );
        self.collect_reglements();
        self.collect_files();
        self.collect_parked().await?;
        self.report.expect(
            "no message parked",
            self.report.parked.is_empty(),
            format!("{} parked (encaisse dlq list)", self.report.parked.len()),
        );
        let lines: usize = self.report.reglements.iter().map(|f| f.lines.len()).sum();
        progress.step(&format!(
            "Returned to Polyfac: {lines} REGLEMENTS lines in {} files; parked messages: {}",
            self.report.reglements.len(),
            self.report.parked.len()
        ));
        Ok(())
    }

    fn ledger(&mut self) -> Result<Ledger, DemoError> {
        if let Some(ledger) = &self.ledger {
            return Ok(ledger.clone());
        }
        let path = crate::dirs::ledger_path(&self.data_dir);
        let ledger = Ledger::open(&path).map_err(|e| {
            DemoError::io(
                format!("opening {}", path.display()),
                std::io::Error::other(e.to_string()),
            )
        })?;
        self.ledger = Some(ledger.clone());
        Ok(ledger)
    }

    /// The REGLEMENTS files of every tenant, in name order.
    fn reglements_files(&self) -> Vec<(String, PathBuf)> {
        self.config
            .tenants
            .iter()
            .flat_map(|t| {
                let tenant = t.id.to_string();
                files::list(&self.dir(&tenant, "polyfac/outbox"))
                    .into_iter()
                    .filter(|p| files::name(p).starts_with("REGLEMENTS_"))
                    .map(move |p| (tenant.clone(), p))
            })
            .collect()
    }

    fn reglements(&self) -> Vec<(String, ReglementLine)> {
        self.reglements_files()
            .into_iter()
            .flat_map(|(tenant, path)| {
                read_reglements(&path)
                    .into_iter()
                    .map(move |l| (tenant.clone(), l))
            })
            .collect()
    }

    fn reglement_keys(&self) -> Vec<(String, String, String, String)> {
        let mut keys: Vec<_> = self
            .reglements()
            .into_iter()
            .map(|(t, l)| (t, l.invoice, l.statut, l.canal))
            .collect();
        keys.sort();
        keys
    }

    fn collect_reglements(&mut self) {
        let files: Vec<ReglementsFile> = self
            .reglements_files()
            .into_iter()
            .map(|(tenant, path)| ReglementsFile {
                tenant,
                path: self.report.relative(&path),
                lines: read_reglements(&path),
            })
            .collect();
        self.report.reglements = files;
    }

    /// Every file written for the outside world, with its schema verdict.
    fn collect_files(&mut self) {
        let mut found = Vec::new();
        for path in files::list(&self.dir("vitry", "helios/outbox")) {
            let name = files::name(&path);
            if name.starts_with("ACQUIT_") {
                found.push((
                    "PES_ACQUIT_RETOUR",
                    path.clone(),
                    "answer to a PES Retour".to_string(),
                    encaisse_helios::schemas::acquit_retour(),
                ));
            } else if let Ok(sent) = read_pes(&path) {
                let total = Money::sum(
                    sent.pieces()
                        .flat_map(|(_, p)| p.lines.iter())
                        .filter_map(|l| Money::parse(&l.amount).ok())
                        .collect::<Vec<_>>()
                        .iter(),
                )
                .unwrap_or(Money::ZERO);
                found.push((
                    "PES Aller",
                    path.clone(),
                    format!(
                        "{} titres in {} bordereau(x), {total} EUR",
                        sent.pieces().count(),
                        sent.bordereaux.len()
                    ),
                    encaisse_helios::schemas::pes_aller(),
                ));
            }
        }
        for (i, path) in files::list(&self.dir("ivry", "bank/outbox"))
            .into_iter()
            .enumerate()
        {
            if let Ok(sent) = read_sepa(&path) {
                let collections: Vec<_> = sent
                    .blocks
                    .iter()
                    .flat_map(|b| b.collections.iter())
                    .collect();
                let total =
                    Money::sum(collections.iter().map(|c| &c.amount)).unwrap_or(Money::ZERO);
                let what = if i == 0 { "" } else { " (re-presentation)" };
                found.push((
                    "pain.008",
                    path.clone(),
                    format!("{} direct debit(s){what}, {total} EUR", collections.len()),
                    self.validation
                        .sepa_schema(&format!("{}.xsd", sent.message)),
                ));
            }
        }
        let order = |kind: &str| match kind {
            "PES Aller" => 0,
            "PES_ACQUIT_RETOUR" => 1,
            _ => 2,
        };
        found.sort_by(|a, b| order(a.0).cmp(&order(b.0)).then_with(|| a.1.cmp(&b.1)));
        for (kind, path, content, schema) in found {
            let schema_verdict = match self.validation.check(&schema, &path) {
                Some(Ok(())) => "valid".to_string(),
                Some(Err(report)) => format!("INVALID: {report}"),
                None => "not validated".to_string(),
            };
            if schema_verdict != "not validated" {
                self.report.expect(
                    format!(
                        "{} is valid against {}",
                        self.report.relative(&path),
                        files::name(&schema)
                    ),
                    schema_verdict == "valid",
                    schema_verdict.clone(),
                );
            }
            self.report.files.push(FileReport {
                kind: kind.to_string(),
                path: self.report.relative(&path),
                content,
                schema: schema_verdict,
            });
        }
    }

    async fn collect_parked(&mut self) -> Result<(), DemoError> {
        let ledger = self.ledger()?;
        let rows = ledger
            .inspect(|tx| tx.list_parked(&Filter::parked(), 100))
            .await
            .map_err(|e| DemoError::step("parked messages", e.to_string()))?;
        self.report.parked = rows
            .into_iter()
            .map(|p| ParkedReport {
                id: p.id,
                stage: p.stage,
                kind: p.error_kind,
                invoice: p.invoice.unwrap_or_default(),
                error: p.error,
            })
            .collect();
        Ok(())
    }
}

/// `expected` minus `found`, and `found` minus `expected`, as multisets.
fn difference<T: Ord + Clone>(expected: &[T], found: &[T]) -> (Vec<T>, Vec<T>) {
    let mut counts: BTreeMap<&T, i64> = BTreeMap::new();
    for e in expected {
        *counts.entry(e).or_default() += 1;
    }
    for f in found {
        *counts.entry(f).or_default() -= 1;
    }
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (item, n) in counts {
        for _ in 0..n.max(0) {
            missing.push(item.clone());
        }
        for _ in 0..(-n).max(0) {
            extra.push(item.clone());
        }
    }
    (missing, extra)
}

fn read_pes(path: &Path) -> Result<encaisse_helios::sim::Sent, DemoError> {
    let bytes =
        std::fs::read(path).map_err(|e| DemoError::io(format!("reading {}", path.display()), e))?;
    encaisse_helios::sim::read_sent(&bytes, MAX_READ_BYTES)
        .map_err(|e| DemoError::step(format!("reading {}", path.display()), e.to_string()))
}

fn read_sepa(path: &Path) -> Result<SentFile, DemoError> {
    let bytes =
        std::fs::read(path).map_err(|e| DemoError::io(format!("reading {}", path.display()), e))?;
    read_pain008(&files::name(path), &bytes, MAX_READ_BYTES)
        .map_err(|e| DemoError::step(format!("reading {}", path.display()), e.to_string()))
}

/// Data lines of an export (header excluded).
fn count_lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| {
            b.split(|c| *c == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count()
                .saturating_sub(1) as u64
        })
        .unwrap_or(0)
}

/// Distinct invoice numbers (first field) of an export, header excluded.
fn count_invoices(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| {
            b.split(|c| *c == b'\n')
                .skip(1)
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .filter_map(|l| l.split(|c| *c == b';').next())
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64
        })
        .unwrap_or(0)
}

/// `<export>.summary.json`, written when an invoice was refused.
fn read_summary(rejected: &Path, export: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(rejected.join(format!("{export}.summary.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// The rows of `<export>.rejected.csv` (UTF-8 with BOM, `;`), one per broken rule.
fn read_rejections(rejected: &Path, export: &str) -> Result<Vec<Rejection>, DemoError> {
    let path = rejected.join(format!("{export}.rejected.csv"));
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record
            .map_err(|e| DemoError::step(format!("reading {}", path.display()), e.to_string()))?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        rows.push(Rejection {
            line: field(1),
            field: field(4),
            invoice: field(3),
            rule: field(5),
            message: field(6),
        });
    }
    Ok(rows)
}

/// The lines of a REGLEMENTS file (Windows-1252, `;`, header).
fn read_reglements(path: &Path) -> Vec<ReglementLine> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    let headers = reader.headers().cloned().unwrap_or_default();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (invoice, date, montant, canal, statut, reference, motif) = (
        column("NumFacture"),
        column("DateEvenement"),
        column("Montant"),
        column("Canal"),
        column("Statut"),
        column("Reference"),
        column("Motif"),
    );
    reader
        .records()
        .filter_map(Result::ok)
        .map(|r| {
            let get = |i: Option<usize>| i.and_then(|i| r.get(i)).unwrap_or_default().to_string();
            ReglementLine {
                invoice: get(invoice),
                statut: get(statut),
                canal: get(canal),
                montant: get(montant),
                date: get(date),
                reference: get(reference),
                motif: get(motif),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_counts_duplicates() {
        let (missing, extra) = difference(&[1, 1, 2], &[1, 2, 2, 3]);
        assert_eq!(missing, vec![1]);
        assert_eq!(extra, vec![2, 3]);
    }
}
