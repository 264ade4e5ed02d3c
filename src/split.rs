//! Splitting a plain SQL dump (pg_dump's or pg_dumpall's) into what psql would execute: SQL
//! statements, COPY blocks and backslash meta-commands, with pg_dump's object headers
//! (`-- Name: X; Type: T; Schema: S; Owner: O`, `-- Data for Name: …`) between them.
//!
//! Owns: the lexical rules psql applies to find where a statement ends (quotes, `E''`
//! strings, dollar quotes, nested block comments, line comments), COPY data (a raw newline
//! always ends a row in COPY text format; `\.` alone on a line ends the block), and where a
//! meta-command is (a line that begins with `\` outside any statement). Does not own what is
//! done with the pieces (`parallel` schedules them) or which databases they go to.
//!
//! The input is untrusted: any bytes, in any chunking, give the same items (a fuzz target
//! checks this), and memory is bounded by the longest statement plus [`CHUNK`] of COPY rows.

/// COPY rows are handed on in chunks of about this many bytes (whole rows; a single longer
/// row makes a longer chunk).
pub const CHUNK: usize = 4 << 20;

/// A line of SQL longer than this is lexed as it arrives, so that a one-line statement of
/// hundreds of MB is held once (in the statement), not twice (the line and the statement).
pub const LONG_LINE: usize = 64 << 10;

/// One of pg_dump's object headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `-- Data for Name: …` rather than `-- Name: …`.
    pub data: bool,
    /// The object's name as the header writes it (not quoted; for messages only).
    pub name: String,
    /// The object type: `TABLE`, `TABLE DATA`, `INDEX`, `FK CONSTRAINT`, …
    pub kind: String,
    /// The schema as the header writes it (not quoted; `-` for an object in none).
    pub schema: String,
    /// What follows the schema, as written (`; Owner: me`, `; Owner: me; Tablespace: ts`).
    pub tail: String,
}

impl Header {
    /// The header's line as pg_dump writes it, with the `--` lines around it.
    pub fn to_lines(&self) -> String {
        format!(
            "--\n-- {}Name: {}; Type: {}; Schema: {}{}\n--\n\n",
            if self.data { "Data for " } else { "" },
            self.name,
            self.kind,
            self.schema,
            self.tail
        )
    }
}

/// What a pg_dump object header's type means to the loader, parsed once from
/// [`Header::kind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// Before the first header (hand-made SQL, a dump's preamble).
    None,
    TableData,
    SequenceSet,
    /// `BLOBS`, `LARGE OBJECTS`, `BLOB DATA`.
    LargeObjects,
    Index,
    /// `CONSTRAINT`, `CHECK CONSTRAINT`: keys, unique and check constraints.
    Constraint,
    FkConstraint,
    IndexAttach,
    /// Post-data that runs after the keys, in dump order: triggers, rules, policies,
    /// comments, ACLs, publications, materialized view refreshes …
    Late,
    /// Anything else, as the header spells it.
    Other(String),
}

impl ObjectKind {
    pub fn parse(kind: &str) -> ObjectKind {
        match kind {
            "TABLE DATA" => ObjectKind::TableData,
            "SEQUENCE SET" => ObjectKind::SequenceSet,
            "BLOBS" | "LARGE OBJECTS" | "BLOB DATA" => ObjectKind::LargeObjects,
            "INDEX" => ObjectKind::Index,
            "CONSTRAINT" | "CHECK CONSTRAINT" => ObjectKind::Constraint,
            "FK CONSTRAINT" => ObjectKind::FkConstraint,
            "INDEX ATTACH" => ObjectKind::IndexAttach,
            "TRIGGER"
            | "RULE"
            | "POLICY"
            | "ROW SECURITY"
            | "COMMENT"
            | "ACL"
            | "SECURITY LABEL"
            | "PUBLICATION"
            | "PUBLICATION TABLE"
            | "PUBLICATION TABLES IN SCHEMA"
            | "SUBSCRIPTION"
            | "SUBSCRIPTION TABLE"
            | "EVENT TRIGGER"
            | "MATERIALIZED VIEW DATA"
            | "DEFAULT ACL"
            | "STATISTICS"
            // PostgreSQL 18's relation and column statistics (pg_restore_relation_stats,
            // pg_restore_attribute_stats): a table's come after all the data, an index's
            // after all the indexes; both run with the rest, once every key and index is
            // built, so no index build of ours overwrites what they set, and an index's
            // statistics never run before the index exists.
            | "STATISTICS DATA" => ObjectKind::Late,
            other => ObjectKind::Other(other.to_string()),
        }
    }

    /// An item of the data section.
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            ObjectKind::TableData | ObjectKind::SequenceSet | ObjectKind::LargeObjects
        )
    }

    /// Data that runs in order on the first connection, beside the COPY chunks: it touches
    /// no table they load.
    pub fn is_lane(&self) -> bool {
        matches!(self, ObjectKind::SequenceSet | ObjectKind::LargeObjects)
    }
}

