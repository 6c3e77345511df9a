/// Why an untrusted XML document was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("file is {size} bytes, larger than the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error(
        "document declares a DTD or entities ({found}); refused (entity expansion attack guard)"
    )]
    Dtd { found: &'static str },
    #[error("file is empty")]
    Empty,
}

/// Checks an untrusted document's bytes: size within `limit_bytes`, no DTD, no entity
/// declarations. Cheap: one scan for the markers, before any parsing.
pub fn check_untrusted(bytes: &[u8], limit_bytes: u64) -> Result<(), GuardError> {
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(GuardError::Empty);
    }
    if size > limit_bytes {
        return Err(GuardError::TooLarge {
            size,
            limit: limit_bytes,
        });
    }
    for (marker, name) in [
        (&b"<!DOCTYPE"[..], "<!DOCTYPE"),
        (&b"<!ENTITY"[..], "<!ENTITY"),
    ] {
        if contains_ignore_ascii_case(bytes, marker) {
            return Err(GuardError::Dtd { found: name });
        }
    }
    Ok(())
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billion_laughs_is_refused() {
        let doc = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"#;
        assert_eq!(
            check_untrusted(doc, 1 << 20),
            Err(GuardError::Dtd { found: "<!DOCTYPE" })
        );
    }

    #[test]
    fn size_limit() {
        assert!(matches!(
            check_untrusted(b"<a/>", 3),
            Err(GuardError::TooLarge { size: 4, limit: 3 })
        ));
        assert_eq!(check_untrusted(b"", 3), Err(GuardError::Empty));
        assert!(check_untrusted(b"<a/>", 4).is_ok());
    }
}
