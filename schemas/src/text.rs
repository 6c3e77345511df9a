//! Text normalisation for the State's and the banks' character sets.
//!
//! SEPA (EPC basic Latin set, `../shared/specs/sepa.md` §3.1) allows only
//! `a-z A-Z 0-9 / - ? : ( ) . , ' +` and space. French names are transliterated with the
//! EPC217-08 conversion table: accented letters lose their accent, `Œ`→`O`, `Æ`→`A`,
//! `ß`→`s`, `€`→`E`, `&`→`+`, `_`→`-`; anything else becomes a space. (Generic folders such
//! as unidecode give `OE` for `Œ`; the EPC table is the rule of the field, so it is the one
//! used here: `Mme Hélène Œuvray` → `Mme Helene Ouvray`.)

/// Whether `c` belongs to the SEPA basic character set.
pub fn is_sepa_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '/' | '-' | '?' | ':' | '(' | ')' | '.' | ',' | '\'' | '+' | ' '
        )
}

/// Transliterates one character following the EPC217-08 table; `None` when it has no
/// equivalent (it is then replaced by a space).
fn epc_char(c: char) -> Option<char> {
    if is_sepa_char(c) {
        return Some(c);
    }
    let mapped = match c {
        'Œ' => 'O',
        'œ' => 'o',
        'Æ' => 'A',
        'æ' => 'a',
        'ß' => 's',
        '€' => 'E',
        '&' => '+',
        '_' => '-',
        '’' | '‘' | '`' | '´' => '\'',
        '«' | '»' | '"' | '“' | '”' => ' ',
        '–' | '—' => '-',
        _ => {
            let folded = deunicode::deunicode_char(c)?;
            let mut chars = folded.chars();
            let first = chars.next()?;
            // Only accept single-letter foldings of letters (é → e); symbols become spaces.
            if c.is_alphabetic() && chars.next().is_none() && first.is_ascii_alphanumeric() {
                first
            } else {
                return None;
            }
        }
    };
    Some(mapped)
}

/// Transliterates to the SEPA basic set, collapses runs of spaces and trims.
pub fn to_sepa(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut last_space = true;
    for c in input.chars() {
        let mapped = epc_char(c).unwrap_or(' ');
        let mapped = if mapped.is_whitespace() { ' ' } else { mapped };
        if mapped == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(mapped);
            last_space = false;
        }
    }
    out.trim_end().to_string()
}

/// A name as a search key: [`to_sepa`] (accents folded, symbols dropped, spaces collapsed)
/// in lower case, so that `Hélène`, `HELENE` and `helene` find one another.
pub fn search_key(input: &str) -> String {
    to_sepa(input).to_ascii_lowercase()
}

/// [`to_sepa`], then cut to at most `max_chars` characters (never inside the result's
/// bytes: the SEPA set is ASCII).
pub fn to_sepa_max(input: &str, max_chars: usize) -> String {
    let mut s = to_sepa(input);
    s.truncate(max_chars);
    s.trim_end().to_string()
}

/// Cuts a string to at most `max_chars` characters (on a char boundary).
pub fn truncate_chars(input: &str, max_chars: usize) -> &str {
    match input.char_indices().nth(max_chars) {
        Some((idx, _)) => &input[..idx],
        None => input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_keys_fold_case_and_accents() {
        assert_eq!(search_key("Hélène"), "helene");
        assert_eq!(search_key("  DÜRAND  Œuvray "), "durand ouvray");
        assert_eq!(search_key("N'Diaye"), "n'diaye");
    }

    #[test]
    fn french_names() {
        assert_eq!(to_sepa("Mme Hélène Œuvray"), "Mme Helene Ouvray");
        assert_eq!(to_sepa("François  Lefèvre-Noël"), "Francois Lefevre-Noel");
        assert_eq!(to_sepa("Cantine & étude_soir"), "Cantine + etude-soir");
        assert_eq!(to_sepa("L’Haÿ-les-Roses"), "L'Hay-les-Roses");
        assert_eq!(to_sepa("Straße 5 €"), "Strase 5 E");
        assert_eq!(to_sepa("a@b;c"), "a b c");
    }

    #[test]
    fn result_is_always_in_the_set() {
        let s = to_sepa("Ærø — ½ ∑ 中文 🙂 çà");
        assert!(s.chars().all(is_sepa_char), "{s:?}");
    }

    #[test]
    fn max_length() {
        assert_eq!(to_sepa_max("Élise Dupont", 5), "Elise");
        assert_eq!(truncate_chars("éèà", 2), "éè");
    }
}