/// A piece of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A pg_dump object header: the statements that follow, up to the next header, are that
    /// object's.
    Header(Header),
    /// One SQL statement as written, from its first token to its `;`, then a newline.
    /// `meta` is set when psql would find a backslash command inside it.
    Statement { text: Vec<u8>, meta: bool },
    /// `COPY … FROM stdin …;` (the statement, with its newline): rows follow. `table` when
    /// it is pg_dump's own form, `COPY name [(columns)] FROM stdin;` (text format, so a raw
    /// newline always ends a row).
    CopyStart {
        statement: Vec<u8>,
        table: Option<String>,
    },
    /// Whole COPY rows, each with its newline (with [`Splitter::cut_rows`], the last may be
    /// cut, its rest in the next).
    CopyData(Vec<u8>),
    /// The `\.` that ends a COPY block (or the end of the input inside one); `crlf` when it
    /// was `\.` CR LF, as in a dump that passed through Windows: the server wants the end
    /// marker in the newline style of the rows before it.
    CopyEnd { crlf: bool },
    /// A backslash meta-command line, without its newline.
    Meta(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Lex {
    #[default]
    Normal,
    /// In `'…'`; `escapes` for `E'…'` (or any string with standard_conforming_strings off).
    Single {
        escapes: bool,
    },
    Double,
    /// In `$tag$…$tag$`; the tag with its dollars.
    Dollar(Vec<u8>),
    /// In `/* … */`, nested this deep.
    Block(u32),
}

/// The streaming splitter: feed it the dump in any chunking, then call [`Splitter::finish`].
#[derive(Debug, Default)]
pub struct Splitter {
    /// The current line, outside COPY data.
    line: Vec<u8>,
    /// The statement being read, from its first token.
    statement: Vec<u8>,
    meta_inside: bool,
    lex: Lex,
    /// `SET standard_conforming_strings = off` was seen: every `'…'` has backslash escapes.
    escape_strings: bool,
    /// Inside COPY data.
    copy: bool,
    /// COPY rows not yet handed on; the last one may be incomplete.
    rows: Vec<u8>,
    /// Where the incomplete last row of `rows` begins.
    row_start: usize,
    /// The start of the current line was looked at (not a meta-command, not a header) and
    /// part of it lexed already: the rest goes to the lexer as it is.
    line_open: bool,
    /// Inside a `--` comment, to the end of the line.
    comment: bool,
    /// Lines longer than this are lexed as they arrive ([`LONG_LINE`]; tests set less).
    long_line: usize,
    /// COPY rows may be handed on cut (see [`Splitter::cut_rows`]).
    cut_rows: bool,
    /// Part of the current COPY row was handed on already: it cannot be the end marker.
    row_cut: bool,
}

impl Splitter {
    pub fn new() -> Self {
        Self::with_long_line(LONG_LINE)
    }

    /// A splitter that lexes lines longer than `n` bytes as they arrive (tests use small
    /// values to check that this gives the same items).
    pub fn with_long_line(n: usize) -> Self {
        Splitter {
            long_line: n.max(1),
            ..Self::default()
        }
    }

    /// A splitter whose `CopyData` may end inside a row once [`CHUNK`] bytes are held: for a
    /// reader that needs no whole rows (the picker), so that a row of hundreds of MB passes
    /// through in chunks instead of being held whole.
    pub fn cut_rows(mut self) -> Self {
        self.cut_rows = true;
        self
    }

    /// Splits `data`, handing every complete item to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut impl FnMut(Item)) {
        while !data.is_empty() {
            if self.copy {
                data = self.feed_copy(data, out);
                continue;
            }
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.line.extend_from_slice(&data[..=i]);
                    data = &data[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    if std::mem::take(&mut self.line_open) {
                        self.scan(&line, false, out);
                    } else {
                        self.sql_line(&line, out);
                    }
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.line.extend_from_slice(data);
                    data = &[];
                    if self.line.len() >= self.long_line {
                        self.lex_long_line(out);
                    }
                }
            }
        }
    }

    /// Whether it is inside a COPY block's rows now.
    pub fn in_copy(&self) -> bool {
        self.copy
    }

    /// The end of the input: what psql does at end of file. An unfinished COPY ends; an
    /// unfinished statement is still sent (psql sends what its buffer holds).
    pub fn finish(&mut self, out: &mut impl FnMut(Item)) {
        if self.copy {
            self.end_copy(out, false);
        }
        if !self.line.is_empty() || self.line_open {
            let mut line = std::mem::take(&mut self.line);
            line.push(b'\n');
            if std::mem::take(&mut self.line_open) {
                self.scan(&line, false, out);
            } else {
                self.sql_line(&line, out);
            }
        }
        if self.copy {
            // The last line was a COPY statement without rows.
            self.copy = false;
            out(Item::CopyEnd { crlf: false });
        }
        if !self.statement.is_empty() {
            let mut text = std::mem::take(&mut self.statement);
            while text.last().is_some_and(u8::is_ascii_whitespace) {
                text.pop();
            }
            text.push(b'\n');
            out(Item::Statement {
                text,
                meta: std::mem::take(&mut self.meta_inside),
            });
        }
        self.lex = Lex::Normal;
    }

    /// Whether the input so far ended inside COPY data or a statement.
    pub fn unfinished(&self) -> bool {
        self.copy || !self.statement.is_empty() || !self.line.is_empty() || self.line_open
    }

    /// Hands on the rows kept and ends the COPY block (at the end of the input: `end` is
    /// empty).
    fn end_copy(&mut self, out: &mut impl FnMut(Item), crlf: bool) {
        let rows = std::mem::take(&mut self.rows);
        if !rows.is_empty() {
            out(Item::CopyData(rows));
        }
        self.row_start = 0;
        self.row_cut = false;
        self.copy = false;
        out(Item::CopyEnd { crlf });
    }

    fn feed_copy<'a>(&mut self, data: &'a [u8], out: &mut impl FnMut(Item)) -> &'a [u8] {
        // `seg` is where the bytes not yet copied into `rows` begin.
        let mut seg = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            let partial = &self.rows[self.row_start..];
            let tail = &data[seg..nl];
            if let Some(crlf) = copy_end(partial, tail).filter(|_| !self.row_cut) {
                self.rows.truncate(self.row_start);
                self.end_copy(out, crlf);
                return &data[nl + 1..];
            }
            self.row_cut = false;
            // Rows are copied in runs; a run is cut where a chunk is full.
            if self.rows.len() + (nl + 1 - seg) >= CHUNK {
                self.rows.extend_from_slice(&data[seg..=nl]);
                out(Item::CopyData(std::mem::take(&mut self.rows)));
                self.row_start = 0;
                seg = nl + 1;
            } else {
                // The row is complete: the next one starts after this newline.
                self.rows.extend_from_slice(&data[seg..=nl]);
                seg = nl + 1;
                self.row_start = self.rows.len();
            }
        }
        self.rows.extend_from_slice(&data[seg..]);
        // A row longer than the end marker (`\.` CR LF) cannot be it: cut, it goes on.
        if self.cut_rows && self.rows.len() >= CHUNK && self.rows.len() - self.row_start > 3 {
            out(Item::CopyData(std::mem::take(&mut self.rows)));
            self.row_start = 0;
            self.row_cut = true;
        }
        &[]
    }

    /// Lexes what can be lexed of a long line that has not ended yet, once its start is known
    /// not to be a meta-command or a header (those are kept whole, as before).
    fn lex_long_line(&mut self, out: &mut impl FnMut(Item)) {
        if !self.line_open {
            if self.lex == Lex::Normal && self.statement.is_empty() {
                let start = self.line.iter().position(|b| !b.is_ascii_whitespace());
                match start.map(|k| &self.line[k..]) {
                    // All blank so far, or a line that may be a meta-command or a header.
                    None => return,
                    Some(rest) if rest.starts_with(b"\\") || rest.starts_with(b"-") => return,
                    Some(_) => {}
                }
            }
            self.line_open = true;
        }
        let line = std::mem::take(&mut self.line);
        let used = self.scan(&line, true, out);
        self.line = line;
        self.line.drain(..used);
    }

    /// A complete line (with its newline) outside COPY data.
    fn sql_line(&mut self, line: &[u8], out: &mut impl FnMut(Item)) {
        if self.lex == Lex::Normal && self.statement.is_empty() {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body.first() == Some(&b'\\') {
                out(Item::Meta(body.to_vec()));
                return;
            }
            if let Some(h) = parse_header(body) {
                out(Item::Header(h));
                return;
            }
        }
        self.scan(line, false, out);
    }

    /// Runs the lexer over a line, handing on every statement that ends in it. `partial`: the
    /// line goes on after `line` (a long line lexed as it arrives): stop before anything
    /// whose meaning depends on bytes not here yet, and say how much was taken; the rest
    /// comes again with what follows.
    fn scan(&mut self, line: &[u8], partial: bool, out: &mut impl FnMut(Item)) -> usize {
        let mut i = 0;
        if self.comment {
            // The rest of a `--` comment begun in an earlier piece of this line.
            let end = memchr::memchr(b'\n', line).map_or(line.len(), |k| k + 1);
            if !self.statement.is_empty() {
                self.statement.extend_from_slice(&line[..end]);
            }
            if end == line.len() && !line.ends_with(b"\n") {
                return line.len();
            }
            // The comment ran to the line's end, and the line ends with it, as when lexed
            // whole (which returns at the `--`).
            self.comment = false;
            debug_assert_eq!(end, line.len());
            return end;
        }
        while i < line.len() {
            let b = line[i];
            // What the next byte, or the bytes up to a dollar quote's end, decide.
            if partial && needs_more(&self.lex, &line[i..]) {
                return i;
            }
            match &mut self.lex {
                Lex::Normal => match b {
                    b'-' if line.get(i + 1) == Some(&b'-') => {
                        // A comment to the end of the line: kept inside a statement, dropped
                        // between statements.
                        if !self.statement.is_empty() {
                            self.statement.extend_from_slice(&line[i..]);
                        }
                        if partial {
                            self.comment = true;
                        }
                        return line.len();
                    }
                    b'/' if line.get(i + 1) == Some(&b'*') => {
                        self.statement.extend_from_slice(b"/*");
                        self.lex = Lex::Block(1);
                        i += 2;
                        continue;
                    }
                    b'\'' => {
                        let prev = self.statement.last().copied();
                        let before = self
                            .statement
                            .len()
                            .checked_sub(2)
                            .map(|k| self.statement[k]);
                        let e_prefix =
                            matches!(prev, Some(b'E' | b'e')) && !before.is_some_and(is_ident_byte);
                        self.lex = Lex::Single {
                            escapes: e_prefix || self.escape_strings,
                        };
                        self.statement.push(b);
                    }
                    b'"' => {
                        self.lex = Lex::Double;
                        self.statement.push(b);
                    }
                    b'$' => {
                        let prev = self.statement.last().copied();
                        match dollar_tag(&line[i..]) {
                            Some(n) if !prev.is_some_and(is_ident_byte) => {
                                self.lex = Lex::Dollar(line[i..i + n].to_vec());
                                self.statement.extend_from_slice(&line[i..i + n]);
                                i += n;
                                continue;
                            }
                            _ => self.statement.push(b),
                        }
                    }
                    b';' => {
                        if partial
                            && self.statement.len() >= 5
                            && self.statement[..5].eq_ignore_ascii_case(b"COPY ")
                        {
                            // A COPY's rows begin after its line: left for the line's end.
                            return i;
                        }
                        self.statement.push(b);
                        self.end_statement(out);
                        if self.copy {
                            // pg_dump writes nothing after the COPY statement on its line.
                            return line.len();
                        }
                    }
                    b'\\' => {
                        self.meta_inside = true;
                        self.statement.push(b);
                    }
                    b if b.is_ascii_whitespace() && self.statement.is_empty() => {}
                    b => self.statement.push(b),
                },
                Lex::Single { escapes } => {
                    self.statement.push(b);
                    if *escapes && b == b'\\' {
                        if let Some(&n) = line.get(i + 1) {
                            self.statement.push(n);
                            i += 2;
                            continue;
                        }
                    } else if b == b'\'' {
                        if line.get(i + 1) == Some(&b'\'') {
                            self.statement.push(b'\'');
                            i += 2;
                            continue;
                        }
                        self.lex = Lex::Normal;
                    }
                }
                Lex::Double => {
                    self.statement.push(b);
                    if b == b'"' {
                        if line.get(i + 1) == Some(&b'"') {
                            self.statement.push(b'"');
                            i += 2;
                            continue;
                        }
                        self.lex = Lex::Normal;
                    }
                }
                Lex::Dollar(tag) => {
                    if b == b'$' && line[i..].starts_with(tag) {
                        let n = tag.len();
                        self.statement.extend_from_slice(&line[i..i + n]);
                        self.lex = Lex::Normal;
                        i += n;
                        continue;
                    }
                    // Copy up to the next dollar at once.
                    let next =
                        memchr::memchr(b'$', &line[i + 1..]).map_or(line.len(), |k| i + 1 + k);
                    self.statement.extend_from_slice(&line[i..next]);
                    i = next;
                    continue;
                }
                Lex::Block(depth) => {
                    if b == b'*' && line.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        if *depth == 0 {
                            self.lex = Lex::Normal;
                        }
                        self.statement.extend_from_slice(b"*/");
                        i += 2;
                        continue;
                    }
                    if b == b'/' && line.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        self.statement.extend_from_slice(b"/*");
                        i += 2;
                        continue;
                    }
                    self.statement.push(b);
                }
            }
            i += 1;
        }
        // A block comment alone between statements is not a statement (at the line's end,
        // as psql sees it).
        if !partial
            && self.lex == Lex::Normal
            && self.statement.starts_with(b"/*")
            && is_only_comment(&self.statement)
        {
            self.statement.clear();
        }
        line.len()
    }

    fn end_statement(&mut self, out: &mut impl FnMut(Item)) {
        let mut text = std::mem::take(&mut self.statement);
        let meta = std::mem::take(&mut self.meta_inside);
        if let Some(off) = standard_conforming_strings(&text) {
            self.escape_strings = off;
        }
        text.push(b'\n');
        if !meta {
            if let Some(table) = copy_from_stdin(&text) {
                self.copy = true;
                self.rows.clear();
                self.row_start = 0;
                out(Item::CopyStart {
                    statement: text,
                    table,
                });
                return;
            }
        }
        out(Item::Statement { text, meta });
    }
}

