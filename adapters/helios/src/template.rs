//! Small text templates of the configuration: `{name}` or `{name:N}` placeholders.
//!
//! Used for file names, objects and labels, and the talon optique lines. A number with a
//! width is zero-padded on the left (`{id_bord:7}` → `0000042`); a text with a width is
//! padded with spaces on the right. A value longer than its width is an error (never cut
//! silently). `{cle97}` is built in: the two-digit key `97 − (N × 100 mod 97)` where N is the
//! number made of every digit rendered before it (a RIB-style key; see `aller::talon`).

use std::fmt::Write as _;

/// A value a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Number(u64),
    Text(&'a str),
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{0}}}")]
    UnknownPlaceholder(String),
    #[error("unclosed '{{' at character {0}")]
    Unclosed(usize),
    #[error("invalid width in {{{0}}}")]
    BadWidth(String),
    #[error("value of {{{name}}} has {len} characters, more than its width {width}")]
    TooWide {
        name: String,
        len: usize,
        width: usize,
    },
}

/// Renders `template`, asking `lookup` for each placeholder's value.
pub fn render<'v>(
    template: &str,
    lookup: impl Fn(&str) -> Option<Value<'v>>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    let mut consumed = 0;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or(TemplateError::Unclosed(consumed + open))?;
        let spec = &after[..close];
        let (name, width) = match spec.split_once(':') {
            Some((name, w)) => (
                name,
                Some(
                    w.parse::<usize>()
                        .map_err(|_| TemplateError::BadWidth(spec.to_string()))?,
                ),
            ),
            None => (spec, None),
        };
        if name == "cle97" {
            let key = cle97(&out);
            let _ = write!(out, "{key:02}");
        } else {
            let value =
                lookup(name).ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_string()))?;
            push_value(&mut out, name, value, width)?;
        }
        let step = open + 1 + close + 1;
        consumed += step;
        rest = &rest[step..];
    }
    out.push_str(rest);
    Ok(out)
}

fn push_value(
    out: &mut String,
    name: &str,
    value: Value<'_>,
    width: Option<usize>,
) -> Result<(), TemplateError> {
    let too_wide = |len: usize, width: usize| TemplateError::TooWide {
        name: name.to_string(),
        len,
        width,
    };
    match (value, width) {
        (Value::Number(n), None) => {
            let _ = write!(out, "{n}");
        }
        (Value::Number(n), Some(w)) => {
            let digits = n.to_string();
            if digits.len() > w {
                return Err(too_wide(digits.len(), w));
            }
            let _ = write!(out, "{digits:0>w$}");
        }
        (Value::Text(t), None) => out.push_str(t),
        (Value::Text(t), Some(w)) => {
            let len = t.chars().count();
            if len > w {
                return Err(too_wide(len, w));
            }
            let _ = write!(out, "{t:<w$}");
        }
    }
    Ok(())
}

/// `97 − (N × 100 mod 97)`, N = the digits of `rendered` (other characters skipped).
fn cle97(rendered: &str) -> u32 {
    let rem = rendered
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0u32, |acc, b| (acc * 10 + u32::from(b - b'0')) % 97);
    97 - (rem * 100) % 97
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<Value<'static>> {
        match name {
            "id_bord" => Some(Value::Number(42)),
            "siret" => Some(Value::Text("21940000000017")),
            "ics" => Some(Value::Text("FR72ZZZ123456")),
            _ => None,
        }
    }

    #[test]
    fn widths_and_padding() {
        assert_eq!(
            render("PES_{siret}_{id_bord:7}.xml", values).unwrap(),
            "PES_21940000000017_0000042.xml"
        );
        assert_eq!(render("{id_bord}", values).unwrap(), "42");
        assert_eq!(render("[{ics:15}]", values).unwrap(), "[FR72ZZZ123456  ]");
        assert_eq!(render("no placeholder", values).unwrap(), "no placeholder");
    }

    #[test]
    fn errors_are_named() {
        assert_eq!(
            render("{nope}", values),
            Err(TemplateError::UnknownPlaceholder("nope".into()))
        );
        assert_eq!(render("a{id_bord", values), Err(TemplateError::Unclosed(1)));
        assert!(matches!(
            render("{id_bord:x}", values),
            Err(TemplateError::BadWidth(_))
        ));
        assert_eq!(
            render("{siret:5}", values),
            Err(TemplateError::TooWide {
                name: "siret".into(),
                len: 14,
                width: 5
            })
        );
    }

    #[test]
    fn cle97_is_a_rib_style_key() {
        // The clé RIB of 30006 00001 12345678901 is 89 (sepa.md §4.5): the same formula over
        // the 21 digits gives the same key.
        assert_eq!(
            render("30006000011234567890 1{cle97}", values).unwrap(),
            "30006000011234567890 189"
        );
    }
}
