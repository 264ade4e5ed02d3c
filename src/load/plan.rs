//! The planner: the splitter's items in, the loader's operations out. No I/O, no clock, no
//! printing: it decides what runs where and in which order, and [`super::Loader`] carries
//! it out over the connections (or the simulator replays it).
//!
//! Per database (a `\connect` starts the next): the pre-data as barriers on connection 1;
//! each `COPY … FROM stdin` block of a `TABLE DATA` item cut into chunks of whole rows, each
//! a data unit of its own, `--inserts` statements likewise; sequence values and large
//! objects in the lane of connection 1; the post-data kept and handed over in its phases
//! when the data ends. A session setting is state, not work: every unit carries the settings
//! in force at its position.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::sql::{
    canonical_table, classify_post, session_setting, transaction_statement, Locks, PostClass,
    Setting,
};
use crate::error::{Error, Result};
use crate::phases::Phases;
use crate::split::{Header, Item, ObjectKind, CHUNK};

/// Session settings in force: (name, the statement that set it), in the order they were set.
pub(crate) type State = Arc<Vec<(String, Vec<u8>)>>;

/// A unit of work with the settings it needs.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub text: Bytes,
    /// COPY rows after `text` (its COPY statement); the connection ends them in their
    /// newline style. Shared, never copied (one row may be 400 MB).
    pub rows: Option<Bytes>,
    pub before: State,
    pub after: State,
    /// The table of a chunk of pg_dump's own COPY, as the statement names it: a chunk whose
    /// COPY fails loses its own rows and nothing else.
    pub table: Option<String>,
}

impl Unit {
    fn new(text: Vec<u8>, before: State, after: State) -> Unit {
        Unit {
            text: Bytes::from(text),
            rows: None,
            before,
            after,
            table: None,
        }
    }
}

/// A post-data item that goes through the schedule: its locks, its table's bytes of data
/// (largest first) and its unit.
pub(crate) type Scheduled = (Locks, u64, Unit);

/// One database's post-data, in its phases.
#[derive(Debug, Default, Clone)]
pub(crate) struct PostData {
    /// Indexes and non-FK constraints.
    pub index: Vec<Scheduled>,
    /// `INDEX ATTACH`, serially, after the indexes.
    pub attach: Vec<Unit>,
    pub fk: Vec<Scheduled>,
    /// Triggers, rules, policies, comments, ACLs …: serially in dump order.
    pub rest: Vec<Unit>,
}

impl PostData {
    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
            && self.attach.is_empty()
            && self.fk.is_empty()
            && self.rest.is_empty()
    }
}

/// What the loader does next.
#[derive(Debug)]
pub(crate) enum Op {
    /// A data unit on whichever connection has room.
    Data(Unit),
    /// On connection 1 in order, without waiting for the others.
    Lane(Unit),
    /// A barrier: everything before it done, then it on connection 1.
    Serial(Unit),
    /// A barrier whose COPY rows follow as [`Op::Raw`] (a COPY that is not pg_dump's data).
    SerialCopy(Unit),
    /// Bytes as they are, to connection 1; `done` ends a unit.
    Raw { bytes: Bytes, done: bool },
    /// Every connection idle, connection 1 brought to these settings: from here on
    /// everything goes there as [`Op::Raw`], as psql would run it.
    Passthrough(State),
    /// The data ended (`pre`: no data item came): the schema and data phases are timed.
    DataEnd { pre: bool },
    /// The post-data kept, once the data is in.
    Post(PostData),
    /// The database's stream ended: its connections close.
    Close,
    /// The next units are for this database (`\connect`).
    Database(String),
    /// The last chunk of pg_dump's COPY of this table (canonical name) was handed over: once
    /// those chunks are done, its post-data may start (when the plan knows it).
    TableEnd(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Pre,
    Data,
    Post,
}

/// The current item's statements.
#[derive(Debug, Default)]
struct Pending {
    text: Vec<u8>,
    /// How many statements `text` holds.
    statements: usize,
    /// The settings when its first statement came.
    before: Option<State>,
}

#[derive(Debug)]
enum CopyMode {
    /// pg_dump's own COPY of a TABLE DATA item: chunks go anywhere.
    Parallel { statement: Bytes, table: String },
    /// Any other COPY: rows follow on connection 1.
    Serial,
}

/// The planner's state: where in the dump it is, and what it holds back.
#[derive(Debug)]
pub(crate) struct Planner {
    db: Option<String>,
    /// How the target is named when no `\connect` came (for messages).
    target: String,
    on_error_stop: bool,
    state: State,
    section: Section,
    kind: ObjectKind,
    pending: Pending,
    inserts: Vec<u8>,
    inserts_before: Option<State>,
    post: PostData,
    copy: Option<CopyMode>,
    restricted: Option<Vec<u8>>,
    txn: bool,
    /// Everything goes to connection 1 as it comes.
    passthrough: bool,
    table_bytes: HashMap<String, u64>,
    /// The work counted (the loader adds the times).
    pub(crate) phases: Phases,
    /// Errors of our own making that psql would have printed (meta-commands refused).
    pub(crate) refused: Vec<String>,
}

impl Planner {
    pub(crate) fn new(target: String, on_error_stop: bool, connections: u32) -> Planner {
        Planner {
            db: None,
            target,
            on_error_stop,
            state: Arc::new(Vec::new()),
            section: Section::Pre,
            kind: ObjectKind::None,
            pending: Pending::default(),
            inserts: Vec::new(),
            inserts_before: None,
            post: PostData::default(),
            copy: None,
            restricted: None,
            txn: false,
            passthrough: false,
            table_bytes: HashMap::new(),
            phases: Phases {
                connections,
                ..Phases::default()
            },
            refused: Vec::new(),
        }
    }

