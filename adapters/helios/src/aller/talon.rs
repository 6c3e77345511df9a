//! The two "talon optique" lines of a DGFiP-printed ASAP (`TalonOptique2Lignes`).
//!
//! **Assumption.** The dossier says the lines are "calculée(s) et fournie(s) par
//! l'ordonnateur" and must respect "la norme HEL"; that norm (the DGFiP *cahier des charges*
//! of the talon optique 2 lignes and the TIP SEPA) is not public (`pes-v2.md` §5.2, §10.1).
//! The schema only says: 1 to 60 characters of `[0-9A-Z ]` each. So the layout is a
//! configuration ([`TalonOptiqueLayout`], `[tenants.helios.asap.talon]`) rendered by the one
//! function [`talon_optique_lines`]; the default layout below is a placeholder that carries
//! the titre reference and the amount with RIB-style keys. It must be replaced by the layout
//! the Trésorerie / centre d'encaissement gives before TIP ASAP are sent in production
//! (`docs/helios.md`, "Unconfirmed facts").

use serde::{Deserialize, Serialize};

use crate::template::{self, TemplateError, Value};
use crate::text::is_upper_alnum_space;

/// `[tenants.helios.asap.talon]`: templates of the two lines. Placeholders: `{codique}`,
/// `{cod_col}`, `{cod_bud}`, `{exercice}`, `{typ_bord}`, `{id_bord}`, `{id_pce}`,
/// `{amount_cents}`, `{ref_bdf}` (ICS or numéro émetteur), `{invoice_digits}` (the digits
/// of the invoice number, at most 18), `{tip}` (`1` with a TIP SEPA, `0` with the talon);
/// `{name:N}` pads to N; `{cle97}` is a two-digit key over the digits before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TalonOptiqueLayout {
    /// Template of `Ligne1` (1–60 characters of `[0-9A-Z ]` once rendered).
    #[serde(default = "default_line1")]
    pub line1: String,
    /// Template of `Ligne2`.
    #[serde(default = "default_line2")]
    pub line2: String,
}

impl Default for TalonOptiqueLayout {
    fn default() -> Self {
        TalonOptiqueLayout {
            line1: default_line1(),
            line2: default_line2(),
        }
    }
}

fn default_line1() -> String {
    "{codique:7}{exercice:4}{typ_bord:2}{id_bord:7}{id_pce:8}{cle97}".into()
}

fn default_line2() -> String {
    "{tip:1}{amount_cents:12}{cle97} {ref_bdf:13}".into()
}

/// What a talon optique is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalonInput<'a> {
    pub codique: &'a str,
    pub cod_col: &'a str,
    pub cod_bud: &'a str,
    pub exercice: u16,
    pub typ_bord: &'a str,
    pub id_bord: u32,
    pub id_pce: u32,
    pub amount_cents: u64,
    pub ref_bdf: &'a str,
    pub invoice_digits: &'a str,
    /// With a TIP SEPA (`ModeRecouvrement 0`) rather than the talon.
    pub tip: bool,
}

/// The two lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalonOptique {
    pub line1: String,
    pub line2: String,
}

/// Why the lines could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TalonError {
    #[error("talon optique {line}: {source}")]
    Template {
        line: &'static str,
        #[source]
        source: TemplateError,
    },
    #[error("talon optique {line} {value:?} must be 1 to 60 characters of 0-9, A-Z and space")]
    Invalid { line: &'static str, value: String },
}

fn lookup<'a>(input: &'a TalonInput<'a>) -> impl Fn(&str) -> Option<Value<'a>> + 'a {
    move |name| {
        Some(match name {
            "codique" => Value::Text(input.codique),
            "cod_col" => Value::Text(input.cod_col),
            "cod_bud" => Value::Text(input.cod_bud),
            "exercice" => Value::Number(u64::from(input.exercice)),
            "typ_bord" => Value::Text(input.typ_bord),
            "id_bord" => Value::Number(u64::from(input.id_bord)),
            "id_pce" => Value::Number(u64::from(input.id_pce)),
            "amount_cents" => Value::Number(input.amount_cents),
            "ref_bdf" => Value::Text(input.ref_bdf),
            "invoice_digits" => Value::Text(input.invoice_digits),
            "tip" => Value::Number(u64::from(input.tip)),
            _ => return None,
        })
    }
}

