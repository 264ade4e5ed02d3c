//! The connections to one database: N psql processes, each fed by a writer thread of its own
//! and read by a reader thread that reports every finished unit. Everything a connection's
//! threads see reaches the loader as an [`Event`] on one channel that only the loader's
//! thread reads, so no decision is taken on a shared snapshot and a wakeup cannot be lost.
//!
//! A unit is written as: the settings that bring the connection to the unit's (see
//! [`settle_bytes`]), the unit, its COPY rows and end marker, then `\echo <token>`; psql runs
//! its input in order, so each token line on its stdout is one more unit done.
//!
//! A COPY chunk of pg_dump's own `TABLE DATA` is *guarded* (unless `--on-error-stop`):
//! `\set ON_ERROR_STOP on` before it, `off` after its end marker. A COPY the server refuses
//! (its table was never created) then makes that psql exit with status 3 before it reads a
//! row, instead of reading the rows as SQL, where they would swallow what follows. The pool
//! keeps every unit until it is done, so it starts a new psql in that connection's place and
//! sends it the units that followed the failed chunk, which the old one never ran: the chunk
//! loses its own rows and nothing else.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ChildStdout;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;

use super::plan::{State, Unit};
use crate::child::{ChildSummary, FedChild};
use crate::error::{Error, Result};
use crate::pg::ConnInfo;
pub use crate::phases::FailedCopy;

/// How to reach the target and load into it.
#[derive(Debug, Clone)]
pub struct Config {
    pub program: PathBuf,
    pub conn: ConnInfo,
    pub on_error_stop: bool,
    pub jobs: u32,
    /// Say on stderr what each connection is doing and when each phase ends (`-v`).
    pub verbose: bool,
    /// Show the load's status line on the terminal (see `load::status`).
    pub status: bool,
    /// Write a line per unit here (`restore --trace FILE`).
    pub trace: Option<PathBuf>,
    /// The first read's plan (two reads): each database's post-data starts as its tables'
    /// rows are in.
    pub layout: Option<std::sync::Arc<super::prescan::Layout>>,
    pub(crate) children: crate::child::Children,
}

/// What every connection runs first when there are more than one: the loader's connections
/// are the restore's parallelism, so an index build does not add parallel workers of its own.
/// With N connections busy, those workers only contend for the same cores (on 2 cores,
/// `restore --jobs 2` took 1.2-1.8 s longer with the server's default of 2, see
/// BENCHMARKS.md), and they come out of `max_parallel_workers`, which the production
/// workload shares. `--jobs N` thus holds the restore to N server processes. In a DO block so
/// that a server without the setting (before 11) says nothing.
pub(crate) const MANY_CONNECTIONS: &[u8] =
    b"DO $a9s$ BEGIN SET max_parallel_maintenance_workers = 0; \
EXCEPTION WHEN undefined_object THEN NULL; END $a9s$;\n";

/// Units queued on one connection at most while loading data.
pub const DEPTH: u64 = 2;

/// What a connection's threads report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// It printed one more token: its oldest unit is done.
    Done,
    /// Its stdout ended: psql exited.
    Exited,
    /// Writing to it failed: psql stopped reading its input.
    StoppedReading,
}

struct Job {
    parts: Vec<Bytes>,
}

/// A unit sent and not yet known done; `None` for bytes that cannot be sent again (a serial
/// COPY's rows, passthrough).
type Inflight = Option<Unit>;

struct Conn {
    child: FedChild,
    tx: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
    generation: u64,
    applied: State,
    sent: u64,
    done: u64,
    inflight: VecDeque<Inflight>,
}

/// The connections to one database.
pub(crate) struct Pool {
    cfg: Arc<Config>,
    conn: ConnInfo,
    db: Option<String>,
    marker: Bytes,
    token: String,
    conns: Vec<Conn>,
    events_tx: Sender<(usize, u64, Event)>,
    events: Receiver<(usize, u64, Event)>,
    /// Events read while a stopped connection was being dealt with.
    backlog: VecDeque<(usize, u64, Event)>,
    generations: u64,
    /// What the connections that were replaced said.
    summary: ChildSummary,
    /// Units queued and finished (done, or lost with a refused COPY) per connection index,
    /// over every psql that served it: for the trace.
    queued: Vec<u64>,
    finished: Vec<u64>,
    pub(crate) failed_copies: Vec<FailedCopy>,
}