    /// The operations for one item of the stream.
    pub(crate) fn item(&mut self, item: Item, out: &mut Vec<Op>) -> Result<()> {
        if let Item::Meta(line) = &item {
            if self.restricted(line)? {
                return Ok(());
            }
        }
        if self.passthrough {
            self.forward(item, out);
            return Ok(());
        }
        match item {
            Item::Header(h) => {
                self.end_item(out);
                self.begin_item(h);
            }
            Item::Statement { text, meta } => self.statement(text, meta, out),
            Item::CopyStart { statement, table } => self.copy_start(statement, table, out),
            Item::CopyData(rows) => self.copy_data(rows, out)?,
            Item::CopyEnd { crlf } => match self.copy.take() {
                Some(CopyMode::Serial) => {
                    let end = crate::split::copy_end_line(crlf);
                    out.push(Op::Raw {
                        bytes: Bytes::from_static(end),
                        done: true,
                    });
                }
                Some(CopyMode::Parallel { table, .. }) => {
                    out.push(Op::TableEnd(canonical_table(&table)))
                }
                None => {}
            },
            Item::Meta(line) => self.meta(line, out),
        }
        Ok(())
    }

    /// The end of the stream: the last database's post-data, then its connections closed.
    pub(crate) fn finish(&mut self, out: &mut Vec<Op>) {
        self.end_database(out);
    }

    /// `\restrict KEY` … `\unrestrict KEY`: in between psql refuses every other meta-command.
    /// Ours to handle: our connections never see either (they would refuse our `\echo`).
    /// Returns whether the line was dealt with here.
    fn restricted(&mut self, line: &[u8]) -> Result<bool> {
        if let Some(key) = &self.restricted {
            if line.strip_prefix(b"\\unrestrict").map(<[u8]>::trim_ascii) == Some(key.as_slice()) {
                self.restricted = None;
                return Ok(true);
            }
            let text = String::from_utf8_lossy(line).into_owned();
            let msg = format!(
                "ERROR: {text}: backslash commands are restricted; only \\unrestrict is allowed"
            );
            if self.on_error_stop {
                return Err(Error::Child {
                    program: "psql".into(),
                    doing: format!("restoring into {}", self.describe_db()),
                    status: "a meta-command inside \\restrict".into(),
                    stderr: msg,
                });
            }
            self.refused.push(msg);
            return Ok(true);
        }
        if let Some(key) = line.strip_prefix(b"\\restrict") {
            let key = key.trim_ascii();
            if !key.is_empty() && (line.len() == 9 || line[9].is_ascii_whitespace()) {
                self.restricted = Some(key.to_vec());
                return Ok(true);
            }
        }
        Ok(line.starts_with(b"\\unrestrict"))
    }

    pub(crate) fn describe_db(&self) -> String {
        match &self.db {
            Some(d) => format!("database {d}"),
            None => self.target.clone(),
        }
    }

    fn begin_item(&mut self, h: Header) {
        let kind = ObjectKind::parse(&h.kind);
        match (self.section, h.data || kind.is_data()) {
            (Section::Pre, true) => self.section = Section::Data,
            (Section::Data, false) => self.section = Section::Post,
            _ => {}
        }
        self.kind = kind;
    }

