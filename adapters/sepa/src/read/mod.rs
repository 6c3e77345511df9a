//! Readers of the bank's files: pain.002 status reports (rejects before settlement) and
//! camt.054 notifications (returns and refunds after settlement), plus our own pain.008
//! (to check what was sent). Every file goes through `encaisse_xml`'s guard first (size
//! limit, no DTD / entities), is transcoded to UTF-8, then parsed with the untrusted
//! reader. Identifiers echoed by the bank are *not* validated (samples carry placeholder
//! IBANs and ICS with wrong check digits): a reader must not choke on them.
//!
//! Output: [`RejectRecord`]s keyed by end-to-end id with the fallback keys of spec §6.3,
//! an idempotency key each, the reason code with its meaning, and the handling decided by
//! the configured [`RepresentationPolicy`].

mod camt054;
mod pain002;
pub mod pain008;
pub mod tree;

use std::cell::RefCell;

use chrono::{DateTime, FixedOffset, NaiveDate};
use encaisse_schemas::{Event, InvoiceRef, Money, PaymentRejected, SequenceType};

use crate::error::ErrorClass;
use crate::ids::attempt_of;
use crate::policy::{Decision, RepresentationPolicy};
use encaisse_xml::tree::Limits;
use tree::{Node, XmlError};

/// Why a bank file cannot be read. The stage moves such a file to `bank/rejected` with
/// this text as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{file}: {source}")]
    Xml {
        file: String,
        #[source]
        source: XmlError,
    },
    #[error(
        "{file}: not a pain.002, camt.054 or pain.008 message (root <{root}>, namespace {namespace:?})"
    )]
    UnknownMessage {
        file: String,
        root: String,
        namespace: Option<String>,
    },
    #[error("{file}: line {line}: missing {path}")]
    Missing {
        file: String,
        line: usize,
        path: &'static str,
    },
    #[error("{file}: line {line}: {field} {value:?}: {reason}")]
    Invalid {
        file: String,
        line: usize,
        field: &'static str,
        value: String,
        reason: String,
    },
}

impl ReadError {
    /// Undecodable files are poison; files that decode but break the message's shape are
    /// permanent. Either way the file is set aside, never retried as is.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReadError::Xml { .. } | ReadError::UnknownMessage { .. } => ErrorClass::Poison,
            ReadError::Missing { .. } | ReadError::Invalid { .. } => ErrorClass::Permanent,
        }
    }
}

/// Which message a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// `pain.002.001.NN` (CustomerPaymentStatusReport).
    StatusReport,
    /// `camt.054.001.NN` (BankToCustomerDebitCreditNotification).
    Notification,
    /// `pain.008.001.NN` (our own CustomerDirectDebitInitiation).
    Initiation,
}

/// At which level of a status report the reject was stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectLevel {
    /// The whole original message (`GrpSts = RJCT`): every collection of it.
    Group,
    /// One original block (`PmtInfSts = RJCT`): every collection of it.
    Block,
    /// One collection.
    Transaction,
}

/// The kind of R-transaction (spec §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RTransaction {
    /// Refused before settlement (pain.002): the debtor was not debited.
    Reject,
    /// Sent back by the debtor's bank after settlement (camt.054).
    Return,
    /// Claimed back by the debtor (MD06 within 8 weeks; camt.054).
    Refund,
}

/// How to find the collection a record is about, best key first (spec §6.3):
/// `EndToEndId` → (`MndtId`, amount, `ReqdColltnDt`) → (`OrgnlMsgId`, `OrgnlPmtInfId`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatchKeys {
    pub end_to_end_id: Option<String>,
    pub mandate_id: Option<String>,
    /// In EUR; `None` when absent or in another currency.
    pub amount: Option<Money>,
    /// The original due date (`ReqdColltnDt`, camt `IntrBkSttlmDt`).
    pub collection_date: Option<NaiveDate>,
    pub original_message_id: Option<String>,
    pub original_payment_info_id: Option<String>,
}

