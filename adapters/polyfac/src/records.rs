//! The lowest layer of the export reader: bytes → decoded records, one at a time, in bounded
//! memory.
//!
//! * [`Guard`] sits between the source and the CSV parser: it skips a UTF-8 byte-order mark,
//!   hashes every byte (the file's SHA-256, for the run id), and refuses a record longer than
//!   `max_line_bytes` (it tracks quotes, so a quoted line break does not end a record) — the
//!   CSV parser's buffers therefore never grow past that bound.
//! * The `csv` crate splits records on the configured separator and quote (`""` escapes,
//!   CRLF or LF). It works on bytes: the separator and quote are ASCII, and ASCII bytes mean
//!   the same in Windows-1252 and UTF-8 (UTF-8 multi-byte sequences never contain them).
//! * [`Decoder`] turns each record's bytes into text: UTF-8, Windows-1252, or detected on the
//!   first non-ASCII record (`auto`).

use std::collections::VecDeque;
use std::io::{self, Read};

use csv::ByteRecord;
use encoding_rs::WINDOWS_1252;
use sha2::{Digest, Sha256};

use crate::config::{SourceEncoding, SourceMapping};
use crate::error::FileError;

const UTF8_BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Payload of the `io::Error` the guard returns for an over-long record.
#[derive(Debug)]
struct RecordTooLong {
    line: u64,
}

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record starting on line {} is too long", self.line)
    }
}

impl std::error::Error for RecordTooLong {}

/// Bounds, hashes and de-BOMs the raw bytes (see the module doc).
struct Guard<R> {
    inner: R,
    hasher: Sha256,
    bytes_read: u64,
    quote: u8,
    separator: u8,
    field: FieldState,
    record_bytes: usize,
    max_record_bytes: usize,
    newlines: u64,
    record_start_line: u64,
    /// First bytes, read ahead to look for a BOM, not yet handed out.
    prefix: Vec<u8>,
    prefix_done: bool,
    bom: bool,
    /// Bytes handed to the parser (the BOM excluded): the parser's byte offsets.
    handed: u64,
    /// Offsets of `\n` bytes handed to the parser but not yet behind a finished record:
    /// at most one read-ahead buffer's worth.
    newline_offsets: VecDeque<u64>,
    /// `\n` bytes behind finished records.
    retired_newlines: u64,
}

impl<R: Read> Guard<R> {
    fn new(inner: R, separator: u8, quote: u8, max_record_bytes: usize) -> Self {
        Guard {
            inner,
            hasher: Sha256::new(),
            bytes_read: 0,
            quote,
            separator,
            field: FieldState::Start,
            record_bytes: 0,
            max_record_bytes,
            newlines: 0,
            record_start_line: 1,
            prefix: Vec::with_capacity(3),
            prefix_done: false,
            bom: false,
            handed: 0,
            newline_offsets: VecDeque::new(),
            retired_newlines: 0,
        }
    }

    /// 1-based line number of the byte at `offset` (offsets must not decrease from one
    /// call to the next).
    fn line_of(&mut self, offset: u64) -> u64 {
        while self.newline_offsets.front().is_some_and(|&o| o < offset) {
            self.newline_offsets.pop_front();
            self.retired_newlines += 1;
        }
        self.retired_newlines + 1
    }

    /// Reads up to three bytes to detect a UTF-8 BOM; they are hashed, and handed out unless
    /// they are the BOM.
    fn read_prefix(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 3];
        let mut filled = 0;
        while filled < 3 {
            let n = self.inner.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        self.hasher.update(&buf[..filled]);
        self.bytes_read += filled as u64;
        if buf[..filled] == UTF8_BOM {
            self.bom = true;
        } else {
            self.prefix.extend_from_slice(&buf[..filled]);
        }
        self.prefix_done = true;
        Ok(())
    }

    /// Tracks quote state and record length over bytes handed to the parser.
    fn scan(&mut self, bytes: &[u8]) -> io::Result<()> {
        let base = self.handed;
        self.handed += bytes.len() as u64;
        for (i, &b) in bytes.iter().enumerate() {
            let (q, sep) = (self.quote, self.separator);
            let in_quoted_field = self.field == FieldState::Quoted;
            self.field = match (self.field, b) {
                (FieldState::Quoted, c) if c == q => FieldState::QuoteInQuoted,
                (FieldState::Quoted, _) => FieldState::Quoted,
                (FieldState::QuoteInQuoted, c) if c == q => FieldState::Quoted,
                (FieldState::Start, c) if c == q => FieldState::Quoted,
                (_, c) if c == sep || c == b'\n' || c == b'\r' => FieldState::Start,
                _ => FieldState::Unquoted,
            };
            if b == b'\n' {
                self.newline_offsets.push_back(base + i as u64);
                self.newlines += 1;
                if !in_quoted_field {
                    self.record_bytes = 0;
                    self.record_start_line = self.newlines + 1;
                    continue;
                }
            }
            self.record_bytes += 1;
            if self.record_bytes > self.max_record_bytes {
                return Err(io::Error::other(RecordTooLong {
                    line: self.record_start_line,
                }));
            }
        }
        Ok(())
    }

