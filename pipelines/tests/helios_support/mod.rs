//! Fixtures of the Hélios stage tests: tenants (ORMC and titres ordinaires), invoices and
//! billing runs as the Polyfac ingest publishes them, a running slice of the daemon
//! (`helios.titres`, `helios.titres.flush` and `helios.returns` on the real broker), and the
//! Trésorerie simulated as the specs describe it: it reads the PES Aller file we wrote and
//! answers with `PES_ACQUIT` and `PES_Retour` files, each validated against its official
//! XSD before it is dropped in the inbox.

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use encaisse_helios::codes::BordereauKind;
use encaisse_helios::config::HeliosTenantConfig;
use encaisse_helios::sim;
use encaisse_ledger::Ledger;
use encaisse_pipelines::mandates::SequencePolicy;
use encaisse_pipelines::runtime::Runtime;
use encaisse_pipelines::stages::helios::{self, HeliosSettings, TenantHelios};
use encaisse_pipelines::stages::inbox::WatchSettings;
use encaisse_pipelines::stages::sepa::Clock;
use encaisse_schemas::tenant::Budget;
use encaisse_schemas::{BillingRunClosed, CollectionPath, Event, InvoiceIssued, Money, TenantId};

use super::support::{BROKER, Client, Namespace, Running, broker_url, wait_connected};
pub use super::support::{d, event_props as props, file_name, incoming, list};

/// The fixed "now" of every test: Tuesday 10 March 2026, 09:30 in Paris.
pub fn now() -> NaiveDateTime {
    d(2026, 3, 10).and_hms_opt(9, 30, 0).unwrap()
}

/// A unique tenant id per test (metrics and directories are per tenant).
pub fn tenant_id(test: &str) -> TenantId {
    TenantId::new(format!("vitry-{test}")).unwrap()
}

pub fn budget() -> Budget {
    Budget {
        code: "principal".into(),
        cod_bud: "00".into(),
        cod_col: "081".into(),
        siret: "21940081000012".into(),
        label: "Ville de Vitry-sur-Seine".into(),
        payfip_numcli: Some("094081".into()),
    }
}

/// A commune sending ORMC or titres ordinaires, with its budget `principal`.
pub fn tenant(id: &TenantId, kind: BordereauKind) -> TenantHelios {
    TenantHelios {
        id: id.clone(),
        config: HeliosTenantConfig {
            id_post: "094000".into(),
            libelle_poste: Some("SGC de Créteil".into()),
            bordereau_kind: kind,
            ..HeliosTenantConfig::default()
        },
        budgets: vec![budget()],
        sequence_policy: SequencePolicy::from(&encaisse_sepa::SepaTenantConfig::default()),
    }
}

/// One invoice of a test.
#[derive(Debug, Clone)]
pub struct Inv {
    pub number: String,
    pub mode: &'static str,
    pub amount: &'static str,
    /// The mandate's sequence as the source gives it (`None`: asked of the ledger).
    pub sequence: Option<&'static str>,
    pub postal_code: &'static str,
}

impl Inv {
    /// An invoice paid online or at the Trésorerie.
    pub fn new(number: &str, amount: &'static str) -> Self {
        Inv {
            number: number.into(),
            mode: "TIPI",
            amount,
            sequence: None,
            postal_code: "94400",
        }
    }

    /// Paid by direct debit, with a sequence given by the source (or not).
    pub fn debit(number: &str, amount: &'static str, sequence: Option<&'static str>) -> Self {
        Inv {
            mode: "PRELEVEMENT",
            sequence,
            ..Inv::new(number, amount)
        }
    }

    pub fn postal_code(mut self, code: &'static str) -> Self {
        self.postal_code = code;
        self
    }
}

/// The canonical `invoice.issued.titres` of `inv`, in `run` (budget `principal`, exercice
/// 2026, billed month February, due 20 March).
pub fn invoice(tenant: &TenantId, run: &str, inv: &Inv) -> InvoiceIssued {
    let mut value = serde_json::json!({
        "schema_version": 1,
        "invoice": {"tenant": tenant.as_str(), "exercice": 2026, "number": inv.number},
        "source": {"application": "polyfac", "run_id": run, "file": format!("{run}.csv")},
        "content_hash": format!("hash-{}-{}", inv.number, inv.amount),
        "issued_on": "2026-03-02",
        "period": 2,
        "activity": "PERISCOLAIRE",
        "budget": "principal",
        "collection": "titres",
        "family_code": format!("FAM{}", inv.number),
        "payer": {"civilite": "MME", "last_name": "Œuvray", "first_name": "Hélène",
                  "address": {"street": "3 allée des Tilleuls", "postal_code": inv.postal_code,
                              "city": "Vitry-sur-Seine"}},
        "lines": [
            {"number": 1, "product": "CANTINE", "cod_prod_loc": "CANT", "nature": "7067",
             "fonction": "251", "label": "Restauration scolaire février 2026", "quantity": "1",
             "unit_price": inv.amount, "amount": inv.amount},
            {"number": 2, "product": "ETUDE", "cod_prod_loc": "ETUD", "nature": "7067",
             "fonction": "213", "label": "Étude du soir (offerte)", "quantity": "1",
             "unit_price": "0.00", "amount": "0.00"}
        ],
        "total": inv.amount,
        "due_date": "2026-03-20",
        "payment_mode": inv.mode,
        "online_payable": true,
    });
    if inv.mode == "PRELEVEMENT" {
        let mut mandate = serde_json::json!({
            "rum": format!("RUM-{}", inv.number),
            "signed_on": "2025-09-01",
            "iban": "FR7630004000031234567890143",
            "bic": "BNPAFRPPXXX",
            "holder": "Hélène Œuvray",
        });
        if let Some(seq) = inv.sequence {
            mandate["sequence"] = seq.into();
        }
        value["mandate"] = mandate;
    }
    serde_json::from_value(value).unwrap()
}