/// The best key available, in the order of spec §6.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchKey<'a> {
    EndToEnd(&'a str),
    Mandate {
        rum: &'a str,
        amount: Money,
        collection_date: Option<NaiveDate>,
    },
    Block {
        message_id: &'a str,
        payment_info_id: &'a str,
    },
    Message(&'a str),
}

impl MatchKeys {
    pub fn best(&self) -> Option<MatchKey<'_>> {
        if let Some(e2e) = &self.end_to_end_id {
            return Some(MatchKey::EndToEnd(e2e));
        }
        if let (Some(rum), Some(amount)) = (&self.mandate_id, self.amount) {
            return Some(MatchKey::Mandate {
                rum,
                amount,
                collection_date: self.collection_date,
            });
        }
        match (&self.original_message_id, &self.original_payment_info_id) {
            (Some(m), Some(p)) => Some(MatchKey::Block {
                message_id: m,
                payment_info_id: p,
            }),
            (Some(m), None) => Some(MatchKey::Message(m)),
            _ => None,
        }
    }
}

/// One reject, return or refund reported by the bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRecord {
    /// Same R-transaction in the same report → same key, whatever the file is called or
    /// how often it is read: `pain002:<report MsgId>/<StsId | EndToEndId | block | group>`,
    /// `camt054:<AcctSvcrRef>/<EndToEndId | index>` (or the notification's ids).
    pub idempotency_key: String,
    pub level: RejectLevel,
    pub r_type: RTransaction,
    pub keys: MatchKeys,
    /// ISO reason code (`Rsn/Cd`), from the record or inherited from its block / group.
    pub reason_code: Option<String>,
    /// `Rsn/Prtry`, when the bank used a proprietary reason.
    pub proprietary_reason: Option<String>,
    /// `AddtlInf` lines.
    pub additional_info: Vec<String>,
    /// Meaning of the code ([`crate::reasons::describe`]) and the bank's additional text.
    pub reason_text: String,
    /// The bank's reference of the R-transaction (`StsId`, `AcctSvcrRef`, `TxId`).
    pub bank_reference: Option<String>,
    /// Sequence type of the rejected collection, when echoed.
    pub sequence: Option<SequenceType>,
    /// The day the bank reported it (booking date, else the message's creation date).
    pub reported_on: NaiveDate,
    /// Line of the record in the file.
    pub line: usize,
    /// What to do, decided with the presentation number read from the end-to-end id
    /// (1 when the id is not ours): [`RejectRecord::decide`] re-decides with the ledger's.
    pub decision: Decision,
}

impl RejectRecord {
    /// The presentation number encoded in our end-to-end id.
    pub fn attempt(&self) -> Option<u32> {
        self.keys.end_to_end_id.as_deref().and_then(attempt_of)
    }

    /// The handling for this record when the rejected collection was presentation `attempt`.
    pub fn decide(&self, policy: &RepresentationPolicy, attempt: u32) -> Decision {
        policy.decide(
            self.reason_code.as_deref(),
            attempt,
            self.reported_on,
            self.keys.collection_date,
        )
    }

    /// The canonical `payment.rejected` for this record, once the caller found the
    /// collection it is about (for a group or block record: one event per collection) and
    /// settled the decision (`self.decision` or [`RejectRecord::decide`]).
    pub fn to_event(
        &self,
        collection: &MatchedCollection,
        decision: &Decision,
        rejected_at: DateTime<FixedOffset>,
        file: &str,
    ) -> PaymentRejected {
        PaymentRejected {
            schema_version: PaymentRejected::SCHEMA_VERSION,
            invoice: collection.invoice.clone(),
            payment_id: format!("sepa:{}", collection.end_to_end_id),
            end_to_end_id: collection.end_to_end_id.clone(),
            amount: collection.amount,
            reason_code: self.reason_code_or_narrative().to_string(),
            reason_text: self.reason_text.clone(),
            rejected_at,
            will_represent: decision.will_represent(),
            file: Some(file.to_string()),
        }
    }

    /// `reason_code`, or `NARR` (ISO "narrative": reason only in text) when the bank gave
    /// none, for `payment.rejected.reason_code`.
    pub fn reason_code_or_narrative(&self) -> &str {
        self.reason_code.as_deref().unwrap_or("NARR")
    }
}

/// The collection a record was matched to (from the ledger's end-to-end id mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedCollection {
    pub invoice: InvoiceRef,
    pub end_to_end_id: String,
    pub amount: Money,
}