    fn sha256_hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.prefix_done {
            self.read_prefix()?;
        }
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            self.scan(&buf[..n])?;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes_read += n as u64;
        self.scan(&buf[..n])?;
        Ok(n)
    }
}

/// Where the guard is in the CSV grammar — the same states as the parser's, so that a
/// quote only opens a quoted field at the start of a field (a stray `"` inside a value is
/// literal and must not make every following line part of one endless record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldState {
    Start,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: closes it, or escapes a second quote.
    QuoteInQuoted,
}

/// The encoding a file turned out to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectedEncoding {
    /// Only ASCII so far (the same in both encodings).
    Ascii,
    Utf8,
    Windows1252,
}

impl DetectedEncoding {
    pub fn label(self) -> &'static str {
        match self {
            DetectedEncoding::Ascii => "ascii",
            DetectedEncoding::Utf8 => "utf-8",
            DetectedEncoding::Windows1252 => "windows-1252",
        }
    }
}

/// Decodes records per the configured encoding, deciding on the first non-ASCII record
/// when the encoding is `auto`.
struct Decoder {
    configured: SourceEncoding,
    state: DetectedEncoding,
    decided_on_line: u64,
}

impl Decoder {
    fn new(configured: SourceEncoding, bom: bool) -> Self {
        // A UTF-8 byte-order mark is a statement by the writer: it wins over the setting.
        let state = match (configured, bom) {
            (_, true) | (SourceEncoding::Utf8, false) => DetectedEncoding::Utf8,
            (SourceEncoding::Windows1252, false) => DetectedEncoding::Windows1252,
            (SourceEncoding::Auto, false) => DetectedEncoding::Ascii,
        };
        Decoder {
            configured,
            state,
            decided_on_line: 0,
        }
    }

    fn decode(
        &mut self,
        record: &ByteRecord,
        line: u64,
        file: &str,
        out: &mut RawLine,
    ) -> Result<(), FileError> {
        let bytes = record.as_slice();
        out.line = line;
        out.text.clear();
        out.ends.clear();
        if bytes.contains(&0) {
            return Err(FileError::NotDecodable {
                file: file.to_string(),
                line,
                encoding: self.label(),
                reason: "NUL byte: a UTF-16 or binary file, not a text export".into(),
            });
        }
        if self.state == DetectedEncoding::Ascii && !bytes.is_ascii() {
            self.state = if std::str::from_utf8(bytes).is_ok() {
                DetectedEncoding::Utf8
            } else {
                DetectedEncoding::Windows1252
            };
            self.decided_on_line = line;
            tracing::debug!(
                file,
                line,
                encoding = self.state.label(),
                "Encoding detected."
            );
        }
        match self.state {
            DetectedEncoding::Ascii | DetectedEncoding::Utf8 => {
                let text = std::str::from_utf8(bytes).map_err(|e| FileError::NotDecodable {
                    file: file.to_string(),
                    line,
                    encoding: "utf-8",
                    reason: if self.configured == SourceEncoding::Auto {
                        format!(
                            "invalid UTF-8 at byte {} of the line although line {} was UTF-8 (mixed encodings)",
                            e.valid_up_to(),
                            self.decided_on_line
                        )
                    } else {
                        format!("invalid UTF-8 at byte {} of the line", e.valid_up_to())
                    },
                })?;
                // Field boundaries sit next to ASCII separators, hence on char boundaries.
                out.text.push_str(text);
                let mut end = 0u32;
                for field in record.iter() {
                    end += field.len() as u32;
                    out.ends.push(end);
                }
            }
            DetectedEncoding::Windows1252 => {
                for field in record.iter() {
                    let (decoded, _) = WINDOWS_1252.decode_without_bom_handling(field);
                    out.text.push_str(&decoded);
                    out.ends.push(out.text.len() as u32);
                }
            }
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        match self.configured {
            SourceEncoding::Windows1252 => "windows-1252",
            SourceEncoding::Utf8 => "utf-8",
            SourceEncoding::Auto => self.state.label(),
        }
    }
}

/// One decoded record (an export line): its text and field boundaries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawLine {
    /// 1-based line number where the record starts.
    pub line: u64,
    text: String,
    ends: Vec<u32>,
}

