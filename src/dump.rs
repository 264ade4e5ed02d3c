//! What the decrypted, decompressed bytes are, and what they hold.
//!
//! Owns: sniffing the dump kind from its first bytes (pg_dumpall, pg_dump plain, pg_dump
//! custom format) and counting the rows of every `COPY ... FROM stdin;` block while the
//! dump streams past, per database for pg_dumpall output (`\connect` lines).
//! Does not own: restoring (sinks) or comparing counts with a database (verify).

use serde::{Deserialize, Serialize};

/// The kind of dump, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpKind {
    /// Plain SQL from `pg_dumpall`.
    PgDumpall,
    /// Plain SQL from `pg_dump`.
    PgDumpPlain,
    /// `pg_dump -Fc` archive (`PGDMP`).
    Custom,
    /// Anything else (or too short to tell).
    Unknown,
}

impl DumpKind {
    /// Human name.
    pub fn describe(self) -> &'static str {
        match self {
            DumpKind::PgDumpall => "pg_dumpall (plain SQL)",
            DumpKind::PgDumpPlain => "pg_dump plain SQL",
            DumpKind::Custom => "pg_dump custom format",
            DumpKind::Unknown => "unknown",
        }
    }

    /// Whether the dump is SQL text for psql.
    pub fn is_plain(self) -> bool {
        matches!(self, DumpKind::PgDumpall | DumpKind::PgDumpPlain)
    }
}

/// How many bytes [`sniff`] wants to see.
pub const SNIFF_LEN: usize = 4096;

/// Tells the dump kind from its first bytes (up to [`SNIFF_LEN`]).
pub fn sniff(head: &[u8]) -> DumpKind {
    if head.starts_with(b"PGDMP") {
        return DumpKind::Custom;
    }
    let head = &head[..head.len().min(SNIFF_LEN)];
    // The banner is within the first comment lines of both tools' output.
    if memchr::memmem::find(head, b"-- PostgreSQL database cluster dump").is_some() {
        DumpKind::PgDumpall
    } else if memchr::memmem::find(head, b"-- PostgreSQL database dump").is_some() {
        DumpKind::PgDumpPlain
    } else {
        DumpKind::Unknown
    }
}

/// Rows of one table as counted from the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// The database the table is in (`\connect` target), when the dump says.
    pub database: Option<String>,
    /// The table as written in the COPY statement, e.g. `public.accounts`.
    pub table: String,
    /// Data lines between `COPY ... FROM stdin;` and `\.`.
    pub rows: u64,
}

/// Longest statement line we keep whole; longer non-COPY lines are skipped.
const MAX_LINE: usize = 1 << 20;

/// Streaming COPY row counter. Feed it the plain dump in any chunking.
#[derive(Debug, Default)]
pub struct CopyCounter {
    line: Vec<u8>,
    line_overflow: bool,
    in_copy: bool,
    /// In COPY mode: bytes of the current data line seen so far (only the first 3 matter).
    copy_line_len: usize,
    copy_line_head: [u8; 2],
    database: Option<String>,
    tables: Vec<TableRows>,
}

impl CopyCounter {
    /// A fresh counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts the rows in `data`.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.in_copy {
                data = self.feed_copy(data);
            } else {
                match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        self.push_line_bytes(&data[..i]);
                        self.end_statement_line();
                        data = &data[i + 1..];
                    }
                    None => {
                        self.push_line_bytes(data);
                        data = &[];
                    }
                }
            }
        }
    }

    fn push_line_bytes(&mut self, b: &[u8]) {
        if self.line.len() + b.len() > MAX_LINE {
            self.line_overflow = true;
        } else if !self.line_overflow {
            self.line.extend_from_slice(b);
        }
    }

    fn end_statement_line(&mut self) {
        if !self.line_overflow {
            let line = std::mem::take(&mut self.line);
            self.statement_line(&line);
            self.line = line;
        }
        self.line.clear();
        self.line_overflow = false;
    }

    fn statement_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"COPY ") {
            // `strip_suffix` on what follows the prefix: in `COPY FROM stdin;` the two share
            // a space, and that line is no COPY header.
            if let Some(body) = line[5..].strip_suffix(b" FROM stdin;") {
                let table = copy_table_name(body);
                self.tables.push(TableRows {
                    database: self.database.clone(),
                    table,
                    rows: 0,
                });
                self.in_copy = true;
                self.copy_line_len = 0;
            }
        } else if let Some(rest) = line.strip_prefix(b"\\connect ") {
            self.database = parse_connect(&String::from_utf8_lossy(rest));
        }
    }

    fn feed_copy<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            let seg = &data[start..nl];
            self.note_copy_bytes(seg);
            let is_end = self.copy_line_len == 2 && self.copy_line_head == *b"\\.";
            self.copy_line_len = 0;
            start = nl + 1;
            if is_end {
                self.in_copy = false;
                return &data[start..];
            }
            if let Some(t) = self.tables.last_mut() {
                t.rows += 1;
            }
        }
        self.note_copy_bytes(&data[start..]);
        &[]
    }

    fn note_copy_bytes(&mut self, seg: &[u8]) {
        for &b in seg.iter().take(3usize.saturating_sub(self.copy_line_len)) {
            if self.copy_line_len < 2 {
                self.copy_line_head[self.copy_line_len] = b;
            }
            self.copy_line_len += 1;
        }
        if seg.len() > 3 {
            self.copy_line_len = self.copy_line_len.max(3);
        }
    }

    /// Whether the dump ended inside a COPY block (a truncated dump).
    pub fn in_copy(&self) -> bool {
        self.in_copy
    }

    /// The tables in order of appearance.
    pub fn tables(&self) -> &[TableRows] {
        &self.tables
    }

    /// Takes the result.
    pub fn into_tables(self) -> Vec<TableRows> {
        self.tables
    }
}

