//! Fixtures of the régie direct-debit tests: a tenant with two régies, invoices, billing
//! runs, a running daemon slice (the `sepa.batch` stage and the `sepa.returns` source on the
//! real broker), and the bank simulated as the spec describes it (pain.002.001.10 and
//! camt.054.001.08 files, validated against the ISO schemas before they are dropped).

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::Runtime;
use encaisse_pipelines::stages::inbox::WatchSettings;
use encaisse_pipelines::stages::sepa::{self, Clock, SepaSettings, TenantSepa};
use encaisse_schemas::identifiers::{Iban, Ics};
use encaisse_schemas::tenant::Regie;
use encaisse_schemas::{
    BillingRunClosed, CollectionPath, Event, InvoiceIssued, Money, PaymentRejected, TenantId,
};
use encaisse_sepa::SepaTenantConfig;
use encaisse_sepa::config::InitiatingPartyIdKind;
use encaisse_sepa::read::pain008::{SentFile, read_pain008};

use super::support::{BROKER, Client, Namespace, Running, broker_url, wait_connected, wait_until};
pub use super::support::{d, file_name as name, incoming, list};

/// The fixed "now" of every test: Tuesday 1 December 2026, 09:30 in Paris (day 335).
pub fn now() -> NaiveDateTime {
    d(2026, 12, 1).and_hms_opt(9, 30, 0).unwrap()
}

pub fn specs(name: &str) -> PathBuf {
    encaisse_xml::specs::specs_dir().join("sepa").join(name)
}

/// A unique tenant id per test (metrics and directories are per tenant).
pub fn tenant_id(test: &str) -> TenantId {
    TenantId::new(format!("ivry-{test}")).unwrap()
}

pub fn regie(code: &str, ics: &str, iban: &str, name: &str) -> Regie {
    Regie {
        code: code.into(),
        label: format!("Régie {code}"),
        payfip_numcli: None,
        ics: Some(Ics::parse(ics).unwrap()),
        creditor_name: Some(name.into()),
        creditor_iban: Some(Iban::parse(iban).unwrap()),
        creditor_bic: None,
    }
}

/// Ivry's setup as in `config/encaisse.toml` (SIRET in `InitgPty`), with two régies.
pub fn tenant(id: &TenantId) -> TenantSepa {
    let sepa = SepaTenantConfig {
        initiating_party_id: InitiatingPartyIdKind::Siret,
        siret: Some("21940041000011".into()),
        max_input_bytes: 65536,
        ..SepaTenantConfig::default()
    };
    TenantSepa {
        id: id.clone(),
        sepa,
        regies: vec![
            regie(
                "regie-creche",
                "FR55ZZZ947001",
                "FR7610071940000000200123466",
                "Régie petite enfance Ivry-sur-Seine",
            ),
            regie(
                "regie-cantine",
                "FR72ZZZ123456",
                "FR7630001007941234567890185",
                "Régie de la restauration scolaire",
            ),
        ],
    }
}

/// One invoice of a test.
#[derive(Debug, Clone)]
pub struct Inv {
    pub number: &'static str,
    pub regie: Option<&'static str>,
    pub mode: &'static str,
    pub rum: Option<&'static str>,
    pub iban: &'static str,
    pub holder: &'static str,
    pub amount: &'static str,
    pub due: NaiveDate,
    pub sequence: Option<&'static str>,
}

impl Inv {
    /// A direct-debit invoice of the crèche, due 10 December 2026.
    pub fn debit(number: &'static str, rum: &'static str, amount: &'static str) -> Self {
        Inv {
            number,
            regie: Some("regie-creche"),
            mode: "PRELEVEMENT",
            rum: Some(rum),
            iban: "FR7630006000011234567890189",
            holder: "Mme Hélène Œuvray",
            amount,
            due: d(2026, 12, 10),
            sequence: None,
        }
    }

    pub fn regie(mut self, regie: &'static str) -> Self {
        self.regie = Some(regie);
        self
    }
}

