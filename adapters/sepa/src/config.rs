//! Configuration of the sepa adapter: the `[tenants.sepa]` section of `encaisse.toml`.
//!
//! Every field is documented and has a default (in a function). Facts the specs mark
//! "to confirm" (`../shared/specs/sepa.md` §0, §8, §10) are settings here, never constants:
//! the accepted pain.008 version, the `InitgPty` identification, the bank's lead time, the
//! re-presentation policy, the DFT file naming.
//!
//! The régie's creditor data (ICS, name, IBAN, BIC) is not here: it is
//! [`encaisse_schemas::tenant::Regie`] (`[[tenants.regies]]`), one régie per creditor.

use encaisse_schemas::identifiers::check_siret;
use encaisse_schemas::tenant::ConfigIssue;
use serde::{Deserialize, Serialize};

use crate::model::Pain008Version;
use crate::naming;
use crate::reasons::{self, MandateEffect};

/// What `GrpHdr/InitgPty/Id` carries. Banks differ (spec §0.4, §9: "[to confirm]"); the
/// public-sector DFT convention found in Noethysweb (`pes-v2.md` §7) is the SIRET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitiatingPartyIdKind {
    /// No `Id`: only `InitgPty/Nm` (ISO and EPC baseline; the element is optional).
    #[default]
    None,
    /// `Id/OrgId/Othr/Id` = [`SepaTenantConfig::siret`], `SchmeNm/Prtry` = `SIRET`
    /// (Noethysweb "Secteur public DFT").
    Siret,
    /// `Id/OrgId/Othr/Id` = the régie's ICS (python-sepaxml; some French banks).
    Ics,
}

/// Sequence type of the first collection under a recurrent mandate. Since the EPC 2016
/// rulebooks `FRST` is optional (`RCUR` is accepted for a first collection); whether the
/// commune's bank or the DGFiP still expects `FRST` is not confirmed (spec §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FirstSequence {
    /// First collection `FRST`, then `RCUR` (the legacy rule every bank accepts; a `FRST`
    /// rejected before settlement is sent again as `FRST`).
    #[default]
    Frst,
    /// Every collection of a recurrent mandate is `RCUR` (EPC rulebook 9.0, Nov 2016).
    Rcur,
}

/// `[tenants.sepa.represent]`: which bank rejects are re-presented automatically, how often
/// and when. French law (L.133-26 CMF, 2022) counts repeated presentations of one payment as
/// one incident and the DGFiP warned about reject fees: keep it small and explicit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepresentationConfig {
    /// ISO reason codes whose collection is re-presented on a later date (default `AM04`
    /// insufficient funds and `MS03` reason not given by the bank). Every other code is final.
    #[serde(default = "default_represent_codes")]
    pub codes: Vec<String>,
    /// How many re-presentations an invoice may get after its first presentation
    /// (1 = "at most once"). 0 disables re-presentation.
    #[serde(default = "default_max_representations")]
    pub max_representations: u32,
    /// Calendar days between the later of (reject reported, original due date) and the new
    /// due date; the result is moved to the next TARGET business day.
    #[serde(default = "default_represent_delay_days")]
    pub delay_days: u32,
}

fn default_represent_codes() -> Vec<String> {
    vec!["AM04".to_string(), "MS03".to_string()]
}

fn default_max_representations() -> u32 {
    1
}

fn default_represent_delay_days() -> u32 {
    10
}

impl Default for RepresentationConfig {
    fn default() -> Self {
        RepresentationConfig {
            codes: default_represent_codes(),
            max_representations: default_max_representations(),
            delay_days: default_represent_delay_days(),
        }
    }
}