/// `billing_run.closed` announcing `invoices` titres of budget `principal`.
pub fn run_closed(tenant: &TenantId, run: &str, invoices: &[InvoiceIssued]) -> BillingRunClosed {
    super::support::run_closed_by(CollectionPath::Titres, tenant, run, invoices)
}

pub fn settings(dir: &Path, tenants: Vec<TenantHelios>) -> HeliosSettings {
    HeliosSettings {
        tenants,
        data_dir: dir.to_path_buf(),
        clock: Clock::fixed(now()),
    }
}

/// A canonical event as it came out of the broker.
#[derive(Debug, Clone)]
pub struct Seen {
    pub message_id: String,
    pub kind: String,
    pub body: serde_json::Value,
}

/// A running slice of the daemon: `helios.titres`, `helios.titres.flush` and
/// `helios.returns` on the real broker, with a queue collecting every `titre.*` and
/// `payment.*` event.
pub struct Flow {
    pub ns: Namespace,
    pub dir: tempfile::TempDir,
    pub ledger: Ledger,
    pub client: Client,
    pub sink: String,
    pub running: Option<Running>,
    pub tenants: Vec<TenantHelios>,
    seen: Mutex<Vec<Seen>>,
}

impl Flow {
    pub async fn start(tenants: Vec<TenantHelios>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ns = Namespace::new();
        let client = Client::new().await;
        let sink = client.sink(&ns, "events", "titre.#").await;
        client.sink(&ns, "events", "payment.#").await;
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let mut flow = Flow {
            ns,
            dir,
            ledger,
            client,
            sink,
            running: None,
            tenants,
            seen: Mutex::new(Vec::new()),
        };
        flow.run().await;
        flow
    }

    pub fn settings(&self) -> HeliosSettings {
        settings(self.dir.path(), self.tenants.clone())
    }

    /// (Re)starts the runtime with fresh components (a restarted daemon).
    pub async fn run(&mut self) {
        let tiers = [1];
        self.ns.stage(helios::STAGE, &tiers);
        let mut runtime = Runtime::new(
            self.ns.config(&broker_url(BROKER), &tiers),
            self.ledger.clone(),
        );
        runtime.add_stage(helios::titres_stage(self.settings(), self.ledger.clone()));
        runtime.add_source(helios::flush_source(
            self.settings(),
            Duration::from_secs(1),
        ));
        runtime.add_source(helios::returns_source(
            self.settings(),
            WatchSettings {
                poll_interval: Duration::from_millis(100),
                settle: Duration::ZERO,
            },
        ));
        let running = Running::start(runtime);
        wait_connected(&running.health).await;
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    pub async fn publish<E: Event>(&self, event: &E) {
        self.client
            .publish_event(&self.ns.prefix, event, &event.message_id())
            .await;
    }

    pub fn helios_dir(&self, tenant: &TenantId, sub: &str) -> PathBuf {
        self.dir
            .path()
            .join(tenant.as_str())
            .join("helios")
            .join(sub)
    }

    /// Files of a helios directory (not hidden), sorted.
    pub fn files(&self, tenant: &TenantId, sub: &str) -> Vec<PathBuf> {
        list(&self.helios_dir(tenant, sub))
    }

    /// Waits until `sub` holds `n` files whose names start with `prefix`.
    pub async fn wait_files(
        &self,
        tenant: &TenantId,
        sub: &str,
        prefix: &str,
        n: usize,
    ) -> Vec<PathBuf> {
        super::support::wait_files(&self.helios_dir(tenant, sub), prefix, n).await
    }

    /// Every `titre.*` / `payment.*` event published so far.
    pub async fn events(&self) -> Vec<Seen> {
        let fresh = self.client.drain(&self.sink).await;
        let mut seen = self.seen.lock().unwrap();
        for delivery in fresh {
            seen.push(Seen {
                message_id: delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                kind: delivery
                    .properties
                    .kind()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&delivery.data).unwrap(),
            });
        }
        seen.clone()
    }

    pub async fn wait_events(&self, n: usize) -> Vec<Seen> {
        super::support::wait_until(&format!("{n} events"), Duration::from_secs(30), || async {
            self.events().await.len() >= n
        })
        .await;
        self.events().await
    }