/// Whether the lexer, at the start of `rest` in state `lex`, needs bytes after `rest` to know
/// what the first byte means (a two-byte token, an escape, a dollar quote's tag).
fn needs_more(lex: &Lex, rest: &[u8]) -> bool {
    let b = rest[0];
    let last = rest.len() == 1;
    match lex {
        Lex::Normal => match b {
            b'-' | b'/' => last,
            // A dollar quote's tag is read whole: up to the `$` that closes it, or a byte
            // that cannot be in one.
            b'$' => !rest[1..]
                .iter()
                .any(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80)),
            _ => false,
        },
        Lex::Single { .. } => matches!(b, b'\\' | b'\'') && last,
        Lex::Double => b == b'"' && last,
        Lex::Dollar(tag) => b == b'$' && rest.len() < tag.len() && tag.starts_with(rest),
        Lex::Block(_) => matches!(b, b'*' | b'/') && last,
    }
}

/// Whether the row made of `partial` and `tail` (without its newline) is `\.`: Some(true)
/// for `\.` CR, as psql also takes it.
fn copy_end(partial: &[u8], tail: &[u8]) -> Option<bool> {
    let len = partial.len() + tail.len();
    if len != 2 && len != 3 {
        return None;
    }
    let mut row = [0u8; 3];
    row[..partial.len()].copy_from_slice(partial);
    row[partial.len()..len].copy_from_slice(tail);
    match &row[..len] {
        b"\\." => Some(false),
        b"\\.\r" => Some(true),
        _ => None,
    }
}

