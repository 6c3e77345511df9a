//! A small tree of a PES document read safely: elements, their `V` value and their line.
//!
//! The bytes go through `encaisse_xml::check_untrusted` (size limit, no DTD, no entity
//! declaration), `to_utf8` (ISO-8859-1 decoded) and `untrusted_reader` (no entity expansion).
//! Text content is skipped (PES values are attributes; PJ contents are not needed here), and
//! nesting deeper than [`MAX_DEPTH`] is refused.

use encaisse_xml::reader::{attribute, local_name, untrusted_reader};
use encaisse_xml::{check_untrusted, to_utf8};
use quick_xml::events::{BytesStart, Event};

use super::ReadError;

/// PES documents are at most a dozen levels deep; anything far deeper is not a PES file.
pub const MAX_DEPTH: usize = 64;

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

/// Counts lines incrementally as the reader moves forward.
struct LineCounter<'t> {
    text: &'t [u8],
    offset: usize,
    line: u32,
}

impl LineCounter<'_> {
    fn at(&mut self, offset: usize) -> u32 {
        let end = offset.min(self.text.len());
        if end > self.offset {
            let newlines = self.text[self.offset..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.line = self
                .line
                .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
            self.offset = end;
        }
        self.line
    }
}

fn element(start: &BytesStart<'_>, line: u32) -> Element {
    Element {
        name: local_name(start),
        value: attribute(start, "V"),
        children: Vec::new(),
        line,
    }
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
pub fn parse(bytes: &[u8], limit_bytes: u64) -> Result<Tree, ReadError> {
    check_untrusted(bytes, limit_bytes)?;
    let text = to_utf8(bytes)?;
    let mut reader = untrusted_reader(&text);
    let mut lines = LineCounter {
        text: text.as_bytes(),
        offset: 0,
        line: 1,
    };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut namespace = None;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| ReadError::Syntax {
            line: lines.at(reader.error_position() as usize),
            message: e.to_string(),
        })?;
        // The line of a tag is the line of its '<' (the last one before the tag's end:
        // attribute values cannot hold a raw '<').
        let end = reader.buffer_position() as usize;
        let tag_start = text.as_bytes()[..end.min(text.len())]
            .iter()
            .rposition(|&b| b == b'<')
            .unwrap_or(before);
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(ReadError::Syntax {
                    line: lines.at(tag_start),
                    message: "content after the root element".into(),
                });
            }
            Event::Start(start) => {
                if stack.is_empty() {
                    namespace = root_namespace(&start);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ReadError::TooDeep {
                        line: lines.at(tag_start),
                        limit: MAX_DEPTH,
                    });
                }
                stack.push(element(&start, lines.at(tag_start)));
            }
            Event::Empty(start) => {
                let node = element(&start, lines.at(tag_start));
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => {
                        namespace = root_namespace(&start);
                        root = Some(node);
                    }
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| ReadError::Syntax {
                    line: lines.at(before),
                    message: "closing tag without an opening tag".into(),
                })?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::DocType(_) => {
                // check_untrusted already refuses DTDs; kept as a second lock.
                return Err(ReadError::Guard(encaisse_xml::GuardError::Dtd {
                    found: "<!DOCTYPE",
                }));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(ReadError::Syntax {
            line: lines.at(text.len()),
            message: format!(
                "the document ends inside <{}>",
                stack.last().map(|e| e.name.as_str()).unwrap_or("")
            ),
        });
    }
    let root = root.ok_or_else(|| ReadError::Syntax {
        line: 1,
        message: "no root element".into(),
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
