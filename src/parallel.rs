//! `restore --jobs N` for plain dumps: one pg_dump or pg_dumpall stream loaded over N psql
//! connections as it arrives, without a spool.
//!
//! Per database (a `\connect` starts the next), in pg_restore's way:
//! - **pre-data** (everything before the first data item) runs on connection 1, in order;
//! - **data**: each `COPY … FROM stdin` block of a `TABLE DATA` item is cut into chunks of
//!   whole rows (`split::CHUNK`), each chunk its own COPY on whichever connection has room
//!   (at most [`DEPTH`] queued per connection: the backpressure); `--inserts` statements
//!   likewise; sequence values and large objects stay on connection 1, in order;
//! - **post-data** is kept (it is DDL, small) until the database ends, then run in phases:
//!   indexes and non-FK constraints in parallel, largest table first, never two items on the
//!   same table at once, and those of one table in dump order; then `INDEX ATTACH` serially;
//!   then FK constraints in parallel, never two on a shared table; then the rest (triggers,
//!   rules, policies, comments, ACLs, materialized view refreshes, publications, event
//!   triggers …) serially in dump order.
//!
//! Anything it does not recognise runs at its position on connection 1, with everything
//! before it finished and nothing after it started (a barrier). A meta-command other than
//! `\connect`, `\restrict` and `\unrestrict`, a backslash inside a statement, a `\connect` it
//! cannot read, or a transaction left open across items switches the rest of the stream to
//! connection 1 alone, exactly as psql would run it.
//!
//! Session settings (`SET …`, `set_config(…)`) are state, not work: each unit of work carries
//! the settings in force at its position, and a connection is brought to them before it runs
//! the unit. So every connection opened for a database replays its preamble.
//!
//! Completion is known from psql itself: after each unit we send `\echo <token>` and count the
//! lines coming back on its stdout (psql runs its input in order).
//!
//! Memory: at most [`DEPTH`] + 1 chunks per connection, one chunk being cut, the longest
//! COPY row or statement held once (the splitter lexes a long line as it arrives; rows and
//! statements go to psql as they came from it, never copied into the unit or the job), and
//! one database's post-data text.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::child::ChildSummary;
use crate::error::{Error, Result};
use crate::pg::ConnInfo;
use crate::split::{Header, Item, Splitter, CHUNK};

/// Units queued on one connection at most while loading data.
pub const DEPTH: u64 = 2;

/// How to reach the target and load into it.
#[derive(Debug, Clone)]
pub struct Config {
    pub program: PathBuf,
    pub conn: ConnInfo,
    pub on_error_stop: bool,
    pub jobs: u32,
    /// Say on stderr what each connection is doing and when each phase ends (`-v`).
    pub verbose: bool,
    pub(crate) children: crate::child::Children,
}

pub use crate::phases::Phases;

/// Session settings in force: (name, the statement that set it), in the order they were set.
type State = Arc<Vec<(String, Vec<u8>)>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Pre,
    Data,
    Post,
}

/// Which tables a post-data item locks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Locks {
    /// `shared`: a lone `CREATE INDEX`, whose SHARE lock lets another `CREATE INDEX` on the
    /// same table run beside it; anything else (`ADD PRIMARY KEY` takes ACCESS EXCLUSIVE, a
    /// foreign key SHARE ROW EXCLUSIVE on both tables) excludes every other item there.
    Tables { tables: Vec<String>, shared: bool },
    /// Unknown: conflicts with everything.
    All,
}

impl Locks {
    fn exclusive(tables: Vec<String>) -> Locks {
        Locks::Tables {
            tables,
            shared: false,
        }
    }

    fn conflicts(&self, other: &Locks) -> bool {
        match (self, other) {
            (
                Locks::Tables {
                    tables: a,
                    shared: sa,
                },
                Locks::Tables {
                    tables: b,
                    shared: sb,
                },
            ) => !(*sa && *sb) && a.iter().any(|t| b.contains(t)),
            _ => true,
        }
    }

