//! One bounded element tree over untrusted XML, for every reader that holds a partner's
//! document in memory (bank files, PES files, SOAP messages): the safety rules live here
//! once, and each adapter only says what it keeps of an element ([`TreeNode`]).
//!
//! Rules, in order:
//! * [`check_untrusted`]: size within the limit, no `<!DOCTYPE` / `<!ENTITY` (a DTD event
//!   that slipped through is refused again while parsing);
//! * [`to_utf8`]: Latin-1 / Windows-1252 decoded, anything else but UTF-8 refused;
//! * only character references (`&#233;`) and the five predefined entities are resolved: any
//!   other `&name;` is an error, never an expansion;
//! * nesting deeper than [`Limits::depth`] and more than [`Limits::elements`] elements are
//!   refused, so a hostile file cannot exhaust the stack or the heap;
//! * one root element, no text outside it, end tags matching their start tags.
//!
//! Text is handed to the node untrimmed and in pieces (text around an entity reference
//! comes in several events: trimming each piece would eat the spaces of `A &amp; B`).

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

use crate::reader::untrusted_reader;
use crate::{EncodingError, GuardError, check_untrusted, to_utf8};

/// Nesting accepted by default: PES and ISO 20022 documents stay under 20 levels.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Elements accepted by default. A large commune's PES Retour or a bank's return file holds
/// some tens of thousands; a tree node costs around a hundred bytes, so the bound keeps one
/// hostile file (millions of `<a/>` within the byte limit) from taking gigabytes.
pub const DEFAULT_MAX_ELEMENTS: usize = 1_000_000;

/// Bounds of one parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, in bytes (checked before parsing).
    pub bytes: u64,
    /// Deepest nesting of start tags.
    pub depth: usize,
    /// Most elements in the document.
    pub elements: usize,
}

impl Limits {
    /// `bytes` at most, [`DEFAULT_MAX_DEPTH`] levels, [`DEFAULT_MAX_ELEMENTS`] elements.
    pub const fn new(bytes: u64) -> Self {
        Limits {
            bytes,
            depth: DEFAULT_MAX_DEPTH,
            elements: DEFAULT_MAX_ELEMENTS,
        }
    }

    /// The same limits with at most `elements` elements.
    pub const fn with_elements(self, elements: usize) -> Self {
        Limits { elements, ..self }
    }
}

impl From<u64> for Limits {
    /// A byte limit with the default depth and element bounds.
    fn from(bytes: u64) -> Self {
        Limits::new(bytes)
    }
}

/// Why a document is not readable XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    #[error("malformed XML at line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("malformed XML at line {line}: elements nested deeper than {limit} levels")]
    TooDeep { line: usize, limit: usize },
    #[error("malformed XML at line {line}: more than {limit} elements")]
    TooManyElements { line: usize, limit: usize },
}

/// What a reader keeps of an element. The node is made at its start tag (by the `open`
/// function given to [`parse_with`]), receives its character data and its children as they
/// complete, and is finished at its end tag.
pub trait TreeNode: Sized {
    /// The element's local name (for "unclosed element" errors).
    fn name(&self) -> &str;
    /// A child element, complete.
    fn push_child(&mut self, child: Self);
    /// Character data directly inside the element (text, CDATA, resolved references),
    /// untrimmed, possibly in several pieces. Ignored unless the node keeps text.
    fn push_text(&mut self, _text: &str) {}
    /// The end tag was read (or the element was empty): last touches before it is attached.
    fn finish(&mut self) {}
}

/// The attributes of a start tag, values decoded (references resolved, whitespace
/// normalised as XML 1.0 says).
pub fn attributes(start: &BytesStart<'_>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let value = attribute
            .normalized_value(XmlVersion::Explicit1_0)
            .map_err(|e| e.to_string())?;
        out.push((attribute.key.as_ref().to_string(), value.into_owned()));
    }
    Ok(out)
}

/// Counts lines incrementally as the reader moves forward.
struct Lines<'a> {
    text: &'a [u8],
    offset: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, offset: u64) -> usize {
        let end = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        if end > self.offset {
            self.line += self.text[self.offset..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.offset = end;
        }
        self.line
    }
}

