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

/// How many bytes [`origin`] looks at: a pg_dumpall of a cluster with many roles puts the first
/// `-- Dumped by` line a few KiB in.
pub const ORIGIN_LEN: usize = 64 * 1024;

/// A PostgreSQL version as `server_version_num` spells it: 170011 for 17.11, 90624 for 9.6.24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PgVersion(pub u32);

impl PgVersion {
    /// Parses `17.11`, `17.11 (Debian 17.11-0+deb13u1)`, `9.6.24`, `18beta1`, `18devel`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let end = s
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len());
        let mut nums = s[..end].split('.').map(|n| n.parse::<u32>().ok());
        let major = nums.next()??;
        let minor = nums.next().flatten().unwrap_or(0);
        let patch = nums.next().flatten().unwrap_or(0);
        match major {
            10..=99 if minor < 10_000 => Some(PgVersion(major * 10_000 + minor)),
            6..=9 if minor < 100 && patch < 100 => {
                Some(PgVersion(major * 10_000 + minor * 100 + patch))
            }
            _ => None,
        }
    }

    /// The major version in the same units: 170000 for 17.11, 90600 for 9.6.24.
    pub fn major(self) -> PgVersion {
        if self.0 >= 100_000 {
            PgVersion(self.0 / 10_000 * 10_000)
        } else {
            PgVersion(self.0 / 100 * 100)
        }
    }

    /// `17` or `9.6`.
    pub fn major_name(self) -> String {
        if self.0 >= 100_000 {
            (self.0 / 10_000).to_string()
        } else {
            format!("{}.{}", self.0 / 10_000, self.0 / 100 % 100)
        }
    }
}

impl std::fmt::Display for PgVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 >= 100_000 {
            write!(f, "{}.{}", self.0 / 10_000, self.0 % 10_000)
        } else {
            write!(
                f,
                "{}.{}.{}",
                self.0 / 10_000,
                self.0 / 100 % 100,
                self.0 % 100
            )
        }
    }
}

impl Serialize for PgVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What made the dump, as far as its first [`ORIGIN_LEN`] bytes tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The pg_dump that wrote it (for pg_dumpall output, the newest pg_dump line).
    pub pg_dump: Option<PgVersion>,
    /// The server it was dumped from (the newest, for pg_dumpall).
    pub server: Option<PgVersion>,
    /// A custom-format archive's version, e.g. `1.16` (PostgreSQL 17's pg_dump).
    pub archive: Option<ArchiveVersion>,
    /// Whether the SQL uses psql's `\restrict` (pg_dump releases from August 2025 on).
    pub restrict: bool,
}

impl Origin {
    /// The newest major version involved: what a target server should be at least.
    pub fn newest_major(&self) -> Option<PgVersion> {
        self.pg_dump.max(self.server).map(PgVersion::major)
    }

    /// `pg_dump 17.11 from PostgreSQL 17.10`, or None when nothing is known.
    pub fn describe(&self) -> Option<String> {
        let by = self.pg_dump.map(|v| format!("pg_dump {v}"));
        let from = self.server.map(|v| format!("PostgreSQL {v}"));
        match (by, from) {
            (Some(b), Some(f)) => Some(format!("{b} from {f}")),
            (Some(b), None) => Some(b),
            (None, Some(f)) => Some(format!("a dump of {f}")),
            (None, None) => None,
        }
    }
}

/// A custom-format archive version: `PGDMP` then major, minor, revision bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchiveVersion(pub u8, pub u8, pub u8);

impl ArchiveVersion {
    /// The newest archive version the pg_restore of a major version reads, where known.
    /// PostgreSQL 12 to 15 write 1.14, 16 writes 1.15, 17 and 18 write 1.16.
    pub fn newest_readable_by(pg_restore: PgVersion) -> Option<ArchiveVersion> {
        match pg_restore.0 / 10_000 {
            12..=15 => Some(ArchiveVersion(1, 14, 0)),
            16 => Some(ArchiveVersion(1, 15, 0)),
            17 | 18 => Some(ArchiveVersion(1, 16, 0)),
            _ => None,
        }
    }
}