    fn statement(&mut self, text: Vec<u8>, meta: bool, out: &mut Vec<Op>) {
        if meta {
            self.fall_back("a backslash command inside a statement", out);
            return self.forward(Item::Statement { text, meta }, out);
        }
        if let Some(op) = session_setting(&text) {
            let inline = self.pending.before.is_some() || !self.inserts.is_empty();
            let state = Arc::make_mut(&mut self.state);
            match op {
                Setting::Set(key) => {
                    state.retain(|(k, _)| *k != key);
                    state.push((key, text.clone()));
                }
                Setting::Reset(key) => state.retain(|(k, _)| *k != key),
                Setting::ResetAll => state.clear(),
            }
            if inline {
                // Inside an item: it runs there, in its place, too.
                self.flush_inserts(out);
                self.pending.text.extend_from_slice(&text);
                self.pending.statements += 1;
            }
            return;
        }
        if let Some(open) = transaction_statement(&text) {
            self.txn = open;
        }
        if self.section == Section::Data
            && self.kind == ObjectKind::TableData
            && !self.txn
            && self.pending.before.is_none()
            && text.starts_with(b"INSERT INTO ")
        {
            if self.inserts_before.is_none() {
                self.inserts_before = Some(self.state.clone());
            }
            // Moved, not copied, when it starts a unit: one statement may be 400 MB.
            if self.inserts.is_empty() {
                self.inserts = text;
            } else {
                self.inserts.extend_from_slice(&text);
            }
            if self.inserts.len() >= CHUNK {
                self.flush_inserts(out);
            }
            return;
        }
        self.flush_inserts(out);
        if self.pending.before.is_none() {
            self.pending.before = Some(self.state.clone());
        }
        if self.pending.text.is_empty() {
            self.pending.text = text;
        } else {
            self.pending.text.extend_from_slice(&text);
        }
        self.pending.statements += 1;
    }

    fn flush_inserts(&mut self, out: &mut Vec<Op>) {
        if self.inserts.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.inserts);
        let before = self
            .inserts_before
            .take()
            .unwrap_or_else(|| self.state.clone());
        self.phases.copy_chunks += 1;
        out.push(Op::Data(Unit::new(text, before.clone(), before)));
    }

    fn copy_start(&mut self, statement: Vec<u8>, table: Option<String>, out: &mut Vec<Op>) {
        match table {
            Some(table)
                if self.section == Section::Data
                    && self.kind == ObjectKind::TableData
                    && !self.txn =>
            {
                // What came before in this item (`ALTER TABLE … DISABLE TRIGGER ALL`) first.
                self.end_item_text(out);
                let statement = Bytes::from(statement);
                self.copy = Some(CopyMode::Parallel { statement, table });
            }
            _ => {
                if self.section == Section::Post {
                    self.end_item_text_post(out);
                    self.flush_post(out);
                }
                self.flush_inserts(out);
                let before = self
                    .pending
                    .before
                    .take()
                    .unwrap_or_else(|| self.state.clone());
                let mut text = std::mem::take(&mut self.pending.text);
                text.extend_from_slice(&statement);
                self.phases.serial_items += 1;
                out.push(Op::SerialCopy(Unit::new(text, before, self.state.clone())));
                self.copy = Some(CopyMode::Serial);
            }
        }
    }

    fn copy_data(&mut self, rows: Vec<u8>, out: &mut Vec<Op>) -> Result<()> {
        match &self.copy {
            Some(CopyMode::Parallel { statement, table }) => {
                *self.table_bytes.entry(canonical_table(table)).or_default() += rows.len() as u64;
                self.phases.data_rows += memchr::memchr_iter(b'\n', &rows).count() as u64;
                self.phases.data_bytes += rows.len() as u64;
                self.phases.copy_chunks += 1;
                // Each chunk is a COPY of its own, ended in its rows' newline style.
                out.push(Op::Data(Unit {
                    text: statement.clone(),
                    rows: Some(Bytes::from(rows)),
                    before: self.state.clone(),
                    after: self.state.clone(),
                    table: Some(table.clone()),
                }));
            }
            Some(CopyMode::Serial) => out.push(Op::Raw {
                bytes: Bytes::from(rows),
                done: false,
            }),
            None => {
                return Err(Error::Internal {
                    what: "the parallel loader",
                    reason: "COPY rows outside a COPY block".into(),
                })
            }
        }
        Ok(())
    }

    fn meta(&mut self, line: Vec<u8>, out: &mut Vec<Op>) {
        // `\encoding X` is `SET client_encoding` for psql and the server alike: a setting.
        if line.starts_with(b"\\encoding ") {
            // Between items, as pg_dumpall writes it before a `\connect` to a name that is
            // not ASCII.
            self.end_item(out);
            let state = Arc::make_mut(&mut self.state);
            state.retain(|(k, _)| k != "client_encoding");
            let mut stmt = line;
            stmt.push(b'\n');
            state.push(("client_encoding".into(), stmt));
            return;
        }
        let connect = line
            .strip_prefix(b"\\connect ")
            .or_else(|| line.strip_prefix(b"\\c "));
        if let Some(arg) = connect {
            if let Some(db) = crate::dump::parse_plain_connect(&String::from_utf8_lossy(arg)) {
                self.end_database(out);
                out.push(Op::Database(db.clone()));
                self.db = Some(db);
                return;
            }
        }
        let why = format!(
            "the meta-command `{}`",
            String::from_utf8_lossy(&line[..line.len().min(40)])
        );
        self.fall_back(&why, out);
        self.forward(Item::Meta(line), out)
    }

