//! The report of a parallel restore (`restore --jobs N` on a plain dump): the time of each
//! phase, the work it did, and why it fell back to one connection. A module of its own so
//! that the restoring child's summary (`child::ChildSummary`) can carry it without importing
//! the loader that fills it in; and the `Clock` that times those phases and says them,
//! and what each connection runs, with `-v`.

use serde::Serialize;

/// Time spent in each phase, summed over the databases.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Phases {
    pub connections: u32,
    /// Before the first data item (waiting for the stream included).
    pub schema_seconds: f64,
    /// COPY chunks and other data, until every connection finished its last chunk.
    pub data_seconds: f64,
    pub index_seconds: f64,
    pub fk_seconds: f64,
    pub rest_seconds: f64,
    pub copy_chunks: u64,
    /// COPY rows and their bytes sent over the connections.
    pub data_rows: u64,
    pub data_bytes: u64,
    /// Items that ran as barriers or after the stream fell back to one connection.
    pub serial_items: u64,
    /// Indexes, constraints and foreign keys that were scheduled over the connections.
    pub parallel_items: u64,
    /// Set when the stream fell back to one connection, and why.
    pub fallback: Option<String>,
    /// Of the parallel items, those that started while the data still loaded (two reads).
    pub early_items: u64,
}

/// A chunk whose COPY the server refused: its rows were not loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedCopy {
    pub database: Option<String>,
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The clock of the phases and the `-v` lines of a parallel restore: when the schema, the
/// data and each post-data phase of a database end, and what each connection runs.
#[derive(Debug)]
pub(crate) struct Clock {
    verbose: bool,
    jobs: u32,
    /// When the current phase began.
    phase_start: std::time::Instant,
    /// When the first data unit of this database was sent (the end of its schema phase).
    first_parallel: Option<std::time::Instant>,
    /// The counters when the current database began, or when its data was last reported.
    db_start: Phases,
}

impl Clock {
    pub(crate) fn new(verbose: bool, jobs: u32) -> Clock {
        Clock {
            verbose,
            jobs,
            phase_start: std::time::Instant::now(),
            first_parallel: None,
            db_start: Phases::default(),
        }
    }

    /// A line on stderr with `-v`.
    pub(crate) fn say(&self, msg: &str) {
        if self.verbose {
            eprintln!(
                "a9s-recover: restore --jobs {}: {}",
                self.jobs,
                crate::text::escape_message(msg)
            );
        }
    }

    /// `-v`: what connection `w` runs: its first line, and for a COPY chunk its rows and size.
    pub(crate) fn sending(&self, w: usize, text: &[u8], rows: Option<&[u8]>) {
        if !self.verbose {
            return;
        }
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
        eprintln!(
            "a9s-recover: restore --jobs {}: connection {}: {}",
            self.jobs,
            w + 1,
            crate::text::escape(&line)
        );
    }

    /// The first data unit of the database was sent.
    pub(crate) fn data_begins(&mut self) {
        self.first_parallel
            .get_or_insert_with(std::time::Instant::now);
    }

    /// Every connection finished the data (`pre`: no data item came): the time since the
    /// phase began goes to the schema and the data, and `-v` says what the data was.
    pub(crate) fn data_end(&mut self, phases: &mut Phases, pre: bool, db: &str) {
        let now = std::time::Instant::now();
        let s = (now - self.phase_start).as_secs_f64();
        if pre {
            phases.schema_seconds += s;
        } else {
            let schema = self
                .first_parallel
                .map(|t| (t.max(self.phase_start) - self.phase_start).as_secs_f64())
                .unwrap_or(s);
            phases.schema_seconds += schema;
            phases.data_seconds += s - schema;
            let chunks = phases.copy_chunks - self.db_start.copy_chunks;
            if chunks > 0 {
                self.say(&format!(
                    "{db}: schema {schema:.1}s; data {:.1}s: {} rows, {} in {chunks} chunks",
                    s - schema,
                    phases.data_rows - self.db_start.data_rows,
                    crate::format_bytes(phases.data_bytes - self.db_start.data_bytes),
                ));
                // Said once: a later end of a phase in this database counts from here.
                self.db_start.copy_chunks = phases.copy_chunks;
                self.db_start.data_rows = phases.data_rows;
                self.db_start.data_bytes = phases.data_bytes;
            }
        }
        self.phase_start = now;
    }

    /// The post-data phases ended: indexes and constraints from `t0` to `t1`, foreign keys to
    /// `t2`, the rest until now.
    pub(crate) fn post_end(
        &mut self,
        phases: &mut Phases,
        db: &str,
        (t0, t1, t2): (std::time::Instant, std::time::Instant, std::time::Instant),
    ) {
        let (index, fk, rest) = (
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            t2.elapsed().as_secs_f64(),
        );
        self.say(&format!(
            "{db}: indexes and constraints {index:.1}s, foreign keys {fk:.1}s, the rest {rest:.1}s"
        ));
        phases.index_seconds += index;
        phases.fk_seconds += fk;
        phases.rest_seconds += rest;
        self.phase_start = std::time::Instant::now();
    }

    /// The database's connections closed: the next one's phases count from now.
    pub(crate) fn database_closed(&mut self, phases: &Phases) {
        self.db_start = phases.clone();
        self.phase_start = std::time::Instant::now();
        self.first_parallel = None;
    }
}
