//! The simulated gateway's memory: operations, classic sessions, counters, clock, randomness.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{SimError, SimulatorOptions};
use crate::result::Resultrans;

/// Locks a mutex, recovering the data if a holder panicked (the simulator keeps serving).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An operation created by `creerPaiementSecurise`.
#[derive(Clone, PartialEq, Eq)]
pub struct SimOperation {
    pub idop: String,
    pub numcli: String,
    pub exer: String,
    pub refdet: String,
    /// Amount in cents, as sent.
    pub montant: String,
    /// Payer address (personal data: `Debug` masks it).
    pub mel: String,
    pub objet: Option<String>,
    pub saisie: String,
    pub urlnotif: String,
    pub urlredirect: String,
    pub created_at: DateTime<Utc>,
    pub result: Option<SimResult>,
}

impl fmt::Debug for SimOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimOperation")
            .field("idop", &self.idop)
            .field("numcli", &self.numcli)
            .field("refdet", &self.refdet)
            .field("montant", &self.montant)
            .field("mel", &encaisse_schemas::mask::email(&self.mel))
            .field("saisie", &self.saisie)
            .field("created_at", &self.created_at)
            .field("result", &self.result)
            .finish()
    }
}

/// A completed payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResult {
    pub resultrans: Resultrans,
    /// Authorisation number (paid results only).
    pub numauto: Option<String>,
    pub at: DateTime<Utc>,
}

/// A classic payment between its page and its result: the validated request parameters.
#[derive(Clone)]
pub(super) struct ClassicSession {
    pub params: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

/// What the simulator has been asked so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub creer: u64,
    pub recuperer_detail_paiement: u64,
    pub recuperer_detail_client: u64,
    /// SOAP faults answered (business or technical, injected outages excluded).
    pub soap_faults: u64,
    /// SOAP calls answered as an injected outage.
    pub injected_outages: u64,
    pub wsdl_served: u64,
    pub page_views: u64,
    /// Payments completed (any outcome).
    pub completions: u64,
    /// Notifications answered 2xx by the receiver.
    pub notifications_delivered: u64,
    /// Notifications that failed (error, timeout, non-2xx), per attempt.
    pub notifications_failed: u64,
    /// Payments whose notification was dropped on purpose.
    pub notifications_dropped: u64,
    pub classic_pages: u64,
    pub classic_completions: u64,
    /// Server-side `urlcl` calls answered 2xx.
    pub classic_results_delivered: u64,
    pub classic_results_failed: u64,
}

