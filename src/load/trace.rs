//! `restore --trace FILE`: one JSON line per unit of work the loader ran (what it was, its
//! database and table, bytes and rows, the connection, when the stream produced it, when it
//! started and ended), and per phase boundary. The simulator ([`super::simulate`]) replays a
//! trace at other connection counts.
//!
//! `ready` is the time the stream produced the unit *without* the loader's waits (the time
//! the loader spent blocked on its connections is subtracted), so that a replay with more
//! connections than the run had can tell when the stream itself would have been the limit.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::plan::{Op, Unit};
use super::pool::Pool;
use super::sql::Locks;
use crate::error::{Error, Result};

/// One line of a trace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The order the loader took it in.
    pub seq: u64,
    /// `data`, `lane`, `serial`, `index`, `fk`, `attach`, `rest`, `passthrough` (units);
    /// `post`, `data_end`, `close` (boundaries).
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub rows: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<usize>,
    /// Seconds since the load began: produced by the stream (waits excluded), started on
    /// its connection, ended.
    #[serde(default)]
    pub ready: f64,
    #[serde(default)]
    pub start: f64,
    #[serde(default)]
    pub end: f64,
    /// Post-data items: the tables they lock (`shared`: a lone `CREATE INDEX`; `all`: any
    /// table), and the bytes of data their table had (largest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default)]
    pub weight: u64,
}

impl Line {
    /// The locks of a post-data item.
    pub(crate) fn locks(&self) -> Locks {
        if self.all {
            Locks::All
        } else {
            Locks::Tables {
                tables: self.tables.clone(),
                shared: self.shared,
            }
        }
    }

    /// Whether it is a unit of work (not a boundary).
    pub fn is_unit(&self) -> bool {
        !matches!(self.op.as_str(), "post" | "data_end" | "close")
    }
}

/// Writes the trace of a run.
pub(crate) struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    t0: Instant,
    seq: u64,
    /// The time the loader spent waiting for its connections.
    blocked: f64,
    /// The stream time of the operation being carried out.
    ready: f64,
    db: Option<String>,
    locks: Option<(Locks, u64)>,
    /// Units sent and not yet finished, per connection: (its number in that connection's
    /// count, the line).
    pending: Vec<VecDeque<(u64, Line)>>,
    last_end: Vec<f64>,
    passthrough: Option<(u64, f64)>,
    error: Option<std::io::Error>,
}

impl Recorder {
    pub(crate) fn create(path: &Path) -> Result<Recorder> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::Output {
                what: path.display().to_string(),
                source: e,
            })?;
        Ok(Recorder {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            t0: Instant::now(),
            seq: 0,
            blocked: 0.0,
            ready: 0.0,
            db: None,
            locks: None,
            pending: Vec::new(),
            last_end: Vec::new(),
            passthrough: None,
            error: None,
        })
    }

    fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn write(&mut self, line: &Line) {
        if self.error.is_none() {
            let mut text = serde_json::to_vec(line).unwrap_or_default();
            text.push(b'\n');
            if let Err(e) = self.out.write_all(&text) {
                self.error = Some(e);
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The loader waited `seconds` for its connections.
    pub(crate) fn blocked(&mut self, seconds: f64) {
        self.blocked += seconds;
    }

    /// The loader takes `op` now: boundaries are written at once.
    pub(crate) fn op(&mut self, op: &Op, db: Option<&str>) {
        self.db = db.map(str::to_string);
        self.ready = self.now() - self.blocked;
        let boundary = match op {
            Op::Post(_) => "post",
            Op::DataEnd { .. } => "data_end",
            Op::Passthrough(_) => {
                self.passthrough = Some((self.next_seq(), self.now()));
                return;
            }
            _ => return,
        };
        let line = Line {
            seq: self.next_seq(),
            op: boundary.into(),
            db: self.db.clone(),
            ready: self.ready,
            start: self.now(),
            end: self.now(),
            ..Line::default()
        };
        self.write(&line);
    }

    /// The locks and weight of the post-data item sent next.
    pub(crate) fn locks(&mut self, locks: &Locks, weight: u64) {
        self.locks = Some((locks.clone(), weight));
    }

    /// `unit` was sent to connection `w` as that connection's `k`-th unit.
    pub(crate) fn sent(&mut self, kind: &str, unit: &Unit, w: usize, k: u64) {
        let rows = unit.rows.as_deref().unwrap_or_default();
        let (locks, weight) = self.locks.take().unzip();
        let (tables, shared, all) = match locks {
            Some(Locks::Tables { tables, shared }) => (tables, shared, false),
            Some(Locks::All) => (Vec::new(), false, true),
            None => (Vec::new(), false, false),
        };
        let line = Line {
            seq: self.next_seq(),
            op: kind.into(),
            db: self.db.clone(),
            table: unit.table.clone(),
            bytes: (unit.text.len() + rows.len()) as u64,
            rows: memchr::memchr_iter(b'\n', rows).count() as u64,
            conn: Some(w),
            ready: self.ready,
            start: self.now(),
            tables,
            shared,
            all,
            weight: weight.unwrap_or(0),
            ..Line::default()
        };
        while self.pending.len() <= w {
            self.pending.push(VecDeque::new());
            self.last_end.push(0.0);
        }
        self.pending[w].push_back((k, line));
    }

    /// Writes the lines of the units the pool finished since the last call.
    pub(crate) fn sync(&mut self, pool: &Pool) {
        let now = self.now();
        for w in 0..self.pending.len().min(pool.len()) {
            let (_, finished) = pool.counts(w);
            while self.pending[w].front().is_some_and(|(k, _)| *k <= finished) {
                let (_, mut line) = self.pending[w].pop_front().expect("checked");
                // It started when it was sent or when the one before it ended.
                line.start = line.start.max(self.last_end[w]);
                line.end = now;
                self.last_end[w] = now;
                self.write(&line);
            }
        }
    }

    /// The database's connections closed.
    pub(crate) fn closed(&mut self) {
        let now = self.now();
        for q in &mut self.pending {
            q.clear();
        }
        for e in &mut self.last_end {
            *e = 0.0;
        }
        if let Some((seq, start)) = self.passthrough.take() {
            let line = Line {
                seq,
                op: "passthrough".into(),
                db: self.db.clone(),
                conn: Some(0),
                ready: start,
                start,
                end: now,
                ..Line::default()
            };
            self.write(&line);
        }
        let line = Line {
            seq: self.next_seq(),
            op: "close".into(),
            db: self.db.clone(),
            ready: now - self.blocked,
            start: now,
            end: now,
            ..Line::default()
        };
        self.write(&line);
    }

    pub(crate) fn finish(mut self) -> Result<()> {
        let flushed = self.out.flush();
        match self.error.take().map_or(flushed, Err) {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::Output {
                what: self.path.display().to_string(),
                source: e,
            }),
        }
    }
}

/// Reads a trace: its lines in the order the loader took them.
pub fn read(path: &Path) -> Result<Vec<Line>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the trace {}: {e}; make one with restore --trace FILE",
            path.display()
        ))
    })?;
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(l).map_err(|e| {
            Error::Config(format!(
                "{}:{}: not a line of a trace (restore --trace): {e}",
                path.display(),
                i + 1
            ))
        })?;
        lines.push(line);
    }
    lines.sort_by_key(|l| l.seq);
    if !lines.iter().any(Line::is_unit) {
        return Err(Error::Config(format!(
            "{}: the trace holds no unit of work: was it written by restore --trace of a plain dump?",
            path.display()
        )));
    }
    Ok(lines)
}
