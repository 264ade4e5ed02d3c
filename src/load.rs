//! The loader of plain dumps: one pg_dump or pg_dumpall stream restored over N psql
//! connections as it arrives, without a spool (`restore --jobs N`; N = 1 is the default).
//!
//! Three layers, each with one job:
//! - `plan`: the **planner** turns the splitter's items into operations (pre-data as
//!   barriers, COPY chunks and `--inserts` statements as data units, sequence values and
//!   large objects in connection 1's lane, the post-data kept until the data is in). Pure.
//! - `schedule`: the **post-data schedule**: which index, constraint or foreign key may
//!   start when a connection is idle, by the lock rule. Pure.
//! - `pool`: the **connections**: N psql processes, their writer and reader threads, and one
//!   channel of events that only this loader reads; a COPY the server refuses loses its own
//!   rows and nothing else.
//!
//! `Loader` (this file) carries the planner's operations out over the pool: a barrier waits
//! for every other connection, a data unit goes to the least busy one (at most [`DEPTH`]
//! queued on each: the backpressure), the post-data runs in its phases. What runs where, and
//! what falls back to one connection, is the operator's to know and is said once, in
//! docs/guide.md ("`--jobs N` for plain dumps"). The phases clock and the `-v` lines are
//! `phases::Clock`'s; [`trace`] records every unit for the simulator (`restore --trace`,
//! `a9s-recover simulate`).
//!
//! Memory: at most [`DEPTH`] + 1 chunks per connection (each kept until psql reports it done,
//! so that it can be sent again), one chunk being cut, the longest COPY row or statement
//! held once, and one database's post-data text.

mod early;
pub(crate) mod plan;
mod pool;
pub(crate) mod prescan;
pub(crate) mod schedule;
pub mod simulate;
pub(crate) mod sql;
mod status;
pub mod trace;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use crate::child::ChildSummary;
use crate::error::Result;
use crate::phases::Clock;
use crate::split::Splitter;
use early::{Early, Job};
use plan::{Op, Planner, PostData, Scheduled, Unit};
use pool::Pool;
use schedule::{Schedule, Ticket};

pub use pool::{Config, FailedCopy, DEPTH};
pub use prescan::Layout;
pub(crate) use prescan::Prescan;

/// The loader: a sink that splits the stream, plans it and runs it over the connections.
pub(crate) struct Loader {
    splitter: Splitter,
    planner: Planner,
    cfg: Arc<Config>,
    token: String,
    pool: Option<Pool>,
    db: Option<String>,
    clock: Clock,
    summary: ChildSummary,
    failed_copies: Vec<FailedCopy>,
    /// Units went to connection 1 since the last data unit: data waits for them.
    serial_pending: bool,
    /// The connection the last data unit went to.
    last_pick: usize,
    trace: Option<trace::Recorder>,
    ops: Vec<Op>,
    /// The rows of each table, from the same items: the dump is read once.
    rows: crate::dump::RowCounter,
    /// The current database's post-data, known from the first read (two reads).
    early: Option<Early>,
    /// Which stretch of the stream (between `\connect`s) this is, for the layout.
    stretch: usize,
    /// The status line on the terminal, or `-v` lines while the load runs.
    status: status::Status,
}

impl Loader {
    pub(crate) fn new(cfg: Config) -> Result<Self> {
        let mut token = [0u8; 8];
        let _ = openssl::rand::rand_bytes(&mut token);
        let trace = cfg
            .trace
            .as_deref()
            .map(trace::Recorder::create)
            .transpose()?;
        let status = status::Status::start(
            cfg.status,
            cfg.verbose,
            cfg.jobs,
            Some(status::Probe {
                psql: cfg.program.clone(),
                conn: cfg.conn.clone(),
            }),
        );
        let mut loader = Loader {
            status,
            splitter: Splitter::new(),
            planner: Planner::new(cfg.conn.describe(), cfg.on_error_stop, cfg.jobs),
            clock: Clock::new(cfg.verbose, cfg.jobs),
            cfg: Arc::new(cfg),
            token: format!("a9s-recover-unit-done-{}", crate::hex(&token)),
            pool: None,
            db: None,
            summary: ChildSummary::default(),
            failed_copies: Vec::new(),
            serial_pending: false,
            last_pick: 0,
            trace,
            ops: Vec::new(),
            rows: Default::default(),
            early: None,
            stretch: 0,
        };
        loader.set_stretch();
        loader.status_database();
        Ok(loader)
    }