impl Pool {
    pub(crate) fn open(cfg: Arc<Config>, token: &str, db: Option<&str>) -> Result<Pool> {
        let conn = match db {
            Some(d) => cfg.conn.with_db(d),
            None => cfg.conn.clone(),
        };
        let (events_tx, events) = channel();
        let mut pool = Pool {
            marker: Bytes::from(format!("\\echo {token}\n")),
            token: token.to_string(),
            cfg,
            conn,
            db: db.map(str::to_string),
            conns: Vec::new(),
            events_tx,
            events,
            backlog: VecDeque::new(),
            generations: 0,
            summary: ChildSummary::default(),
            queued: vec![0],
            finished: vec![0],
            failed_copies: Vec::new(),
        };
        let c = pool.start(0)?;
        pool.conns.push(c);
        Ok(pool)
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Opens connections until there are `n`.
    pub(crate) fn ensure(&mut self, n: usize) -> Result<()> {
        while self.conns.len() < n {
            let c = self.start(self.conns.len())?;
            self.conns.push(c);
            self.queued.push(0);
            self.finished.push(0);
        }
        Ok(())
    }

    /// Units queued on connection index `w` so far, and how many of them finished.
    pub(crate) fn counts(&self, w: usize) -> (u64, u64) {
        (self.queued[w], self.finished[w])
    }

    /// Starts psql for connection `index`, with its writer and reader threads.
    fn start(&mut self, index: usize) -> Result<Conn> {
        let cmd = crate::pg::psql_command(&self.cfg.program, &self.conn, self.cfg.on_error_stop);
        let doing = format!(
            "restoring into {} (connection {} of {})",
            self.conn.describe(),
            index + 1,
            self.cfg.jobs
        );
        let (mut child, stdout) = FedChild::spawn(cmd, "psql", doing, &self.cfg.children, true)?;
        self.generations += 1;
        let generation = self.generations;
        let stdin = child.take_stdin().expect("piped");
        let (tx, rx) = sync_channel::<Job>(DEPTH as usize);
        let events = self.events_tx.clone();
        let first: &'static [u8] = if self.cfg.jobs > 1 {
            MANY_CONNECTIONS
        } else {
            b""
        };
        let writer = std::thread::spawn(move || {
            let mut stdin = stdin;
            if stdin.write_all(first).is_err() {
                let _ = events.send((index, generation, Event::StoppedReading));
                return;
            }
            for job in rx {
                if job.parts.iter().any(|p| stdin.write_all(p).is_err()) {
                    let _ = events.send((index, generation, Event::StoppedReading));
                    return;
                }
            }
        });
        let reader = reader(
            stdout.expect("piped"),
            self.token.clone(),
            self.events_tx.clone(),
            (index, generation),
        );
        Ok(Conn {
            child,
            tx: Some(tx),
            writer: Some(writer),
            reader: Some(reader),
            generation,
            applied: Arc::new(Vec::new()),
            sent: 0,
            done: 0,
            inflight: VecDeque::new(),
        })
    }

    /// Units sent to connection `w` and not yet done.
    pub(crate) fn outstanding(&self, w: usize) -> u64 {
        let c = &self.conns[w];
        c.sent - c.done
    }

    /// Whether a chunk of `table` (canonical name) is queued or running anywhere.
    pub(crate) fn table_in_flight(&self, table: &str) -> bool {
        self.conns.iter().any(|c| {
            c.inflight.iter().any(|u| {
                u.as_ref()
                    .and_then(|u| u.table.as_deref())
                    .is_some_and(|t| super::sql::canonical_table(t) == table)
            })
        })
    }

    /// Whether connection `w` has a guarded COPY chunk not yet done.
    pub(crate) fn guarded_inflight(&self, w: usize) -> bool {
        self.conns[w]
            .inflight
            .iter()
            .any(|u| u.as_ref().is_some_and(|u| u.table.is_some()))
    }

    /// The bytes that run `unit` on connection `w`, from the settings it has now.
    fn job(&mut self, w: usize, unit: &Unit) -> Job {
        let guard = unit.table.is_some() && !self.cfg.on_error_stop;
        let c = &mut self.conns[w];
        let mut parts = vec![Bytes::from(settle_bytes(&c.applied, &unit.before))];
        if guard {
            parts.push(Bytes::from_static(b"\\set ON_ERROR_STOP on\n"));
        }
        parts.push(unit.text.clone());
        let mut tail = Vec::new();
        if let Some(rows) = &unit.rows {
            parts.push(rows.clone());
            tail.extend_from_slice(crate::split::copy_end_line(crate::split::rows_are_crlf(
                rows,
            )));
        }
        if guard {
            tail.extend_from_slice(b"\\set ON_ERROR_STOP off\n");
        }
        tail.extend_from_slice(&self.marker);
        parts.push(Bytes::from(tail));
        c.applied = unit.after.clone();
        Job { parts }
    }