/// What a bank file said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankFile {
    pub file: String,
    pub kind: MessageKind,
    /// `pain.002.001.03`, `camt.054.001.08`…; the namespace's last part.
    pub message: String,
    /// `GrpHdr/MsgId` of the bank's message.
    pub message_id: String,
    /// Status report: `OrgnlGrpInfAndSts/OrgnlMsgId` (our `MsgId`).
    pub original_message_id: Option<String>,
    /// Status report: `OrgnlMsgNmId` as sent by the bank (`pain.008.001.02`,
    /// `PAIN.008.001.02`, or since the EPC 2025 changes `pain.008` without version).
    pub original_message_name: Option<String>,
    /// Status report: `GrpSts` (`ACCP`, `PART`, `RJCT`…).
    pub group_status: Option<String>,
    pub records: Vec<RejectRecord>,
    /// Optional values that could not be read (`file: line N: field "value": reason`);
    /// the records concerned lack that key.
    pub warnings: Vec<String>,
    /// Notification entries that are not direct-debit returns (credits, other debits,
    /// pending or reversal entries): counted, not reported.
    pub ignored_entries: usize,
}

impl BankFile {
    /// Whether a status report is about a direct-debit initiation: `OrgnlMsgNmId` starts
    /// with `pain.008` (compared case-insensitively, version optional; spec §6.2). A report
    /// on a credit transfer (`pain.001`) is not for the régie's direct debits.
    /// Notifications are always considered.
    pub fn reports_on_direct_debits(&self) -> bool {
        self.original_message_name.as_deref().is_none_or(|name| {
            name.get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("pain.008"))
        })
    }
}

/// Reader settings from [`crate::config::SepaTenantConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSettings {
    pub max_input_bytes: u64,
    /// Most XML elements in one file.
    pub max_input_elements: usize,
    pub policy: RepresentationPolicy,
}

impl From<&crate::config::SepaTenantConfig> for ReadSettings {
    fn from(config: &crate::config::SepaTenantConfig) -> Self {
        ReadSettings {
            max_input_bytes: config.max_input_bytes,
            max_input_elements: config.max_input_elements,
            policy: RepresentationPolicy::from(&config.represent),
        }
    }
}

/// The namespace and message element of a parsed `Document`.
fn identify(file: &str, root: &Node) -> Result<(MessageKind, String), ReadError> {
    let namespace = root
        .attribute("xmlns")
        .or_else(|| {
            root.attributes
                .iter()
                .find(|(k, v)| k.starts_with("xmlns:") && v.contains("iso:20022"))
                .map(|(_, v)| v.as_str())
        })
        .map(str::to_string);
    let message = namespace
        .as_deref()
        .and_then(|ns| ns.rsplit(':').next())
        .unwrap_or_default()
        .to_string();
    let child = root.children.first().map(|c| c.name.as_str());
    let kind = match (child, message.get(..13)) {
        (Some("CstmrPmtStsRpt"), Some("pain.002.001.")) => Some(MessageKind::StatusReport),
        (Some("BkToCstmrDbtCdtNtfctn"), Some("camt.054.001.")) => Some(MessageKind::Notification),
        (Some("CstmrDrctDbtInitn"), Some("pain.008.001.")) => Some(MessageKind::Initiation),
        _ => None,
    };
    match kind {
        Some(kind) if root.name == "Document" => Ok((kind, message)),
        _ => Err(ReadError::UnknownMessage {
            file: file.to_string(),
            root: format!("{}/{}", root.name, child.unwrap_or("")),
            namespace,
        }),
    }
}

/// Reads a pain.002 or camt.054 file from `bank/inbox`.
pub fn read_bank_file(
    file: &str,
    bytes: &[u8],
    settings: &ReadSettings,
) -> Result<BankFile, ReadError> {
    let limits = Limits::new(settings.max_input_bytes).with_elements(settings.max_input_elements);
    let root = tree::parse(bytes, limits).map_err(|source| ReadError::Xml {
        file: file.to_string(),
        source,
    })?;
    let (kind, message) = identify(file, &root)?;
    let ctx = Ctx::new(file, settings, true);
    let read = match kind {
        MessageKind::StatusReport => pain002::read(&ctx, &root, message),
        MessageKind::Notification => camt054::read(&ctx, &root, message),
        MessageKind::Initiation => Err(ReadError::UnknownMessage {
            file: file.to_string(),
            root: "Document/CstmrDrctDbtInitn (a pain.008 is what we send, not a bank return)"
                .into(),
            namespace: Some(message),
        }),
    }?;
    tracing::info!(
        file,
        message_name = %read.message,
        message_id = %read.message_id,
        records = read.records.len(),
        ignored_entries = read.ignored_entries,
        "Bank file read."
    );
    Ok(read)
}