impl std::fmt::Display for ArchiveVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl Serialize for ArchiveVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads what made the dump from its first bytes (up to [`ORIGIN_LEN`]): the `-- Dumped by
/// pg_dump version` and `-- Dumped from database version` comments and `\restrict` of plain
/// SQL, or the header of a custom-format archive. Untrusted bytes: never panics, and an
/// unreadable header is simply an unknown origin.
pub fn origin(head: &[u8]) -> Origin {
    let head = &head[..head.len().min(ORIGIN_LEN)];
    if head.starts_with(b"PGDMP") {
        return archive_origin(head).unwrap_or_default();
    }
    let mut o = Origin::default();
    for line in head.split(|&b| b == b'\n') {
        let line = std::str::from_utf8(line).unwrap_or("");
        if let Some(v) = line.strip_prefix("-- Dumped by pg_dump version ") {
            o.pg_dump = o.pg_dump.max(PgVersion::parse(v));
        } else if let Some(v) = line.strip_prefix("-- Dumped from database version ") {
            o.server = o.server.max(PgVersion::parse(v));
        } else if line.starts_with("\\restrict ") {
            o.restrict = true;
        }
    }
    o
}

/// The header pg_backup_archiver.c's WriteHead writes; None where it is not readable.
fn archive_origin(head: &[u8]) -> Option<Origin> {
    let mut r = head.get(5..)?;
    let mut byte = || -> Option<u8> {
        let (b, rest) = r.split_first()?;
        r = rest;
        Some(*b)
    };
    let version = ArchiveVersion(byte()?, byte()?, byte()?);
    let mut o = Origin {
        archive: Some(version),
        ..Origin::default()
    };
    // Before 1.10 the archive names no versions; that is pg_dump 8.x, long gone.
    if version < ArchiveVersion(1, 10, 0) {
        return Some(o);
    }
    let int_size = usize::from(byte()?);
    if !(1..=8).contains(&int_size) {
        return Some(o);
    }
    let _off_size = byte()?;
    let _format = byte()?;
    // A ReadInt: a sign byte, then int_size bytes, least significant first.
    let read_int = |r: &mut &[u8]| -> Option<i64> {
        let (sign, rest) = r.split_first()?;
        let digits = rest.get(..int_size)?;
        *r = &rest[int_size..];
        let v = digits
            .iter()
            .rev()
            .fold(0i64, |acc, &d| acc.wrapping_shl(8) | i64::from(d));
        Some(if *sign != 0 { v.wrapping_neg() } else { v })
    };
    let read_str = |r: &mut &[u8]| -> Option<Option<String>> {
        let len = read_int(r)?;
        if len < 0 {
            return Some(None);
        }
        let len = usize::try_from(len).ok().filter(|&l| l <= 1024)?;
        let s = r.get(..len)?;
        *r = &r[len..];
        Some(Some(String::from_utf8_lossy(s).into_owned()))
    };
    if version >= ArchiveVersion(1, 15, 0) {
        r = r.get(1..)?; // the compression algorithm
    } else {
        read_int(&mut r)?; // the compression level
    }
    for _ in 0..7 {
        read_int(&mut r)?; // the creation time, struct tm
    }
    let _dbname = read_str(&mut r)?;
    o.server = read_str(&mut r)?.as_deref().and_then(PgVersion::parse);
    o.pg_dump = read_str(&mut r)?.as_deref().and_then(PgVersion::parse);
    Some(o)
}

/// How the dump is fed to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// Plain SQL into psql.
    Sql,
    /// Custom format into pg_restore.
    Custom,
}

impl DumpFormat {
    /// How a dump of this kind is restored.
    pub fn of(kind: DumpKind) -> DumpFormat {
        match kind {
            DumpKind::Custom => DumpFormat::Custom,
            _ => DumpFormat::Sql,
        }
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
    /// The bytes of those lines, as the dump has them.
    #[serde(default)]
    pub bytes: u64,
}

impl TableRows {
    /// The schema of the table as COPY writes it (`shop.orders`, `"Odd ""Schema"."t.x"`).
    pub fn schema(&self) -> String {
        schema_of(&self.table)
    }
}

/// The schema of `schema.table` as COPY writes it (either part may be double-quoted).
fn schema_of(table: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = table.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                out.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => return out,
            c => out.push(c),
        }
    }
    out
}

/// Streaming COPY row counter. Feed it the plain dump in any chunking: it reads the dump with
/// the loader's own reader ([`crate::split::Splitter`]), so what it counts is what psql (and
/// `restore --jobs`) load, never a `COPY` inside a string literal or a comment.
#[derive(Debug, Default)]
pub struct CopyCounter {
    splitter: crate::split::Splitter,
    rows: RowCounter,
}

