//! Restoring part of a backup: some databases of a pg_dumpall, some schemas or tables of a
//! database, their data or their definitions only, a database under another name.
//!
//! Owns: which items of a plain dump's stream are picked ([`Picker`]): a filter between the
//! gunzip (or pg_restore's SQL for a custom archive) and the sink, plain SQL in, plain SQL
//! out, so stdout, a file, psql and the loader all receive a dump of just what was picked.
//! Does not own how the picked SQL is loaded, nor the checks on the target (`restore`).
//!
//! What belongs to a table is what pg_dump -t brings: the table, its data, its indexes,
//! constraints, triggers, rules, policies, comments, grants, statistics objects, its
//! columns' defaults, the sequences it owns (serial and identity columns) and, for a
//! partitioned table, its partitions (with theirs). Nothing it depends on comes along:
//! types, functions, the schema, other tables a foreign key references, or, for a table
//! with inheritance children, the children. A foreign key whose other table is not picked is
//! left out and reported ([`PickReport::left_out`]).
//!
//! Memory: what cannot be decided yet (a table that may turn out to be a partition of a
//! picked one, a sequence that may turn out to be owned by one) is held back with what
//! follows it, until the end of its database's pre-data: at most the definitions (never the
//! data) of one database, and never more than [`MAX_HELD`].

mod names;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;

pub use names::{closest, quote_ident, Relation};
use names::{fact, references, rename_database, Fact};

use crate::error::{Error, Result};
use crate::split::{Header, Item, ObjectKind, Splitter};

/// Definitions held back while undecided, at most.
pub const MAX_HELD: usize = 512 << 20;

/// Which part of the picked objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    #[default]
    All,
    /// `--data-only`: rows (and sequence values), into tables that exist.
    DataOnly,
    /// `--schema-only`: definitions, no rows.
    SchemaOnly,
}

/// `--table [SCHEMA.]TABLE`: without a schema, the table of that name in any schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TablePick {
    pub schema: Option<String>,
    pub name: String,
}

impl std::fmt::Display for TablePick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => write!(f, "{}", quote_ident(&self.name)),
        }
    }
}

impl TablePick {
    fn matches(&self, r: &Relation) -> bool {
        self.name == r.name && self.schema.as_ref().is_none_or(|s| *s == r.schema)
    }
}

/// What to restore of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Pick {
    /// `--database`: these databases of a pg_dumpall (all when empty).
    pub databases: Vec<String>,
    /// `--schema`: everything in these schemas.
    pub schemas: Vec<String>,
    /// `--table`.
    pub tables: Vec<TablePick>,
    pub content: Content,
    /// `--into NEW`: the picked database restored as NEW.
    pub into: Option<String>,
    /// The dump's roles and tablespaces (a pg_dumpall's globals) come along.
    pub globals: bool,
    /// With a table or schema pick (and no `--into`), no `\connect`: the objects go into
    /// whichever database the output is loaded into, as pg_dump -t writes them (the plain
    /// form). Otherwise the dump's `\connect` takes them to the database of their name.
    pub no_connect: bool,
    /// The objects go into a database made for them (`drill`'s throwaway cluster), as with
    /// `--into`: the schemas of the tables picked come too.
    pub fresh: bool,
}

/// Parses one SQL identifier: unquoted folds to lower case, `"…"` is taken as it is.
fn parse_ident(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(q) = s.strip_prefix('"') {
        return crate::split::quoted_ident(q).filter(|(name, _)| !name.is_empty());
    }
    let end = s.find(['.', '"']).unwrap_or(s.len());
    let word = s[..end].trim();
    (!word.is_empty() && !word.contains(char::is_whitespace))
        .then(|| (word.to_lowercase(), &s[end..]))
}

impl Pick {
    /// Whether nothing is picked out: the whole backup.
    pub fn is_everything(&self) -> bool {
        self.databases.is_empty()
            && self.schemas.is_empty()
            && self.tables.is_empty()
            && self.content == Content::All
            && self.into.is_none()
    }

    /// Whether whole databases are picked (no schema or table within them).
    pub fn whole_databases(&self) -> bool {
        self.schemas.is_empty() && self.tables.is_empty()
    }