    /// The current item is complete: run it or keep it, by its kind and section.
    fn end_item(&mut self, out: &mut Vec<Op>) {
        self.flush_inserts(out);
        if self.txn {
            return self.fall_back("a transaction left open across items", out);
        }
        match self.section {
            Section::Post => self.end_item_text_post(out),
            _ => self.end_item_text(out),
        }
    }

    /// The current item's statements as a unit (and how many), if it has any.
    fn take_pending(&mut self) -> Option<(Unit, usize)> {
        let before = self.pending.before.take()?;
        let text = std::mem::take(&mut self.pending.text);
        let unit = Unit::new(text, before, self.state.clone());
        Some((unit, std::mem::take(&mut self.pending.statements)))
    }

    /// Sends the current item's statements: on connection 1, in order (sequence values and
    /// large objects without a barrier: they touch no table the COPY chunks load).
    fn end_item_text(&mut self, out: &mut Vec<Op>) {
        let Some((unit, _)) = self.take_pending() else {
            return;
        };
        self.phases.serial_items += 1;
        if self.section == Section::Data && self.kind.is_lane() {
            out.push(Op::Lane(unit));
        } else {
            out.push(Op::Serial(unit));
        }
    }

    fn end_item_text_post(&mut self, out: &mut Vec<Op>) {
        let Some((unit, statements)) = self.take_pending() else {
            return;
        };
        let class = classify_post(&self.kind, &unit.text, statements);
        let weight = |l: &Locks| {
            l.first_table()
                .and_then(|t| self.table_bytes.get(t))
                .copied()
                .unwrap_or(0)
        };
        match class {
            PostClass::Unknown => {
                self.flush_post(out);
                self.phases.serial_items += 1;
                out.push(Op::Serial(unit));
            }
            PostClass::Index(l) => self.post.index.push((l.clone(), weight(&l), unit)),
            PostClass::Fk(l) => self.post.fk.push((l.clone(), weight(&l), unit)),
            PostClass::Attach => self.post.attach.push(unit),
            PostClass::Rest => self.post.rest.push(unit),
        }
    }

    /// Hands over the kept post-data, to run once the data is loaded.
    fn flush_post(&mut self, out: &mut Vec<Op>) {
        let post = std::mem::take(&mut self.post);
        self.phases.parallel_items += (post.index.len() + post.fk.len()) as u64;
        out.push(Op::Post(post));
    }

    /// The database's stream ended: its post-data, then its connections closed.
    fn end_database(&mut self, out: &mut Vec<Op>) {
        if !self.passthrough {
            self.end_item(out);
            if self.section == Section::Post {
                self.flush_post(out);
            } else {
                out.push(Op::DataEnd {
                    pre: self.section == Section::Pre,
                });
            }
        }
        out.push(Op::Close);
        self.state = Arc::new(Vec::new());
        self.section = Section::Pre;
        self.kind = ObjectKind::None;
        self.table_bytes.clear();
    }

    /// From here on everything goes to connection 1, as psql would run it.
    fn fall_back(&mut self, why: &str, out: &mut Vec<Op>) {
        if self.passthrough {
            return;
        }
        let txn = std::mem::replace(&mut self.txn, false);
        self.flush_inserts(out);
        // The open item, its transaction included, goes first.
        match self.section {
            Section::Post => {
                self.end_item_text_post(out);
                self.flush_post(out);
            }
            _ => self.end_item_text(out),
        }
        self.txn = txn;
        out.push(Op::Passthrough(self.state.clone()));
        self.passthrough = true;
        self.phases.fallback = Some(format!(
            "{why} in {}: the rest ran on one connection",
            self.describe_db()
        ));
    }

    /// Passthrough: the item as psql would read it, to connection 1.
    fn forward(&mut self, item: Item, out: &mut Vec<Op>) {
        let bytes = match item {
            Item::Header(_) => return,
            Item::Statement { text, .. } => text,
            Item::CopyStart { statement, .. } => statement,
            Item::CopyData(rows) => rows,
            Item::CopyEnd { crlf } => crate::split::copy_end_line(crlf).to_vec(),
            Item::Meta(mut line) => {
                line.push(b'\n');
                line
            }
        };
        self.phases.serial_items += 1;
        out.push(Op::Raw {
            bytes: Bytes::from(bytes),
            done: false,
        });
    }
}