/// The line that ends a COPY block, in the newline style of the dump.
pub fn copy_end_line(crlf: bool) -> &'static [u8] {
    if crlf {
        b"\\.\r\n"
    } else {
        b"\\.\n"
    }
}

/// Whether COPY rows end their lines with CR LF (the first row says: the server takes the
/// newline style of a COPY from its first row and wants every row, and the end marker, in
/// it).
pub fn rows_are_crlf(rows: &[u8]) -> bool {
    memchr::memchr(b'\n', rows).is_some_and(|i| i > 0 && rows[i - 1] == b'\r')
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The length of a dollar-quote opening `$tag$` at the start of `s`, if it is one.
fn dollar_tag(s: &[u8]) -> Option<usize> {
    let rest = &s[1..];
    let first = *rest.first()?;
    if first == b'$' {
        return Some(2);
    }
    if !(first.is_ascii_alphabetic() || first == b'_' || first >= 0x80) {
        return None;
    }
    let end = rest
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80))?;
    (rest[end] == b'$').then_some(end + 2)
}

fn is_only_comment(s: &[u8]) -> bool {
    // `/* … */` followed by whitespace only; nested comments end at the last `*/`.
    s.windows(2)
        .rposition(|w| w == b"*/")
        .is_some_and(|k| s[k + 2..].iter().all(u8::is_ascii_whitespace))
}

