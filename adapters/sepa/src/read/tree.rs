//! The element tree of a bank file: [`encaisse_xml::tree`]'s [`Node`] (local name,
//! attributes, trimmed text, children, line), built under its rules (size limit, no DTD, no
//! entity expansion, Latin-1 transcoded, bounded nesting). Bank files are small (bounded by
//! `max_input_bytes`); a tree keeps the readers short and lets them look at siblings in any
//! order.

use encaisse_xml::tree::Limits;
pub use encaisse_xml::tree::{Node, TreeError as XmlError};

/// Parses untrusted bytes into the root element.
pub fn parse(bytes: &[u8], limits: impl Into<Limits>) -> Result<Node, XmlError> {
    encaisse_xml::tree::parse(bytes, limits.into())
}
