//! A small, bounded element tree for SOAP messages (ours and the gateway's).
//!
//! SOAP envelopes here are a few hundred bytes, so they are read into a tree and navigated by
//! **local name**: namespace prefixes differ between implementations (`S:`, `soap-env:`,
//! `soapenv:`, `ns2:`…) and only the local names are a stable contract (spec §3.2).
//! Safety: the bytes go through [`encaisse_xml::check_untrusted`] (size limit, no DTD or
//! entity declarations) and [`encaisse_xml::to_utf8`]; only character references and the five
//! predefined entities are decoded; depth and element count are bounded.
//!
//! The reader is configured here rather than with `encaisse_xml::reader::untrusted_reader`
//! because that one trims text, and PayFiP values keep meaningful spaces (the recorded `A2`
//! libellé ends with one; `a &amp; b` must not become `a&b`).

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

/// Deepest nesting accepted (a SOAP response is 6 levels deep).
const MAX_DEPTH: usize = 32;
/// Most elements accepted in one message.
const MAX_ELEMENTS: usize = 5_000;

/// Why a message is not readable XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("refused before parsing: {0}")]
    Guard(#[from] encaisse_xml::GuardError),
    #[error("unreadable text: {0}")]
    Encoding(#[from] encaisse_xml::EncodingError),
    #[error("malformed XML at byte {position}: {message}")]
    Syntax { position: u64, message: String },
    #[error("XML nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("XML has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("no root element")]
    NoRoot,
}

/// An element: its local name, its child elements and its text content (character data
/// directly inside it, untrimmed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The text of the first child with this local name, trimmed, `None` when absent or empty.
    pub fn child_value(&self, name: &str) -> Option<&str> {
        self.child_text(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

/// Parses an untrusted document of at most `limit_bytes` into its root element.
pub fn parse_untrusted(bytes: &[u8], limit_bytes: u64) -> Result<Element, XmlError> {
    encaisse_xml::check_untrusted(bytes, limit_bytes)?;
    let text = encaisse_xml::to_utf8(bytes)?;
    parse_text(&text)
}

fn parse_text(text: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = false;

    let syntax = |reader: &Reader<&[u8]>, message: String| XmlError::Syntax {
        position: reader.buffer_position(),
        message,
    };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| syntax(&reader, e.to_string()))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(syntax(&reader, "content after the root element".into()));
            }
            Event::Start(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(Element {
                    name: start.local_name().as_ref().to_string(),
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                let element = Element {
                    name: start.local_name().as_ref().to_string(),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(syntax(&reader, "unexpected end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                push_text(&mut stack, &content, root.is_some()).map_err(|m| syntax(&reader, m))?;
            }
            Event::CData(t) => {
                let content = t.xml10_content();
                push_text(&mut stack, &content, root.is_some()).map_err(|m| syntax(&reader, m))?;
            }
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = match r
                    .resolve_char_ref()
                    .map_err(|e| syntax(&reader, e.to_string()))?
                {
                    Some(c) => Cow::Owned(c.to_string()),
                    None => match resolve_predefined_entity(&r) {
                        Some(s) => Cow::Borrowed(s),
                        None => {
                            return Err(syntax(&reader, format!("undeclared entity &{};", &*r)));
                        }
                    },
                };
                push_text(&mut stack, &resolved, root.is_some()).map_err(|m| syntax(&reader, m))?;
            }
            Event::DocType(_) => {
                return Err(syntax(&reader, "DTD refused".into()));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax {
            position: reader.buffer_position(),
            message: "unclosed element at end of document".into(),
        });
    }
    root.ok_or(XmlError::NoRoot)
}

fn push_text(stack: &mut [Element], content: &str, after_root: bool) -> Result<(), String> {
    match stack.last_mut() {
        Some(current) => {
            current.text.push_str(content);
            Ok(())
        }
        None if content.trim().is_empty() => Ok(()),
        None if after_root => Err("text after the root element".into()),
        None => Err("text before the root element".into()),
    }
}

/// Escapes a value for element content.
pub fn escape(value: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_text_and_references() {
        let doc = br#"<?xml version="1.0"?><S:E xmlns:S="x"><S:B><a>m&#233;l &amp; co </a><b/><c><![CDATA[<x>]]></c></S:B></S:E>"#;
        let root = parse_untrusted(doc, 1 << 16).unwrap();
        assert_eq!(root.name, "E");
        let body = root.child("B").unwrap();
        assert_eq!(body.child_text("a"), Some("mél & co "));
        assert_eq!(body.child_value("b"), None);
        assert_eq!(body.child_text("c"), Some("<x>"));
    }

    #[test]
    fn hostile_documents_are_refused() {
        let bomb = br#"<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#;
        assert!(matches!(
            parse_untrusted(bomb, 1 << 16),
            Err(XmlError::Guard(_))
        ));
        assert!(matches!(
            parse_untrusted(b"<a>&x;</a>", 1 << 16),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse_untrusted(b"<a><b></a>", 1 << 16),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse_untrusted(b"<a/><b/>", 1 << 16),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse_untrusted(b"<a>", 1 << 16),
            Err(XmlError::Syntax { .. })
        ));
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert_eq!(
            parse_untrusted(deep.as_bytes(), 1 << 16),
            Err(XmlError::TooDeep)
        );
        let big = format!("<a>{}</a>", "x".repeat(100));
        assert!(matches!(
            parse_untrusted(big.as_bytes(), 50),
            Err(XmlError::Guard(_))
        ));
        assert!(matches!(
            parse_untrusted(b"just text", 1 << 16),
            Err(XmlError::Syntax { .. }) | Err(XmlError::NoRoot)
        ));
    }
}