impl CopyCounter {
    /// A fresh counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts the rows in `data`.
    pub fn feed(&mut self, data: &[u8]) {
        let rows = &mut self.rows;
        self.splitter.feed(data, &mut |item| rows.item(&item));
    }

    /// The end of the dump: the rows of a block still being cut are counted. Call it after
    /// the last [`CopyCounter::feed`], before reading the counts.
    pub fn finish(&mut self) {
        // psql ends a COPY at the end of its input; a dump that does so was cut short.
        let cut = self.rows.in_copy && self.splitter.in_copy();
        let rows = &mut self.rows;
        self.splitter.finish(&mut |item| rows.item(&item));
        self.rows.in_copy = cut;
    }

    /// Whether the dump ended inside a COPY block (a truncated dump).
    pub fn in_copy(&self) -> bool {
        self.rows.in_copy
    }

    /// The tables in order of appearance.
    pub fn tables(&self) -> &[TableRows] {
        &self.rows.tables
    }

    /// The `\connect` targets, in order of first appearance: the databases a pg_dumpall
    /// (or `pg_dump --create`) restores into. Empty for a dump of one database without them.
    pub fn databases(&self) -> &[String] {
        &self.rows.databases
    }

    /// Takes the result: one entry per table, the rows of several COPY blocks into the same
    /// table summed (`pg_dump --load-via-partition-root` writes one per partition).
    pub fn into_tables(self) -> Vec<TableRows> {
        merge_tables(self.rows.tables)
    }
}

/// The rows of each table, from the splitter's items.
#[derive(Debug, Default)]
pub(crate) struct RowCounter {
    in_copy: bool,
    database: Option<String>,
    tables: Vec<TableRows>,
    databases: Vec<String>,
    /// The dump has pg_dump's object headers: from the first one on, a COPY block is only one
    /// inside a `TABLE DATA` item. Text without any header (hand-made SQL) counts every one.
    strict: bool,
    /// The current item is a `TABLE DATA` item.
    data_item: bool,
}

impl RowCounter {
    pub(crate) fn databases(&self) -> &[String] {
        &self.databases
    }

    /// One entry per table, its COPY blocks summed.
    pub(crate) fn into_tables(self) -> Vec<TableRows> {
        merge_tables(self.tables)
    }

    pub(crate) fn item(&mut self, item: &crate::split::Item) {
        use crate::split::Item;
        match item {
            Item::Header(h) => {
                self.strict = true;
                self.data_item = h.data && h.kind == "TABLE DATA";
            }
            Item::Meta(line) => {
                let connect = line
                    .strip_prefix(b"\\connect ")
                    .or_else(|| line.strip_prefix(b"\\c "));
                if let Some(arg) = connect {
                    let db = parse_connect(&String::from_utf8_lossy(arg));
                    if let Some(d) = &db {
                        if !self.databases.contains(d) {
                            self.databases.push(d.clone());
                        }
                    }
                    self.database = db;
                }
            }
            Item::CopyStart {
                table: Some(table), ..
            } if self.data_item || !self.strict => {
                self.tables.push(TableRows {
                    database: self.database.clone(),
                    table: table.clone(),
                    rows: 0,
                    bytes: 0,
                });
                self.in_copy = true;
            }
            Item::CopyStart { .. } => {}
            Item::CopyData(rows) if self.in_copy => {
                if let Some(t) = self.tables.last_mut() {
                    t.rows += memchr::memchr_iter(b'\n', rows).count() as u64;
                    t.bytes += rows.len() as u64;
                }
            }
            Item::CopyData(_) => {}
            Item::CopyEnd { .. } => self.in_copy = false,
            Item::Statement { .. } => {}
        }
    }
}

/// Sums the rows of repeated (database, table) entries, keeping the order of first appearance.
pub fn merge_tables(tables: Vec<TableRows>) -> Vec<TableRows> {
    let mut out: Vec<TableRows> = Vec::with_capacity(tables.len());
    let mut index: std::collections::HashMap<(Option<String>, String), usize> =
        std::collections::HashMap::new();
    for t in tables {
        match index.get(&(t.database.clone(), t.table.clone())) {
            Some(&i) => {
                out[i].rows += t.rows;
                out[i].bytes += t.bytes;
            }
            None => {
                index.insert((t.database.clone(), t.table.clone()), out.len());
                out.push(t);
            }
        }
    }
    out
}

