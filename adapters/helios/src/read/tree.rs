//! A small tree of a PES document read safely: elements, their `V` value and their line.
//!
//! Built by [`encaisse_xml::tree`] under its rules (size limit, no DTD, no entity
//! declaration or expansion, ISO-8859-1 decoded, bounded nesting, one root). Text content is
//! not kept (PES values are attributes; PJ contents are not needed here).

use encaisse_xml::reader::{attribute, local_name};
use encaisse_xml::tree::{Limits, TreeError, TreeNode, parse_with};
use quick_xml::events::BytesStart;

use super::ReadError;

/// PES documents are at most a dozen levels deep; anything far deeper is not a PES file.
pub const MAX_DEPTH: usize = encaisse_xml::tree::DEFAULT_MAX_DEPTH;

/// An element of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name (`n:PES_Retour` → `PES_Retour`).
    pub name: String,
    /// The `V` attribute, PES's way of carrying values.
    pub value: Option<String>,
    pub children: Vec<Element>,
    /// 1-based line of the start tag.
    pub line: u32,
}

/// A parsed document: its root, and the namespace the root is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub root: Element,
    pub namespace: Option<String>,
}

impl TreeNode for Element {
    fn name(&self) -> &str {
        &self.name
    }

    fn push_child(&mut self, child: Self) {
        self.children.push(child);
    }
}

fn line_u32(line: usize) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

/// The namespace bound to the root's prefix (or the default namespace).
fn root_namespace(start: &BytesStart<'_>) -> Option<String> {
    let qname = start.name();
    let full = qname.as_ref();
    let key = match full.split_once(':') {
        Some((prefix, _)) => format!("xmlns:{prefix}"),
        None => "xmlns".to_string(),
    };
    attribute(start, &key)
}

/// Parses `bytes` (untrusted) into a [`Tree`].
pub fn parse(bytes: &[u8], limits: impl Into<Limits>) -> Result<Tree, ReadError> {
    let mut namespace = None;
    let root = parse_with(bytes, limits.into(), |start, depth, line| {
        if depth == 0 {
            namespace = root_namespace(start);
        }
        Ok(Element {
            name: local_name(start),
            value: attribute(start, "V"),
            children: Vec::new(),
            line: line_u32(line),
        })
    })
    .map_err(|e| match e {
        TreeError::Guard(e) => ReadError::Guard(e),
        TreeError::Encoding(e) => ReadError::Encoding(e),
        TreeError::Malformed { line, reason } => ReadError::Syntax {
            line: line_u32(line),
            message: reason,
        },
        TreeError::TooDeep { line, limit } => ReadError::TooDeep {
            line: line_u32(line),
            limit,
        },
        TreeError::TooManyElements { line, limit } => ReadError::Syntax {
            line: line_u32(line),
            message: format!("more than {limit} elements"),
        },
    })?;
    Ok(Tree { root, namespace })
}

impl Element {
    /// First child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The `V` of child `name`, when present and not empty.
    pub fn value_of(&self, name: &str) -> Option<&str> {
        self.child(name)
            .and_then(|c| c.value.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lines_and_namespace() {
        let doc = b"<?xml version=\"1.0\"?>\n<n:R xmlns:n=\"urn:r\">\n  <A V=\"1\"/>\n  <B>\n    <C V=\"x &amp; y\"/>\n  </B>\n</n:R>\n";
        let tree = parse(doc, 1 << 20).unwrap();
        assert_eq!(tree.root.name, "R");
        assert_eq!(tree.namespace.as_deref(), Some("urn:r"));
        assert_eq!(tree.root.value_of("A"), Some("1"));
        let b = tree.root.child("B").unwrap();
        assert_eq!(b.line, 4);
        assert_eq!(b.child("C").unwrap().line, 5);
        assert_eq!(b.value_of("C"), Some("x & y"));
    }

    #[test]
    fn malformed_documents_are_refused_with_a_line() {
        let err = parse(b"<a>\n<b>\n</a>", 1 << 20).unwrap_err();
        assert!(matches!(err, ReadError::Syntax { .. }), "{err:?}");
        let err = parse(b"<a>\n<b/>", 1 << 20).unwrap_err();
        assert!(matches!(err, ReadError::Syntax { .. }), "{err:?}");
        let err = parse(b"<a/><b/>", 1 << 20).unwrap_err();
        assert!(matches!(err, ReadError::Syntax { .. }), "{err:?}");
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(
            parse(deep.as_bytes(), 1 << 20),
            Err(ReadError::TooDeep { .. })
        ));
    }
}