    /// `--table`'s value: `table`, `schema.table`, quoted parts as SQL writes them
    /// (`public."Order Items"`); unquoted parts fold to lower case, as in SQL and pg_dump -t.
    pub fn parse_table(s: &str) -> Result<TablePick> {
        let bad = || {
            Error::Config(format!(
                "--table {s:?}: expected TABLE or SCHEMA.TABLE, each part a name or a \"quoted name\""
            ))
        };
        let (first, rest) = parse_ident(s).ok_or_else(bad)?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(TablePick {
                schema: None,
                name: first,
            });
        }
        let rest = rest.strip_prefix('.').ok_or_else(bad)?;
        let (second, rest) = parse_ident(rest).ok_or_else(bad)?;
        if !rest.trim().is_empty() {
            return Err(bad());
        }
        Ok(TablePick {
            schema: Some(first),
            name: second,
        })
    }

    /// `--schema`'s value, as [`Pick::parse_table`] reads a part.
    pub fn parse_schema(s: &str) -> Result<String> {
        match parse_ident(s) {
            Some((name, rest)) if rest.trim().is_empty() => Ok(name),
            _ => Err(Error::Config(format!(
                "--schema {s:?}: expected a name or a \"quoted name\""
            ))),
        }
    }

    /// Checks what no dump can make right.
    pub fn check(&self) -> Result<()> {
        if let Some(new) = &self.into {
            if self.databases.len() > 1 {
                return Err(Error::Config(
                    "--into restores one database under another name: give at most one --database"
                        .into(),
                ));
            }
            if new.is_empty() || new.len() > 63 || new.contains('\0') {
                return Err(Error::Config(format!(
                    "--into {new:?}: a database name is 1 to 63 bytes, without NUL"
                )));
            }
            if self.databases.iter().any(|d| d == new) {
                return Err(Error::Config(format!(
                    "--into {new:?} is the name of the database picked: --into is for another name"
                )));
            }
            if self.content == Content::DataOnly {
                return Err(Error::Config(
                    "--into creates a database, and --data-only loads rows into tables that exist: use one or the other".into(),
                ));
            }
        }
        Ok(())
    }

    /// The pick in words, for the dry run and the restore line.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.databases.is_empty() {
            parts.push(format!("database {}", self.databases.join(", ")));
        }
        if !self.schemas.is_empty() {
            let s: Vec<String> = self.schemas.iter().map(|s| quote_ident(s)).collect();
            parts.push(format!("schema {}", s.join(", ")));
        }
        if !self.tables.is_empty() {
            let t: Vec<String> = self.tables.iter().map(ToString::to_string).collect();
            parts.push(format!("table {}", t.join(", ")));
        }
        if parts.is_empty() {
            parts.push("every database".into());
        }
        let mut s = parts.join("; ");
        match self.content {
            Content::All => {}
            Content::DataOnly => s.push_str(", rows only (--data-only)"),
            Content::SchemaOnly => s.push_str(", definitions only (--schema-only)"),
        }
        if let Some(n) = &self.into {
            s.push_str(&format!(", into the new database {}", quote_ident(n)));
        }
        s.push_str(if self.globals {
            ", with the dump's roles and tablespaces"
        } else {
            ", without the dump's roles and tablespaces"
        });
        s
    }
}

/// What a pick matched and left out, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PickReport {
    /// The databases restored, as the dump names them (before `--into`).
    pub databases: Vec<String>,
    /// The tables (and views, sequences) picked, by `--table` or within a `--schema`, in
    /// dump order.
    pub relations: Vec<Relation>,
    /// Items of the dump sent on.
    pub items_kept: u64,
    /// Items read and dropped.
    pub items_dropped: u64,
    /// What belongs to a picked table but was left out, and why.
    pub left_out: Vec<String>,
}