/// What the message readers share: the file name for errors, the policy for decisions,
/// and — for bank files — the warnings about optional values that could not be read.
struct Ctx<'a> {
    file: &'a str,
    settings: &'a ReadSettings,
    /// Bank files are read leniently: a malformed *optional* value (an echoed amount or
    /// date used only as a fallback key) becomes a warning and `None`, so one odd field
    /// never sets aside the whole file (spec §7: never drop a bank file for a schema
    /// difference). Our own pain.008 is read strictly.
    lenient: bool,
    warnings: RefCell<Vec<String>>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a str, settings: &'a ReadSettings, lenient: bool) -> Self {
        Ctx {
            file,
            settings,
            lenient,
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// In lenient mode, an invalid optional value is recorded as a warning and dropped.
    fn soft<T>(&self, value: Result<Option<T>, ReadError>) -> Result<Option<T>, ReadError> {
        match value {
            Err(e) if self.lenient => {
                tracing::warn!(error = %e, "Bank file value ignored.");
                self.warnings.borrow_mut().push(e.to_string());
                Ok(None)
            }
            other => other,
        }
    }

    fn take_warnings(&self) -> Vec<String> {
        self.warnings.take()
    }

    /// The text at `path`; when missing, the error names the line of the deepest element
    /// of the path that exists.
    fn required<'n>(&self, node: &'n Node, path: &'static str) -> Result<&'n str, ReadError> {
        let steps = steps(path);
        node.text_at(&steps).ok_or_else(|| {
            let mut deepest = node;
            for step in &steps {
                match deepest.child(step) {
                    Some(next) => deepest = next,
                    None => break,
                }
            }
            ReadError::Missing {
                file: self.file.to_string(),
                line: deepest.line,
                path,
            }
        })
    }

    /// A date from `YYYY-MM-DD` or the date part of an ISO date-time.
    fn date(&self, node: &Node, field: &'static str, value: &str) -> Result<NaiveDate, ReadError> {
        value
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| ReadError::Invalid {
                file: self.file.to_string(),
                line: node.line,
                field,
                value: value.to_string(),
                reason: "not an ISO date".into(),
            })
    }

    fn optional_date(
        &self,
        node: &Node,
        path: &'static str,
    ) -> Result<Option<NaiveDate>, ReadError> {
        node.text_at(&steps(path))
            .map(|v| self.date(node, path, v))
            .transpose()
    }

    /// An amount element with its currency: `Some` only for EUR.
    fn amount(&self, node: Option<&Node>, field: &'static str) -> Result<Option<Money>, ReadError> {
        let Some(node) = node.filter(|n| !n.text.is_empty()) else {
            return Ok(None);
        };
        let money = Money::parse(&node.text).map_err(|e| ReadError::Invalid {
            file: self.file.to_string(),
            line: node.line,
            field,
            value: node.text.clone(),
            reason: e.to_string(),
        })?;
        Ok(match node.attribute("Ccy") {
            None | Some("EUR") => Some(money),
            Some(_) => None,
        })
    }

    fn decision(
        &self,
        code: Option<&str>,
        e2e: Option<&str>,
        reported_on: NaiveDate,
        due: Option<NaiveDate>,
    ) -> Decision {
        let attempt = e2e.and_then(attempt_of).unwrap_or(1);
        self.settings.policy.decide(code, attempt, reported_on, due)
    }
}

/// The steps of a `/`-separated path.
fn steps(path: &str) -> Vec<&str> {
    path.split('/').collect()
}

/// Reason of a `StsRsnInf` / `RtrInf` node: code, proprietary reason, additional texts.
fn reason(node: &Node) -> (Option<String>, Option<String>, Vec<String>) {
    (
        node.text_at(&["Rsn", "Cd"]).map(str::to_string),
        node.text_at(&["Rsn", "Prtry"]).map(str::to_string),
        node.texts_at(&["AddtlInf"])
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn parse_sequence(text: &str) -> Option<SequenceType> {
    match text.trim() {
        "FRST" => Some(SequenceType::Frst),
        "RCUR" => Some(SequenceType::Rcur),
        "FNAL" => Some(SequenceType::Fnal),
        "OOFF" => Some(SequenceType::Ooff),
        _ => None,
    }
}
