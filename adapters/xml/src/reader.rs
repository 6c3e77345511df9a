use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::events::BytesStart;

/// Why the bytes of a document cannot be read as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    #[error(
        "document declares encoding {0:?}, which is not supported (UTF-8, ISO-8859-1/15, Windows-1252)"
    )]
    Unsupported(String),
    #[error("document is not valid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
}

/// The encoding named in the XML declaration, if any (`<?xml version="1.0" encoding="ISO-8859-1"?>`).
///
/// Works on bytes, not text: the head of a hostile file may hold any byte anywhere (a
/// multi-byte character right after `encoding=` once made a string slice panic). A
/// declaration that cannot be read is treated as absent; the parser then refuses the file.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(200)];
    let decl_end = find(head, b"?>")?;
    let decl = &head[..decl_end];
    let at = find(decl, b"encoding")?;
    let rest = trim_ascii_start(&decl[at + b"encoding".len()..]);
    let rest = trim_ascii_start(rest.strip_prefix(b"=")?);
    let (&quote, rest) = rest.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let end = rest.iter().position(|&b| b == quote)?;
    let name = &rest[..end];
    // Encoding names are ASCII letters, digits, `.`, `_` and `-` (XML 1.0, EncName).
    name.iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        .then(|| String::from_utf8_lossy(name).into_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_ascii_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// The document as UTF-8 text: PES files from the Trésorerie are often ISO-8859-1, which
/// is decoded here (as its Windows-1252 superset) so that the parser only sees UTF-8.
pub fn to_utf8(bytes: &[u8]) -> Result<Cow<'_, str>, EncodingError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match declared_encoding(bytes).map(|e| e.to_ascii_lowercase()) {
        None => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|e| EncodingError::InvalidUtf8(e.valid_up_to())),
        Some(e) if e == "utf-8" || e == "utf8" => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|e| EncodingError::InvalidUtf8(e.valid_up_to())),
        Some(e)
            if matches!(
                e.as_str(),
                "iso-8859-1"
                    | "iso8859-1"
                    | "latin1"
                    | "latin-1"
                    | "iso-8859-15"
                    | "windows-1252"
                    | "cp1252"
            ) =>
        {
            let encoding = if e == "iso-8859-15" {
                encoding_rs::ISO_8859_15
            } else {
                encoding_rs::WINDOWS_1252
            };
            let (text, _, _) = encoding.decode(bytes);
            Ok(Cow::Owned(text.into_owned()))
        }
        Some(other) => Err(EncodingError::Unsupported(other)),
    }
}

/// A quick-xml reader over untrusted text (already passed through
/// [`crate::check_untrusted`] and [`to_utf8`]): text trimmed, end tags checked.
pub fn untrusted_reader(text: &str) -> Reader<&[u8]> {
    let mut reader = Reader::from_reader(text.as_bytes());
    let config = reader.config_mut();
    config.trim_text(true);
    config.check_end_names = true;
    config.expand_empty_elements = false;
    reader
}

/// The value of attribute `name` (PES values are `<Tag V="value"/>`). Character references
/// (`&#233;`) and the five predefined entities are decoded; nothing else is expanded.
pub fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| {
            a.normalized_value(XmlVersion::Explicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// The local name of an element (`n:PES_Aller` → `PES_Aller`).
pub fn local_name(element: &BytesStart<'_>) -> String {
    element.local_name().as_ref().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::events::Event;

    #[test]
    fn latin1_is_transcoded_and_values_read() {
        let bytes = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><n:R xmlns:n=\"x\"><Nom V=\"H\xe9l\xe8ne &amp; Cie\"/></n:R>";
        let text = to_utf8(bytes).unwrap();
        let mut reader = untrusted_reader(&text);
        let mut found = None;
        loop {
            match reader.read_event().unwrap() {
                Event::Empty(e) if local_name(&e) == "Nom" => found = attribute(&e, "V"),
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(found.as_deref(), Some("Hélène & Cie"));
    }

    #[test]
    fn any_bytes_in_the_declaration_are_an_error_not_a_panic() {
        let hostile: [&[u8]; 6] = [
            b"<?xml version=\"1.0\" encoding=\xC3\xA9\"UTF-8\"?><a/>",
            b"<?xml version=\"1.0\" encoding=\xC3?><a/>",
            b"<?xml version=\"1.0\" encoding=\"\xC3\xA9\"?><a/>",
            b"<?xml encoding = '\xFF\xFE'?><a/>",
            b"<?xml encoding=\"?>",
            b"<?xml encoding=?>",
        ];
        for bytes in hostile {
            // Declared names with non-ASCII bytes are not names: read as no declaration,
            // then the bytes must be UTF-8.
            let _ = to_utf8(bytes);
        }
        assert!(to_utf8(b"<?xml version=\"1.0\" encoding=\xC3\xA9\"x\"?><a/>").is_ok());
        assert!(matches!(
            to_utf8(b"<?xml encoding=\"\xFF\"?><a/>"),
            Err(EncodingError::InvalidUtf8(16))
        ));
        assert_eq!(
            to_utf8(b"<?xml version='1.0' encoding = 'latin1' ?><a>\xe9</a>").as_deref(),
            Ok("<?xml version='1.0' encoding = 'latin1' ?><a>\u{e9}</a>")
        );
    }

    #[test]
    fn unknown_encoding_is_refused() {
        let bytes = b"<?xml version=\"1.0\" encoding=\"EBCDIC\"?><a/>";
        assert!(matches!(to_utf8(bytes), Err(EncodingError::Unsupported(_))));
    }
}