impl PickReport {
    /// What was picked (`picked: …`) and each thing left out (`left out: …`), a line each.
    pub fn lines(&self) -> Vec<String> {
        let names: Vec<String> = self
            .relations
            .iter()
            .take(10)
            .map(ToString::to_string)
            .collect();
        let mut out = vec![format!(
            "picked: {} of {} items{}{}",
            self.items_kept,
            self.items_kept + self.items_dropped,
            if self.databases.is_empty() {
                String::new()
            } else {
                format!(", database {}", self.databases.join(", "))
            },
            if names.is_empty() {
                String::new()
            } else {
                format!(
                    ", {}{}",
                    names.join(", "),
                    if self.relations.len() > 10 {
                        format!(" and {} more", self.relations.len() - 10)
                    } else {
                        String::new()
                    }
                )
            }
        )];
        out.extend(self.left_out.iter().map(|l| format!("left out: {l}")));
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Keep,
    Drop,
    Pending(Relation),
}

/// An item held back, with what it sends either way.
#[derive(Debug)]
struct HeldItem {
    state: Held,
    /// (a, b): b is picked when a is (a partition's parent, a sequence's table).
    ties: Vec<(Relation, Relation)>,
    full: Vec<u8>,
    settings: Vec<u8>,
}

/// The item being read.
#[derive(Debug)]
struct Current {
    header: Option<Header>,
    kind: ObjectKind,
    /// Decided at its header (a data item): its rows stream through, or not.
    stream: Option<bool>,
    text: Vec<u8>,
    settings: Vec<u8>,
    statements: Vec<Vec<u8>>,
}

/// Names seen in the dump, for "did you mean".
#[derive(Debug, Default)]
struct Seen {
    databases: Vec<String>,
    schemas: HashSet<String>,
    relations: Vec<Relation>,
    /// Table picks that matched, by index.
    tables: HashSet<usize>,
    schema_picks: HashSet<usize>,
}

/// The streaming filter. Feed it the plain dump; [`Picker::take`] gives what is picked.
#[derive(Debug)]
pub struct Picker {
    pick: Arc<Pick>,
    splitter: Splitter,
    st: State,
}

#[derive(Debug)]
struct State {
    pick: Arc<Pick>,
    out: Vec<u8>,
    /// A `\connect` or a header was seen: the globals are over.
    begun: bool,
    /// The database being read (None: a dump of one database that does not name it).
    db: Option<String>,
    db_on: bool,
    connected: bool,
    /// The key of the `\restrict` psql is in (pg_dump from August 2025 on): a `\connect`
    /// of ours is sent between `\unrestrict` and `\restrict` again, as pg_dumpall does.
    restrict: Option<Vec<u8>>,
    /// A `CREATE DATABASE` for the current database was sent (renamed, with `--into`).
    created: Option<String>,
    /// The database's pre-data is over (its first data or post-data item came).
    past_pre: bool,
    /// The current database's items began (a `\connect`, or a header in a dump of one).
    db_started: bool,
    cur: Option<Current>,
    /// With a table or schema pick, a database's `\connect` and what follows it are held
    /// until something of it is picked: a database with nothing picked is never connected to.
    lazy: Option<Vec<u8>>,
    /// The settings before the first header or `\connect`: made again after a `\connect`
    /// of ours.
    preamble: Vec<u8>,
    held: VecDeque<HeldItem>,
    held_bytes: usize,
    picked: HashSet<Relation>,
    report: PickReport,
    seen: Seen,
    err: Option<Error>,
}

impl Picker {
    pub fn new(pick: Arc<Pick>) -> Picker {
        Picker {
            pick: pick.clone(),
            // A huge row, picked or not, passes through in chunks, never held whole.
            splitter: Splitter::new().cut_rows(),
            st: State {
                db_on: pick.databases.is_empty(),
                pick,
                out: Vec::new(),
                begun: false,
                db: None,
                connected: false,
                restrict: None,
                created: None,
                past_pre: false,
                db_started: false,
                cur: None,
                lazy: None,
                preamble: Vec::new(),
                held: VecDeque::new(),
                held_bytes: 0,
                picked: HashSet::new(),
                report: PickReport::default(),
                seen: Seen::default(),
                err: None,
            },
        }
    }

    /// Reads `data`; what is picked of it waits in [`Picker::take`].
    pub fn feed(&mut self, data: &[u8]) -> Result<()> {
        let st = &mut self.st;
        self.splitter.feed(data, &mut |item| st.item(item));
        match self.st.err.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The picked bytes so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.st.out)
    }

    /// The end of the dump: the rest of what is picked (in [`Picker::take`]), or the error
    /// of a pick that matched nothing.
    pub fn finish(&mut self) -> Result<PickReport> {
        let st = &mut self.st;
        self.splitter.finish(&mut |item| st.item(item));
        if let Some(e) = self.st.err.take() {
            return Err(e);
        }
        self.st.end_database();
        if let Some(e) = self.st.err.take() {
            return Err(e);
        }
        self.st.unmatched(true)?;
        let _ = &self.pick;
        Ok(std::mem::take(&mut self.st.report))
    }
}

fn is_pre_data_end(kind: &ObjectKind, header: &Header) -> bool {
    kind.is_data()
        || matches!(
            kind,
            ObjectKind::Index
                | ObjectKind::Constraint
                | ObjectKind::FkConstraint
                | ObjectKind::IndexAttach
        )
        || matches!(
            header.kind.as_str(),
            "TRIGGER" | "RULE" | "POLICY" | "ROW SECURITY" | "STATISTICS" | "EVENT TRIGGER"
        )
}

/// A `\connect` line to `db`, in the form pg_dumpall writes for its name.
fn connect_line(db: &str) -> String {
    if db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !db.is_empty() {
        format!("\\connect {db}\n")
    } else {
        format!("\\connect \"{}\"\n", db.replace('"', "\"\""))
    }
}