/// `[tenants.sepa]`: a commune's régie direct-debit settings (pain.008 version, lead times,
/// re-presentation, file naming, bank file size limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SepaTenantConfig {
    /// Message version written: `pain.008.001.02` (ISO 2009, default, still accepted by
    /// most banks) or `pain.008.001.08` (ISO 2019, EPC 2023 rulebooks). Which one the
    /// receiving side accepts is to be confirmed with the Trésorerie / bank (spec §0.2).
    #[serde(default)]
    pub pain008_version: Pain008Version,
    /// What `GrpHdr/InitgPty/Id` carries: `none` (default), `siret` or `ics` (spec §0.4,
    /// unverified; the DFT convention of Noethysweb is `siret`).
    #[serde(default)]
    pub initiating_party_id: InitiatingPartyIdKind,
    /// SIRET (14 digits) of the régie's collectivité, written in `InitgPty/Id` when
    /// `initiating_party_id = "siret"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siret: Option<String>,
    /// `InitgPty/Nm`; default: the régie's creditor name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiating_party_name: Option<String>,
    /// `PmtInf/BtchBookg`: `true` (default) books each block as one credit on the régie's
    /// account; `false` asks for one booking per collection (some banks ignore it).
    #[serde(default = "default_batch_booking")]
    pub batch_booking: bool,
    /// Minimum number of TARGET business days between the day a file is created and the due
    /// date of its collections (bank cut-off, commonly D-2; spec §8 "[to confirm]"). A
    /// collection due earlier is refused by the writer.
    #[serde(default = "default_lead_days")]
    pub lead_days: u32,
    /// Sequence type of the first collection of a recurrent mandate: `FRST` (default) or
    /// `RCUR` (allowed since Nov 2016; spec §5).
    #[serde(default)]
    pub first_sequence: FirstSequence,
    /// A mandate lapses after this many months without any collection presented (counted
    /// from the due date of the last one, even if rejected; Banque de France FAQ: 36).
    #[serde(default = "default_mandate_lapse_months")]
    pub mandate_lapse_months: u32,
    /// Automatic re-presentation of rejected collections.
    #[serde(default)]
    pub represent: RepresentationConfig,
    /// Name of the files written to `bank/outbox`; the name without its extension is also
    /// the `MsgId`. Placeholders: `{service}`, `{tenant}`, `{regie}`, `{yyyy}`, `{yy}`,
    /// `{mm}`, `{dd}`, `{doy}` (day of year, 3 digits), `{seq}` (file of the day, 3 digits).
    /// Default after Noethysweb's DFT naming (`pes-v2.md` §7):
    /// `{service}-DFT-SDD-{yy}{doy}-{seq}.xml`.
    #[serde(default = "default_file_name_pattern")]
    pub file_name_pattern: String,
    /// The DFT "identifiant service" used by `{service}`; default: the régie's code in upper
    /// case. Its official format is not public (assumption, see `docs/sepa.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// `PmtInf/UltmtCdtr/Nm`: the party on whose behalf the régie collects (Noethysweb's DFT
    /// format puts the DFT account holder there). Omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ultimate_creditor_name: Option<String>,
    /// `PmtInf/UltmtCdtr/Id/OrgId/Othr/Id` (≤ 35 SEPA characters). Needs
    /// `ultimate_creditor_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ultimate_creditor_id: Option<String>,
    /// Bank files (pain.002, camt.054) larger than this are refused before parsing.
    #[serde(default = "default_max_input_bytes")]
    pub max_input_bytes: u64,
    /// Bank files with more XML elements than this are refused (default 1 000 000: a
    /// return file holds some tens of thousands; the bound caps the memory one file takes).
    #[serde(default = "default_max_input_elements")]
    pub max_input_elements: usize,
}

fn default_batch_booking() -> bool {
    true
}

fn default_lead_days() -> u32 {
    2
}

fn default_mandate_lapse_months() -> u32 {
    36
}

fn default_file_name_pattern() -> String {
    "{service}-DFT-SDD-{yy}{doy}-{seq}.xml".to_string()
}

fn default_max_input_bytes() -> u64 {
    10 * 1024 * 1024
}

fn default_max_input_elements() -> usize {
    encaisse_xml::tree::DEFAULT_MAX_ELEMENTS
}