    /// The current stretch's post-data, when the first read knows it and there are
    /// connections to run it beside the data.
    fn set_stretch(&mut self) {
        let jobs = self.cfg.jobs.max(1) as usize;
        self.early = match &self.cfg.layout {
            Some(l) if jobs > 1 => l
                .dbs
                .get(self.stretch)
                .and_then(|d| d.post.as_ref())
                .map(|p| Early::new(p, jobs)),
            _ => None,
        };
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        let mut items = Vec::new();
        self.splitter.feed(data, &mut |i| items.push(i));
        for item in items {
            if let Some(pool) = &mut self.pool {
                pool.poll()?;
            }
            self.rows.item(&item);
            self.planner.item(item, &mut self.ops)?;
            self.run_ops()?;
        }
        Ok(())
    }

    /// The end of the stream: the last database's post-data, then every connection closed.
    pub(crate) fn finish(mut self) -> Result<ChildSummary> {
        let mut items = Vec::new();
        self.splitter.finish(&mut |i| items.push(i));
        for item in items {
            self.rows.item(&item);
            self.planner.item(item, &mut self.ops)?;
            self.run_ops()?;
        }
        self.planner.finish(&mut self.ops);
        self.run_ops()?;
        if let Some(t) = self.trace.take() {
            t.finish()?;
        }
        let mut summary = std::mem::take(&mut self.summary);
        summary.sql_errors += self.planner.refused.len() as u64;
        for r in &self.planner.refused {
            if summary.first_errors.len() < 5 {
                summary.first_errors.push(r.clone());
            }
        }
        summary.phases = Some(self.planner.phases.clone());
        summary.failed_copies = std::mem::take(&mut self.failed_copies);
        let rows = std::mem::take(&mut self.rows);
        summary.databases = Some(rows.databases().to_vec());
        summary.tables = Some(rows.into_tables());
        Ok(summary)
    }

    fn run_ops(&mut self) -> Result<()> {
        let ops = std::mem::take(&mut self.ops);
        for op in ops {
            self.run(op)?;
        }
        Ok(())
    }

    fn run(&mut self, op: Op) -> Result<()> {
        if let Some(t) = &mut self.trace {
            t.op(&op, self.db.as_deref());
        }
        match op {
            Op::Data(u) => self.data(u),
            Op::Lane(u) => {
                self.pool()?;
                self.send(0, u, "lane")
            }
            Op::Serial(u) => self.serial(u, "serial"),
            Op::SerialCopy(u) => self.serial_copy(u),
            Op::Raw { bytes, done } => self.pool()?.raw(bytes, done),
            Op::Passthrough(state) => {
                self.wait_all_idle()?;
                let pool = self.pool()?;
                let bytes = pool.settle_raw(&state, &state)?;
                pool.raw(bytes.into(), false)
            }
            Op::DataEnd { pre } => {
                if self.pool.is_some() {
                    self.wait_all_idle()?;
                }
                let db = self.describe_db();
                self.clock.data_end(&mut self.planner.phases, pre, &db);
                Ok(())
            }
            Op::Post(post) => self.post(post),
            Op::TableEnd(t) => {
                if let Some(e) = &mut self.early {
                    e.table_end(t);
                }
                self.early_step()
            }
            Op::Close => {
                if let Some(e) = self.early.take() {
                    let difference = early::first_difference(&e.expected, &PostData::default())
                        .unwrap_or_default();
                    return Err(crate::error::Error::PostDataChanged {
                        database: self.describe_db(),
                        difference,
                    });
                }
                self.close()
            }
            Op::Database(db) => {
                self.db = Some(db);
                self.status_database();
                Ok(())
            }
        }
    }

    /// The database the operations being run are for (the planner may be past its
    /// `\connect` already).
    fn describe_db(&self) -> String {
        match &self.db {
            Some(d) => format!("database {d}"),
            None => self.cfg.conn.describe(),
        }
    }

    fn pool(&mut self) -> Result<&mut Pool> {
        if self.pool.is_none() {
            let pool = Pool::open(self.cfg.clone(), &self.token, self.db.as_deref())?;
            self.pool = Some(pool);
        }
        Ok(self.pool.as_mut().expect("just opened"))
    }

    /// Waits, reading the connections' events, until `ready` holds.
    fn wait(&mut self, ready: impl Fn(&Pool) -> bool) -> Result<()> {
        loop {
            let pool = self.pool.as_mut().expect("open");
            if ready(pool) {
                return Ok(());
            }
            let t0 = Instant::now();
            pool.next()?;
            if let Some(t) = &mut self.trace {
                t.blocked(t0.elapsed().as_secs_f64());
                t.sync(pool);
            }
            self.idle_status();
            self.early_events();
        }
    }