impl State {
    /// Sends `bytes`: `picked` when they are of a picked object, not only settings.
    fn send(&mut self, bytes: &[u8], picked: bool) {
        match &mut self.lazy {
            Some(l) if !picked => l.extend_from_slice(bytes),
            Some(_) => {
                let l = self.lazy.take().expect("some");
                if self.pick.no_connect
                    && self.db.as_ref().is_some_and(|d| {
                        !self.report.databases.is_empty() && !self.report.databases.contains(d)
                    })
                {
                    return self.fail(Error::Pick {
                        reason: format!(
                            "the picks match objects in databases {} and {}, and this output has no \\connect to tell them apart: add --database NAME",
                            self.report.databases.join(", "),
                            self.db.as_deref().unwrap_or_default()
                        ),
                    });
                }
                if let Some(db) = &self.db {
                    if !self.report.databases.contains(db) {
                        self.report.databases.push(db.clone());
                    }
                }
                self.out.extend_from_slice(&l);
                self.out.extend_from_slice(bytes);
            }
            None => self.out.extend_from_slice(bytes),
        }
    }

    fn fail(&mut self, e: Error) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    fn item(&mut self, item: Item) {
        if self.err.is_some() {
            return;
        }
        match item {
            Item::Header(h) => {
                self.end_item();
                self.header(h);
            }
            Item::Statement { text, .. } => self.statement(text),
            Item::CopyStart { statement, .. } => {
                self.statement(statement);
                if let Some(c) = &mut self.cur {
                    if c.stream.is_none() {
                        // A COPY outside a data item (hand-made SQL): decided now.
                        let keep = self.db_on
                            && self.pick.whole_databases()
                            && self.pick.content != Content::SchemaOnly;
                        self.begin_stream(keep);
                    }
                }
            }
            Item::CopyData(rows) => {
                if self.cur.as_ref().and_then(|c| c.stream) == Some(true) {
                    self.send(&rows, true);
                }
            }
            Item::CopyEnd { crlf } => {
                if self.cur.as_ref().and_then(|c| c.stream) == Some(true) {
                    self.send(crate::split::copy_end_line(crlf), true);
                }
            }
            Item::Meta(line) => {
                self.end_item();
                self.meta(line);
            }
        }
    }

    /// Streams the current item from here: what it read so far is sent or dropped now.
    fn begin_stream(&mut self, keep: bool) {
        let Some(c) = &mut self.cur else { return };
        c.stream = Some(keep);
        let (text, settings) = (std::mem::take(&mut c.text), std::mem::take(&mut c.settings));
        c.statements.clear();
        self.count(keep);
        self.flush_pending_as_dropped();
        self.send(if keep { &text } else { &settings }, keep);
    }

    fn count(&mut self, keep: bool) {
        if keep {
            self.report.items_kept += 1;
        } else {
            self.report.items_dropped += 1;
        }
    }

    fn statement(&mut self, text: Vec<u8>) {
        let setting = crate::load::sql::session_setting(&text).is_some();
        let Some(c) = &mut self.cur else {
            // Between items, before any header: the preamble, or a pg_dumpall's globals.
            let keep = if !self.begun {
                if setting {
                    self.preamble.extend_from_slice(&text);
                }
                setting || self.pick.globals
            } else {
                self.db_on && (setting || self.pick.whole_databases())
            };
            if keep {
                self.send(&text, !setting);
            }
            return;
        };
        match c.stream {
            Some(keep) => {
                if keep || setting {
                    self.send(&text, keep);
                }
            }
            None => {
                if setting {
                    c.settings.extend_from_slice(&text);
                }
                c.text.extend_from_slice(&text);
                c.statements.push(text);
            }
        }
    }

    fn header(&mut self, h: Header) {
        self.begun = true;
        self.db_started = true;
        let kind = ObjectKind::parse(&h.kind);
        if h.kind == "DATABASE" || h.kind == "DATABASE PROPERTIES" {
            self.database_item(&h.name);
        } else if !self.connected
            && !self.pick.databases.is_empty()
            && self.seen.databases.is_empty()
        {
            return self.fail(Error::Pick {
                reason: "this dump holds one database and does not name it (pg_dump without --create, or a custom archive): leave out --database (--into NEW restores it under a new name)".into(),
            });
        } else if self.pick.into.is_some() && self.created.is_none() && !self.connected {
            // A dump of one database without its name (pg_dump without --create, a custom
            // archive): its new database is created here and connected to.
            self.create_into(None);
        }
        if self.db_on && !self.past_pre && is_pre_data_end(&kind, &h) {
            self.end_pre_data();
        }
        let mut text = h.to_lines().into_bytes();
        let stream = kind.is_data().then(|| self.data_keep(&kind, &h));
        if let Some(keep) = stream {
            self.count(keep);
            if keep {
                self.send(&text, true);
                text.clear();
            }
        }
        self.cur = Some(Current {
            header: Some(h),
            kind,
            stream,
            text,
            settings: Vec::new(),
            statements: Vec::new(),
        });
    }

