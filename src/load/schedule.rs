//! The post-data schedule: which index, constraint or foreign key may start now. Pure: the
//! loader (or the simulator) pushes the items, asks for the next one whenever a connection
//! is idle, and says when one finished; no I/O, no clock, no threads.
//!
//! The rule (pg_restore's, for a stream): items run in the order of their group (indexes and
//! constraints 0, foreign keys 1), within a group the largest table first, and in dump order
//! among equals; an item may start only when it conflicts (see [`Locks::conflicts`]) with
//! nothing running and with no earlier item still waiting. So two items on one table keep
//! their order, a foreign key waits for every earlier item on either of its tables (its
//! referenced key included), and two lone `CREATE INDEX` on one table run together.

use super::sql::Locks;

/// Names an item handed out by [`Schedule::next`], for [`Schedule::finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

#[derive(Debug)]
struct Waiting<T> {
    group: u8,
    weight: u64,
    ticket: Ticket,
    locks: Locks,
    item: T,
}

/// Post-data items waiting and running.
#[derive(Debug)]
pub(crate) struct Schedule<T> {
    /// In the order they may start.
    waiting: Vec<Waiting<T>>,
    running: Vec<(Ticket, u8, Locks)>,
    pushed: u64,
}

impl<T> Default for Schedule<T> {
    fn default() -> Self {
        Schedule {
            waiting: Vec::new(),
            running: Vec::new(),
            pushed: 0,
        }
    }
}

impl<T> Schedule<T> {
    /// Adds an item of `group` whose table had `weight` bytes of data.
    pub(crate) fn push(&mut self, group: u8, locks: Locks, weight: u64, item: T) {
        let ticket = Ticket(self.pushed);
        self.pushed += 1;
        // After every item that goes first: an earlier group, or the same group and at least
        // as heavy (equals keep the order they came in).
        let at = self.waiting.partition_point(|w| {
            (w.group, std::cmp::Reverse(w.weight)) <= (group, std::cmp::Reverse(weight))
        });
        self.waiting.insert(
            at,
            Waiting {
                group,
                weight,
                ticket,
                locks,
                item,
            },
        );
    }

    /// Which waiting item may start now.
    fn startable(&self) -> Option<usize> {
        (0..self.waiting.len()).find(|&i| {
            let l = &self.waiting[i].locks;
            !self.running.iter().any(|(_, _, r)| r.conflicts(l))
                && !self.waiting[..i].iter().any(|w| w.locks.conflicts(l))
        })
    }

    /// Whether [`Schedule::next`] would hand out an item now.
    pub(crate) fn ready(&self) -> bool {
        self.startable().is_some()
    }

    /// The next item that may start now, if any: the caller has a connection idle.
    pub(crate) fn next(&mut self) -> Option<(Ticket, T)> {
        let i = self.startable()?;
        let w = self.waiting.remove(i);
        self.running.push((w.ticket, w.group, w.locks));
        Some((w.ticket, w.item))
    }

    /// The item of `ticket` finished.
    pub(crate) fn finished(&mut self, ticket: Ticket) {
        self.running.retain(|(t, _, _)| *t != ticket);
    }

    /// Nothing waiting, nothing running.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Every item of `group` and the groups before it finished.
    pub(crate) fn done_through(&self, group: u8) -> bool {
        !self.waiting.iter().any(|w| w.group <= group)
            && !self.running.iter().any(|(_, g, _)| *g <= group)
    }

    /// How many items are running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// The locks of the items running now (for the tests).
    #[cfg(test)]
    pub(crate) fn running_locks(&self) -> impl Iterator<Item = &Locks> {
        self.running.iter().map(|(_, _, l)| l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(t: &str) -> Locks {
        Locks::Tables {
            tables: vec![t.into()],
            shared: true,
        }
    }

    fn excl(t: &[&str]) -> Locks {
        Locks::exclusive(t.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn two_lone_create_index_on_one_table_run_together() {
        let mut s = Schedule::default();
        s.push(0, share("a"), 10, "i1");
        s.push(0, share("a"), 10, "i2");
        let (_, a) = s.next().unwrap();
        let (_, b) = s.next().unwrap();
        assert_eq!((a, b), ("i1", "i2"));
        assert_eq!(s.running(), 2);
    }

    #[test]
    fn a_key_and_an_index_on_one_table_keep_their_order() {
        let mut s = Schedule::default();
        s.push(0, excl(&["a"]), 10, "pkey");
        s.push(0, share("a"), 10, "index");
        s.push(0, share("b"), 5, "other");
        let (t, first) = s.next().unwrap();
        assert_eq!(first, "pkey");
        // The index waits for the key; another table's index does not.
        assert_eq!(s.next().unwrap().1, "other");
        assert!(s.next().is_none());
        s.finished(t);
        assert_eq!(s.next().unwrap().1, "index");
    }

    #[test]
    fn a_foreign_key_starts_after_its_key_while_other_indexes_build() {
        let mut s = Schedule::default();
        s.push(0, excl(&["orders"]), 100, "orders_pkey");
        s.push(0, share("big"), 1000, "big_idx");
        s.push(1, excl(&["items", "orders"]), 50, "items_fk");
        // The largest table first.
        let (big, first) = s.next().unwrap();
        assert_eq!(first, "big_idx");
        let (pkey, second) = s.next().unwrap();
        assert_eq!(second, "orders_pkey");
        assert!(s.next().is_none(), "the foreign key waits for its key");
        s.finished(pkey);
        assert!(!s.done_through(0));
        assert_eq!(s.next().unwrap().1, "items_fk");
        s.finished(big);
        assert!(s.done_through(0));
    }

    #[test]
    fn unknown_locks_run_alone() {
        let mut s = Schedule::default();
        s.push(1, Locks::All, 0, "fk?");
        s.push(1, excl(&["x"]), 0, "fk x");
        let (t, a) = s.next().unwrap();
        assert_eq!(a, "fk?");
        assert!(s.next().is_none());
        s.finished(t);
        assert_eq!(s.next().unwrap().1, "fk x");
        assert!(!s.is_empty());
    }
}
