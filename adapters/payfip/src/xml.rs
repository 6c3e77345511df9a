//! A small, bounded element tree for SOAP messages (ours and the gateway's).
//!
//! SOAP envelopes here are a few hundred bytes, so they are read into a tree and navigated by
//! **local name**: namespace prefixes differ between implementations (`S:`, `soap-env:`,
//! `soapenv:`, `ns2:`…) and only the local names are a stable contract (spec §3.2).
//! Safety: [`encaisse_xml::tree`] builds it under its rules (size limit, no DTD or entity
//! declarations, only character references and the five predefined entities decoded), with
//! the tighter bounds below. Text is kept untrimmed: PayFiP values keep meaningful spaces
//! (the recorded `A2` libellé ends with one).

use std::borrow::Cow;

pub use encaisse_xml::tree::TreeError as XmlError;
use encaisse_xml::tree::{Limits, TreeNode};

/// Deepest nesting accepted (a SOAP response is 6 levels deep).
const MAX_DEPTH: usize = 32;
/// Most elements accepted in one message.
const MAX_ELEMENTS: usize = 5_000;

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

impl TreeNode for Element {
    fn name(&self) -> &str {
        &self.name
    }

    fn push_child(&mut self, child: Self) {
        self.children.push(child);
    }

    fn push_text(&mut self, text: &str) {
        self.text.push_str(text);
    }
}

/// Parses an untrusted document of at most `limit_bytes` into its root element.
pub fn parse_untrusted(bytes: &[u8], limit_bytes: u64) -> Result<Element, XmlError> {
    let limits = Limits {
        bytes: limit_bytes,
        depth: MAX_DEPTH,
        elements: MAX_ELEMENTS,
    };
    encaisse_xml::tree::parse_with(bytes, limits, |start, _, _| {
        Ok(Element {
            name: start.local_name().as_ref().to_string(),
            ..Element::default()
        })
    })
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

    /// The rules themselves are tested in `encaisse_xml::tree`; here, SOAP's tighter bounds.
    #[test]
    fn soap_bounds_are_tighter() {
        let bomb = br#"<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#;
        assert!(matches!(
            parse_untrusted(bomb, 1 << 16),
            Err(XmlError::Guard(_))
        ));
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert!(matches!(
            parse_untrusted(deep.as_bytes(), 1 << 16),
            Err(XmlError::TooDeep { limit: 32, .. })
        ));
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        assert!(matches!(
            parse_untrusted(wide.as_bytes(), 1 << 16),
            Err(XmlError::TooManyElements { limit: 5_000, .. })
        ));
    }
}