    /// Whether a data item's rows are sent.
    fn data_keep(&mut self, kind: &ObjectKind, h: &Header) -> bool {
        if !self.db_on || self.pick.content == Content::SchemaOnly {
            return false;
        }
        if self.pick.whole_databases() {
            return true;
        }
        match kind {
            ObjectKind::TableData | ObjectKind::SequenceSet => {
                self.is_picked(&Relation::new(h.schema.clone(), h.name.clone()))
            }
            // Large objects belong to no table or schema.
            _ => false,
        }
    }

    fn is_picked(&self, r: &Relation) -> bool {
        self.picked.contains(r) || self.pick.schemas.contains(&r.schema)
    }

    /// A DATABASE item for `name`: the picked database's creation, renamed with `--into`.
    fn database_item(&mut self, name: &str) {
        if !self.seen.databases.iter().any(|d| d == name) {
            self.seen.databases.push(name.to_string());
        }
        let on = self.pick.databases.is_empty() || self.pick.databases.iter().any(|d| d == name);
        if on && self.pick.into.is_some() {
            if self.pick.databases.is_empty() && self.created.as_deref().is_some_and(|c| c != name)
            {
                self.fail(Error::Pick {
                    reason: "--into needs --database NAME: the dump has more than one database"
                        .into(),
                });
            }
            self.created = Some(name.to_string());
        }
    }

    /// Sends `CREATE DATABASE new` and `\connect new` for a database without its own.
    fn create_into(&mut self, of: Option<&str>) {
        let Some(new) = self.pick.into.clone() else {
            return;
        };
        self.created = Some(of.unwrap_or("").to_string());
        let mut sql = Vec::new();
        let key = self.restrict.clone();
        if let Some(k) = &key {
            sql.extend_from_slice(b"\\unrestrict ");
            sql.extend_from_slice(k);
            sql.push(b'\n');
        }
        sql.extend_from_slice(
            format!(
                "CREATE DATABASE \"{}\";\n{}",
                new.replace('"', "\"\""),
                connect_line(&new)
            )
            .as_bytes(),
        );
        if let Some(k) = &key {
            sql.extend_from_slice(b"\\restrict ");
            sql.extend_from_slice(k);
            sql.push(b'\n');
        }
        if of.is_none() {
            sql.extend_from_slice(&self.preamble);
        }
        if self.pick.whole_databases() {
            self.out.extend_from_slice(&sql);
        } else {
            // Created with the first object picked: a pick that matches nothing fails with
            // no new database left behind.
            self.lazy = Some(sql);
        }
        self.connected = true;
    }

    fn meta(&mut self, line: Vec<u8>) {
        let connect = line
            .strip_prefix(b"\\connect ")
            .or_else(|| line.strip_prefix(b"\\c "));
        let Some(arg) = connect else {
            // \restrict, \unrestrict, \encoding: psql's own, in pairs or harmless; always.
            if let Some(k) = line.strip_prefix(b"\\restrict ") {
                self.restrict = Some(k.trim_ascii().to_vec());
            } else if line.starts_with(b"\\unrestrict") {
                self.restrict = None;
            }
            let mut line = line;
            line.push(b'\n');
            self.send(&line, false);
            return;
        };
        self.begun = true;
        self.end_database();
        let Some(db) = crate::dump::parse_plain_connect(&String::from_utf8_lossy(arg)) else {
            if !self.pick.databases.is_empty() || self.pick.into.is_some() {
                self.fail(Error::Pick {
                    reason: format!(
                        "the dump connects with `{}`, and which database that is cannot be told: restore it whole",
                        String::from_utf8_lossy(&line[..line.len().min(80)])
                    ),
                });
            } else if self.db_on {
                let mut line = line;
                line.push(b'\n');
                self.send(&line, true);
            }
            return;
        };
        if !self.seen.databases.contains(&db) {
            self.seen.databases.push(db.clone());
        }
        self.db_on = self.pick.databases.is_empty() || self.pick.databases.contains(&db);
        self.db = Some(db.clone());
        self.past_pre = false;
        self.db_started = true;
        self.picked.clear();
        if !self.db_on {
            // The dump names its databases: an object of one not picked (a table in
            // `postgres`, before the picked one) is not a dump of one database to create.
            self.connected = true;
            return;
        }
        if self.pick.whole_databases() && !self.report.databases.contains(&db) {
            self.report.databases.push(db.clone());
        }
        match (&self.pick.into, self.created.as_deref()) {
            (None, _) => {
                let mut line = line;
                line.push(b'\n');
                if self.pick.whole_databases() {
                    self.send(&line, true);
                } else if self.pick.no_connect {
                    self.lazy = Some(Vec::new());
                } else {
                    self.lazy = Some(line);
                }
            }
            (Some(new), Some(c)) if c == db => {
                if !self.report.databases.contains(&db) {
                    self.report.databases.push(db.clone());
                }
                let l = connect_line(new);
                match &mut self.lazy {
                    Some(lazy) => lazy.extend_from_slice(l.as_bytes()),
                    None => self.out.extend_from_slice(l.as_bytes()),
                }
            }
            (Some(_), _) if self.pick.databases.is_empty() => self.fail(Error::Pick {
                reason: "--into needs --database NAME: the dump connects to more than one database (pg_dumpall)".into(),
            }),
            (Some(_), _) => self.create_into(Some(&db)),
        }
        self.connected = true;
    }