/// `SET standard_conforming_strings = off|on;`: Some(true) when it turns them off.
fn standard_conforming_strings(text: &[u8]) -> Option<bool> {
    // Short, and a SET: anything else is not copied to be lowercased.
    let head = text.trim_ascii_start();
    if text.len() > 1024 || head.len() < 4 || !head[..4].eq_ignore_ascii_case(b"set ") {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?.trim().to_ascii_lowercase();
    let rest = s.strip_prefix("set ")?.trim_start();
    let rest = rest.strip_prefix("session ").unwrap_or(rest).trim_start();
    let rest = rest
        .strip_prefix("standard_conforming_strings")?
        .trim_start();
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix("to "))?
        .trim()
        .trim_end_matches(';')
        .trim()
        .trim_matches('\'');
    match rest {
        "off" | "false" => Some(true),
        "on" | "true" => Some(false),
        _ => None,
    }
}

/// Whether the statement is a COPY that reads rows from psql's input, and then the table of
/// pg_dump's form `COPY name [(columns)] FROM stdin;`, as written.
fn copy_from_stdin(text: &[u8]) -> Option<Option<String>> {
    if text.len() < 5 || !text[..5].eq_ignore_ascii_case(b"COPY ") {
        return None;
    }
    let upper = text.to_ascii_uppercase();
    if memchr::memmem::find(&upper, b"FROM STDIN").is_none()
        && memchr::memmem::find(&upper, b"FROM PSTDIN").is_none()
    {
        return None;
    }
    Some(pg_dump_copy_table(text))
}