    /// Sends a unit to connection `w`, bringing it to the unit's settings first.
    pub(crate) fn send(&mut self, w: usize, unit: Unit) -> Result<()> {
        let job = self.job(w, &unit);
        self.queued[w] += 1;
        let c = &mut self.conns[w];
        c.sent += 1;
        c.inflight.push_back(Some(unit));
        let sent = c.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            self.stopped(w)?;
        }
        Ok(())
    }

    /// Bytes as they are to connection 1 (a serial COPY's rows, passthrough); `done` ends a
    /// unit.
    pub(crate) fn raw(&mut self, bytes: Bytes, done: bool) -> Result<()> {
        let mut parts = vec![bytes];
        let c = &mut self.conns[0];
        if done {
            parts.push(self.marker.clone());
            self.queued[0] += 1;
            c.sent += 1;
            c.inflight.push_back(None);
        }
        let sent =
            c.tx.as_ref()
                .is_some_and(|tx| tx.send(Job { parts }).is_ok());
        if !sent {
            self.stopped(0)?;
        }
        Ok(())
    }

    /// Brings connection 1 to `state` with bytes that are not a unit (before passthrough,
    /// a serial COPY's statement).
    pub(crate) fn settle_raw(&mut self, state: &State, after: &State) -> Result<Vec<u8>> {
        let c = &mut self.conns[0];
        let bytes = settle_bytes(&c.applied, state);
        c.applied = after.clone();
        Ok(bytes)
    }

    /// The next event of a connection, blocking: a unit done (its connection's index), or an
    /// error when a connection stopped and could not be replaced. `Ok(None)` after a guarded
    /// COPY failed and its connection was replaced: something changed, look again.
    pub(crate) fn next(&mut self) -> Result<Option<usize>> {
        let (w, generation, event) = match self.backlog.pop_front() {
            Some(e) => e,
            None => self.events.recv().map_err(|_| Error::Internal {
                what: "the parallel loader",
                reason: "every connection's threads ended".into(),
            })?,
        };
        self.event(w, generation, event)
    }

    /// Like [`Pool::next`], without blocking: `Ok(None)` when nothing happened.
    pub(crate) fn poll(&mut self) -> Result<()> {
        while let Some((w, g, e)) = self
            .backlog
            .pop_front()
            .or_else(|| self.events.try_recv().ok())
        {
            self.event(w, g, e)?;
        }
        Ok(())
    }

    fn event(&mut self, w: usize, generation: u64, event: Event) -> Result<Option<usize>> {
        let Some(c) = self.conns.get_mut(w).filter(|c| c.generation == generation) else {
            // A connection that was replaced.
            return Ok(None);
        };
        match event {
            Event::Done => {
                c.done += 1;
                c.inflight.pop_front();
                self.finished[w] += 1;
                Ok(Some(w))
            }
            Event::Exited | Event::StoppedReading => self.stopped(w).map(|()| None),
        }
    }

    /// Connection `w` stopped: a guarded COPY the server refused (psql exited with status 3
    /// at the chunk that is its oldest unit) is replaced by a new connection that runs what
    /// followed; anything else stops every connection, with psql's words.
    fn stopped(&mut self, w: usize) -> Result<()> {
        let c = &mut self.conns[w];
        drop(c.tx.take());
        let (status, summary) = c.child.wait();
        if let Some(h) = c.reader.take() {
            let _ = h.join();
        }
        if let Some(h) = c.writer.take() {
            let _ = h.join();
        }
        // Every token it printed is in the channel now: count them before deciding.
        while let Ok((i, g, e)) = self.events.try_recv() {
            if i == w && g == self.conns[w].generation && e == Event::Done {
                let c = &mut self.conns[w];
                c.done += 1;
                c.inflight.pop_front();
                self.finished[w] += 1;
            } else if i != w || e == Event::Done {
                self.backlog.push_back((i, g, e));
            }
        }
        let c = &mut self.conns[w];
        let refused_copy = !self.cfg.on_error_stop
            && status.as_ref().ok().and_then(|s| s.code()) == Some(3)
            && c.inflight
                .front()
                .is_some_and(|u| u.as_ref().is_some_and(|u| u.table.is_some()))
            && c.inflight.iter().skip(1).all(Option::is_some);
        if !refused_copy {
            let what = match &status {
                Ok(s) if s.code() == Some(3) => "it stopped at an error".to_string(),
                Ok(s) if s.success() => "it exited".to_string(),
                Ok(s) => format!("it exited ({s})"),
                Err(e) => e.to_string(),
            };
            let status = status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            return Err(self.fail(w, &what, status, &summary));
        }
        let failed = c.inflight.pop_front().flatten().expect("checked above");
        self.finished[w] += 1;
        let rest: Vec<Unit> = std::mem::take(&mut c.inflight)
            .into_iter()
            .flatten()
            .collect();
        self.merge(summary);
        self.record_failed(&failed);
        self.conns[w] = self.start(w)?;
        for unit in rest {
            // Another chunk of the refused table: refused too, so not sent again.
            if unit.table.as_deref().is_some_and(|t| self.refused(t)) {
                self.record_failed(&unit);
                continue;
            }
            let job = self.job(w, &unit);
            let c = &mut self.conns[w];
            c.sent += 1;
            c.inflight.push_back(Some(unit));
            if c.tx.as_ref().is_none_or(|tx| tx.send(job).is_err()) {
                let (status, summary) = self.conns[w].child.wait();
                let status = status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string());
                return Err(self.fail(w, "it exited as it started", status, &summary));
            }
        }
        Ok(())
    }

    /// A refused COPY chunk: its table's rows not loaded, one entry a table.
    pub(crate) fn record_failed(&mut self, failed: &Unit) {
        let rows = failed.rows.as_deref().unwrap_or_default();
        let table = failed.table.clone().unwrap_or_default();
        let (n, bytes) = (
            memchr::memchr_iter(b'\n', rows).count() as u64,
            rows.len() as u64,
        );
        // One entry a table, its chunks summed.
        match self.failed_copies.iter_mut().find(|f| f.table == table) {
            Some(f) => {
                f.rows += n;
                f.bytes += bytes;
            }
            None => self.failed_copies.push(FailedCopy {
                database: self.db.clone(),
                table,
                rows: n,
                bytes,
            }),
        }
    }

    /// Whether a COPY chunk of `table` was refused in this database already.
    pub(crate) fn refused(&self, table: &str) -> bool {
        self.failed_copies.iter().any(|f| f.table == table)
    }

    fn merge(&mut self, s: ChildSummary) {
        self.summary.sql_errors += s.sql_errors;
        for e in s.first_errors {
            if self.summary.first_errors.len() < 5 {
                self.summary.first_errors.push(e);
            }
        }
    }

    /// Stops every connection and says why connection `w` stopped, in its own words.
    fn fail(&mut self, w: usize, what: &str, status: String, summary: &ChildSummary) -> Error {
        self.kill();
        Error::Child {
            program: "psql".into(),
            doing: format!(
                "restoring into {} (connection {} of {}: {what}; every connection was stopped)",
                self.conn.describe(),
                w + 1,
                self.cfg.jobs
            ),
            status,
            stderr: summary.tail.join("\n"),
        }
    }

    /// Closes every connection (end of input) and waits for them: what they said, or the
    /// first one's error.
    pub(crate) fn close(mut self) -> Result<(ChildSummary, Vec<FailedCopy>)> {
        for c in &mut self.conns {
            drop(c.tx.take());
            if let Some(h) = c.writer.take() {
                let _ = h.join();
            }
        }
        let mut failure = None;
        let mut conns = std::mem::take(&mut self.conns);
        for c in &mut conns {
            let (status, s) = c.child.wait();
            if let Some(h) = c.reader.take() {
                let _ = h.join();
            }
            let err = match status {
                Ok(st) if st.success() => None,
                Ok(st) => Some(c.child.error(st.to_string(), &s)),
                Err(e) => Some(crate::child::start_err("psql", e)),
            };
            failure = failure.or(err);
            self.merge(s);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok((
                std::mem::take(&mut self.summary),
                std::mem::take(&mut self.failed_copies),
            )),
        }
    }

    /// Stops every connection (a failure elsewhere, Ctrl-C).
    pub(crate) fn kill(&mut self) {
        for c in &mut self.conns {
            drop(c.tx.take());
            c.child.kill();
        }
        for c in &mut self.conns {
            let _ = c.child.wait();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a connection's stdout: one [`Event::Done`] per token line, [`Event::Exited`] at
/// its end.
fn reader(
    stdout: ChildStdout,
    token: String,
    events: Sender<(usize, u64, Event)>,
    (index, generation): (usize, u64),
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            if line.strip_suffix(b"\n").unwrap_or(&line) == token.as_bytes() {
                let _ = events.send((index, generation, Event::Done));
            }
            line.clear();
        }
        let _ = events.send((index, generation, Event::Exited));
    })
}

/// What brings a connection from the settings `have` to `want`: the settings it has that
/// `want` lacks are reset, then everything from the first difference on is set again in
/// order (a later `SET SESSION AUTHORIZATION` resets the role, so order matters).
pub(crate) fn settle_bytes(have: &State, want: &State) -> Vec<u8> {
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
}