/// Computes the talon optique lines of an ASAP with `layout` (see the module's assumption).
pub fn talon_optique_lines(
    layout: &TalonOptiqueLayout,
    input: &TalonInput<'_>,
) -> Result<TalonOptique, TalonError> {
    let render = |line: &'static str, template: &str| {
        let value = template::render(template, lookup(input))
            .map_err(|source| TalonError::Template { line, source })?;
        if value.is_empty() || value.chars().count() > 60 || !is_upper_alnum_space(&value) {
            return Err(TalonError::Invalid { line, value });
        }
        Ok(value)
    };
    Ok(TalonOptique {
        line1: render("Ligne1", &layout.line1)?,
        line2: render("Ligne2", &layout.line2)?,
    })
}

impl TalonOptiqueLayout {
    /// Renders the layout with the largest values a titre can have: a configuration error
    /// shows at `encaisse check`, not when the first TIP invoice arrives.
    pub fn check(&self) -> Result<(), TalonError> {
        let input = TalonInput {
            codique: "0940001",
            cod_col: "123",
            cod_bud: "00",
            exercice: 2024,
            typ_bord: "01",
            id_bord: 9_999_999,
            id_pce: 99_999_999,
            amount_cents: 15_000_000,
            ref_bdf: "FR72ZZZ123456",
            invoice_digits: "202400012345678901",
            tip: true,
        };
        talon_optique_lines(self, &input).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> TalonInput<'static> {
        TalonInput {
            codique: "094000",
            cod_col: "123",
            cod_bud: "00",
            exercice: 2024,
            typ_bord: "01",
            id_bord: 315,
            id_pce: 2871,
            amount_cents: 18_000,
            ref_bdf: "FR72ZZZ123456",
            invoice_digits: "2024000456",
            tip: true,
        }
    }

    #[test]
    fn default_layout_renders_reference_amount_and_keys() {
        let lines = talon_optique_lines(&TalonOptiqueLayout::default(), &input()).unwrap();
        assert_eq!(lines.line1.len(), 30);
        // The codique is text: padded with a space on the right.
        assert!(lines.line1.starts_with("094000 202401000031500002871"));
        assert_eq!(
            lines.line2,
            format!("1000000018000{} FR72ZZZ123456", &lines.line2[13..15])
        );
        // The key changes with the amount: a misread digit is detected.
        let mut other = input();
        other.amount_cents = 18_001;
        let other = talon_optique_lines(&TalonOptiqueLayout::default(), &other).unwrap();
        assert_ne!(other.line2[13..15], lines.line2[13..15]);
        assert!(TalonOptiqueLayout::default().check().is_ok());
    }

    #[test]
    fn lines_outside_the_schema_are_refused() {
        let layout = TalonOptiqueLayout {
            line1: "ref-{id_pce}".into(),
            line2: "{amount_cents}".into(),
        };
        assert!(matches!(
            talon_optique_lines(&layout, &input()),
            Err(TalonError::Invalid { line: "Ligne1", .. })
        ));
        let layout = TalonOptiqueLayout {
            line1: "{id_pce}".into(),
            line2: "{amount}".into(),
        };
        assert!(matches!(
            layout.check(),
            Err(TalonError::Template { line: "Ligne2", .. })
        ));
        let layout = TalonOptiqueLayout {
            line1: "{invoice_digits:30}{invoice_digits:31}".into(),
            line2: "1".into(),
        };
        assert!(matches!(layout.check(), Err(TalonError::Invalid { .. })));
    }
}