/// The table of pg_dump's own `COPY name [(columns)] FROM stdin;`, as the statement spells
/// it, found by the one parser of qualified names ([`parse_qualified`]).
fn pg_dump_copy_table(text: &[u8]) -> Option<String> {
    let body = text.strip_prefix(b"COPY ")?;
    let body = body.strip_suffix(b" FROM stdin;\n")?;
    // Lossy, as before: a dump in LATIN1 names its tables in LATIN1.
    let body = String::from_utf8_lossy(body);
    let (_, rest) = parse_qualified(&body)?;
    let name = &body[..body.len() - rest.len()];
    // What follows is the column list, or nothing (a table without columns).
    let rest = rest.trim_start();
    (rest.is_empty() || rest.starts_with('(')).then(|| name.to_string())
}

/// A possibly schema-qualified, possibly quoted name at the start of `s`, in one spelling
/// (`"schema"."table"` with unquoted parts folded to lower case), and what follows it.
pub(crate) fn parse_qualified(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut rest = s.trim_start();
    loop {
        let (part, after) = parse_ident(rest)?;
        out.push('"');
        out.push_str(&part.replace('"', "\"\""));
        out.push('"');
        match after.strip_prefix('.') {
            Some(next) => {
                out.push('.');
                rest = next;
            }
            None => return Some((out, after)),
        }
    }
}

/// The rest of a quoted identifier after its opening `"`: the name (`""` read as `"`) and
/// what follows the closing quote.
pub(crate) fn quoted_ident(q: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = q.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if chars.peek().map(|&(_, c)| c) == Some('"') {
                name.push('"');
                chars.next();
            } else {
                return Some((name, &q[i + 1..]));
            }
        } else {
            name.push(c);
        }
    }
    None
}

fn parse_ident(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.strip_prefix('"') {
        return quoted_ident(q);
    }
    let end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .map_or(s.len(), |(i, _)| i);
    (end > 0).then(|| (s[..end].to_lowercase(), &s[end..]))
}

/// `-- Name: X; Type: T; Schema: S; Owner: O`, `-- Data for Name: …` or `-- Statistics for
/// Name: …` (PostgreSQL 18). The name may itself
/// hold `; Type: `, so the type is the first candidate that reads as one (upper-case words).
fn parse_header(line: &[u8]) -> Option<Header> {
    let line = std::str::from_utf8(line).ok()?;
    let (data, rest) = if let Some(r) = line.strip_prefix("-- Data for Name: ") {
        (true, r)
    } else if let Some(r) = line.strip_prefix("-- Statistics for Name: ") {
        // PostgreSQL 18's `STATISTICS DATA` items (pg_dump --statistics).
        (false, r)
    } else {
        (false, line.strip_prefix("-- Name: ")?)
    };
    let mut from = 0;
    while let Some(k) = rest[from..].find("; Type: ") {
        let at = from + k;
        let after = &rest[at + "; Type: ".len()..];
        if let Some(end) = after.find("; Schema: ") {
            let kind = &after[..end];
            if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_uppercase() || b == b' ') {
                let after = &after[end + "; Schema: ".len()..];
                let (schema, tail) = after.split_at(after.find("; ").unwrap_or(after.len()));
                return Some(Header {
                    data,
                    name: rest[..at].to_string(),
                    kind: kind.to_string(),
                    schema: schema.to_string(),
                    tail: tail.to_string(),
                });
            }
        }
        from = at + 1;
    }
    None
}

/// Splits a whole input at once (tests, the fuzz target).
pub fn split_all(data: &[u8], step: usize) -> Vec<Item> {
    split_all_with(data, step, LONG_LINE)
}

/// The same with lines longer than `long_line` lexed as they arrive.
pub fn split_all_with(data: &[u8], step: usize, long_line: usize) -> Vec<Item> {
    let mut items = Vec::new();
    let mut s = Splitter::with_long_line(long_line);
    let mut push = |i: Item| items.push(i);
    for chunk in data.chunks(step.max(1)) {
        s.feed(chunk, &mut push);
    }
    s.finish(&mut push);
    items
}

