//! The post-data of a database known before its data (the two-pass plan): each table's
//! indexes and constraints start as soon as its rows are in, a foreign key once both its
//! tables' are, while later tables load. Pure: the loader says which tables' COPY ended
//! and whether their chunks are still in flight, and asks for the schedule.
//!
//! An item is *released* (pushed to the schedule, whose lock rule and largest-first order
//! are as in the post-data phase) when every table it locks is released; a table is released
//! when its COPY ended in the stream and none of its chunks is still queued or running. An
//! item on a table without a COPY of its own (a partitioned parent, a table loaded by
//! `INSERT`s, an unknown lock) waits for the end of the database's data, as in one pass.

use std::collections::HashSet;

use super::plan::{PostData, Scheduled, Unit};
use super::schedule::{Schedule, Ticket};
use super::sql::Locks;

/// What the schedule hands out: the kind (for the trace), the locks, the weight, the unit.
pub(crate) type Job = (&'static str, Locks, u64, Unit);

/// One database's post-data while its data loads.
#[derive(Debug)]
pub(crate) struct Early {
    /// Not yet released: (group, item).
    waiting: Vec<(u8, Scheduled)>,
    released: HashSet<String>,
    /// Tables whose COPY ended; released once nothing of theirs is in flight.
    ended: Vec<String>,
    pub(crate) schedule: Schedule<Job>,
    /// The ticket of the post-data item each connection runs.
    pub(crate) on: Vec<Option<Ticket>>,
    /// Items handed out before the data ended.
    pub(crate) started: u64,
    /// A connection that gets no more data until it is idle, for the next item ready: the
    /// data keeps every connection busy when the stream is faster than the server.
    pub(crate) draining: Option<usize>,
    /// The post-data as the first read saw it, to compare with the second read's.
    pub(crate) expected: PostData,
}

impl Early {
    /// Only the indexes, constraints and foreign keys are taken early; `post` must have no
    /// `INDEX ATTACH` (the caller keeps one pass for such a database).
    pub(crate) fn new(post: &PostData, jobs: usize) -> Early {
        let mut waiting = Vec::with_capacity(post.index.len() + post.fk.len());
        waiting.extend(post.index.iter().cloned().map(|s| (0, s)));
        waiting.extend(post.fk.iter().cloned().map(|s| (1, s)));
        Early {
            waiting,
            released: HashSet::new(),
            ended: Vec::new(),
            schedule: Schedule::default(),
            on: vec![None; jobs],
            started: 0,
            draining: None,
            expected: post.clone(),
        }
    }

    /// pg_dump's COPY of `table` (canonical name) ended in the stream.
    pub(crate) fn table_end(&mut self, table: String) {
        if !self.released.contains(&table) && !self.ended.contains(&table) {
            self.ended.push(table);
        }
    }

    /// Releases the tables whose chunks are all done (`in_flight` says which are not), and
    /// the items whose tables are all released. Returns whether anything was pushed.
    pub(crate) fn release(&mut self, in_flight: impl Fn(&str) -> bool) -> bool {
        let before = self.released.len();
        let ended = std::mem::take(&mut self.ended);
        for t in ended {
            if in_flight(&t) {
                self.ended.push(t);
            } else {
                self.released.insert(t);
            }
        }
        if self.released.len() == before {
            return false;
        }
        self.push_where(|released, locks| match locks {
            Locks::Tables { tables, .. } => tables.iter().all(|t| released.contains(t)),
            Locks::All => false,
        })
    }

    /// The data ended: everything is released.
    pub(crate) fn release_all(&mut self) {
        self.ended.clear();
        self.push_where(|_, _| true);
    }

    fn push_where(&mut self, ready: impl Fn(&HashSet<String>, &Locks) -> bool) -> bool {
        let mut pushed = false;
        let waiting = std::mem::take(&mut self.waiting);
        for (group, (locks, weight, unit)) in waiting {
            if ready(&self.released, &locks) {
                let kind = if group == 0 { "index" } else { "fk" };
                self.schedule
                    .push(group, locks.clone(), weight, (kind, locks, weight, unit));
                pushed = true;
            } else {
                self.waiting.push((group, (locks, weight, unit)));
            }
        }
        pushed
    }

    /// The items taken early, in all.
    pub(crate) fn items(&self) -> u64 {
        (self.expected.index.len() + self.expected.fk.len()) as u64
    }

    /// Connections running a post-data item.
    pub(crate) fn busy(&self) -> usize {
        self.on.iter().filter(|t| t.is_some()).count()
    }

    /// Nothing left: no item waiting for its tables, in the schedule or running.
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.waiting.is_empty() && self.schedule.is_empty()
    }
}

/// The first difference between two reads' post-data, if any: (which item, as the first
/// read had it, as the second has it).
pub(crate) fn first_difference(a: &PostData, b: &PostData) -> Option<String> {
    let phases: [(&str, Vec<&Unit>, Vec<&Unit>); 4] = [
        (
            "index or constraint",
            a.index.iter().map(|s| &s.2).collect(),
            b.index.iter().map(|s| &s.2).collect(),
        ),
        (
            "INDEX ATTACH",
            a.attach.iter().collect(),
            b.attach.iter().collect(),
        ),
        (
            "foreign key",
            a.fk.iter().map(|s| &s.2).collect(),
            b.fk.iter().map(|s| &s.2).collect(),
        ),
        (
            "post-data item",
            a.rest.iter().collect(),
            b.rest.iter().collect(),
        ),
    ];
    let first_line = |u: Option<&&Unit>| match u {
        Some(u) => {
            let s = String::from_utf8_lossy(&u.text);
            let l = s.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
            let l: String = l.chars().take(120).collect();
            format!("`{}`", crate::text::escape_message(&l))
        }
        None => "nothing".into(),
    };
    for (what, x, y) in phases {
        for i in 0..x.len().max(y.len()) {
            let (u, v) = (x.get(i), y.get(i));
            let same = match (u, v) {
                (Some(u), Some(v)) => u.text == v.text,
                _ => false,
            };
            if !same {
                return Some(format!(
                    "{what} {}: {} in the first read, {} in the second",
                    i + 1,
                    first_line(u),
                    first_line(v)
                ));
            }
        }
    }
    None
}