    fn first_table(&self) -> Option<&String> {
        match self {
            Locks::Tables { tables, .. } => tables.first(),
            Locks::All => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PostClass {
    Index(Locks),
    Attach,
    Fk(Locks),
    Rest,
    Unknown,
}

/// A unit of work with the settings it needs.
#[derive(Debug, Clone)]
struct Unit {
    text: Vec<u8>,
    /// COPY rows after `text` (its COPY statement), then the end marker in their newline
    /// style: handed to the connection as they are, never copied (one row may be 400 MB).
    rows: Option<Vec<u8>>,
    before: State,
    after: State,
}

#[derive(Debug)]
struct PostItem {
    class: PostClass,
    unit: Unit,
    /// Bytes of COPY data the item's table had: largest first.
    weight: u64,
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

/// The loader: a sink that splits the stream and schedules it over the connections.
pub(crate) struct ParallelLoad {
    splitter: Splitter,
    cfg: Arc<Config>,
    token: String,
    pool: Option<Pool>,
    db: Option<String>,
    state: State,
    section: Section,
    entry: Option<Header>,
    pending: Pending,
    inserts: Vec<u8>,
    inserts_before: Option<State>,
    post: Vec<PostItem>,
    copy: Option<CopyMode>,
    restricted: Option<Vec<u8>>,
    txn: bool,
    /// Everything goes to connection 1 as it comes.
    passthrough: bool,
    table_bytes: HashMap<String, u64>,
    phases: Phases,
    /// The counters when the current database began.
    db_start: Phases,
    phase_start: Instant,
    summary: ChildSummary,
    /// Errors of our own making that psql would have printed (meta-commands refused).
    refused: Vec<String>,
}

#[derive(Debug)]
enum CopyMode {
    /// pg_dump's own COPY of a TABLE DATA item: chunks go anywhere.
    Parallel { statement: Vec<u8>, table: String },
    /// Any other COPY: rows follow on connection 1.
    Serial,
}

impl ParallelLoad {
    pub(crate) fn new(cfg: Config) -> Self {
        let mut token = [0u8; 8];
        let _ = openssl::rand::rand_bytes(&mut token);
        let connections = cfg.jobs;
        ParallelLoad {
            splitter: Splitter::new(),
            cfg: Arc::new(cfg),
            token: format!("a9s-recover-unit-done-{}", crate::hex(&token)),
            pool: None,
            db: None,
            state: Arc::new(Vec::new()),
            section: Section::Pre,
            entry: None,
            pending: Pending::default(),
            inserts: Vec::new(),
            inserts_before: None,
            post: Vec::new(),
            copy: None,
            restricted: None,
            txn: false,
            passthrough: false,
            table_bytes: HashMap::new(),
            phases: Phases {
                connections,
                ..Phases::default()
            },
            db_start: Phases::default(),
            phase_start: Instant::now(),
            summary: ChildSummary::default(),
            refused: Vec::new(),
        }
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        let mut items = Vec::new();
        self.splitter.feed(data, &mut |i| items.push(i));
        for item in items {
            self.item(item)?;
        }
        Ok(())
    }

    /// The end of the stream: the last database's post-data, then every connection closed.
    pub(crate) fn finish(mut self) -> Result<ChildSummary> {
        let mut items = Vec::new();
        self.splitter.finish(&mut |i| items.push(i));
        for item in items {
            self.item(item)?;
        }
        self.end_database()?;
        let mut summary = std::mem::take(&mut self.summary);
        summary.sql_errors += self.refused.len() as u64;
        for r in &self.refused {
            if summary.first_errors.len() < 5 {
                summary.first_errors.push(r.clone());
            }
        }
        summary.phases = Some(self.phases.clone());
        Ok(summary)
    }

    fn item(&mut self, item: Item) -> Result<()> {
        if let Some(pool) = &mut self.pool {
            pool.check()?;
        }
        if let Item::Meta(line) = &item {
            if self.restricted(line)? {
                return Ok(());
            }
        }
        if self.passthrough {
            return self.forward(item);
        }
        match item {
            Item::Header(h) => {
                self.end_item()?;
                self.begin_item(h)
            }
            Item::Statement { text, meta } => self.statement(text, meta),
            Item::CopyStart { statement, table } => self.copy_start(statement, table),
            Item::CopyData(rows) => self.copy_data(rows),
            Item::CopyEnd { crlf } => self.copy_end(crlf),
            Item::Meta(line) => self.meta(line),
        }
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
            if self.cfg.on_error_stop {
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
        if line.starts_with(b"\\unrestrict") {
            return Ok(true);
        }
        Ok(false)
    }

    /// A line on stderr with `-v`.
    fn say(&self, msg: &str) {
        if self.cfg.verbose {
            eprintln!(
                "a9s-recover: restore --jobs {}: {}",
                self.cfg.jobs,
                crate::text::escape_message(msg)
            );
        }
    }

    fn describe_db(&self) -> String {
        match &self.db {
            Some(d) => format!("database {d}"),
            None => self.cfg.conn.describe(),
        }
    }

    fn begin_item(&mut self, h: Header) -> Result<()> {
        let data = h.data
            || matches!(
                h.kind.as_str(),
                "TABLE DATA" | "SEQUENCE SET" | "BLOBS" | "LARGE OBJECTS" | "BLOB DATA"
            );
        match (self.section, data) {
            (Section::Pre, true) => {
                self.section = Section::Data;
            }
            (Section::Data, false) => {
                self.section = Section::Post;
            }
            _ => {}
        }
        self.entry = Some(h);
        Ok(())
    }

    fn entry_kind(&self) -> &str {
        self.entry.as_ref().map_or("", |h| h.kind.as_str())
    }

    fn statement(&mut self, text: Vec<u8>, meta: bool) -> Result<()> {
        if meta {
            self.fall_back("a backslash command inside a statement")?;
            return self.forward(Item::Statement { text, meta });
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
                self.flush_inserts()?;
                self.pending.text.extend_from_slice(&text);
                self.pending.statements += 1;
            }
            return Ok(());
        }
        if let Some(open) = transaction_statement(&text) {
            self.txn = open;
        }
        if self.section == Section::Data
            && self.entry_kind() == "TABLE DATA"
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
                self.flush_inserts()?;
            }
            return Ok(());
        }
        self.flush_inserts()?;
        if self.pending.before.is_none() {
            self.pending.before = Some(self.state.clone());
        }
        if self.pending.text.is_empty() {
            self.pending.text = text;
        } else {
            self.pending.text.extend_from_slice(&text);
        }
        self.pending.statements += 1;
        Ok(())
    }

    fn flush_inserts(&mut self) -> Result<()> {
        if self.inserts.is_empty() {
            return Ok(());
        }
        let text = std::mem::take(&mut self.inserts);
        let before = self
            .inserts_before
            .take()
            .unwrap_or_else(|| self.state.clone());
        let unit = Unit {
            text,
            rows: None,
            after: before.clone(),
            before,
        };
        self.phases.copy_chunks += 1;
        self.pool()?.parallel(unit)
    }

    fn copy_start(&mut self, statement: Vec<u8>, table: Option<String>) -> Result<()> {
        match table {
            Some(table)
                if self.section == Section::Data
                    && self.entry_kind() == "TABLE DATA"
                    && !self.txn =>
            {
                // What came before in this item (`ALTER TABLE … DISABLE TRIGGER ALL`) first.
                self.end_item_text()?;
                self.copy = Some(CopyMode::Parallel { statement, table });
            }
            _ => {
                if self.section == Section::Post {
                    self.end_item_text_post()?;
                    self.flush_post()?;
                }
                self.flush_inserts()?;
                let before = self
                    .pending
                    .before
                    .take()
                    .unwrap_or_else(|| self.state.clone());
                let mut text = std::mem::take(&mut self.pending.text);
                text.extend_from_slice(&statement);
                self.phases.serial_items += 1;
                let unit = Unit {
                    text,
                    rows: None,
                    before,
                    after: self.state.clone(),
                };
                self.pool()?.serial(unit, false)?;
                self.copy = Some(CopyMode::Serial);
            }
        }
        Ok(())
    }

    fn copy_data(&mut self, rows: Vec<u8>) -> Result<()> {
        match &self.copy {
            Some(CopyMode::Parallel { statement, table }) => {
                *self.table_bytes.entry(canonical_table(table)).or_default() += rows.len() as u64;
                self.phases.data_rows += memchr::memchr_iter(b'\n', &rows).count() as u64;
                self.phases.data_bytes += rows.len() as u64;
                self.phases.copy_chunks += 1;
                // Each chunk is a COPY of its own, ended in its rows' newline style.
                let unit = Unit {
                    text: statement.clone(),
                    rows: Some(rows),
                    before: self.state.clone(),
                    after: self.state.clone(),
                };
                self.pool()?.parallel(unit)
            }
            Some(CopyMode::Serial) => self.pool()?.raw(rows, false),
            None => Err(Error::Internal {
                what: "the parallel loader",
                reason: "COPY rows outside a COPY block".into(),
            }),
        }
    }

    fn copy_end(&mut self, crlf: bool) -> Result<()> {
        match self.copy.take() {
            Some(CopyMode::Serial) => self
                .pool()?
                .raw(crate::split::copy_end_line(crlf).to_vec(), true),
            _ => Ok(()),
        }
    }

    fn meta(&mut self, line: Vec<u8>) -> Result<()> {
        // `\encoding X` is `SET client_encoding` for psql and the server alike: a setting.
        if line.starts_with(b"\\encoding ") {
            // Between items, as pg_dumpall writes it before a `\connect` to a name that is
            // not ASCII.
            self.end_item()?;
            let state = Arc::make_mut(&mut self.state);
            state.retain(|(k, _)| k != "client_encoding");
            let mut stmt = line;
            stmt.push(b'\n');
            state.push(("client_encoding".into(), stmt));
            return Ok(());
        }
        let connect = line
            .strip_prefix(b"\\connect ")
            .or_else(|| line.strip_prefix(b"\\c "));
        if let Some(arg) = connect {
            if let Some(db) = crate::dump::parse_plain_connect(&String::from_utf8_lossy(arg)) {
                self.end_database()?;
                self.db = Some(db);
                return Ok(());
            }
        }
        let why = format!(
            "the meta-command `{}`",
            String::from_utf8_lossy(&line[..line.len().min(40)])
        );
        self.fall_back(&why)?;
        self.forward(Item::Meta(line))
    }

    /// The current item is complete: run it or keep it, by its kind and section.
    fn end_item(&mut self) -> Result<()> {
        self.flush_inserts()?;
        if self.txn {
            return self.fall_back("a transaction left open across items");
        }
        match self.section {
            Section::Post => self.end_item_text_post(),
            _ => self.end_item_text(),
        }
    }

    /// The current item's statements as a unit (and how many), if it has any.
    fn take_pending(&mut self) -> Option<(Unit, usize)> {
        let before = self.pending.before.take()?;
        let unit = Unit {
            text: std::mem::take(&mut self.pending.text),
            rows: None,
            before,
            after: self.state.clone(),
        };
        Some((unit, std::mem::take(&mut self.pending.statements)))
    }

    /// Sends the current item's statements: on connection 1, in order (sequence values and
    /// large objects without a barrier: they touch no table the COPY chunks load).
    fn end_item_text(&mut self) -> Result<()> {
        let Some((unit, _)) = self.take_pending() else {
            return Ok(());
        };
        let lane = self.section == Section::Data
            && matches!(
                self.entry_kind(),
                "SEQUENCE SET" | "BLOBS" | "LARGE OBJECTS" | "BLOB DATA"
            );
        self.phases.serial_items += 1;
        let pool = self.pool()?;
        if lane {
            pool.lane(unit)
        } else {
            pool.serial(unit, true)
        }
    }

    fn end_item_text_post(&mut self) -> Result<()> {
        let Some((unit, statements)) = self.take_pending() else {
            return Ok(());
        };
        let class = classify_post(self.entry_kind(), &unit.text, statements);
        if class == PostClass::Unknown {
            self.flush_post()?;
            self.phases.serial_items += 1;
            return self.pool()?.serial(unit, true);
        }
        let weight = match &class {
            PostClass::Index(l) | PostClass::Fk(l) => l
                .first_table()
                .and_then(|t| self.table_bytes.get(t))
                .copied()
                .unwrap_or(0),
            _ => 0,
        };
        self.post.push(PostItem {
            class,
            unit,
            weight,
        });
        Ok(())
    }

    /// Runs the kept post-data in its phases, once the data is loaded.
    fn flush_post(&mut self) -> Result<()> {
        let items = std::mem::take(&mut self.post);
        if self.pool.is_none() && items.is_empty() {
            return Ok(());
        }
        self.pool()?.wait_all_idle()?;
        self.note_data_end();
        if items.is_empty() {
            return Ok(());
        }
        let mut index = Vec::new();
        let mut attach = Vec::new();
        let mut fk = Vec::new();
        let mut rest = Vec::new();
        for item in items {
            match item.class {
                PostClass::Index(l) => index.push((l, item.weight, item.unit)),
                PostClass::Fk(l) => fk.push((l, item.weight, item.unit)),
                PostClass::Attach => attach.push(item.unit),
                PostClass::Rest | PostClass::Unknown => rest.push(item.unit),
            }
        }
        // Indexes, constraints and foreign keys go through the schedule over the connections.
        self.phases.parallel_items += (index.len() + fk.len()) as u64;
        let pool = self.pool()?;
        let t0 = Instant::now();
        let (t1, t2) = if attach.is_empty() {
            // One schedule: a foreign key starts as soon as nothing on its two tables is
            // left to run before it (its referenced key included), while other indexes build.
            let t1 = pool.schedule(index, fk)?;
            (t1, Instant::now())
        } else {
            // Partitioned indexes are attached in between: keys first, then the attaches,
            // then the foreign keys that may reference them.
            pool.schedule(index, Vec::new())?;
            for u in attach {
                pool.serial(u, true)?;
            }
            pool.wait_all_idle()?;
            let t1 = Instant::now();
            pool.schedule(fk, Vec::new())?;
            (t1, Instant::now())
        };
        for u in rest {
            pool.serial(u, true)?;
        }
        pool.wait_all_idle()?;
        self.say(&format!(
            "{}: indexes and constraints {:.1}s, foreign keys {:.1}s, the rest {:.1}s",
            self.describe_db(),
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            t2.elapsed().as_secs_f64()
        ));
        self.phases.index_seconds += (t1 - t0).as_secs_f64();
        self.phases.fk_seconds += (t2 - t1).as_secs_f64();
        self.phases.rest_seconds += t2.elapsed().as_secs_f64();
        self.phase_start = Instant::now();
        Ok(())
    }

    /// Adds the time since the phase began to schema or data.
    fn note_data_end(&mut self) {
        let now = Instant::now();
        let s = (now - self.phase_start).as_secs_f64();
        match self.section {
            Section::Pre => self.phases.schema_seconds += s,
            _ => {
                let schema = self
                    .pool
                    .as_ref()
                    .and_then(|p| p.first_parallel)
                    .map(|t| (t.max(self.phase_start) - self.phase_start).as_secs_f64())
                    .unwrap_or(s);
                self.phases.schema_seconds += schema;
                self.phases.data_seconds += s - schema;
                let chunks = self.phases.copy_chunks - self.db_start.copy_chunks;
                if chunks > 0 {
                    self.say(&format!(
                        "{}: schema {schema:.1}s; data {:.1}s: {} rows, {} in {chunks} chunks",
                        self.describe_db(),
                        s - schema,
                        self.phases.data_rows - self.db_start.data_rows,
                        crate::format_bytes(self.phases.data_bytes - self.db_start.data_bytes),
                    ));
                    // Said once: a later end of a phase in this database counts from here.
                    self.db_start.copy_chunks = self.phases.copy_chunks;
                    self.db_start.data_rows = self.phases.data_rows;
                    self.db_start.data_bytes = self.phases.data_bytes;
                }
            }
        }
        self.phase_start = now;
    }

    /// The database's stream ended: its post-data, then its connections closed.
    fn end_database(&mut self) -> Result<()> {
        if !self.passthrough {
            self.end_item()?;
            if self.section == Section::Post {
                self.flush_post()?;
            } else {
                if let Some(p) = &mut self.pool {
                    p.wait_all_idle()?;
                }
                self.note_data_end();
            }
        }
        if let Some(pool) = self.pool.take() {
            let s = pool.close()?;
            self.summary.sql_errors += s.sql_errors;
            for e in s.first_errors {
                if self.summary.first_errors.len() < 5 {
                    self.summary.first_errors.push(e);
                }
            }
        }
        self.state = Arc::new(Vec::new());
        self.section = Section::Pre;
        self.entry = None;
        self.table_bytes.clear();
        self.db_start = self.phases.clone();
        self.phase_start = Instant::now();
        Ok(())
    }

    /// From here on everything goes to connection 1, as psql would run it.
    fn fall_back(&mut self, why: &str) -> Result<()> {
        if self.passthrough {
            return Ok(());
        }
        let txn = std::mem::replace(&mut self.txn, false);
        self.flush_inserts()?;
        // The open item, its transaction included, goes first.
        match self.section {
            Section::Post => {
                self.end_item_text_post()?;
                self.flush_post()?;
            }
            _ => self.end_item_text()?,
        }
        self.txn = txn;
        let state = self.state.clone();
        let pool = self.pool()?;
        pool.wait_all_idle()?;
        pool.settle(&state)?;
        self.passthrough = true;
        self.phases.fallback = Some(format!(
            "{why} in {}: the rest ran on one connection",
            self.describe_db()
        ));
        Ok(())
    }

    /// Passthrough: the item as psql would read it, to connection 1.
    fn forward(&mut self, item: Item) -> Result<()> {
        let bytes = match item {
            Item::Header(_) => return Ok(()),
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
        self.pool()?.raw(bytes, false)
    }

    fn pool(&mut self) -> Result<&mut Pool> {
        if self.pool.is_none() {
            self.phase_start = self.phase_start.min(Instant::now());
            self.pool = Some(Pool::open(
                self.cfg.clone(),
                &self.token,
                self.db.as_deref(),
            )?);
        }
        Ok(self.pool.as_mut().expect("just opened"))
    }
}

impl std::fmt::Debug for ParallelLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelLoad")
            .field("jobs", &self.cfg.jobs)
            .field("db", &self.db)
            .field("section", &self.section)
            .field("passthrough", &self.passthrough)
            .finish_non_exhaustive()
    }
}

impl Drop for ParallelLoad {
    fn drop(&mut self) {
        if let Some(p) = &mut self.pool {
            p.kill();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Classification.

enum Setting {
    Set(String),
    Reset(String),
    ResetAll,
}

/// `SET name = …`, `SET SESSION AUTHORIZATION …`, `SET ROLE …`, `RESET name`,
/// `SELECT pg_catalog.set_config('name', …, false);`: session state, not work.
fn session_setting(text: &[u8]) -> Option<Setting> {
    // A setting is a short statement: a long one (a 200 MB INSERT) is not looked at, so that
    // it is not copied to be lowercased.
    let head = text.trim_ascii_start();
    let starts = |p: &[u8]| head.len() >= p.len() && head[..p.len()].eq_ignore_ascii_case(p);
    if text.len() > 64 << 10 || !(starts(b"set") || starts(b"reset") || starts(b"select")) {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?.trim();
    let lower = s.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .trim_end_matches(';')
        .split(|c: char| c.is_ascii_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["set", "local", ..] | ["set", "transaction", ..] | ["set", "constraints", ..] => None,
        ["set", "session", "characteristics", ..] => None,
        ["set", "session", "authorization", ..] => {
            Some(Setting::Set("session authorization".into()))
        }
        ["set", "session", name, _, ..] | ["set", name, _, ..] => {
            Some(Setting::Set(name.trim_matches('"').to_string()))
        }
        ["reset", "all"] => Some(Setting::ResetAll),
        ["reset", "session", "authorization"] => {
            Some(Setting::Reset("session authorization".into()))
        }
        ["reset", name] => Some(Setting::Reset(name.to_string())),
        _ => {
            let rest = lower.strip_prefix("select pg_catalog.set_config('")?;
            let (name, tail) = rest.split_once('\'')?;
            let tail = tail.trim_end().trim_end_matches(';').trim_end();
            tail.ends_with("false)")
                .then(|| Setting::Set(name.to_string()))
        }
    }
}

/// Some(true) for BEGIN / START TRANSACTION, Some(false) for COMMIT / END / ROLLBACK / ABORT.
fn transaction_statement(text: &[u8]) -> Option<bool> {
    let head: String = String::from_utf8_lossy(&text[..text.len().min(32)])
        .trim_start()
        .to_ascii_uppercase();
    let word = head
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    match word {
        "BEGIN" => Some(true),
        "START" if head.starts_with("START TRANSACTION") => Some(true),
        "COMMIT" | "END" | "ROLLBACK" | "ABORT" => Some(false),
        // PREPARE TRANSACTION ends it too.
        "PREPARE" if head.starts_with("PREPARE TRANSACTION") => Some(false),
        _ => None,
    }
}

/// A post-data item's phase, from its header's type, checked against its statement.
fn classify_post(kind: &str, text: &[u8], statements: usize) -> PostClass {
    let s = String::from_utf8_lossy(text);
    let s = s.trim_start();
    match kind {
        "INDEX" => {
            let rest = s
                .strip_prefix("CREATE INDEX ")
                .or_else(|| s.strip_prefix("CREATE UNIQUE INDEX "));
            match rest.and_then(index_table) {
                Some(t) => PostClass::Index(Locks::Tables {
                    tables: vec![t],
                    shared: statements == 1,
                }),
                None => PostClass::Unknown,
            }
        }
        "CONSTRAINT" | "CHECK CONSTRAINT" => match alter_table(s) {
            Some((t, _)) => PostClass::Index(Locks::exclusive(vec![t])),
            None => PostClass::Unknown,
        },
        "FK CONSTRAINT" => match alter_table(s) {
            Some((t, rest)) => match rest
                .find(" REFERENCES ")
                .and_then(|k| parse_qualified(&rest[k + " REFERENCES ".len()..]).map(|(r, _)| r))
            {
                Some(r) => PostClass::Fk(Locks::exclusive(vec![t, r])),
                None => PostClass::Fk(Locks::All),
            },
            None => PostClass::Unknown,
        },
        "INDEX ATTACH" => PostClass::Attach,
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
        | "STATISTICS" => PostClass::Rest,
        _ => PostClass::Unknown,
    }
}

/// `name ON [ONLY] table USING …` (after `CREATE [UNIQUE] INDEX `).
fn index_table(rest: &str) -> Option<String> {
    let (_, after) = parse_qualified(rest)?;
    let after = after.trim_start().strip_prefix("ON ")?.trim_start();
    let after = after.strip_prefix("ONLY ").unwrap_or(after);
    parse_qualified(after).map(|(t, _)| t)
}

/// `ALTER TABLE [ONLY] table ADD CONSTRAINT …`: the table and what follows it.
fn alter_table(s: &str) -> Option<(String, &str)> {
    let rest = s.strip_prefix("ALTER TABLE ")?.trim_start();
    let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
    let (t, after) = parse_qualified(rest)?;
    after
        .trim_start()
        .starts_with("ADD CONSTRAINT ")
        .then_some((t, after))
}

/// A possibly schema-qualified, possibly quoted name at the start of `s`, in one spelling
/// (`"schema"."table"` with unquoted parts folded to lower case), and what follows it.
fn parse_qualified(s: &str) -> Option<(String, &str)> {
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

fn parse_ident(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.strip_prefix('"') {
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
        return None;
    }
    let end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .map_or(s.len(), |(i, _)| i);
    (end > 0).then(|| (s[..end].to_lowercase(), &s[end..]))
}

/// The COPY statement's table in the spelling [`parse_qualified`] gives.
fn canonical_table(t: &str) -> String {
    parse_qualified(t).map_or_else(|| t.to_string(), |(c, _)| c)
}

// ---------------------------------------------------------------------------------------
// The connections.

struct Job {
    /// Written one after the other: settings, the unit, its COPY rows, the end markers.
    parts: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Status {
    /// Units each connection reported done.
    done: Vec<u64>,
    /// A connection that stopped: its index and what happened.
    failed: Option<(usize, String)>,
    /// Connections we are closing: their end is expected.
    closing: bool,
}

struct Shared {
    status: Mutex<Status>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Worker {
    tx: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<ChildSummary>>,
    child: Child,
    applied: State,
    /// Units sent, and the locks of those not yet known done (in order).
    sent: u64,
    running: std::collections::VecDeque<(u64, Locks, bool)>,
}

/// The connections to one database.
struct Pool {
    cfg: Arc<Config>,
    marker: Vec<u8>,
    token: String,
    conn: ConnInfo,
    workers: Vec<Worker>,
    shared: Arc<Shared>,
    /// Units went to connection 1 since the last parallel one: parallel work waits for them.
    serial_pending: bool,
    /// When the first parallel unit was sent (the end of the schema phase).
    first_parallel: Option<Instant>,
    /// The connection the last data unit went to.
    last_pick: usize,
}

impl Pool {
    fn open(cfg: Arc<Config>, token: &str, db: Option<&str>) -> Result<Pool> {
        let conn = match db {
            Some(d) => cfg.conn.with_db(d),
            None => cfg.conn.clone(),
        };
        let mut pool = Pool {
            marker: format!("\\echo {token}\n").into_bytes(),
            token: token.to_string(),
            cfg,
            conn,
            workers: Vec::new(),
            shared: Arc::new(Shared {
                status: Mutex::new(Status::default()),
                cv: Condvar::new(),
            }),
            serial_pending: false,
            first_parallel: None,
            last_pick: 0,
        };
        pool.spawn(token)?;
        Ok(pool)
    }

    /// Starts one more connection.
    fn spawn(&mut self, token: &str) -> Result<()> {
        let index = self.workers.len();
        let cmd = crate::pg::psql_command(&self.cfg.program, &self.conn, self.cfg.on_error_stop);
        let mut child =
            crate::child::spawn_piped_out(cmd, &self.cfg.children).map_err(|e| Error::Child {
                program: "psql".into(),
                doing: "starting".into(),
                status: e.to_string(),
                stderr: String::new(),
            })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().map(crate::child::drain_stderr);
        self.shared.lock().done.push(0);
        let (tx, rx) = sync_channel::<Job>(DEPTH as usize);
        let shared = self.shared.clone();
        let writer = std::thread::spawn(move || {
            let mut stdin = stdin;
            for job in rx {
                if job.parts.iter().any(|p| stdin.write_all(p).is_err()) {
                    let mut st = shared.lock();
                    if st.failed.is_none() && !st.closing {
                        st.failed = Some((index, "it stopped reading its input".into()));
                    }
                    shared.cv.notify_all();
                    return;
                }
            }
        });
        let shared = self.shared.clone();
        let token = token.to_string();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                if line.strip_suffix(b"\n").unwrap_or(&line) == token.as_bytes() {
                    shared.lock().done[index] += 1;
                    shared.cv.notify_all();
                }
                line.clear();
            }
            let mut st = shared.lock();
            if st.failed.is_none() && !st.closing {
                st.failed = Some((index, "it exited".into()));
            }
            shared.cv.notify_all();
        });
        self.workers.push(Worker {
            tx: Some(tx),
            writer: Some(writer),
            reader: Some(reader),
            stderr,
            child,
            applied: Arc::new(Vec::new()),
            sent: 0,
            running: Default::default(),
        });
        Ok(())
    }

    /// The error of a connection that stopped, if one did.
    fn check(&mut self) -> Result<()> {
        let failed = self.shared.lock().failed.clone();
        match failed {
            Some((i, _)) => Err(self.failure(i)),
            None => Ok(()),
        }
    }

    /// Stops every connection at once and says why connection `index` stopped, in its own
    /// words (its stderr).
    fn failure(&mut self, index: usize) -> Error {
        let what = {
            let mut st = self.shared.lock();
            st.closing = true;
            st.failed
                .clone()
                .map(|f| f.1)
                .unwrap_or_else(|| "it exited".into())
        };
        for w in &self.workers {
            self.cfg.children.kill_group(w.child.id());
        }
        let worker = &mut self.workers[index];
        let status = worker
            .child
            .wait()
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        let stderr = worker
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .map(|s| s.tail.join("\n"))
            .unwrap_or_default();
        Error::Child {
            program: "psql".into(),
            doing: format!(
                "restoring into {} (connection {} of {}: {what}; every connection was stopped)",
                self.conn.describe(),
                index + 1,
                self.cfg.jobs
            ),
            status,
            stderr,
        }
    }

    /// Waits until `ready` holds, or a connection fails.
    fn wait(&mut self, ready: impl Fn(&Pool, &Status) -> bool) -> Result<()> {
        let shared = self.shared.clone();
        let mut st = shared.lock();
        loop {
            if let Some((i, _)) = st.failed {
                drop(st);
                return Err(self.failure(i));
            }
            if ready(self, &st) {
                return Ok(());
            }
            st = shared
                .cv
                .wait_timeout(st, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn outstanding(&self, st: &Status, w: usize) -> u64 {
        self.workers[w].sent - st.done[w]
    }

    /// Sends a unit to connection `w`, bringing it to the unit's settings first.
    fn send(&mut self, w: usize, unit: Unit, locks: Option<(Locks, bool)>) -> Result<()> {
        if self.cfg.verbose {
            eprintln!(
                "a9s-recover: restore --jobs {}: connection {}: {}",
                self.cfg.jobs,
                w + 1,
                crate::text::escape(&describe_unit(&unit.text, unit.rows.as_deref()))
            );
        }
        let worker = &mut self.workers[w];
        let mut parts = vec![settle_bytes(&worker.applied, &unit.before), unit.text];
        if let Some(rows) = unit.rows {
            let end = crate::split::copy_end_line(crate::split::rows_are_crlf(&rows));
            parts.push(rows);
            parts.push([end, &self.marker].concat());
        } else {
            parts.push(self.marker.clone());
        }
        worker.applied = unit.after;
        worker.sent += 1;
        if let Some((l, later)) = locks {
            worker.running.push_back((worker.sent, l, later));
        }
        let tx = worker.tx.as_ref().expect("open");
        if tx.send(Job { parts }).is_err() {
            return Err(self.failure(w));
        }
        Ok(())
    }

    /// Bytes as they are, to connection 1 (COPY rows of a serial COPY, passthrough); `done`
    /// ends a unit.
    fn raw(&mut self, bytes: Vec<u8>, done: bool) -> Result<()> {
        let worker = &mut self.workers[0];
        let mut parts = vec![bytes];
        if done {
            parts.push(self.marker.clone());
            worker.sent += 1;
        }
        if worker
            .tx
            .as_ref()
            .expect("open")
            .send(Job { parts })
            .is_err()
        {
            return Err(self.failure(0));
        }
        Ok(())
    }

    /// Brings connection 1 to `state` (before passthrough).
    fn settle(&mut self, state: &State) -> Result<()> {
        let bytes = settle_bytes(&self.workers[0].applied, state);
        self.workers[0].applied = state.clone();
        self.raw(bytes, false)
    }

    /// A barrier (`finished` false: a unit that goes on in raw bytes, a serial COPY).
    fn serial(&mut self, unit: Unit, finished: bool) -> Result<()> {
        let n = self.workers.len();
        self.wait(|p, st| (1..n).all(|w| p.outstanding(st, w) == 0))?;
        self.serial_pending = true;
        if finished {
            self.send(0, unit, None)
        } else {
            let worker = &mut self.workers[0];
            let settle = settle_bytes(&worker.applied, &unit.before);
            worker.applied = unit.after;
            self.raw(settle, false)?;
            self.raw(unit.text, false)
        }
    }

    /// On connection 1 in order, without waiting for the others.
    fn lane(&mut self, unit: Unit) -> Result<()> {
        self.send(0, unit, None)
    }

    fn ensure_all(&mut self) -> Result<()> {
        while self.workers.len() < self.cfg.jobs.max(1) as usize {
            let token = self.token.clone();
            self.spawn(&token)?;
        }
        Ok(())
    }

    /// A data unit on whichever connection has the least queued.
    fn parallel(&mut self, unit: Unit) -> Result<()> {
        if self.serial_pending {
            self.wait(|p, st| p.outstanding(st, 0) == 0)?;
            self.serial_pending = false;
        }
        self.ensure_all()?;
        self.first_parallel.get_or_insert_with(Instant::now);
        let n = self.workers.len();
        self.wait(|p, st| (0..n).any(|w| p.outstanding(st, w) < DEPTH))?;
        // The least queued; of equals, the next after the last one picked, so that the
        // connections (and their psql processes) share the work even when the stream is slower
        // than they are.
        let pick = {
            let st = self.shared.lock();
            (1..=n)
                .map(|k| (self.last_pick + k) % n)
                .min_by_key(|&w| self.outstanding(&st, w))
                .unwrap_or(0)
        };
        self.last_pick = pick;
        self.send(pick, unit, None)
    }

    fn wait_all_idle(&mut self) -> Result<()> {
        let n = self.workers.len();
        self.wait(|p, st| (0..n).all(|w| p.outstanding(st, w) == 0))?;
        self.serial_pending = false;
        for w in &mut self.workers {
            w.running.clear();
        }
        Ok(())
    }

    /// Post-data items in parallel: one at a time per connection; never two conflicting
    /// items at once (see [`Locks`]); of two that conflict the earlier first; the largest
    /// tables first. `after` (foreign keys) follow `items` in that order, so a foreign key waits
    /// for every earlier item on either of its tables. Returns when the last of `items` ended.
    fn schedule(
        &mut self,
        mut items: Vec<(Locks, u64, Unit)>,
        mut after: Vec<(Locks, u64, Unit)>,
    ) -> Result<Instant> {
        if items.is_empty() && after.is_empty() {
            return Ok(Instant::now());
        }
        self.wait_all_idle()?;
        self.ensure_all()?;
        // Stable: items of one table keep their order.
        items.sort_by_key(|i| std::cmp::Reverse(i.1));
        after.sort_by_key(|i| std::cmp::Reverse(i.1));
        let first_group = items.len();
        let mut pending: Vec<(Locks, Unit, bool)> = items
            .into_iter()
            .map(|(l, _, u)| (l, u, false))
            .chain(after.into_iter().map(|(l, _, u)| (l, u, true)))
            .collect();
        let n = self.workers.len();
        let mut items_done = (first_group == 0).then(Instant::now);
        loop {
            // What is still running, and who is idle.
            // `seen` is taken under the same lock as what it decides on: a unit that ends
            // after this point wakes the wait below (a regression: taking it later lost such
            // an end, and the restore waited forever with every connection idle).
            let (running, idle, first_running, seen) = {
                let st = self.shared.lock();
                let mut running = Vec::new();
                let mut idle = None;
                let mut first_running = false;
                for w in 0..n {
                    let done = st.done[w];
                    let worker = &self.workers[w];
                    for (seq, l, later) in &worker.running {
                        if *seq > done {
                            running.push(l.clone());
                            first_running |= !later;
                        }
                    }
                    if idle.is_none() && worker.sent == done {
                        idle = Some(w);
                    }
                }
                (running, idle, first_running, st.done.clone())
            };
            if items_done.is_none() && !first_running && !pending.iter().any(|p| !p.2) {
                items_done = Some(Instant::now());
            }
            if pending.is_empty() {
                if running.is_empty() {
                    break;
                }
            } else {
                let next = idle.and_then(|_| {
                    (0..pending.len()).find(|&i| {
                        let l = &pending[i].0;
                        !running.iter().any(|r| r.conflicts(l))
                            && !pending[..i].iter().any(|(p, _, _)| p.conflicts(l))
                    })
                });
                if let (Some(w), Some(i)) = (idle, next) {
                    let (locks, unit, later) = pending.remove(i);
                    self.workers[w].running.clear();
                    self.send(w, unit, Some((locks, later)))?;
                    continue;
                }
            }
            self.wait(|_, st| st.done != seen)?;
        }
        self.wait_all_idle()?;
        Ok(items_done.unwrap_or_else(Instant::now))
    }

    /// Closes every connection (end of input) and waits for them.
    fn close(mut self) -> Result<ChildSummary> {
        self.shared.lock().closing = true;
        let mut summary = ChildSummary::default();
        let mut failure = None;
        for w in self.workers.iter_mut() {
            drop(w.tx.take());
            if let Some(h) = w.writer.take() {
                let _ = h.join();
            }
        }
        for (i, w) in self.workers.iter_mut().enumerate() {
            let status = w.child.wait();
            self.cfg.children.unregister(w.child.id());
            if let Some(h) = w.reader.take() {
                let _ = h.join();
            }
            let s = w
                .stderr
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default();
            summary.sql_errors += s.sql_errors;
            for e in &s.first_errors {
                if summary.first_errors.len() < 5 {
                    summary.first_errors.push(e.clone());
                }
            }
            match status {
                Ok(st) if st.success() => {}
                Ok(st) if failure.is_none() => {
                    failure = Some(Error::Child {
                        program: "psql".into(),
                        doing: format!(
                            "restoring into {} (connection {} of {})",
                            self.conn.describe(),
                            i + 1,
                            self.cfg.jobs
                        ),
                        status: st.to_string(),
                        stderr: s.tail.join("\n"),
                    });
                }
                Err(e) if failure.is_none() => failure = Some(crate::child::start_err("psql", e)),
                _ => {}
            }
        }
        self.workers.clear();
        match failure {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }

    /// Stops every connection (a failure elsewhere, Ctrl-C).
    fn kill(&mut self) {
        self.shared.lock().closing = true;
        for w in &mut self.workers {
            drop(w.tx.take());
            self.cfg.children.kill_group(w.child.id());
            let _ = w.child.wait();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A unit for `-v`: its first line, and for a COPY chunk its rows and size.
fn describe_unit(text: &[u8], rows: Option<&[u8]>) -> String {
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut line = String::from_utf8_lossy(&first[..first.len().min(80)]).into_owned();
    if first.len() > 80 {
        line.push('…');
    }
    if let Some(rows) = rows {
        line.push_str(&format!(
            " ({} rows, {})",
            memchr::memchr_iter(b'\n', rows).count(),
            crate::format_bytes(rows.len() as u64)
        ));
    }
    line
}

/// What brings a connection from the settings `have` to `want`: the settings it has that
/// `want` lacks are reset, then everything from the first difference on is set again in
/// order (a later `SET SESSION AUTHORIZATION` resets the role, so order matters).
fn settle_bytes(have: &State, want: &State) -> Vec<u8> {
    if Arc::ptr_eq(have, want) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (k, _) in have.iter() {
        if !want.iter().any(|(w, _)| w == k) {
            out.extend_from_slice(
                match k.as_str() {
                    "session authorization" => "RESET SESSION AUTHORIZATION;\n".to_string(),
                    "role" => "RESET ROLE;\n".to_string(),
                    k => format!("RESET {k};\n"),
                }
                .as_bytes(),
            );
        }
    }
    let common = have
        .iter()
        .zip(want.iter())
        .take_while(|(a, b)| a == b)
        .count();
    for (_, stmt) in &want[common..] {
        out.extend_from_slice(stmt);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_recognised() {
        assert!(
            matches!(session_setting(b"SET statement_timeout = 0;\n"), Some(Setting::Set(k)) if k == "statement_timeout")
        );
        assert!(
            matches!(session_setting(b"SET default_tablespace = '';\n"), Some(Setting::Set(k)) if k == "default_tablespace")
        );
        assert!(
            matches!(session_setting(b"SET SESSION AUTHORIZATION 'me';\n"), Some(Setting::Set(k)) if k == "session authorization")
        );
        assert!(
            matches!(session_setting(b"SELECT pg_catalog.set_config('search_path', '', false);\n"), Some(Setting::Set(k)) if k == "search_path")
        );
        assert!(
            session_setting(b"SELECT pg_catalog.set_config('search_path', '', true);\n").is_none()
        );
        assert!(session_setting(b"SET LOCAL x = 1;\n").is_none());
        assert!(session_setting(b"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\n").is_none());
        assert!(session_setting(b"SELECT pg_catalog.setval('s', 1, true);\n").is_none());
        assert!(matches!(
            session_setting(b"RESET ALL;\n"),
            Some(Setting::ResetAll)
        ));
    }

    #[test]
    fn settling_resets_and_replays_from_the_first_difference() {
        let a: State = Arc::new(vec![
            ("x".into(), b"SET x = 1;\n".to_vec()),
            ("role".into(), b"SET ROLE a;\n".to_vec()),
        ]);
        let b: State = Arc::new(vec![
            ("x".into(), b"SET x = 2;\n".to_vec()),
            ("y".into(), b"SET y = 1;\n".to_vec()),
        ]);
        assert_eq!(
            String::from_utf8(settle_bytes(&a, &b)).unwrap(),
            "RESET ROLE;\nSET x = 2;\nSET y = 1;\n"
        );
        assert!(settle_bytes(&b, &b.clone()).is_empty());
    }

    #[test]
    fn post_data_items_are_classified_by_header_and_statement() {
        assert_eq!(
            classify_post("INDEX", b"CREATE INDEX i ON public.t USING btree (a);\n", 1),
            PostClass::Index(Locks::Tables {
                tables: vec!["\"public\".\"t\"".into()],
                shared: true
            })
        );
        assert_eq!(
            classify_post(
                "INDEX",
                b"CREATE UNIQUE INDEX \"I x\" ON ONLY \"S\".\"T.1\" USING btree (a);\nALTER TABLE \"S\".\"T.1\" CLUSTER ON \"I x\";\n",
                2
            ),
            PostClass::Index(Locks::exclusive(vec!["\"S\".\"T.1\"".into()]))
        );
        assert_eq!(
            classify_post(
                "FK CONSTRAINT",
                b"ALTER TABLE ONLY public.items\n    ADD CONSTRAINT f FOREIGN KEY (o) REFERENCES public.orders(id);\n",
                1
            ),
            PostClass::Fk(Locks::exclusive(vec![
                "\"public\".\"items\"".into(),
                "\"public\".\"orders\"".into()
            ]))
        );
        // Two lone CREATE INDEX on one table may run together; a key and an index may not.
        let share = |t: &str| Locks::Tables {
            tables: vec![t.into()],
            shared: true,
        };
        assert!(!share("a").conflicts(&share("a")));
        assert!(share("a").conflicts(&Locks::exclusive(vec!["a".into()])));
        assert!(!share("a").conflicts(&Locks::exclusive(vec!["b".into()])));
        assert!(Locks::All.conflicts(&share("b")));
        // A header that says INDEX over a statement that is not one: run it in its place.
        assert_eq!(
            classify_post("INDEX", b"DROP TABLE t;\n", 1),
            PostClass::Unknown
        );
        assert_eq!(
            classify_post("TRIGGER", b"CREATE TRIGGER x ...;\n", 1),
            PostClass::Rest
        );
        assert_eq!(
            classify_post("SOMETHING NEW", b"SELECT 1;\n", 1),
            PostClass::Unknown
        );
        assert_eq!(canonical_table("public.Orders"), "\"public\".\"orders\"");
    }

    #[test]
    fn transactions_are_tracked() {
        assert_eq!(transaction_statement(b"BEGIN;\n"), Some(true));
        assert_eq!(transaction_statement(b"COMMIT;\n"), Some(false));
        assert_eq!(transaction_statement(b"BEGINNING;\n"), None);
        assert_eq!(transaction_statement(b"SELECT 1;\n"), None);
    }
}