    /// Drops a Trésorerie file in the tenant's inbox (hidden name, then renamed).
    pub fn drop_file(&self, tenant: &TenantId, name: &str, bytes: &[u8]) {
        super::support::drop_into(&self.helios_dir(tenant, "inbox"), name, bytes);
    }

    /// Waits until `name` left the inbox for `archive/` or `rejected/`; returns where.
    pub async fn wait_handled(&self, tenant: &TenantId, name: &str) -> &'static str {
        super::support::wait_handled(&self.helios_dir(tenant, ""), name).await
    }

    /// A number a query gives.
    pub async fn count(&self, sql: &'static str) -> i64 {
        super::support::count(&self.ledger, sql).await
    }
}

/// Validates `bytes` against `schema` (official XSD), failing with xmllint's report
/// (skipped, and recorded, when the official schema is absent: `encaisse_xml::specs`).
pub fn assert_valid(schema: &Path, name: &str, bytes: &[u8]) {
    if let Err(e) = encaisse_xml::specs::validate_bytes_or_skip(schema, name, bytes) {
        panic!(
            "{name} is not valid against {}: {e}\n{}",
            schema.display(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(4000)])
        );
    }
}

// The Trésorerie is the adapter's simulator (`encaisse_helios::sim`); these wrappers keep
// the tests' shapes and validate every answer against its official XSD.
pub use encaisse_helios::sim::{Sent, SentBordereau};

/// The simulated Trésorerie: reads our PES Aller file as Hélios would.
pub fn read_sent(bytes: &[u8]) -> Sent {
    encaisse_helios::sim::read_sent(bytes, 1 << 30).unwrap()
}

pub fn pes_aller_xsd() -> PathBuf {
    encaisse_helios::schemas::pes_aller()
}

/// Errors the guichet reports on a pièce's line: `(IdPce, IdLigne, NumAnoAck, LibelleAnoAck)`.
pub type LineError<'a> = (u32, u32, &'a str, &'a str);

/// A `PES_ACQUIT` of the Hélios guichet for every bordereau of `sent`, dated `on`: accepted,
/// or rejected (`ko`: `IdBord` → errors `(IdPce, IdLigne, NumAnoAck, LibelleAnoAck)`).
/// Validated against `PES_V2_Acquit_Autonome_V2.xsd`.
pub fn acquit(sent: &Sent, on: NaiveDate, ko: &[(u32, Vec<LineError<'_>>)]) -> Vec<u8> {
    let rejected: Vec<(u32, Vec<sim::LineError>)> = ko
        .iter()
        .map(|(id_bord, errors)| {
            let errors = errors.iter().map(sim::LineError::from).collect();
            (*id_bord, errors)
        })
        .collect();
    let bytes = sim::acquit(sent, on, &rejected).unwrap();
    assert_valid(&encaisse_helios::schemas::acquit(), "acquit", &bytes);
    bytes
}

/// A line of a PES Retour: `EtatLigPce` and the émargements standing `(OrgEma, date, amount)`.
#[derive(Debug, Clone)]
pub struct RLine {
    pub id_ligne: u32,
    pub state: &'static str,
    pub emargements: Vec<(&'static str, &'static str, String)>,
}

/// A pièce of a PES Retour: `EtatPce`, `ObsEtat`, dates, lines.
#[derive(Debug, Clone)]
pub struct RPiece {
    pub id_pce: u32,
    pub state: &'static str,
    pub obs: Option<&'static str>,
    pub taken_on: Option<&'static str>,
    pub rejected_on: Option<&'static str>,
    pub lines: Vec<RLine>,
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// A `PES_Retour` recette (`TypRestit` 01 rejets, 02 périodique) about one bordereau of
/// `sent`, named `name`, dated `on`; line amounts and `InfoORMC` as sent. Validated against
/// `PES_Retour.xsd`.
pub fn retour(
    sent: &Sent,
    bordereau: &SentBordereau,
    name: &str,
    typ_restit: &str,
    on: NaiveDate,
    pieces: &[RPiece],
) -> Vec<u8> {
    let pieces: Vec<sim::RetourPiece> = pieces
        .iter()
        .map(|p| sim::RetourPiece {
            id_pce: p.id_pce,
            state: p.state.to_string(),
            obs: p.obs.map(str::to_string),
            taken_on: p.taken_on.map(date),
            rejected_on: p.rejected_on.map(date),
            lines: p
                .lines
                .iter()
                .map(|l| sim::RetourLine {
                    id_ligne: l.id_ligne,
                    state: l.state.to_string(),
                    emargements: l
                        .emargements
                        .iter()
                        .map(|(org, day, amount)| sim::Emargement {
                            org_ema: org.to_string(),
                            date: date(day),
                            amount: Money::parse(amount).unwrap(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let bytes = sim::retour(sent, bordereau, name, typ_restit, on, &pieces).unwrap();
    assert_valid(&encaisse_helios::schemas::retour(), name, &bytes);
    bytes
}