/// The canonical `invoice.issued` of `inv`, in `run` (budget `principal`).
pub fn invoice(tenant: &TenantId, run: &str, inv: &Inv) -> InvoiceIssued {
    let mandate = inv.rum.map(|rum| {
        let mut m = serde_json::json!({
            "rum": rum,
            "signed_on": "2025-09-01",
            "iban": inv.iban,
            "holder": inv.holder,
        });
        if let Some(seq) = inv.sequence {
            m["sequence"] = seq.into();
        }
        m
    });
    let value = serde_json::json!({
        "schema_version": 1,
        "invoice": {"tenant": tenant.as_str(), "exercice": 2026, "number": inv.number},
        "source": {"application": "polyfac", "run_id": run},
        "content_hash": format!("hash-{}-{}", inv.number, inv.amount),
        "issued_on": "2026-11-28",
        "period": 11,
        "activity": "CRECHE",
        "budget": "principal",
        "collection": "regie",
        "regie": inv.regie,
        "family_code": format!("FAM-{}", inv.number),
        "payer": {"civilite": "MME", "last_name": "Œuvray", "first_name": "Hélène",
                  "address": {"street": "3 allée des Tilleuls", "postal_code": "94200", "city": "Ivry-sur-Seine"}},
        "lines": [{"number": 1, "product": "CRECHE_HEURE", "cod_prod_loc": "CR", "nature": "7066",
                   "label": "Accueil crèche", "quantity": "1", "unit_price": inv.amount, "amount": inv.amount}],
        "total": inv.amount,
        "due_date": inv.due.to_string(),
        "payment_mode": inv.mode,
        "mandate": mandate,
        "online_payable": false,
    });
    let mut value = value;
    if inv.regie.is_none() {
        value.as_object_mut().unwrap().remove("regie");
    }
    if mandate_is_null(&value) {
        value.as_object_mut().unwrap().remove("mandate");
    }
    serde_json::from_value(value).unwrap()
}

fn mandate_is_null(value: &serde_json::Value) -> bool {
    value.get("mandate").is_some_and(serde_json::Value::is_null)
}

/// `billing_run.closed` announcing `invoices` régie invoices of budget `principal`.
pub fn run_closed(tenant: &TenantId, run: &str, invoices: &[InvoiceIssued]) -> BillingRunClosed {
    super::support::run_closed_by(CollectionPath::Regie, tenant, run, invoices)
}

pub fn settings(dir: &Path, tenants: Vec<TenantSepa>) -> SepaSettings {
    SepaSettings {
        tenants,
        data_dir: dir.to_path_buf(),
        clock: Clock::fixed(now()),
    }
}

/// A running slice of the daemon: `sepa.batch` and `sepa.returns` on the real broker, with
/// a queue collecting every `payment.rejected`.
pub struct Flow {
    pub ns: Namespace,
    pub dir: tempfile::TempDir,
    pub ledger: Ledger,
    pub client: Client,
    pub sink: String,
    pub running: Option<Running>,
    pub tenants: Vec<TenantSepa>,
    /// The daemon's "now" (starts at [`now()`]); tests move it forward.
    pub now: Arc<Mutex<NaiveDateTime>>,
    seen: Mutex<Vec<PaymentRejected>>,
}

impl Flow {
    pub async fn start(tenants: Vec<TenantSepa>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, tenants).await
    }

    /// Starts on an existing data directory (and its ledger).
    pub async fn start_in(dir: tempfile::TempDir, tenants: Vec<TenantSepa>) -> Self {
        let ns = Namespace::new();
        let client = Client::new().await;
        let sink = client.sink(&ns, "rejected", "payment.rejected").await;
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let mut flow = Flow {
            ns,
            dir,
            ledger,
            client,
            sink,
            running: None,
            tenants,
            now: Arc::new(Mutex::new(now())),
            seen: Mutex::new(Vec::new()),
        };
        flow.run().await;
        flow
    }

    /// (Re)starts the runtime with fresh components.
    pub async fn run(&mut self) {
        let tiers = [1];
        self.ns.stage("sepa.batch", &tiers);
        let mut runtime = Runtime::new(
            self.ns.config(&broker_url(BROKER), &tiers),
            self.ledger.clone(),
        );
        let now = self.now.clone();
        let settings = SepaSettings {
            clock: Clock::from_fn(move || *now.lock().unwrap()),
            ..settings(self.dir.path(), self.tenants.clone())
        };
        runtime.add_stage(sepa::batch_stage(settings.clone(), self.ledger.clone()));
        runtime.add_source(sepa::returns_source(
            settings,
            WatchSettings {
                poll_interval: Duration::from_millis(100),
                settle: Duration::ZERO,
            },
        ));
        let running = Running::start(runtime);
        wait_connected(&running.health).await;
        self.running = Some(running);
    }

    /// Moves the daemon's clock.
    pub fn set_now(&self, at: NaiveDateTime) {
        *self.now.lock().unwrap() = at;
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    pub async fn publish<E: Event>(&self, event: &E) {
        self.publish_as(event, &event.message_id()).await;
    }

    /// Publishes `event` under another message id (a producer re-publishing a fact).
    pub async fn publish_as<E: Event>(&self, event: &E, message_id: &str) {
        self.client
            .publish_event(&self.ns.prefix, event, message_id)
            .await;
    }

    pub fn bank_dir(&self, tenant: &TenantId, sub: &str) -> PathBuf {
        self.dir.path().join(tenant.as_str()).join("bank").join(sub)
    }

    /// Files of a bank directory (not hidden), sorted.
    pub fn files(&self, tenant: &TenantId, sub: &str) -> Vec<PathBuf> {
        list(&self.bank_dir(tenant, sub))
    }

    /// Waits until `bank/<sub>` holds at least `n` files; returns them.
    pub async fn wait_files(&self, tenant: &TenantId, sub: &str, n: usize) -> Vec<PathBuf> {
        super::support::wait_files(&self.bank_dir(tenant, sub), "", n).await
    }

    /// Every `payment.rejected` published so far.
    pub async fn events(&self) -> Vec<PaymentRejected> {
        let fresh = self.client.drain(&self.sink).await;
        let mut seen = self.seen.lock().unwrap();
        for delivery in fresh {
            seen.push(encaisse_schemas::decode(&delivery.data).unwrap());
        }
        seen.clone()
    }

    pub async fn wait_events(&self, n: usize) -> Vec<PaymentRejected> {
        wait_until(
            &format!("{n} payment.rejected"),
            Duration::from_secs(30),
            || async { self.events().await.len() >= n },
        )
        .await;
        self.events().await
    }

    /// Drops a bank file in the tenant's inbox (hidden name, then renamed).
    pub fn drop_bank_file(&self, tenant: &TenantId, name: &str, bytes: &[u8]) {
        super::support::drop_into(&self.bank_dir(tenant, "inbox"), name, bytes);
    }

    /// Waits until `name` left the inbox for `archive/` or `rejected/`; returns where.
    pub async fn wait_handled(&self, tenant: &TenantId, name: &str) -> &'static str {
        super::support::wait_handled(&self.bank_dir(tenant, ""), name).await
    }

    /// How many rows a query counts.
    pub async fn count(&self, sql: &'static str) -> i64 {
        super::support::count(&self.ledger, sql).await
    }
}

