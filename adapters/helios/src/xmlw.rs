//! Writing PES XML: a quick-xml [`Writer`] that knows the PES convention (every value is an
//! empty element with a `V` attribute) and writes UTF-8 or ISO-8859-1.
//!
//! Everything is produced in document order straight into the output (no tree in memory),
//! and nothing depends on the clock or on hash order: the same input gives the same bytes.

use std::io::{self, BufWriter, Write};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::config::OutputEncoding;

/// Transcodes the UTF-8 produced by the XML writer to ISO-8859-1. A character outside
/// Latin-1 becomes a character reference (`&#8364;`), which is only correct inside attribute
/// values and text — the only places where non-ASCII characters can appear in a PES file
/// (element names are ASCII).
pub struct Latin1Writer<W: Write> {
    inner: W,
    /// Bytes of a UTF-8 sequence split across two `write` calls.
    pending: Vec<u8>,
    scratch: Vec<u8>,
}

impl<W: Write> Latin1Writer<W> {
    pub fn new(inner: W) -> Self {
        Latin1Writer {
            inner,
            pending: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl<W: Write> Write for Latin1Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.is_empty() && buf.is_ascii() {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(buf);
        self.scratch.clear();
        let mut i = 0;
        while i < bytes.len() {
            let len = utf8_len(bytes[i]);
            if i + len > bytes.len() {
                break;
            }
            let chunk = &bytes[i..i + len];
            let text = std::str::from_utf8(chunk)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            for c in text.chars() {
                let code = u32::from(c);
                if code <= 0xFF {
                    self.scratch.push(code as u8);
                } else {
                    write!(self.scratch, "&#{code};")?;
                }
            }
            i += len;
        }
        self.pending = bytes[i..].to_vec();
        self.inner.write_all(&self.scratch)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "incomplete UTF-8 sequence at the end of the document",
            ));
        }
        self.inner.flush()
    }
}

/// The output of a PES writer, in the configured encoding.
pub enum Sink<W: Write> {
    Utf8(W),
    Latin1(Latin1Writer<W>),
}

impl<W: Write> Sink<W> {
    pub fn new(inner: W, encoding: OutputEncoding) -> Self {
        match encoding {
            OutputEncoding::Utf8 => Sink::Utf8(inner),
            OutputEncoding::Iso88591 => Sink::Latin1(Latin1Writer::new(inner)),
        }
    }

    pub fn into_inner(self) -> W {
        match self {
            Sink::Utf8(w) => w,
            Sink::Latin1(w) => w.into_inner(),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Utf8(w) => w.write(buf),
            Sink::Latin1(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Utf8(w) => w.flush(),
            Sink::Latin1(w) => w.flush(),
        }
    }
}

/// Size of the buffer between the XML writer and the transcoding sink: quick-xml writes
/// each element in five small pieces, the sink and the caller's writer see large blocks.
const BUFFER_BYTES: usize = 64 * 1024;

/// A PES document being written: one element per line, indented by `indent` spaces per
/// level.
pub struct PesWriter<W: Write> {
    xml: Writer<BufWriter<Sink<W>>>,
}

/// Whether a byte must be escaped in an attribute value (quick-xml's attribute set:
/// markup, quotes, and the whitespace attribute-value normalisation would turn into spaces).
fn needs_escape(b: u8) -> bool {
    matches!(b, b'<' | b'>' | b'&' | b'\'' | b'"' | b'\r' | b'\n' | b'\t')
}

fn write_escaped<W: Write>(out: &mut W, value: &str) -> io::Result<()> {
    if !value.bytes().any(needs_escape) {
        return out.write_all(value.as_bytes());
    }
    let bytes = value.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'\'' => b"&apos;",
            b'"' => b"&quot;",
            b'\r' => b"&#13;",
            b'\n' => b"&#10;",
            b'\t' => b"&#9;",
            _ => continue,
        };
        out.write_all(&bytes[from..i])?;
        out.write_all(replacement)?;
        from = i + 1;
    }
    out.write_all(&bytes[from..])
}

impl<W: Write> PesWriter<W> {
    /// Starts a document: XML declaration naming `encoding`.
    pub fn start(inner: W, encoding: OutputEncoding, indent: u8) -> io::Result<Self> {
        let sink = BufWriter::with_capacity(BUFFER_BYTES, Sink::new(inner, encoding));
        let mut xml = Writer::new_with_indent(sink, b' ', usize::from(indent));
        xml.write_event(Event::Decl(BytesDecl::new(
            "1.0",
            Some(encoding.xml_name()),
            None,
        )))?;
        Ok(PesWriter { xml })
    }