fn copy_table_name(body: &[u8]) -> String {
    // `schema.table (col, ...)` or `schema.table`; names may be double-quoted and contain
    // spaces or parentheses, so scan for the column list outside quotes.
    let mut in_quotes = false;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b' ' if !in_quotes && body.get(i + 1) == Some(&b'(') => {
                return String::from_utf8_lossy(&body[..i]).into_owned();
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

/// Parses the target of `\connect`: `db`, `"My DB"`, or
/// `-reuse-previous=on "dbname='my db'"` as pg_dumpall writes it.
fn parse_connect(arg: &str) -> Option<String> {
    let arg = arg.trim();
    let arg = arg.strip_prefix("-reuse-previous=on").unwrap_or(arg).trim();
    let word = if let Some(q) = arg.strip_prefix('"') {
        let mut s = String::new();
        let mut chars = q.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    s.push('"');
                    chars.next();
                } else {
                    break;
                }
            } else {
                s.push(c);
            }
        }
        s
    } else {
        arg.split_whitespace().next()?.to_string()
    };
    if let Some(v) = word.strip_prefix("dbname=") {
        let v = v.trim();
        if let Some(inner) = v.strip_prefix('\'') {
            let mut s = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => s.extend(chars.next()),
                    '\'' => break,
                    c => s.push(c),
                }
            }
            return Some(s);
        }
        return Some(v.to_string());
    }
    Some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database cluster dump\n--\n\\connect template1\n\
CREATE TABLE t (a int);\n\
\\connect -reuse-previous=on \"dbname='my \\'db'\"\n\
COPY public.t (a, b) FROM stdin;\n1\t\\\\.\n2\t\\N\n\\.\n\
COPY \"Odd Schema\".\"t (x)\" (\"a b\") FROM stdin;\n\\.\n\
\\connect shop\n\
COPY public.orders FROM stdin;\nx\n\\.x\n\\.\nSELECT 1;\n";

    #[test]
    fn counts_rows_in_any_chunking() {
        for step in [1, 2, 3, 7, 1000] {
            let mut c = CopyCounter::new();
            for ch in DUMP.as_bytes().chunks(step) {
                c.feed(ch);
            }
            assert!(!c.in_copy());
            let t = c.tables();
            assert_eq!(t.len(), 3, "step {step}");
            assert_eq!(t[0].table, "public.t");
            assert_eq!(t[0].rows, 2);
            assert_eq!(t[0].database.as_deref(), Some("my 'db"));
            assert_eq!(t[1].table, "\"Odd Schema\".\"t (x)\"");
            assert_eq!(t[1].rows, 0);
            assert_eq!(t[2].table, "public.orders");
            assert_eq!(t[2].rows, 2, "`\\.x` is data, only `\\.` ends the block");
            assert_eq!(t[2].database.as_deref(), Some("shop"));
        }
    }

    #[test]
    fn sniffs_kinds() {
        assert_eq!(sniff(DUMP.as_bytes()), DumpKind::PgDumpall);
        assert_eq!(
            sniff(b"--\n-- PostgreSQL database dump\n--\n"),
            DumpKind::PgDumpPlain
        );
        assert_eq!(sniff(b"PGDMP\x01\x0f"), DumpKind::Custom);
        assert_eq!(sniff(b"hello"), DumpKind::Unknown);
    }

    #[test]
    fn connect_forms() {
        assert_eq!(parse_connect("postgres").as_deref(), Some("postgres"));
        assert_eq!(parse_connect("\"My DB\"").as_deref(), Some("My DB"));
        assert_eq!(
            parse_connect("-reuse-previous=on \"dbname='a\\'b'\"").as_deref(),
            Some("a'b")
        );
    }

    /// Found by the dump_sniffer fuzz target: an underflow on `COPY FROM stdin;`.
    #[test]
    fn regression_copy_without_table_does_not_underflow() {
        let mut c = CopyCounter::new();
        c.feed(b"COPY FROM stdin;\n1\n");
        assert!(c.tables().is_empty());
        assert!(!c.in_copy());
    }

    #[test]
    fn truncated_copy_is_visible() {
        let mut c = CopyCounter::new();
        c.feed(b"COPY public.t (a) FROM stdin;\n1\n2\n");
        assert!(c.in_copy());
        assert_eq!(c.tables()[0].rows, 2);
    }
}