/// Parses untrusted `bytes` into the root node. `open(start, depth, line)` makes the node of
/// a start tag (`depth` 0 for the root, `line` 1-based, of its `<`); its `Err` is reported
/// as malformed XML at that line.
pub fn parse_with<N, F>(bytes: &[u8], limits: Limits, mut open: F) -> Result<N, TreeError>
where
    N: TreeNode,
    F: FnMut(&BytesStart<'_>, usize, usize) -> Result<N, String>,
{
    check_untrusted(bytes, limits.bytes)?;
    let text = to_utf8(bytes)?;
    let mut reader = untrusted_reader(&text);
    // Untrimmed: whitespace comes as text events of its own, so the position before a start
    // tag is its '<' (the line of an element), and text keeps its inner spaces.
    reader.config_mut().trim_text(false);
    let mut lines = Lines {
        text: text.as_bytes(),
        offset: 0,
        line: 1,
    };
    let mut stack: Vec<N> = Vec::new();
    let mut root: Option<N> = None;
    let mut elements = 0usize;
    loop {
        let before = reader.buffer_position();
        let event = reader.read_event().map_err(|e| TreeError::Malformed {
            line: lines.at(reader.error_position()),
            reason: e.to_string(),
        })?;
        let line = lines.at(before);
        let malformed = |reason: String| TreeError::Malformed { line, reason };
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(malformed("content after the root element".into()));
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                elements += 1;
                if elements > limits.elements {
                    return Err(TreeError::TooManyElements {
                        line,
                        limit: limits.elements,
                    });
                }
                let empty = matches!(event, Event::Empty(_));
                if !empty && stack.len() >= limits.depth {
                    return Err(TreeError::TooDeep {
                        line,
                        limit: limits.depth,
                    });
                }
                let mut node = open(start, stack.len(), line).map_err(malformed)?;
                if empty {
                    node.finish();
                    attach(&mut stack, &mut root, node);
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => {
                let Some(mut node) = stack.pop() else {
                    return Err(malformed("closing tag without an opening tag".into()));
                };
                node.finish();
                attach(&mut stack, &mut root, node);
            }
            Event::Text(t) => {
                push_text(&mut stack, &t.xml_content(XmlVersion::Explicit1_0)).map_err(malformed)?
            }
            Event::CData(t) => {
                push_text(&mut stack, &t.xml_content(XmlVersion::Explicit1_0)).map_err(malformed)?
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = reference.xml_content(XmlVersion::Explicit1_0);
                        resolve_predefined_entity(&name)
                            .map(str::to_string)
                            .ok_or_else(|| {
                                malformed(format!(
                                    "entity &{name}; is not expanded (no DTD allowed)"
                                ))
                            })?
                    }
                    Err(e) => return Err(malformed(e.to_string())),
                };
                push_text(&mut stack, &resolved).map_err(malformed)?;
            }
            // check_untrusted refuses DTDs already; kept as a second lock.
            Event::DocType(_) => return Err(GuardError::Dtd { found: "<!DOCTYPE" }.into()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(TreeError::Malformed {
            line: lines.at(text.len() as u64),
            reason: format!("the document ends inside <{}>", open.name()),
        });
    }
    root.ok_or(TreeError::Malformed {
        line: 1,
        reason: "no root element".into(),
    })
}

fn attach<N: TreeNode>(stack: &mut [N], root: &mut Option<N>, node: N) {
    match stack.last_mut() {
        Some(parent) => parent.push_child(node),
        None => *root = Some(node),
    }
}

fn push_text<N: TreeNode>(stack: &mut [N], text: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(node) => node.push_text(text),
        None if !text.trim().is_empty() => return Err("text outside the root element".into()),
        None => {}
    }
    Ok(())
}

/// An element with everything: local name (namespace prefix dropped), attributes, trimmed
/// text, children, line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
    /// 1-based line of the start tag, for error messages.
    pub line: usize,
}

impl TreeNode for Node {
    fn name(&self) -> &str {
        &self.name
    }

    fn push_child(&mut self, child: Self) {
        self.children.push(child);
    }

