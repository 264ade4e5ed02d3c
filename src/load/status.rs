//! What the operator sees of a load while it runs (issue 20 §4): on a terminal, a status
//! line under the stream's bar, redrawn four times a second; with `-v` and no terminal, the
//! same as a line every 3 s. The phase, the database, the data sent against the first read's
//! total (rows and bytes), the post-data items done of their total, what each connection
//! runs, an estimate of the time left for the whole load, and for an index being built what
//! `pg_stat_progress_create_index` says of it (asked every 2 s on a connection of its own,
//! one row per running build: bounded whatever the size of the database).
//!
//! The loader's thread only updates a snapshot under a mutex; a thread of this module draws
//! it and asks the server. Nothing here can fail the load: a progress query that fails is
//! simply not shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::pg::ConnInfo;
use crate::progress::Progress;

/// What the status shows, as the loader last said.
#[derive(Debug, Default)]
struct Snap {
    db: String,
    phase: &'static str,
    sent: u64,
    rows: u64,
    total: Option<u64>,
    post_started: u64,
    post_total: u64,
    /// The first line of what each connection runs, and whether it is a post-data item.
    running: Vec<Option<(String, bool)>>,
    /// `pg_stat_progress_create_index`, for the builds running now.
    index: Option<String>,
    data_began: Option<Instant>,
    post_began: Option<Instant>,
    post_done_at_begin: u64,
}

impl Snap {
    fn post_running(&self) -> u64 {
        self.running
            .iter()
            .filter(|r| r.as_ref().is_some_and(|(_, post)| *post))
            .count() as u64
    }

    fn post_done(&self) -> u64 {
        self.post_started.saturating_sub(self.post_running())
    }

    /// Seconds left, where an estimate can be made: the data by its rate so far, the
    /// post-data by the items done so far.
    fn eta(&self) -> Option<f64> {
        let mut left = 0.0;
        let mut known = false;
        if let (Some(t), Some(total)) = (self.data_began, self.total) {
            if self.sent > 0 && self.sent < total && self.post_began.is_none() {
                left += t.elapsed().as_secs_f64() * (total - self.sent) as f64 / self.sent as f64;
                known = true;
            }
        }
        if let Some(t) = self.post_began {
            let done = self.post_done().saturating_sub(self.post_done_at_begin);
            let todo = self.post_total.saturating_sub(self.post_done());
            if done > 0 {
                left += t.elapsed().as_secs_f64() * todo as f64 / done as f64;
                known = true;
            }
        }
        known.then_some(left)
    }

    /// Most important first (a narrow terminal cuts the end): the phase and how far, the
    /// time left, then the details and what runs.
    fn render(&self) -> String {
        let mut s = format!("{} {}", self.db, self.phase);
        if let Some(total) = self.total.filter(|&t| t > 0) {
            s.push_str(&format!(
                " {:.0}%",
                100.0 * self.sent.min(total) as f64 / total as f64
            ));
        }
        if self.post_total > 0 {
            s.push_str(&format!(
                ", post-data {}/{}",
                self.post_done().min(self.post_total),
                self.post_total
            ));
        }
        if let Some(left) = self.eta() {
            s.push_str(&format!(", about {left:.0}s left"));
        }
        if self.sent > 0 {
            s.push_str(&format!(
                "; data {} rows, {}",
                self.rows,
                crate::format_bytes(self.sent)
            ));
            if let Some(total) = self.total.filter(|&t| t > 0) {
                s.push_str(&format!(" of {}", crate::format_bytes(total)));
            }
        }
        let running: Vec<&str> = self
            .running
            .iter()
            .flatten()
            .filter(|(_, post)| *post)
            .map(|(l, _)| l.as_str())
            .collect();
        if !running.is_empty() {
            s.push_str(&format!("; running: {}", running.join(" | ")));
        }
        if let Some(i) = &self.index {
            s.push_str(&format!(" ({i})"));
        }
        // Names (a database's and a table's, from the dump; the server's answers) reach the
        // terminal only escaped, and the line stays one line.
        crate::text::escape(&s)
    }
}