    /// The current item is complete: decided, then sent, dropped or held.
    fn end_item(&mut self) {
        let Some(c) = self.cur.take() else { return };
        if c.stream.is_some() {
            return;
        }
        let state = self.decide(&c);
        if self.err.is_some() {
            return;
        }
        let text = match (&self.pick.into, &c.header) {
            (Some(new), Some(h)) if state == Held::Keep && is_database_level(h).is_some() => {
                let mut out = h.to_lines().into_bytes();
                for s in &c.statements {
                    out.extend(rename_database(s, new).unwrap_or_else(|| s.clone()));
                }
                out
            }
            _ => c.text,
        };
        match &state {
            Held::Keep => self.report.items_kept += 1,
            Held::Drop => self.report.items_dropped += 1,
            Held::Pending(_) => {}
        }
        // Another database's settings go nowhere.
        let settings = if self.db_on || !self.begun {
            c.settings
        } else {
            Vec::new()
        };
        if self.held.is_empty() && !matches!(state, Held::Pending(_)) {
            let keep = state == Held::Keep;
            self.send(if keep { &text } else { &settings }, keep);
            return;
        }
        self.held_bytes += text.len() + settings.len();
        if self.held_bytes > MAX_HELD {
            return self.fail(Error::Pick {
                reason: format!(
                    "over {} of definitions in {} could not be decided before its data began: pick with --schema, or restore the database whole",
                    crate::format_bytes(MAX_HELD as u64),
                    self.db.as_deref().unwrap_or("the dump")
                ),
            });
        }
        let ties = c
            .statements
            .iter()
            .filter_map(
                |s| match fact(s, c.header.as_ref().map_or("", |h| h.schema.as_str())) {
                    Fact::Attach { parent, child } => Some((parent, child)),
                    Fact::Owned { seq, table } | Fact::Identity { table, seq } => {
                        Some((table, seq))
                    }
                    Fact::Creates {
                        rel,
                        partition_of: Some(p),
                    } => Some((p, rel)),
                    _ => None,
                },
            )
            .collect();
        self.held.push_back(HeldItem {
            state,
            ties,
            full: text,
            settings,
        });
        self.flush_held();
    }

    fn flush_held(&mut self) {
        while let Some(f) = self.held.front() {
            match f.state {
                Held::Pending(_) => return,
                Held::Keep | Held::Drop => {
                    let f = self.held.pop_front().expect("front");
                    self.held_bytes -= f.full.len() + f.settings.len();
                    let keep = f.state == Held::Keep;
                    self.send(if keep { &f.full } else { &f.settings }, keep);
                }
            }
        }
    }

    /// `r` is picked after all: what waited for it is kept.
    fn release(&mut self, r: Relation) {
        if !self.picked.insert(r.clone()) {
            return;
        }
        self.report.relations.push(r.clone());
        let mut n = 0;
        for h in &mut self.held {
            if h.state == Held::Pending(r.clone()) {
                h.state = Held::Keep;
                n += 1;
            }
        }
        self.report.items_kept += n;
        // What waits for it: a partition attached to it before it was picked.
        let tied: Vec<Relation> = self
            .held
            .iter()
            .flat_map(|h| h.ties.iter())
            .filter(|(a, _)| *a == r)
            .map(|(_, b)| b.clone())
            .collect();
        for b in tied {
            self.release(b);
        }
        self.flush_held();
    }

    fn flush_pending_as_dropped(&mut self) {
        let mut n = 0;
        for h in &mut self.held {
            if matches!(h.state, Held::Pending(_)) {
                h.state = Held::Drop;
                n += 1;
            }
        }
        self.report.items_dropped += n;
        self.flush_held();
    }

    /// The database's pre-data is over: what still waits is not picked.
    fn end_pre_data(&mut self) {
        self.past_pre = true;
        self.flush_pending_as_dropped();
        if self.pick.databases.len() == 1 || !self.connected {
            // Only this database can match the table picks: say now if one does not.
            if let Err(e) = self.unmatched(false) {
                self.fail(e);
            }
        }
    }

    fn end_database(&mut self) {
        self.end_item();
        if self.db_on && self.db_started && !self.past_pre {
            self.end_pre_data();
        }
        self.db_started = false;
        self.lazy = None;
        self.flush_pending_as_dropped();
    }