    /// The status line's database (after `\connect`, or the target's): its data's total
    /// and its post-data, as the first read counted them.
    fn status_database(&self) {
        if !self.status.active() {
            return;
        }
        let db = self.db.clone().unwrap_or_else(|| self.cfg.conn.database());
        let (total, post) = match self
            .cfg
            .layout
            .as_ref()
            .and_then(|l| l.dbs.get(self.stretch))
        {
            Some(d) => (
                Some(d.data_bytes),
                self.early.as_ref().map_or(0, |e| e.items()),
            ),
            None => (None, 0),
        };
        self.status.database(&db, total, post);
    }

    /// The status line forgets what idle connections ran.
    fn idle_status(&self) {
        if let Some(pool) = &self.pool {
            for w in 0..pool.len() {
                if pool.outstanding(w) == 0 {
                    self.status.idle(w);
                }
            }
        }
    }

    /// The early post-data items whose connection has nothing left are finished.
    fn early_events(&mut self) {
        if let (Some(e), Some(pool)) = (&mut self.early, &self.pool) {
            finished(&mut e.schedule, &mut e.on, pool);
        }
    }

    /// Which connections get no data: those running an early post-data item, and the one
    /// draining for the next.
    fn early_mask(&self) -> Vec<bool> {
        let n = self.pool.as_ref().map_or(0, Pool::len);
        (0..n)
            .map(|w| {
                self.early.as_ref().is_some_and(|e| {
                    e.on.get(w).is_some_and(Option::is_some) || e.draining == Some(w)
                })
            })
            .collect()
    }

    /// Releases what the tables whose rows are in allow, and hands it to idle connections,
    /// keeping one for the data.
    fn early_step(&mut self) -> Result<()> {
        self.early_events();
        let (Some(e), Some(pool)) = (&mut self.early, &self.pool) else {
            return Ok(());
        };
        e.release(|t| pool.table_in_flight(t));
        if !e.schedule.ready() {
            e.draining = None;
        }
        let n = pool.len().min(e.on.len());
        let mut out = Vec::new();
        while e.busy() + 1 < n && e.schedule.ready() {
            let idle = (0..n).find(|&w| e.on[w].is_none() && pool.outstanding(w) == 0);
            let Some(w) = idle else {
                // None idle: the least queued gets no more data until it is.
                if e.draining.is_none() {
                    e.draining = (0..n)
                        .filter(|&w| e.on[w].is_none())
                        .min_by_key(|&w| pool.outstanding(w));
                }
                break;
            };
            let (t, job) = e.schedule.next().expect("ready");
            // The item it drained for has a connection, whichever: the data gets it back
            // (with N = 2, one running item and one draining connection would leave the
            // data none).
            e.draining = None;
            e.on[w] = Some(t);
            e.started += 1;
            out.push((w, job));
        }
        for (w, (kind, locks, weight, unit)) in out {
            if let Some(tr) = &mut self.trace {
                tr.locks(&locks, weight);
            }
            self.send(w, unit, kind)?;
        }
        Ok(())
    }

    fn wait_all_idle(&mut self) -> Result<()> {
        self.pool()?;
        self.wait(|p| (0..p.len()).all(|w| p.outstanding(w) == 0))?;
        self.serial_pending = false;
        Ok(())
    }

    fn send(&mut self, w: usize, unit: Unit, kind: &'static str) -> Result<()> {
        self.clock.sending(w, &unit.text, unit.rows.as_deref());
        self.status
            .sending(w, kind, &unit.text, unit.rows.as_deref());
        let pool = self.pool.as_mut().expect("open");
        if let Some(t) = &mut self.trace {
            t.sent(kind, &unit, w, pool.counts(w).0 + 1);
        }
        pool.send(w, unit)
    }

    /// A barrier: every other connection idle, then the unit on connection 1.
    fn serial(&mut self, unit: Unit, kind: &'static str) -> Result<()> {
        self.pool()?;
        self.wait(|p| (1..p.len()).all(|w| p.outstanding(w) == 0))?;
        self.serial_pending = true;
        self.send(0, unit, kind)
    }