    fn push_text(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn finish(&mut self) {
        let trimmed = self.text.trim();
        if trimmed.len() != self.text.len() {
            self.text = trimmed.to_string();
        }
    }
}

/// Parses untrusted `bytes` into a tree of [`Node`]s.
pub fn parse(bytes: &[u8], limits: Limits) -> Result<Node, TreeError> {
    parse_with(bytes, limits, |start, _, line| {
        Ok(Node {
            name: start.local_name().as_ref().to_string(),
            attributes: attributes(start)?,
            line,
            ..Node::default()
        })
    })
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The descendant at `path` (each step the first child of that name).
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, step| node.child(step))
    }

    /// The trimmed text at `path`, `None` when absent or empty.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path)
            .map(|n| n.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// Every text at `path`, the last step repeated (`StsRsnInf/AddtlInf*`).
    pub fn texts_at(&self, path: &[&str]) -> Vec<String> {
        let Some((last, parents)) = path.split_last() else {
            return Vec::new();
        };
        self.at(parents)
            .map(|p| p.children_named(last).map(|n| n.text.clone()).collect())
            .unwrap_or_default()
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: Limits = Limits::new(1 << 20);

    #[test]
    fn builds_a_tree_with_lines_text_and_references() {
        let xml = b"<?xml version=\"1.0\"?>\n<n:Doc xmlns:n=\"urn:x\">\n  <A k=\"v &amp; w\">x &amp; y&#233; </A>\n  <B/>\n  <C><![CDATA[<x>]]></C>\n</n:Doc>";
        let root = parse(xml, MB).unwrap();
        assert_eq!(root.name, "Doc");
        assert_eq!(root.attribute("xmlns:n"), Some("urn:x"));
        assert_eq!(root.child("A").unwrap().attribute("k"), Some("v & w"));
        assert_eq!(root.text_at(&["A"]), Some("x & yé"));
        assert_eq!(root.child("A").unwrap().line, 3);
        assert_eq!(root.child("B").unwrap().line, 4);
        assert_eq!(root.text_at(&["B"]), None);
        assert_eq!(root.text_at(&["C"]), Some("<x>"));
    }

    #[test]
    fn latin1_is_decoded() {
        let xml = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>H\xe9l\xe8ne</a>";
        assert_eq!(parse(xml, MB).unwrap().text, "Hélène");
    }

    /// A node that keeps text untrimmed, to see what the parser hands over.
    struct Raw(String, String, Vec<Raw>);

    impl TreeNode for Raw {
        fn name(&self) -> &str {
            &self.0
        }
        fn push_child(&mut self, child: Self) {
            self.2.push(child);
        }
        fn push_text(&mut self, text: &str) {
            self.1.push_str(text);
        }
    }

    #[test]
    fn text_is_handed_over_untrimmed() {
        let root = parse_with(b"<a><b> x &amp; y </b></a>", MB, |s, _, _| {
            Ok(Raw(
                s.local_name().as_ref().to_string(),
                String::new(),
                vec![],
            ))
        })
        .unwrap();
        assert_eq!(root.2[0].1, " x & y ");
    }

    #[test]
    fn hostile_or_broken_documents_are_refused() {
        let bomb = br#"<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#;
        assert!(matches!(parse(bomb, MB), Err(TreeError::Guard(_))));
        assert!(matches!(
            parse(b"<a/>", Limits::new(2)),
            Err(TreeError::Guard(_))
        ));
        let malformed = |doc: &[u8]| matches!(parse(doc, MB), Err(TreeError::Malformed { .. }));
        assert!(malformed(b"<a>&custom;</a>"), "undeclared entity");
        assert!(malformed(b"<a><b></a>"), "mismatched end tag");
        assert!(malformed(b"<a>"), "unclosed");
        assert!(malformed(b"<a/><b/>"), "two roots");
        assert!(malformed(b"<a/>text"), "text after the root");
        assert!(malformed(b"just text"), "no root");
        let err = parse(b"<a>\n<b>\n</a>", MB).unwrap_err();
        assert!(
            matches!(err, TreeError::Malformed { line: 3, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn depth_and_element_count_are_bounded() {
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        let err = parse(deep.as_bytes(), MB).unwrap_err();
        assert_eq!(err, TreeError::TooDeep { line: 1, limit: 64 });
        assert!(err.to_string().contains("deeper"), "{err}");
        let ok = "<a>".repeat(64) + &"</a>".repeat(64);
        assert!(parse(ok.as_bytes(), MB).is_ok());
        let wide = format!("<a>{}</a>", "<b/>".repeat(10));
        let few = Limits { elements: 10, ..MB };
        assert!(matches!(
            parse(wide.as_bytes(), few),
            Err(TreeError::TooManyElements { limit: 10, .. })
        ));
        let fits = format!("<a>{}</a>", "<b/>".repeat(9));
        assert!(parse(fits.as_bytes(), few).is_ok());
    }
}