/// Items with adjacent COPY data merged: the same for any chunking of the input.
pub fn normalize(items: Vec<Item>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::with_capacity(items.len());
    for item in items {
        match (out.last_mut(), item) {
            (Some(Item::CopyData(a)), Item::CopyData(b)) => a.extend_from_slice(&b),
            (_, item) => out.push(item),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(s: &str) -> Item {
        Item::Statement {
            text: s.as_bytes().to_vec(),
            meta: false,
        }
    }

    #[test]
    fn statements_end_at_semicolons_outside_quotes() {
        let dump = "SET a = 1;\nCREATE FUNCTION f() RETURNS text AS $body$ select ';' ; $x$ $body$ LANGUAGE sql;\n\
                    INSERT INTO t VALUES ('it''s; not', E'a\\'; b', \"q;\"\"\");\n\
                    /* c; /* nested; */ still; */ SELECT 1; SELECT 2; -- tail;\n";
        let items = split_all(dump.as_bytes(), 1);
        assert_eq!(
            items,
            vec![
                stmt("SET a = 1;\n"),
                stmt("CREATE FUNCTION f() RETURNS text AS $body$ select ';' ; $x$ $body$ LANGUAGE sql;\n"),
                stmt("INSERT INTO t VALUES ('it''s; not', E'a\\'; b', \"q;\"\"\");\n"),
                stmt("/* c; /* nested; */ still; */ SELECT 1;\n"),
                stmt("SELECT 2;\n"),
            ]
        );
    }

    #[test]
    fn headers_copy_and_meta_commands() {
        let dump = "\\connect shop\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: me\n--\n\n\
                    CREATE TABLE public.t (a text);\n\n--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: me\n--\n\n\
                    COPY public.t (a) FROM stdin;\nx\\.y\n\\\\.\n\\.\n\nSELECT 1;\n";
        for step in [1, 2, 3, 7, 1000] {
            let items = normalize(split_all(dump.as_bytes(), step));
            assert_eq!(
                items,
                vec![
                    Item::Meta(b"\\connect shop".to_vec()),
                    Item::Header(Header {
                        data: false,
                        name: "t".into(),
                        kind: "TABLE".into(),
                        schema: "public".into(),
                        tail: "; Owner: me".into(),
                    }),
                    stmt("CREATE TABLE public.t (a text);\n"),
                    Item::Header(Header {
                        data: true,
                        name: "t".into(),
                        kind: "TABLE DATA".into(),
                        schema: "public".into(),
                        tail: "; Owner: me".into(),
                    }),
                    Item::CopyStart {
                        statement: b"COPY public.t (a) FROM stdin;\n".to_vec(),
                        table: Some("public.t".into())
                    },
                    Item::CopyData(b"x\\.y\n\\\\.\n".to_vec()),
                    Item::CopyEnd { crlf: false },
                    stmt("SELECT 1;\n"),
                ],
                "step {step}"
            );
        }
    }

    /// With `cut_rows`, a row of many chunks passes through cut, never held whole; the items
    /// are the same once merged, and a cut row that ends in `\.` is not the end marker.
    #[test]
    fn cut_rows_hold_no_row_whole_and_give_the_same_items() {
        let long = format!("{}\\.", "y".repeat(3 * CHUNK));
        let dump = format!(
            "COPY t (a) FROM stdin;\n1\n{long}\n\\.\r\nCOPY u (a) FROM stdin;\n2\n\\.\nSELECT 1;\n"
        );
        for step in [CHUNK / 3, CHUNK + 7, 1 << 16] {
            let mut s = Splitter::new().cut_rows();
            let mut items = Vec::new();
            let mut most = 0;
            for c in dump.as_bytes().chunks(step) {
                s.feed(c, &mut |i| {
                    if let Item::CopyData(d) = &i {
                        most = most.max(d.len());
                    }
                    items.push(i)
                });
            }
            s.finish(&mut |i| items.push(i));
            assert!(most < 2 * CHUNK + step, "{most}");
            assert_eq!(
                normalize(items),
                normalize(split_all(dump.as_bytes(), 1 << 20)),
                "{step}"
            );
        }
        // Cut just before the row's last `\.`: what follows is the row's end, not the marker.
        let at = dump.find("\\.\n\\.").unwrap();
        let mut s = Splitter::new().cut_rows();
        let mut items = Vec::new();
        for c in [&dump.as_bytes()[..at], &dump.as_bytes()[at..]] {
            s.feed(c, &mut |i| items.push(i));
        }
        s.finish(&mut |i| items.push(i));
        assert_eq!(
            normalize(items),
            normalize(split_all(dump.as_bytes(), 1 << 20))
        );
    }

    #[test]
    fn long_lines_lexed_as_they_arrive_give_the_same_items() {
        let corners = [
            "SELECT 'it''s' || E'\\'' || \"q\"\"x\" -- c;\nSELECT 1; -- x\n",
            "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $bo $body$ LANGUAGE sql; /* a /* b */ ; */ SELECT 2;\n",
            "INSERT INTO t VALUES ('a;b'), ($$x$$), ($t$;$t$); COPY t (a) FROM stdin;\nrow\n\\.\nSELECT 3;\n",
            "/* lone */ SELECT 4; /* tail */\n\\connect other\n-- Name: t; Type: TABLE; Schema: public; Owner: me\nSELECT 5\n",
            "SET standard_conforming_strings = off;\nSELECT 'a\\'b'; SELECT 6; -",
            "SELECT 7 -- unfinished comment",
        ];
        for dump in corners {
            let whole = normalize(split_all(dump.as_bytes(), dump.len()));
            for step in [1, 2, 3, 5, 64] {
                for long in [1, 2, 3, 4, 7, 16] {
                    let early = normalize(split_all_with(dump.as_bytes(), step, long));
                    assert_eq!(early, whole, "{dump:?} step {step} long {long}");
                }
            }
        }
    }

    #[test]
    fn a_huge_one_line_statement_is_held_once() {
        let mut dump = b"INSERT INTO t VALUES ('".to_vec();
        dump.extend(std::iter::repeat_n(b'x', 8 << 20));
        dump.extend_from_slice(b"');\n");
        let mut s = Splitter::new();
        let mut most = 0;
        let mut got = Vec::new();
        for chunk in dump.chunks(64 << 10) {
            s.feed(chunk, &mut |i| got.push(i));
            most = most.max(s.line.capacity());
        }
        s.finish(&mut |i| got.push(i));
        // The line buffer never held more than a long line's worth: the statement is the copy.
        assert!(most <= 4 * LONG_LINE, "{most}");
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0], Item::Statement { text, .. } if text.len() == dump.len()));
    }

    #[test]
    fn a_header_inside_a_string_is_text() {
        let dump = "INSERT INTO t VALUES ('\n-- Name: x; Type: TABLE; Schema: public; Owner: me\n\\connect evil\n');\n";
        let items = split_all(dump.as_bytes(), 5);
        assert_eq!(items, vec![stmt(dump)]);
    }

    #[test]
    fn header_names_may_hold_the_separator() {
        let h =
            parse_header(b"-- Name: a; Type: b; Type: INDEX; Schema: public; Owner: me").unwrap();
        assert_eq!(h.kind, "INDEX");
        assert_eq!(h.name, "a; Type: b");
        assert_eq!(
            parse_header(b"-- Data for Name: t; Type: TABLE DATA; Schema: s; Owner: -")
                .unwrap()
                .kind,
            "TABLE DATA"
        );
        let h = parse_header(
            b"-- Statistics for Name: a_pkey; Type: STATISTICS DATA; Schema: public; Owner: -",
        )
        .unwrap();
        assert_eq!(
            (h.kind.as_str(), h.name.as_str(), h.data),
            ("STATISTICS DATA", "a_pkey", false)
        );
        assert_eq!(ObjectKind::parse(&h.kind), ObjectKind::Late);
        assert!(parse_header(b"-- Name: t").is_none());
    }

    #[test]
    fn copy_rows_are_cut_into_chunks_of_whole_rows() {
        let row = "x".repeat(1000) + "\n";
        let mut dump = String::from("COPY t FROM stdin;\n");
        for _ in 0..(CHUNK / 1000 * 3) {
            dump.push_str(&row);
        }
        dump.push_str("\\.\n");
        let items = split_all(dump.as_bytes(), 65536);
        let chunks: Vec<&Vec<u8>> = items
            .iter()
            .filter_map(|i| match i {
                Item::CopyData(d) => Some(d),
                _ => None,
            })
            .collect();
        assert!(chunks.len() >= 3, "{}", chunks.len());
        for c in &chunks {
            assert!(c.len() <= CHUNK + 1001);
            assert_eq!(c.len() % row.len(), 0);
        }
        assert_eq!(items.last(), Some(&Item::CopyEnd { crlf: false }));
    }

    #[test]
    fn end_of_input_inside_copy_or_a_statement() {
        let items = split_all(b"COPY t FROM stdin;\na\nb", 2);
        assert_eq!(
            normalize(items).last(),
            Some(&Item::CopyEnd { crlf: false })
        );
        let items = split_all(b"SELECT 1", 3);
        assert_eq!(items, vec![stmt("SELECT 1\n")]);
    }

    #[test]
    fn escape_strings_when_standard_conforming_strings_is_off() {
        let dump = "SET standard_conforming_strings = off;\nINSERT INTO t VALUES ('a\\'; b');\nSELECT 1;\n";
        let items = split_all(dump.as_bytes(), 4);
        assert_eq!(items.len(), 3);
        assert_eq!(items[2], stmt("SELECT 1;\n"));
    }

    #[test]
    fn dollar_signs_inside_identifiers_are_not_quotes() {
        let items = split_all(b"SELECT a$b$c FROM t; SELECT $1;\n", 1);
        assert_eq!(
            items,
            vec![stmt("SELECT a$b$c FROM t;\n"), stmt("SELECT $1;\n")]
        );
    }
}