impl Default for SepaTenantConfig {
    fn default() -> Self {
        SepaTenantConfig {
            pain008_version: Pain008Version::default(),
            initiating_party_id: InitiatingPartyIdKind::default(),
            siret: None,
            initiating_party_name: None,
            batch_booking: default_batch_booking(),
            lead_days: default_lead_days(),
            first_sequence: FirstSequence::default(),
            mandate_lapse_months: default_mandate_lapse_months(),
            represent: RepresentationConfig::default(),
            file_name_pattern: default_file_name_pattern(),
            service_id: None,
            ultimate_creditor_name: None,
            ultimate_creditor_id: None,
            max_input_bytes: default_max_input_bytes(),
            max_input_elements: default_max_input_elements(),
        }
    }
}

impl SepaTenantConfig {
    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let field = |name: &str| format!("{prefix}.{name}");
        match (&self.initiating_party_id, &self.siret) {
            (InitiatingPartyIdKind::Siret, None) => issues.push(ConfigIssue::new(
                field("siret"),
                "required when initiating_party_id = \"siret\"",
            )),
            (_, Some(siret)) => {
                if let Err(e) = check_siret(siret) {
                    issues.push(ConfigIssue::new(field("siret"), e.to_string()));
                }
            }
            _ => {}
        }
        if let Some(name) = &self.initiating_party_name
            && let Err(e) = crate::rules::sepa_text(name, 70)
        {
            issues.push(ConfigIssue::new(
                field("initiating_party_name"),
                e.to_string(),
            ));
        }
        if !(1..=14).contains(&self.lead_days) {
            issues.push(ConfigIssue::new(
                field("lead_days"),
                format!("{} TARGET days: expected 1 to 14", self.lead_days),
            ));
        }
        if !(13..=36).contains(&self.mandate_lapse_months) {
            issues.push(ConfigIssue::new(
                field("mandate_lapse_months"),
                format!(
                    "{} months: expected at most 36 (Banque de France) and at least 13",
                    self.mandate_lapse_months
                ),
            ));
        }
        self.validate_represent(&field("represent"), &mut issues);
        if let Err(e) = naming::validate_pattern(&self.file_name_pattern) {
            issues.push(ConfigIssue::new(field("file_name_pattern"), e));
        }
        if let Some(service) = &self.service_id
            && let Err(e) = naming::validate_service_id(service)
        {
            issues.push(ConfigIssue::new(field("service_id"), e));
        }
        match (&self.ultimate_creditor_name, &self.ultimate_creditor_id) {
            (None, Some(_)) => issues.push(ConfigIssue::new(
                field("ultimate_creditor_name"),
                "required when ultimate_creditor_id is set",
            )),
            (Some(name), id) => {
                if let Err(e) = crate::rules::sepa_text(name, 70) {
                    issues.push(ConfigIssue::new(
                        field("ultimate_creditor_name"),
                        e.to_string(),
                    ));
                }
                if let Some(id) = id
                    && let Err(e) = encaisse_schemas::identifiers::check_sepa_identifier(
                        "ultimate creditor id",
                        id,
                    )
                {
                    issues.push(ConfigIssue::new(
                        field("ultimate_creditor_id"),
                        e.to_string(),
                    ));
                }
            }
            (None, None) => {}
        }
        if self.max_input_bytes < 1024 {
            issues.push(ConfigIssue::new(
                field("max_input_bytes"),
                format!(
                    "{} bytes is too small for any bank file",
                    self.max_input_bytes
                ),
            ));
        }
        issues
    }

    fn validate_represent(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        let represent = &self.represent;
        for (i, code) in represent.codes.iter().enumerate() {
            match reasons::lookup(code) {
                None => issues.push(ConfigIssue::new(
                    format!("{prefix}.codes[{i}]"),
                    format!("{code:?} is not a known SDD reason code"),
                )),
                Some(info) if info.mandate != MandateEffect::Keep => issues.push(ConfigIssue::new(
                    format!("{prefix}.codes[{i}]"),
                    format!(
                        "{code} ({}) stops the mandate's use: it must never be re-presented",
                        info.iso_name
                    ),
                )),
                Some(_) => {}
            }
        }
        if represent.max_representations > 2 {
            issues.push(ConfigIssue::new(
                format!("{prefix}.max_representations"),
                format!(
                    "{}: at most 2 (repeated presentations cost the family reject fees)",
                    represent.max_representations
                ),
            ));
        }
        if !(1..=60).contains(&represent.delay_days) {
            issues.push(ConfigIssue::new(
                format!("{prefix}.delay_days"),
                format!("{} days: expected 1 to 60", represent.delay_days),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_gives_documented_defaults() {
        let config: SepaTenantConfig = toml::from_str("").unwrap();
        assert_eq!(config, SepaTenantConfig::default());
        assert_eq!(config.pain008_version, Pain008Version::V02);
        assert_eq!(config.represent.codes, ["AM04", "MS03"]);
        assert_eq!(config.represent.max_representations, 1);
        assert!(config.validate("tenants[0].sepa").is_empty());
    }

    #[test]
    fn full_section_parses() {
        let config: SepaTenantConfig = toml::from_str(
            r#"
            pain008_version = "pain.008.001.08"
            initiating_party_id = "siret"
            siret = "21940081900013"
            batch_booking = false
            lead_days = 3
            first_sequence = "RCUR"
            service_id = "REGIE-CANTINE"
            file_name_pattern = "{service}-{yyyy}{mm}{dd}-{seq}.xml"
            [represent]
            codes = ["AM04"]
            max_representations = 2
            delay_days = 14
            "#,
        )
        .unwrap();
        assert_eq!(config.pain008_version, Pain008Version::V08);
        assert_eq!(config.first_sequence, FirstSequence::Rcur);
        let issues = config.validate("t.sepa");
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<SepaTenantConfig>("lead_day = 2").is_err());
        assert!(toml::from_str::<SepaTenantConfig>("[represent]\ncode = []").is_err());
    }

    #[test]
    fn problems_name_their_field() {
        let config: SepaTenantConfig = toml::from_str(
            r#"
            initiating_party_id = "siret"
            lead_days = 0
            mandate_lapse_months = 48
            file_name_pattern = "{service}-{nope}.xml"
            ultimate_creditor_id = "DFT"
            [represent]
            codes = ["AM04", "MD01", "ZZ99"]
            max_representations = 5
            delay_days = 0
            "#,
        )
        .unwrap();
        let fields: Vec<String> = config
            .validate("tenants[2].sepa")
            .into_iter()
            .map(|i| i.field)
            .collect();
        for expected in [
            "tenants[2].sepa.siret",
            "tenants[2].sepa.lead_days",
            "tenants[2].sepa.mandate_lapse_months",
            "tenants[2].sepa.file_name_pattern",
            "tenants[2].sepa.ultimate_creditor_name",
            "tenants[2].sepa.represent.codes[1]",
            "tenants[2].sepa.represent.codes[2]",
            "tenants[2].sepa.represent.max_representations",
            "tenants[2].sepa.represent.delay_days",
        ] {
            assert!(
                fields.iter().any(|f| f == expected),
                "{expected} in {fields:?}"
            );
        }
        assert_eq!(fields.len(), 9, "{fields:?}");
    }

    #[test]
    fn siret_is_checked() {
        for (siret, ok) in [
            ("21940081900013", true),
            ("21940081900018", false),
            ("2194008190001", false),
        ] {
            let config = SepaTenantConfig {
                siret: Some(siret.into()),
                ..SepaTenantConfig::default()
            };
            let issues = config.validate("s");
            assert_eq!(issues.is_empty(), ok, "{siret}: {issues:?}");
            if !ok {
                assert_eq!(issues[0].field, "s.siret");
            }
        }
    }
}