impl RawLine {
    /// Builds a line from already-decoded fields (tests, generators).
    pub fn from_fields<S: AsRef<str>>(line: u64, fields: &[S]) -> Self {
        let mut raw = RawLine {
            line,
            ..RawLine::default()
        };
        for f in fields {
            raw.text.push_str(f.as_ref());
            raw.ends.push(raw.text.len() as u32);
        }
        raw
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i`, as in the file (untrimmed).
    pub fn raw(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..end)
    }

    /// Field `i`, trimmed; `None` when absent or empty ("empty field = absent").
    pub fn get(&self, i: usize) -> Option<&str> {
        self.raw(i).map(str::trim).filter(|s| !s.is_empty())
    }

    /// Whether every field is blank (an empty spreadsheet row): such lines are skipped.
    fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// Reads decoded records from an export, one at a time.
pub struct RecordReader<R: Read> {
    csv: csv::Reader<Guard<R>>,
    record: ByteRecord,
    decoder: Option<Decoder>,
    encoding: SourceEncoding,
    file: String,
    max_line_bytes: usize,
}

impl<R: Read> RecordReader<R> {
    pub fn new(read: R, mapping: &SourceMapping, file: &str) -> Self {
        // `SourceMapping::validate` guarantees ASCII; a non-ASCII value falls back to the
        // Polyfac default rather than failing here.
        let ascii = |c: char, default: u8| if c.is_ascii() { c as u8 } else { default };
        let quote = ascii(mapping.quote, b'"');
        let separator = ascii(mapping.separator, b';');
        let guard = Guard::new(read, separator, quote, mapping.max_line_bytes);
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(separator)
            .quote(quote)
            .double_quote(true)
            .buffer_capacity(64 * 1024)
            .from_reader(guard);
        RecordReader {
            csv,
            record: ByteRecord::new(),
            decoder: None,
            encoding: mapping.encoding,
            file: file.to_string(),
            max_line_bytes: mapping.max_line_bytes,
        }
    }

    /// The next non-blank record decoded into `out`; `false` at the end of the file.
    pub fn next_into(&mut self, out: &mut RawLine) -> Result<bool, FileError> {
        loop {
            let more = self
                .csv
                .read_byte_record(&mut self.record)
                .map_err(|e| self.csv_error(e))?;
            if !more {
                return Ok(false);
            }
            // The parser's own line numbers are off with CRLF and blank lines (a record's
            // start position is the end of the previous one). The last byte it consumed for
            // this record (its terminator, or its last byte at the end of the file) is on
            // the record's last line; quoted line breaks give the first.
            let end = self.csv.position().byte();
            let last_line = self.csv.get_mut().line_of(end.saturating_sub(1));
            let inner_breaks = self
                .record
                .as_slice()
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            let line = last_line.saturating_sub(inner_breaks as u64);
            let bom = self.csv.get_ref().bom;
            let encoding = self.encoding;
            let decoder = self
                .decoder
                .get_or_insert_with(|| Decoder::new(encoding, bom));
            decoder.decode(&self.record, line, &self.file, out)?;
            if !out.is_blank() {
                return Ok(true);
            }
        }
    }

    fn csv_error(&self, error: csv::Error) -> FileError {
        let file = self.file.clone();
        match error.into_kind() {
            csv::ErrorKind::Io(io) => {
                if let Some(too_long) = io.get_ref().and_then(|e| e.downcast_ref::<RecordTooLong>())
                {
                    FileError::LineTooLong {
                        file,
                        line: too_long.line,
                        max_bytes: self.max_line_bytes,
                    }
                } else {
                    FileError::Io { file, source: io }
                }
            }
            other => FileError::Io {
                file,
                source: io::Error::other(format!("{other:?}")),
            },
        }
    }

    /// The encoding in use (decided so far).
    pub fn encoding(&self) -> DetectedEncoding {
        self.decoder.as_ref().map_or(
            match self.encoding {
                SourceEncoding::Windows1252 => DetectedEncoding::Windows1252,
                SourceEncoding::Utf8 => DetectedEncoding::Utf8,
                SourceEncoding::Auto => DetectedEncoding::Ascii,
            },
            |d| d.state,
        )
    }

    /// SHA-256 (hex) of every byte read so far; of the whole file once `next_into` returned
    /// `false`.
    pub fn sha256_hex(&self) -> String {
        self.csv.get_ref().sha256_hex()
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.csv.get_ref().bytes_read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], mapping: &SourceMapping) -> Result<Vec<RawLine>, FileError> {
        let mut reader = RecordReader::new(bytes, mapping, "t.csv");
        let mut out = Vec::new();
        let mut line = RawLine::default();
        while reader.next_into(&mut line)? {
            out.push(line.clone());
        }
        Ok(out)
    }

    #[test]
    fn quotes_separators_and_line_endings() {
        let data = b"A;B\r\n\"x;y\";\"say \"\"hi\"\"\"\r\n\r\n\"multi\r\nline\";z\n;\nlast;1";
        let lines = read_all(data, &SourceMapping::polyfac_default()).unwrap();
        assert_eq!(lines.len(), 4, "blank and `;` lines skipped");
        assert_eq!(lines[1].get(0), Some("x;y"));
        assert_eq!(lines[1].get(1), Some("say \"hi\""));
        assert_eq!(lines[2].get(0), Some("multi\r\nline"));
        assert_eq!(lines[3].get(1), Some("1"));
        let numbers: Vec<u64> = lines.iter().map(|l| l.line).collect();
        assert_eq!(numbers, [1, 2, 4, 7]);
    }

    #[test]
    fn bom_is_skipped_and_hashed() {
        let mut data = UTF8_BOM.to_vec();
        data.extend_from_slice("Nom\nHélène\n".as_bytes());
        let mut reader = RecordReader::new(&data[..], &SourceMapping::polyfac_default(), "t");
        let mut line = RawLine::default();
        assert!(reader.next_into(&mut line).unwrap());
        assert_eq!(line.get(0), Some("Nom"));
        assert!(reader.next_into(&mut line).unwrap());
        assert_eq!(line.get(0), Some("Hélène"));
        assert!(!reader.next_into(&mut line).unwrap());
        assert_eq!(reader.encoding(), DetectedEncoding::Utf8);
        assert_eq!(reader.sha256_hex(), hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn stray_quote_inside_a_value_is_literal_and_does_not_swallow_the_file() {
        let mut mapping = SourceMapping::polyfac_default();
        mapping.max_line_bytes = 1024;
        let mut data = b"A;B\nO\"Neil;x\n".to_vec();
        for i in 0..200 {
            data.extend_from_slice(format!("name{i};value{i}\n").as_bytes());
        }
        let lines = read_all(&data, &mapping).unwrap();
        assert_eq!(lines.len(), 202);
        assert_eq!(lines[1].get(0), Some("O\"Neil"));
        assert_eq!(lines[201].line, 202);
    }

    #[test]
    fn bom_wins_over_a_windows_1252_setting() {
        let mut mapping = SourceMapping::polyfac_default();
        mapping.encoding = SourceEncoding::Windows1252;
        let mut data = UTF8_BOM.to_vec();
        data.extend_from_slice("Nom\nZoé\n".as_bytes());
        assert_eq!(read_all(&data, &mapping).unwrap()[1].get(0), Some("Zoé"));
    }

    #[test]
    fn auto_detects_windows_1252() {
        let data = b"Nom\nH\xe9l\xe8ne \x9cuvray\n";
        let lines = read_all(data, &SourceMapping::polyfac_default()).unwrap();
        assert_eq!(lines[1].get(0), Some("Hélène œuvray"));
    }

    #[test]
    fn declared_utf8_refuses_latin1_bytes() {
        let mut mapping = SourceMapping::polyfac_default();
        mapping.encoding = SourceEncoding::Utf8;
        let err = read_all(b"Nom\nH\xe9l\xe8ne\n", &mapping).unwrap_err();
        assert!(
            matches!(err, FileError::NotDecodable { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn utf16_is_not_decodable() {
        let data: Vec<u8> = "Nom\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let err = read_all(&data, &SourceMapping::polyfac_default()).unwrap_err();
        assert_eq!(err.kind(), "not_decodable", "{err}");
    }

    #[test]
    fn overlong_record_is_refused_with_its_line() {
        let mut mapping = SourceMapping::polyfac_default();
        mapping.max_line_bytes = 1024;
        let mut data = b"A;B\nshort;line\n\"open quote".to_vec();
        data.extend(std::iter::repeat_n(b'x', 2000));
        let err = read_all(&data, &mapping).unwrap_err();
        assert!(
            matches!(err, FileError::LineTooLong { line: 3, .. }),
            "{err}"
        );
    }
}