    /// Opens the namespace-qualified root (`<n:PES_Aller xmlns:n="…">`); children stay
    /// unqualified (`elementFormDefault="unqualified"`).
    pub fn open_root(&mut self, local_name: &str, namespace: &str) -> io::Result<()> {
        let name = format!("n:{local_name}");
        let start = BytesStart::new(name).with_attributes([("xmlns:n", namespace)]);
        self.xml.write_event(Event::Start(start))
    }

    pub fn close_root(&mut self, local_name: &str) -> io::Result<()> {
        self.close(&format!("n:{local_name}"))
    }

    pub fn open(&mut self, name: &str) -> io::Result<()> {
        self.xml.write_event(Event::Start(BytesStart::new(name)))
    }

    pub fn close(&mut self, name: &str) -> io::Result<()> {
        self.xml.write_event(Event::End(BytesEnd::new(name)))
    }

    /// An empty element, for a block whose children are all optional and absent.
    pub fn empty(&mut self, name: &str) -> io::Result<()> {
        self.xml.write_event(Event::Empty(BytesStart::new(name)))
    }

    /// `<name V="value"/>` (the value is escaped). Written straight into the buffer, after
    /// the writer's own line break and indentation: the same bytes as an `Event::Empty`,
    /// without building an event per value (the writer's hot path).
    pub fn leaf(&mut self, name: &str, value: &str) -> io::Result<()> {
        self.xml.write_indent()?;
        let out = self.xml.get_mut();
        out.write_all(b"<")?;
        out.write_all(name.as_bytes())?;
        out.write_all(b" V=\"")?;
        write_escaped(out, value)?;
        out.write_all(b"\"/>")
    }

    /// [`Self::leaf`] when there is a value; optional elements are omitted, never empty.
    pub fn leaf_opt(&mut self, name: &str, value: Option<&str>) -> io::Result<()> {
        match value {
            Some(v) => self.leaf(name, v),
            None => Ok(()),
        }
    }

    /// `<name attr="value">text</name>` (a PJ's base64 content).
    pub fn text_element(
        &mut self,
        name: &str,
        attribute: (&str, &str),
        text: &str,
    ) -> io::Result<()> {
        let start = BytesStart::new(name).with_attributes([attribute]);
        self.xml.write_event(Event::Start(start))?;
        self.xml.write_event(Event::Text(BytesText::new(text)))?;
        self.xml.write_event(Event::End(BytesEnd::new(name)))
    }

    /// Ends the document (final newline, flush) and gives the output back.
    pub fn finish(mut self) -> io::Result<W> {
        self.xml.get_mut().write_all(b"\n")?;
        self.xml.get_mut().flush()?;
        let sink = self
            .xml
            .into_inner()
            .into_inner()
            .map_err(|e| e.into_error())?;
        Ok(sink.into_inner())
    }
}

/// `AAAA-MM-JJ` (`Base_Date`).
pub fn date(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// `12.50` (`Base_Montant`: decimal point, two decimals).
pub fn amount(m: encaisse_schemas::Money) -> String {
    let cents = m.cents();
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_transcoding_handles_split_sequences_and_references() {
        let mut out = Latin1Writer::new(Vec::new());
        let text = "Hélène €";
        let bytes = text.as_bytes();
        // Split inside the two-byte 'é' and inside the three-byte '€'.
        out.write_all(&bytes[..2]).unwrap();
        out.write_all(&bytes[2..9]).unwrap();
        out.write_all(&bytes[9..]).unwrap();
        out.flush().unwrap();
        assert_eq!(out.into_inner(), b"H\xe9l\xe8ne &#8364;".to_vec());
    }

    #[test]
    fn leaves_are_escaped_and_documents_declared() {
        let mut w = PesWriter::start(Vec::new(), OutputEncoding::Iso88591, 2).unwrap();
        w.open_root("R", "urn:x").unwrap();
        w.leaf("Nom", "A & \"B\" <é>").unwrap();
        w.leaf_opt("Absent", None).unwrap();
        w.close_root("R").unwrap();
        let bytes = w.finish().unwrap();
        let expected = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<n:R xmlns:n=\"urn:x\">\n  <Nom V=\"A &amp; &quot;B&quot; &lt;\u{e9}&gt;\"/>\n</n:R>\n";
        let latin1: Vec<u8> = expected.chars().map(|c| c as u32 as u8).collect();
        assert_eq!(bytes, latin1);
    }

    #[test]
    fn formats() {
        use encaisse_schemas::Money;
        assert_eq!(amount(Money::from_cents(4530).unwrap()), "45.30");
        assert_eq!(amount(Money::from_cents(7).unwrap()), "0.07");
        assert_eq!(amount(Money::from_cents(-150).unwrap()), "-1.50");
        assert_eq!(
            date(chrono::NaiveDate::from_ymd_opt(2024, 3, 7).unwrap()),
            "2024-03-07"
        );
    }
}
