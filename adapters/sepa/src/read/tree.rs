//! A small element tree built from untrusted bank XML with the safe reader of
//! `encaisse_xml` (size limit, no DTD, no entity expansion, Latin-1 transcoded). Bank files
//! are small (bounded by `max_input_bytes`); a tree keeps the readers short and lets them
//! look at siblings in any order. Nesting is bounded too, so a hostile file cannot exhaust
//! the stack.

use encaisse_xml::reader::untrusted_reader;
use encaisse_xml::{EncodingError, GuardError, check_untrusted, to_utf8};
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

/// Deepest nesting accepted (ISO 20022 messages stay under 20 levels).
const MAX_DEPTH: usize = 64;

/// Why a file is not readable XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    #[error("malformed XML at line {line}: {reason}")]
    Malformed { line: usize, reason: String },
}

/// One element: local name (namespace prefix dropped), attributes, trimmed text, children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
    /// 1-based line of the start tag, for error messages.
    pub line: usize,
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
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

fn element(start: &BytesStart<'_>, line: usize) -> Result<Node, XmlError> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::Malformed {
            line,
            reason: e.to_string(),
        })?;
        let value = attribute
            .normalized_value(XmlVersion::Explicit1_0)
            .map_err(|e| XmlError::Malformed {
                line,
                reason: e.to_string(),
            })?;
        attributes.push((attribute.key.as_ref().to_string(), value.into_owned()));
    }
    Ok(Node {
        name: start.local_name().as_ref().to_string(),
        attributes,
        line,
        ..Node::default()
    })
}

/// Counts lines incrementally as the reader advances.
struct Lines<'a> {
    text: &'a [u8],
    position: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, position: u64) -> usize {
        let position = usize::try_from(position)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        if position > self.position {
            self.line += self.text[self.position..position]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.position = position;
        }
        self.line
    }
}

/// Parses untrusted bytes into the root element.
pub fn parse(bytes: &[u8], limit_bytes: u64) -> Result<Node, XmlError> {
    check_untrusted(bytes, limit_bytes)?;
    let text = to_utf8(bytes)?;
    let mut reader = untrusted_reader(&text);
    // Text around an entity reference comes in several events: trimming each one would eat
    // the spaces of `A &amp; B`. Whole element texts are trimmed instead, at their end tag.
    reader.config_mut().trim_text(false);
    let mut lines = Lines {
        text: text.as_bytes(),
        position: 0,
        line: 1,
    };
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| XmlError::Malformed {
            line: lines.at(reader.error_position()),
            reason: e.to_string(),
        })?;
        let line = lines.at(position);
        let malformed = |reason: &str| XmlError::Malformed {
            line,
            reason: reason.to_string(),
        };
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed("elements nested deeper than 64 levels"));
                }
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                stack.push(element(&start, line)?);
            }
            Event::Empty(start) => {
                let node = element(&start, line)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None if root.is_none() => root = Some(node),
                    None => return Err(malformed("content after the root element")),
                }
            }
            Event::End(_) => {
                let Some(mut node) = stack.pop() else {
                    return Err(malformed("closing tag without an opening tag"));
                };
                node.text = node.text.trim().to_string();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(text) => {
                if let Some(node) = stack.last_mut() {
                    node.text
                        .push_str(&text.xml_content(XmlVersion::Explicit1_0));
                } else if !text.xml_content(XmlVersion::Explicit1_0).trim().is_empty() {
                    return Err(malformed("text outside the root element"));
                }
            }
            Event::CData(data) => {
                if let Some(node) = stack.last_mut() {
                    node.text
                        .push_str(&data.xml_content(XmlVersion::Explicit1_0));
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = reference.xml_content(XmlVersion::Explicit1_0);
                        resolve_predefined_entity(&name)
                            .map(str::to_string)
                            .ok_or_else(|| {
                                malformed(&format!(
                                    "entity &{name}; is not expanded (no DTD allowed)"
                                ))
                            })?
                    }
                    Err(e) => return Err(malformed(&e.to_string())),
                };
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err(malformed("DTD refused")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed {
            line: lines.at(text.len() as u64),
            reason: format!(
                "unclosed element <{}>",
                stack.last().map_or("", |n| &n.name)
            ),
        });
    }
    root.ok_or(XmlError::Malformed {
        line: 1,
        reason: "no root element".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_tree_with_lines_and_entities() {
        let xml = b"<?xml version=\"1.0\"?>\n<n:Doc xmlns:n=\"urn:x\">\n  <A k=\"v\">x &amp; y&#233;</A>\n  <B/>\n</n:Doc>";
        let root = parse(xml, 1 << 20).unwrap();
        assert_eq!(root.name, "Doc");
        assert_eq!(root.attribute("xmlns:n"), Some("urn:x"));
        assert_eq!(root.text_at(&["A"]), Some("x & yé"));
        assert_eq!(root.child("A").unwrap().line, 3);
        assert_eq!(root.child("B").unwrap().line, 4);
        assert_eq!(root.text_at(&["B"]), None);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(
            parse(b"<a><b></a>", 1 << 20),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse(b"<a>", 1 << 20),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse(b"<a>&custom;</a>", 1 << 20),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse(b"<a/><b/>", 1 << 20),
            Err(XmlError::Malformed { .. })
        ));
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        let err = parse(deep.as_bytes(), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        assert!(matches!(parse(b"<a/>", 2), Err(XmlError::Guard(_))));
    }
}