    /// A barrier whose COPY rows follow as raw bytes, which cannot be sent again: nothing
    /// that could fail and be replaced may be queued before them.
    fn serial_copy(&mut self, unit: Unit) -> Result<()> {
        self.pool()?;
        self.wait(|p| (1..p.len()).all(|w| p.outstanding(w) == 0) && !p.guarded_inflight(0))?;
        self.serial_pending = true;
        let pool = self.pool.as_mut().expect("open");
        let settle = pool.settle_raw(&unit.before, &unit.after)?;
        pool.raw(settle.into(), false)?;
        pool.raw(unit.text, false)
    }

    /// A data unit on whichever connection has the least queued.
    fn data(&mut self, unit: Unit) -> Result<()> {
        let pool = self.pool()?;
        // The rest of a table whose COPY was refused: not sent, counted as lost. As under
        // `psql -f`, where one refused COPY loses the whole table, and without a new
        // connection to the server for each of a large table's chunks.
        if unit.table.as_deref().is_some_and(|t| pool.refused(t)) {
            pool.record_failed(&unit);
            return Ok(());
        }
        if self.serial_pending {
            self.wait(|p| p.outstanding(0) == 0)?;
            self.serial_pending = false;
        }
        let jobs = self.cfg.jobs.max(1) as usize;
        self.pool()?.ensure(jobs)?;
        self.clock.data_begins();
        self.early_step()?;
        // Not on a connection that builds an index (it would wait behind it).
        let busy = self.early_mask();
        debug_assert!(
            !busy.iter().all(|&b| b),
            "a connection is left for the data"
        );
        self.wait(|p| (0..p.len()).any(|w| !busy[w] && p.outstanding(w) < DEPTH))?;
        // The least queued; of equals, the next after the last one picked, so that the
        // connections (and their psql processes) share the work even when the stream is
        // slower than they are.
        let busy = self.early_mask();
        let pool = self.pool.as_ref().expect("open");
        let n = pool.len();
        let pick = (1..=n)
            .map(|k| (self.last_pick + k) % n)
            .filter(|&w| !busy[w])
            .min_by_key(|&w| pool.outstanding(w))
            .unwrap_or(0);
        self.last_pick = pick;
        self.send(pick, unit, "data")
    }

    /// The post-data kept for the database, once its data is in.
    fn post(&mut self, post: PostData) -> Result<()> {
        if self.early.is_some() {
            return self.post_early(post);
        }
        if self.pool.is_none() && post.is_empty() {
            return Ok(());
        }
        self.wait_all_idle()?;
        let db = self.describe_db();
        self.clock.data_end(&mut self.planner.phases, false, &db);
        if post.is_empty() {
            return Ok(());
        }
        self.status.post_data(
            (post.index.len() + post.fk.len() + post.attach.len() + post.rest.len()) as u64,
        );
        let t0 = Instant::now();
        let (t1, t2) = if post.attach.is_empty() {
            // One schedule: a foreign key starts as soon as nothing on its two tables is
            // left to run before it (its referenced key included), while other indexes build.
            let t1 = self.schedule(post.index, post.fk)?;
            (t1, Instant::now())
        } else {
            // Partitioned indexes are attached in between: keys first, then the attaches,
            // then the foreign keys that may reference them.
            self.schedule(post.index, Vec::new())?;
            for u in post.attach {
                self.serial(u, "attach")?;
            }
            self.wait_all_idle()?;
            let t1 = Instant::now();
            self.schedule(post.fk, Vec::new())?;
            (t1, Instant::now())
        };
        self.post_rest(post.rest, &db, (t0, t1, t2))
    }

    /// The post-data known from the first read: the second read's must be the same; what
    /// did not start during the data runs now, then the rest serially.
    fn post_early(&mut self, post: PostData) -> Result<()> {
        let db = self.describe_db();
        if let Some(difference) = self
            .early
            .as_ref()
            .and_then(|e| early::first_difference(&e.expected, &post))
        {
            return Err(crate::error::Error::PostDataChanged {
                database: db,
                difference,
            });
        }
        // The data in: every chunk done; the post-data items running go on.
        self.pool()?;
        if let Some(e) = &mut self.early {
            e.draining = None;
        }
        let busy = self.early_mask();
        self.wait(|p| (0..p.len()).all(|w| busy[w] || p.outstanding(w) == 0))?;
        self.serial_pending = false;
        let mut e = self.early.take().expect("checked above");
        self.clock.data_end(&mut self.planner.phases, false, &db);
        self.status.post_data(e.items() + post.rest.len() as u64);
        self.planner.phases.early_items += e.started;
        e.release_all();
        let t0 = Instant::now();
        let t1 = self.run_schedule(e.schedule, e.on)?;
        let t2 = Instant::now();
        self.post_rest(post.rest, &db, (t0, t1, t2))
    }