/// The status of one load, and the thread that shows it.
#[derive(Debug)]
pub(crate) struct Status {
    snap: Arc<Mutex<Snap>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How to ask the server about index builds.
pub(crate) struct Probe {
    pub psql: std::path::PathBuf,
    pub conn: ConnInfo,
}

impl Status {
    /// A status shown on the terminal (`bar`), or as `-v` lines every 3 s (`lines`), or
    /// neither (then nothing runs).
    pub(crate) fn start(bar: bool, lines: bool, jobs: u32, probe: Option<Probe>) -> Status {
        let snap = Arc::new(Mutex::new(Snap {
            phase: "schema",
            running: vec![None; jobs.max(1) as usize],
            ..Snap::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (bar || lines).then(|| {
            let (snap, stop) = (snap.clone(), stop.clone());
            std::thread::spawn(move || show(&snap, &stop, bar, jobs, probe.as_ref()))
        });
        Status { snap, stop, thread }
    }

    /// Whether anything is shown.
    pub(crate) fn active(&self) -> bool {
        self.thread.is_some()
    }

    fn with(&self, f: impl FnOnce(&mut Snap)) {
        if self.thread.is_some() {
            if let Ok(mut s) = self.snap.lock() {
                f(&mut s);
            }
        }
    }

    pub(crate) fn database(&self, db: &str, total: Option<u64>, post_total: u64) {
        self.with(|s| {
            s.db = db.to_string();
            s.phase = "schema";
            s.total = total;
            s.sent = 0;
            s.rows = 0;
            s.post_started = 0;
            s.post_total = post_total;
            s.data_began = None;
            s.post_began = None;
            s.index = None;
        })
    }

    /// Connection `w` runs `text` (`kind` as the loader names it), with `rows` of COPY data.
    pub(crate) fn sending(&self, w: usize, kind: &str, text: &[u8], rows: Option<&[u8]>) {
        self.with(|s| {
            let post = matches!(kind, "index" | "fk" | "attach" | "rest");
            if post {
                s.post_started += 1;
            }
            if kind == "data" {
                s.data_began.get_or_insert_with(Instant::now);
                if s.post_began.is_none() {
                    s.phase = "data";
                }
            }
            if let Some(r) = rows {
                s.sent += r.len() as u64;
                s.rows += memchr::memchr_iter(b'\n', r).count() as u64;
            }
            let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
            let mut line = String::from_utf8_lossy(&first[..first.len().min(72)]).into_owned();
            if first.len() > 72 {
                line.push('…');
            }
            if let Some(slot) = s.running.get_mut(w) {
                *slot = Some((line, post));
            }
        })
    }

    /// Connection `w` has nothing left.
    pub(crate) fn idle(&self, w: usize) {
        self.with(|s| {
            if let Some(slot) = s.running.get_mut(w) {
                *slot = None;
            }
        })
    }

    /// The data of the database is in: the post-data phase (of `total` items).
    pub(crate) fn post_data(&self, total: u64) {
        self.with(|s| {
            s.phase = "post-data";
            s.post_total = s.post_total.max(total);
            s.post_began = Some(Instant::now());
            s.post_done_at_begin = s.post_done();
        })
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: draws the line (or prints it every 3 s) and asks about index builds.
fn show(snap: &Mutex<Snap>, stop: &AtomicBool, bar: bool, jobs: u32, probe: Option<&Probe>) {
    let progress = Progress::status(bar);
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut last_probe = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let building = snap.lock().is_ok_and(|s| {
            s.running.iter().flatten().any(|(l, _)| {
                l.starts_with("CREATE INDEX")
                    || l.starts_with("CREATE UNIQUE INDEX")
                    || l.starts_with("ALTER TABLE")
            })
        });
        if let Some(p) =
            probe.filter(|_| building && last_probe.elapsed() >= Duration::from_secs(2))
        {
            last_probe = Instant::now();
            let found = index_progress(p);
            if let Ok(mut s) = snap.lock() {
                s.index = found;
            }
        } else if !building {
            if let Ok(mut s) = snap.lock() {
                s.index = None;
            }
        }
        let line = match snap.lock() {
            Ok(s) if !s.db.is_empty() => s.render(),
            _ => continue,
        };
        if bar {
            progress.set_message(line);
        } else if last_line.elapsed() >= Duration::from_secs(3) {
            last_line = Instant::now();
            eprintln!(
                "a9s-recover: restore --jobs {jobs}: {:.0}s: {line}",
                started.elapsed().as_secs_f64(),
            );
        }
    }
    progress.finish();
}

/// What `pg_stat_progress_create_index` says of the builds running now (PostgreSQL 12+):
/// `bench: building index: scanning table 45% of blocks` (the database). One short query with a
/// statement timeout; None when it fails or says nothing.
fn index_progress(p: &Probe) -> Option<String> {
    let mut cmd = std::process::Command::new(&p.psql);
    cmd.args(["-X", "-q", "-A", "-t", "-F", "\t", "-c"])
        .arg(
            // The name of another database's relation cannot be read from here: the
            // status line already says which index runs; this says how far it is.
            "SELECT datname, phase, blocks_done, blocks_total, tuples_done, tuples_total \
             FROM pg_stat_progress_create_index",
        )
        .env("PGOPTIONS", "-c statement_timeout=1000")
        // A server at its connection limit, or gone: no answer, not a wait.
        .env("PGCONNECT_TIMEOUT", "2")
        .env("PGAPPNAME", "a9s-recover progress");
    p.conn.apply(&mut cmd);
    let out = crate::child::run_blocking(cmd).ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let parts: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [rel, phase, bd, bt, td, tt] = f.as_slice() else {
                return None;
            };
            let pct = |d: &str, t: &str| -> Option<f64> {
                let (d, t) = (d.parse::<f64>().ok()?, t.parse::<f64>().ok()?);
                (t > 0.0).then(|| 100.0 * d / t)
            };
            let how = pct(bd, bt)
                .map(|p| format!(" {p:.0}% of blocks"))
                .or_else(|| pct(td, tt).map(|p| format!(" {p:.0}% of tuples")))
                .unwrap_or_default();
            Some(format!("{rel}: {phase}{how}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_phase_data_post_data_and_what_runs() {
        let s = Snap {
            db: "shop".into(),
            phase: "data",
            sent: 50 << 20,
            rows: 1000,
            total: Some(100 << 20),
            post_started: 3,
            post_total: 11,
            running: vec![
                Some(("COPY public.t".into(), false)),
                Some(("CREATE INDEX i ON public.t USING btree (a);".into(), true)),
            ],
            index: Some("t: building index: scanning table 45% of blocks".into()),
            data_began: Some(Instant::now() - Duration::from_secs(10)),
            ..Snap::default()
        };
        let line = s.render();
        for part in [
            "shop data 50%, post-data 2/11, about 10s left; ",
            "data 1000 rows, 50.0 MiB of 100.0 MiB",
            "running: CREATE INDEX i ON public.t",
            "(t: building index: scanning table 45% of blocks)",
        ] {
            assert!(line.contains(part), "{part}: {line}");
        }
        let hostile = Snap {
            db: "evil\u{1b}[2J\nname".into(),
            phase: "schema",
            ..Snap::default()
        };
        assert_eq!(hostile.render(), "evil\\e[2J\\nname schema");
    }
}