    /// Whether `h` is about a database: its name when so.
    fn decide(&mut self, c: &Current) -> Held {
        let Some(h) = &c.header else {
            // Statements of no item, inside a database (hand-made SQL).
            return if self.db_on && self.pick.whole_databases() {
                Held::Keep
            } else {
                Held::Drop
            };
        };
        if let Some(db) = is_database_level(h) {
            let on = self.pick.databases.is_empty() || self.pick.databases.iter().any(|d| d == db);
            // Another database's settings never reach a live one: with a table or schema
            // pick, the database is not created, nor changed, unless it is a new one.
            let keep = on
                && (self.pick.into.is_some()
                    || (self.pick.whole_databases() && self.pick.content != Content::DataOnly));
            return if keep { Held::Keep } else { Held::Drop };
        }
        if !self.db_on {
            return Held::Drop;
        }
        let facts: Vec<Fact> = c.statements.iter().map(|s| fact(s, &h.schema)).collect();
        self.learn(h, &facts);
        if self.pick.content == Content::DataOnly {
            return Held::Drop;
        }
        if self.pick.whole_databases() {
            return Held::Keep;
        }
        if h.schema == "-" {
            return self.schema_level(h);
        }
        if c.kind == ObjectKind::FkConstraint {
            return self.foreign_key(h, &c.statements);
        }
        if self.pick.schemas.contains(&h.schema) {
            return Held::Keep;
        }
        if h.kind == "STATISTICS DATA" {
            // PostgreSQL 18's statistics of a table or an index, named by the header.
            let r = Relation::new(h.schema.clone(), h.name.clone());
            return if self.is_picked(&r) {
                Held::Keep
            } else if !self.past_pre {
                Held::Pending(r)
            } else {
                Held::Drop
            };
        }
        let about = match facts.first() {
            Some(Fact::Creates { rel, .. }) | Some(Fact::On(rel)) => rel.clone(),
            Some(Fact::Attach { child, .. }) => child.clone(),
            Some(Fact::Owned { seq, .. }) => seq.clone(),
            Some(Fact::Identity { table, .. }) | Some(Fact::Index { table, .. }) => table.clone(),
            Some(Fact::Unknown) | None => return Held::Drop,
        };
        if self.is_picked(&about) {
            if let Some(Fact::Attach { parent, .. }) = facts.first() {
                if !self.is_picked(parent) {
                    return Held::Drop;
                }
            }
            Held::Keep
        } else if !self.past_pre {
            Held::Pending(about)
        } else {
            Held::Drop
        }
    }

    /// What the statements tie together, and the table picks they match.
    fn learn(&mut self, h: &Header, facts: &[Fact]) {
        let created = matches!(
            h.kind.as_str(),
            "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "FOREIGN TABLE" | "SEQUENCE"
        );
        if created {
            let r = Relation::new(h.schema.clone(), h.name.clone());
            self.seen.schemas.insert(r.schema.clone());
            if !self.seen.relations.contains(&r) {
                self.seen.relations.push(r.clone());
            }
            let hits: Vec<usize> = (0..self.pick.tables.len())
                .filter(|&i| self.pick.tables[i].matches(&r))
                .collect();
            if !hits.is_empty() || self.pick.schemas.contains(&r.schema) {
                self.seen.tables.extend(hits);
                self.release(r);
            }
        }
        if h.kind == "SCHEMA" {
            self.seen.schemas.insert(h.name.clone());
        }
        for (i, s) in self.pick.schemas.iter().enumerate() {
            if *s == h.schema || (h.kind == "SCHEMA" && *s == h.name) {
                self.seen.schema_picks.insert(i);
            }
        }
        for f in facts {
            match f {
                Fact::Creates {
                    rel,
                    partition_of: Some(p),
                } if self.is_picked(p) => self.release(rel.clone()),
                Fact::Attach { parent, child } if self.is_picked(parent) => {
                    self.release(child.clone())
                }
                Fact::Owned { seq, table } | Fact::Identity { table, seq }
                    if self.is_picked(table) =>
                {
                    self.release(seq.clone())
                }
                Fact::Index { index, table } if self.is_picked(table) => {
                    self.picked.insert(index.clone());
                }
                _ => {}
            }
        }
    }

    /// An item in no schema: a schema itself, its comment or grant; else the database's
    /// (extensions, languages, casts, publications …), which a table pick does not bring.
    fn schema_level(&self, h: &Header) -> Held {
        let name = match h.kind.as_str() {
            "SCHEMA" => Some(h.name.as_str()),
            "COMMENT" | "ACL" | "SECURITY LABEL" => h.name.strip_prefix("SCHEMA "),
            _ => None,
        };
        let Some(name) = name else {
            return Held::Drop;
        };
        // A new database (--into, a drill's) needs the schemas of the tables picked into it.
        let wanted = self.pick.schemas.iter().any(|s| s == name)
            || ((self.pick.into.is_some() || self.pick.fresh)
                && name != "public"
                && self
                    .pick
                    .tables
                    .iter()
                    .any(|t| t.schema.as_deref() == Some(name)));
        if wanted {
            Held::Keep
        } else {
            Held::Drop
        }
    }