    /// The rest of the post-data, serially in dump order; then the phases timed (`times`:
    /// the post-data's start, the indexes' end, the foreign keys' end).
    fn post_rest(
        &mut self,
        rest: Vec<Unit>,
        db: &str,
        times: (Instant, Instant, Instant),
    ) -> Result<()> {
        for u in rest {
            self.serial(u, "rest")?;
        }
        self.wait_all_idle()?;
        self.clock.post_end(&mut self.planner.phases, db, times);
        Ok(())
    }

    /// `items` and then `after` (foreign keys) over the connections, one at a time on each,
    /// by the schedule's rule. Returns when the last of `items` ended.
    fn schedule(&mut self, items: Vec<Scheduled>, after: Vec<Scheduled>) -> Result<Instant> {
        if items.is_empty() && after.is_empty() {
            return Ok(Instant::now());
        }
        self.wait_all_idle()?;
        let jobs = self.cfg.jobs.max(1) as usize;
        let mut s = Schedule::default();
        for (group, list) in [(0u8, items), (1, after)] {
            for (locks, weight, unit) in list {
                let kind = if group == 0 { "index" } else { "fk" };
                s.push(group, locks.clone(), weight, (kind, locks, weight, unit));
            }
        }
        self.run_schedule(s, vec![None; jobs])
    }

    /// Runs `s` to its end over the connections; `on` holds the items already running.
    /// Returns when the last item of group 0 ended.
    fn run_schedule(
        &mut self,
        mut s: Schedule<Job>,
        mut on: Vec<Option<Ticket>>,
    ) -> Result<Instant> {
        let jobs = self.cfg.jobs.max(1) as usize;
        self.pool()?.ensure(jobs)?;
        let mut items_done = None;
        loop {
            finished(&mut s, &mut on, self.pool.as_ref().expect("open"));
            if items_done.is_none() && s.done_through(0) {
                items_done = Some(Instant::now());
            }
            if s.is_empty() {
                break;
            }
            for (w, ticket) in on.iter_mut().enumerate() {
                if ticket.is_some() || self.pool.as_ref().expect("open").outstanding(w) > 0 {
                    continue;
                }
                let Some((t, (kind, locks, weight, unit))) = s.next() else {
                    break;
                };
                *ticket = Some(t);
                if let Some(tr) = &mut self.trace {
                    tr.locks(&locks, weight);
                }
                self.send(w, unit, kind)?;
            }
            let pool = self.pool.as_mut().expect("open");
            let t0 = Instant::now();
            pool.next()?;
            if let Some(t) = &mut self.trace {
                t.blocked(t0.elapsed().as_secs_f64());
            }
            finished(&mut s, &mut on, pool);
            if let Some(t) = &mut self.trace {
                t.sync(pool);
            }
            self.idle_status();
        }
        self.wait_all_idle()?;
        Ok(items_done.unwrap_or_else(Instant::now))
    }

    /// The database's stream ended: its connections close.
    fn close(&mut self) -> Result<()> {
        if let Some(pool) = self.pool.take() {
            let (s, failed) = pool.close()?;
            self.summary.sql_errors += s.sql_errors;
            for e in s.first_errors {
                if self.summary.first_errors.len() < 5 {
                    self.summary.first_errors.push(e);
                }
            }
            for f in &failed {
                self.clock.say(&format!(
                    "the COPY of {} in {} failed: {} rows not loaded",
                    f.table,
                    f.database.as_deref().unwrap_or("the target"),
                    f.rows
                ));
            }
            self.failed_copies.extend(failed);
        }
        if let Some(t) = &mut self.trace {
            t.closed();
        }
        self.clock.database_closed(&self.planner.phases);
        self.serial_pending = false;
        self.last_pick = 0;
        self.stretch += 1;
        self.set_stretch();
        Ok(())
    }
}

/// The items whose connection has nothing left are finished.
fn finished(s: &mut Schedule<Job>, on: &mut [Option<Ticket>], pool: &Pool) {
    for (w, ticket) in on.iter_mut().enumerate() {
        if w < pool.len() && ticket.is_some() && pool.outstanding(w) == 0 {
            s.finished(ticket.take().expect("checked"));
        }
    }
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("jobs", &self.cfg.jobs)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        if let Some(p) = &mut self.pool {
            p.kill();
        }
    }
}