macro_rules! counter_cells {
    ($($name:ident),* $(,)?) => {
        /// Atomic counters behind [`Counters`].
        #[derive(Default)]
        pub(super) struct CounterCells { $(pub $name: AtomicU64,)* }

        impl CounterCells {
            pub fn snapshot(&self) -> Counters {
                Counters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counter_cells!(
    creer,
    recuperer_detail_paiement,
    recuperer_detail_client,
    soap_faults,
    injected_outages,
    wsdl_served,
    page_views,
    completions,
    notifications_delivered,
    notifications_failed,
    notifications_dropped,
    classic_pages,
    classic_completions,
    classic_results_delivered,
    classic_results_failed,
);

pub(super) fn bump(cell: &AtomicU64) {
    cell.fetch_add(1, Ordering::Relaxed);
}

/// SplitMix64: small, seeded, good enough for fault-injection rates (not for secrets).
pub(super) struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p` (0 never, 1 always).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    /// Uniform in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        if max == 0 {
            0
        } else {
            self.next_u64() % (max + 1)
        }
    }
}

/// The contract files served under `/tpa/services/`.
pub(super) struct ContractFiles {
    /// Empty when the contract is not served (`serve_contract = false`).
    pub wsdl: String,
    /// XSDs by file name.
    pub xsds: HashMap<String, Vec<u8>>,
}

pub(super) const WSDL_FILE: &str = "PaiementSecuriseService.wsdl";

impl ContractFiles {
    fn load(options: &SimulatorOptions) -> Result<Self, SimError> {
        if !options.serve_contract {
            return Ok(ContractFiles {
                wsdl: String::new(),
                xsds: HashMap::new(),
            });
        }
        let read = |name: &str| {
            let path = options.contract_dir.join(name);
            std::fs::read(&path).map_err(|source| SimError::Contract {
                path: path.display().to_string(),
                source,
            })
        };
        let wsdl = String::from_utf8_lossy(&read(WSDL_FILE)?).into_owned();
        let mut xsds = HashMap::new();
        // The XSDs named by `schemaLocation` in the WSDL and in the XSDs themselves.
        let mut pending: Vec<String> = schema_locations(&wsdl);
        while let Some(name) = pending.pop() {
            if xsds.contains_key(&name) || !is_plain_file_name(&name) {
                continue;
            }
            let bytes = read(&name)?;
            pending.extend(schema_locations(&String::from_utf8_lossy(&bytes)));
            xsds.insert(name, bytes);
        }
        Ok(ContractFiles { wsdl, xsds })
    }
}

/// `schemaLocation="…"` values of a contract file.
fn schema_locations(text: &str) -> Vec<String> {
    text.split("schemaLocation=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// A bare file name (no directory part): nothing outside the contract folder is served.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Everything the handlers share.
pub(super) struct Shared {
    options: RwLock<SimulatorOptions>,
    pub contract: ContractFiles,
    pub operations: Mutex<HashMap<String, SimOperation>>,
    pub classic_sessions: Mutex<HashMap<String, ClassicSession>>,
    pub paid_debts: Mutex<HashSet<(String, String, String)>>,
    pub counters: CounterCells,
    clock_offset_ms: AtomicI64,
    rng: Mutex<Rng>,
    fail_next: AtomicU64,
    /// Client for notifications and classic results.
    pub http: reqwest::Client,
}

impl Shared {
    pub fn new(options: SimulatorOptions) -> Result<Arc<Self>, SimError> {
        let problems = options.problems();
        if !problems.is_empty() {
            return Err(SimError::Options(problems.join("; ")));
        }
        let contract = ContractFiles::load(&options)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SimError::Options(format!("HTTP client: {e}")))?;
        Ok(Arc::new(Shared {
            rng: Mutex::new(Rng(options.seed)),
            options: RwLock::new(options),
            contract,
            operations: Mutex::new(HashMap::new()),
            classic_sessions: Mutex::new(HashMap::new()),
            paid_debts: Mutex::new(HashSet::new()),
            counters: CounterCells::default(),
            clock_offset_ms: AtomicI64::new(0),
            fail_next: AtomicU64::new(0),
            http,
        }))
    }

    /// A copy of the current options.
    pub fn options(&self) -> SimulatorOptions {
        self.options
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn update_options(&self, change: impl FnOnce(&mut SimulatorOptions)) {
        let mut guard = self.options.write().unwrap_or_else(|p| p.into_inner());
        change(&mut guard);
    }

    /// The simulator's clock (real time plus [`Shared::advance_clock`]).
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    pub fn advance_clock(&self, by: chrono::Duration) {
        self.clock_offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }

    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::Relaxed);
    }

    /// Whether this SOAP call must be answered as an outage.
    pub fn outage_now(&self, rate: f64) -> bool {
        let forced = self
            .fail_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        forced || lock(&self.rng).chance(rate)
    }

    pub fn chance(&self, p: f64) -> bool {
        lock(&self.rng).chance(p)
    }

    pub fn random_up_to(&self, max: u64) -> u64 {
        lock(&self.rng).up_to(max)
    }

    /// A 16-character authorisation number (`123456789012-sim`; the recorded one is
    /// `112233445566-tip`).
    pub fn numauto(&self) -> String {
        format!("{:012}-sim", lock(&self.rng).next_u64() % 1_000_000_000_000)
    }

    pub fn operation(&self, idop: &str) -> Option<SimOperation> {
        lock(&self.operations).get(idop).cloned()
    }

    /// Whether an operation without result has been purged by now (then forgets it).
    pub fn purge_if_due(&self, idop: &str) -> bool {
        let purge_after = chrono::Duration::seconds(
            self.options().purge_after_secs.min(i64::MAX as u64 / 1000) as i64,
        );
        let now = self.now();
        let mut ops = lock(&self.operations);
        let due = ops
            .get(idop)
            .is_some_and(|op| op.result.is_none() && now - op.created_at > purge_after);
        if due {
            ops.remove(idop);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_rates_are_roughly_right_and_reproducible() {
        let mut a = Rng(7);
        let hits = (0..10_000).filter(|_| a.chance(0.3)).count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
        let mut b = Rng(7);
        let mut c = Rng(7);
        assert_eq!(b.next_u64(), c.next_u64());
        assert!(!Rng(1).chance(0.0));
        assert!(Rng(1).chance(1.0));
    }

    #[test]
    fn contract_file_names_are_plain() {
        assert!(is_plain_file_name("PaiementSecuriseService_schema1.xsd"));
        assert!(!is_plain_file_name("../secret.xsd"));
        assert!(!is_plain_file_name("a/b.xsd"));
        assert_eq!(
            schema_locations(r#"<a schemaLocation="x.xsd"/><b schemaLocation="y.xsd"/>"#),
            vec!["x.xsd".to_string(), "y.xsd".to_string()]
        );
    }

    #[test]
    fn the_contract_files_are_needed_only_when_served() {
        let missing = SimulatorOptions {
            contract_dir: "/nonexistent/payfip-contract".into(),
            serve_contract: true,
            ..SimulatorOptions::default()
        };
        assert!(matches!(
            Shared::new(missing.clone()),
            Err(SimError::Contract { .. })
        ));
        let shared = Shared::new(SimulatorOptions {
            serve_contract: false,
            ..missing
        })
        .unwrap();
        assert!(shared.contract.wsdl.is_empty() && shared.contract.xsds.is_empty());
    }
}