/// The database of a `\connect` argument that names nothing else: `db`, `"My DB"`, or
/// `-reuse-previous=on "dbname='my db'"`. None for anything more (a user, a host, other
/// parameters), which a parallel restore leaves to psql.
pub fn parse_plain_connect(arg: &str) -> Option<String> {
    let a = arg.trim();
    let a = a.strip_prefix("-reuse-previous=on").map_or(a, str::trim);
    let db = parse_connect(a)?;
    // The argument must be exactly what pg_dumpall writes for that name, in one of its forms.
    let bare = db
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !db.starts_with('-');
    let quoted = format!("\"{}\"", db.replace('"', "\"\""));
    let value = db.replace('\\', "\\\\").replace('\'', "\\'");
    let conninfo = format!("\"{}\"", format!("dbname='{value}'").replace('"', "\"\""));
    ((bare && a == db) || a == quoted || a == conninfo).then_some(db)
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

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/pgdump")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn pg_versions_parse_as_server_version_num_does() {
        let v = |s| PgVersion::parse(s).map(|v| v.0);
        assert_eq!(v("17.11 (Debian 17.11-0+deb13u1)"), Some(170011));
        assert_eq!(v("13.23"), Some(130023));
        assert_eq!(v("9.6.24"), Some(90624));
        assert_eq!(v("18beta1"), Some(180000));
        assert_eq!(v("18devel"), Some(180000));
        for bad in ["", "abc", "5.1", "100.1", "17.99999", ".1"] {
            assert_eq!(v(bad), None, "{bad:?}");
        }
        assert_eq!(PgVersion(170011).to_string(), "17.11");
        assert_eq!(PgVersion(90624).to_string(), "9.6.24");
        assert_eq!(PgVersion(90624).major_name(), "9.6");
        assert_eq!(PgVersion(170011).major(), PgVersion(170000));
    }

    /// The committed dumps of pg_dump 13, 14, 16 and 17 (tests/fixtures/pgdump/README.md).
    #[test]
    fn origin_of_real_dumps_from_pg_dump_13_to_17() {
        let cases = [
            ("pg13", 130016, 130023, false, (1, 14)),
            ("pg14", 140024, 140023, true, (1, 14)),
            ("pg16", 160015, 160014, true, (1, 15)),
            ("pg17", 170011, 170010, true, (1, 16)),
        ];
        for (name, by, from, restrict, (amaj, amin)) in cases {
            let plain = origin(&fixture(&format!("{name}-dumpall.sql")));
            assert_eq!(plain.pg_dump, Some(PgVersion(by)), "{name}");
            assert_eq!(plain.server, Some(PgVersion(from)), "{name}");
            assert_eq!(plain.restrict, restrict, "{name}");
            assert_eq!(plain.archive, None);
            let custom = origin(&fixture(&format!("{name}-custom.dump")));
            assert_eq!(custom.pg_dump, Some(PgVersion(by)), "{name}");
            assert_eq!(custom.server, Some(PgVersion(from)), "{name}");
            assert_eq!(
                custom.archive,
                Some(ArchiveVersion(amaj, amin, 0)),
                "{name}"
            );
        }
    }

    #[test]
    fn every_prefix_of_an_archive_header_is_harmless() {
        let dump = fixture("pg17-custom.dump");
        for n in 0..200 {
            let o = origin(&dump[..n]);
            assert!(o.pg_dump.is_none() || n > 100, "{n}");
        }
        // A header claiming absurd sizes reads as unknown, not as a panic or a huge allocation.
        let mut bad = dump[..120].to_vec();
        bad[8] = 200;
        assert_eq!(origin(&bad).pg_dump, None);
    }

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
            c.finish();
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
    fn a_dump_with_crlf_line_ends_counts_as_psql_reads_it() {
        // Written on Windows, or copied there in text mode: psql takes `\.` CR LF as the end.
        let crlf = DUMP.replace('\n', "\r\n");
        let mut plain = CopyCounter::new();
        plain.feed(DUMP.as_bytes());
        plain.finish();
        for step in [1, 2, 3, 4, 5, 1000] {
            let mut c = CopyCounter::new();
            for ch in crlf.as_bytes().chunks(step) {
                c.feed(ch);
            }
            c.finish();
            assert!(!c.in_copy(), "step {step}");
            // The same rows, each line a byte longer in the dump.
            let lf: Vec<_> = plain
                .tables()
                .iter()
                .map(|t| (&t.table, t.rows, t.bytes))
                .collect();
            let cr: Vec<_> = c
                .tables()
                .iter()
                .map(|t| (&t.table, t.rows, t.bytes - t.rows))
                .collect();
            assert_eq!(cr, lf, "step {step}");
            assert_eq!(c.databases(), plain.databases(), "step {step}");
        }
        let head = "--\r\n-- PostgreSQL database dump\r\n--\r\n\r\n-- Dumped from database version 15.18\r\n\
                    -- Dumped by pg_dump version 16.4\r\n\r\n\\restrict abc\r\n";
        assert_eq!(sniff(head.as_bytes()), DumpKind::PgDumpPlain);
        let o = origin(head.as_bytes());
        assert_eq!(o.server, PgVersion::parse("15.18"));
        assert_eq!(o.pg_dump, PgVersion::parse("16.4"));
        assert!(o.restrict);
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
    fn plain_connects_name_a_database_and_nothing_else() {
        assert_eq!(parse_plain_connect("shop").as_deref(), Some("shop"));
        assert_eq!(parse_plain_connect("\"My DB\"").as_deref(), Some("My DB"));
        assert_eq!(
            parse_plain_connect("-reuse-previous=on \"dbname='a\\'b \"\"c'\"").as_deref(),
            Some("a'b \"c")
        );
        assert_eq!(parse_plain_connect("shop other"), None);
        assert_eq!(
            parse_plain_connect("-reuse-previous=on \"dbname='x' host=elsewhere\""),
            None
        );
        assert_eq!(parse_plain_connect("\"dbname=x user=y\""), None);
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
        c.finish();
        assert!(c.tables().is_empty());
        assert!(!c.in_copy());
    }

    /// Issue 10: what pg_dump 15 writes for a COPY line inside a multi-line comment, a table
    /// named with a newline, a table without columns, and `--load-via-partition-root`.
    const PGDUMP15: &str = "--\n-- PostgreSQL database dump\n--\n\n\
--\n-- Name: staging; Type: TABLE; Schema: public; Owner: postgres\n--\n\n\
CREATE TABLE public.staging (a integer, b text);\n\n\
--\n-- Name: TABLE staging; Type: COMMENT; Schema: public; Owner: postgres\n--\n\n\
COMMENT ON TABLE public.staging IS 'Load with psql:\nCOPY public.staging (a, b) FROM stdin;\n1\tx\n\\.\n';\n\n\
--\n-- Data for Name: new line; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
COPY public.\"new\nline\" (a) FROM stdin;\n1\n2\n\\.\n\n\
--\n-- Data for Name: zero; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
COPY public.zero  FROM stdin;\n\n\n\n\\.\n\n\
--\n-- Data for Name: m_1; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
COPY public.m (k) FROM stdin;\n1\n2\n\\.\n\n\
--\n-- Data for Name: m_2; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
COPY public.m (k) FROM stdin;\n3\n\\.\n\n\
--\n-- Data for Name: staging; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
COPY public.staging (a, b) FROM stdin;\n1\ta\n2\tb\n\\.\n";

    #[test]
    fn only_data_blocks_pg_dump_announces_are_counted() {
        for step in [1, 2, 5, 13, 4096] {
            let mut c = CopyCounter::new();
            for ch in PGDUMP15.as_bytes().chunks(step) {
                c.feed(ch);
            }
            c.finish();
            assert!(!c.in_copy(), "step {step}");
            let t = c.into_tables();
            let got: Vec<(&str, u64)> = t.iter().map(|t| (t.table.as_str(), t.rows)).collect();
            assert_eq!(
                got,
                [
                    ("public.\"new\nline\"", 2),
                    ("public.zero", 3),
                    ("public.m", 3),
                    ("public.staging", 2)
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn databases_are_the_connect_targets() {
        let mut c = CopyCounter::new();
        c.feed(DUMP.as_bytes());
        c.finish();
        assert_eq!(c.databases(), ["template1", "my 'db", "shop"]);
    }

    #[test]
    fn truncated_copy_is_visible() {
        let mut c = CopyCounter::new();
        c.feed(b"COPY public.t (a) FROM stdin;\n1\n2\n");
        c.finish();
        assert!(c.in_copy());
        assert_eq!(c.tables()[0].rows, 2);
    }
}