/// Validates a written pain.008 against the ISO schema and reads it back.
pub fn check_pain008(path: &Path) -> SentFile {
    encaisse_xml::specs::validate_file_or_skip(&specs("pain.008.001.02.xsd"), path).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let sent = read_pain008(&name(path), &bytes, 10 * 1024 * 1024).unwrap();
    assert!(
        sent.total_mismatches().is_empty(),
        "{:?}",
        sent.total_mismatches()
    );
    sent
}

/// End-to-end ids of a pain.008, in file order.
pub fn e2e_ids(sent: &SentFile) -> Vec<String> {
    sent.blocks
        .iter()
        .flat_map(|b| b.collections.iter().map(|c| c.end_to_end_id.clone()))
        .collect()
}

/// One rejected transaction of a simulated pain.002.
pub struct TxReject<'a> {
    pub block: &'a str,
    pub end_to_end_id: &'a str,
    pub code: &'a str,
    pub amount: &'a str,
    pub due: NaiveDate,
}

/// A schema-valid pain.002.001.10 from the bank about our pain.008 `original`: transaction
/// rejects, or a whole-file reject when `group_code` is given (the adapter's simulated bank,
/// `encaisse_sepa::sim`, validated here).
pub fn pain002(
    message_id: &str,
    original: &str,
    group_code: Option<&str>,
    rejects: &[TxReject<'_>],
) -> Vec<u8> {
    let rejects: Vec<encaisse_sepa::sim::TxReject> = rejects
        .iter()
        .map(|r| encaisse_sepa::sim::TxReject {
            block: r.block.to_string(),
            end_to_end_id: r.end_to_end_id.to_string(),
            code: r.code.to_string(),
            amount: Money::parse(r.amount).unwrap(),
            due: r.due,
        })
        .collect();
    let created = d(2026, 12, 9).and_hms_opt(7, 0, 0).unwrap();
    let xml = encaisse_sepa::sim::pain002(
        message_id,
        created,
        original,
        "pain.008.001.02",
        group_code,
        &rejects,
    );
    encaisse_xml::specs::validate_bytes_or_skip(&specs("pain.002.001.10.xsd"), "pain002.xml", &xml)
        .unwrap();
    xml
}

/// A schema-valid camt.054.001.08: one booked direct-debit return (`RtrInf`) per
/// (end-to-end id, RUM, amount, code), on the régie's account (the adapter's simulated
/// bank, validated here).
pub fn camt054(message_id: &str, returns: &[(&str, &str, &str, &str)]) -> Vec<u8> {
    let returns: Vec<encaisse_sepa::sim::BookedReturn> = returns
        .iter()
        .map(
            |(e2e, rum, amount, code)| encaisse_sepa::sim::BookedReturn {
                end_to_end_id: e2e.to_string(),
                mandate_id: rum.to_string(),
                amount: Money::parse(amount).unwrap(),
                code: code.to_string(),
            },
        )
        .collect();
    let xml = encaisse_sepa::sim::camt054(
        message_id,
        d(2026, 12, 14).and_hms_opt(6, 0, 0).unwrap(),
        d(2026, 12, 14),
        "FR7610071940000000200123466",
        &returns,
    );
    encaisse_xml::specs::validate_bytes_or_skip(&specs("camt.054.001.08.xsd"), "camt054.xml", &xml)
        .unwrap();
    xml
}