    fn foreign_key(&mut self, h: &Header, statements: &[Vec<u8>]) -> Held {
        let Some(first) = statements.first() else {
            return Held::Drop;
        };
        let (Fact::On(table), Some(other)) = (fact(first, &h.schema), references(first, &h.schema))
        else {
            return Held::Drop;
        };
        let tables = [table, other];
        let picked: Vec<bool> = tables.iter().map(|t| self.is_picked(t)).collect();
        if picked.iter().all(|p| *p) {
            return Held::Keep;
        }
        if picked[0] {
            let missing: Vec<String> = tables
                .iter()
                .zip(&picked)
                .filter(|(_, p)| !**p)
                .map(|(t, _)| t.to_string())
                .collect();
            self.report.left_out.push(format!(
                "foreign key {} of {}{}: it references {}, which is not restored",
                h.name.split_once(' ').map_or(h.name.as_str(), |(_, c)| c),
                tables[0],
                self.db
                    .as_deref()
                    .map(|d| format!(" in {d}"))
                    .unwrap_or_default(),
                missing.join(", ")
            ));
        }
        Held::Drop
    }

    /// The picks that matched nothing: an error naming the closest names. `end`: the whole
    /// dump was read (else only the table and schema picks of this database are judged).
    fn unmatched(&self, end: bool) -> Result<()> {
        let mut why = Vec::new();
        if end {
            for d in &self.pick.databases {
                if !self.seen.databases.contains(d) {
                    let near = closest(d, self.seen.databases.iter().map(String::as_str));
                    why.push(format!(
                        "--database {d} is not in the dump{}",
                        did_you_mean(&near, &self.seen.databases)
                    ));
                }
            }
        }
        if !end && self.db.is_some() && !self.db_on {
            return Ok(());
        }
        for (i, t) in self.pick.tables.iter().enumerate() {
            if self.seen.tables.contains(&i) {
                continue;
            }
            let names: Vec<String> = self
                .seen
                .relations
                .iter()
                .filter(|r| {
                    t.schema
                        .as_ref()
                        .is_none_or(|s| s.eq_ignore_ascii_case(&r.schema))
                        || t.schema.is_none()
                })
                .map(|r| match &t.schema {
                    Some(_) => r.to_string(),
                    None => quote_ident(&r.name),
                })
                .collect();
            let all: Vec<String> = self
                .seen
                .relations
                .iter()
                .map(ToString::to_string)
                .collect();
            let mut near = closest(&t.to_string(), names.iter().map(String::as_str));
            if near.is_empty() {
                near = closest(&t.to_string(), all.iter().map(String::as_str));
            }
            why.push(format!(
                "--table {t} matches no table{}{}",
                self.where_(),
                did_you_mean(&near, &all)
            ));
        }
        for (i, s) in self.pick.schemas.iter().enumerate() {
            if self.seen.schema_picks.contains(&i) {
                continue;
            }
            let all: Vec<String> = {
                let mut v: Vec<String> = self.seen.schemas.iter().map(|s| quote_ident(s)).collect();
                v.sort();
                v
            };
            let near = closest(&quote_ident(s), all.iter().map(String::as_str));
            why.push(format!(
                "--schema {} matches no schema{}{}",
                quote_ident(s),
                self.where_(),
                did_you_mean(&near, &all)
            ));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(Error::Pick {
                reason: why.join("; "),
            })
        }
    }

    fn where_(&self) -> String {
        match (&self.db, self.pick.databases.len()) {
            (Some(d), 1) => format!(" in database {d}"),
            (None, _) => " in the dump".into(),
            _ => " in the databases picked".into(),
        }
    }
}

fn did_you_mean(near: &[String], all: &[String]) -> String {
    if !near.is_empty() {
        format!(": did you mean {}?", near.join(" or "))
    } else if all.is_empty() {
        String::new()
    } else if all.len() <= 8 {
        format!(" (it has {})", all.join(", "))
    } else {
        format!(
            " (it has {} and {} more; `verify` lists them)",
            all[..8].join(", "),
            all.len() - 8
        )
    }
}

/// The database an item is about, when it is one: `DATABASE`, `DATABASE PROPERTIES`, and the
/// comment, label or grant of `DATABASE name`.
fn is_database_level(h: &Header) -> Option<&str> {
    match h.kind.as_str() {
        "DATABASE" | "DATABASE PROPERTIES" => Some(&h.name),
        "COMMENT" | "ACL" | "SECURITY LABEL" if h.schema == "-" => h.name.strip_prefix("DATABASE "),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
