//! The simulator: a trace of a real run ([`super::trace`]) replayed at another number of
//! connections, with the loader's own rules (barriers on connection 1, data units to the
//! least busy connection at most [`DEPTH`] deep, the post-data through the same
//! `Schedule`), to predict the wall time of the load.
//!
//! The model (BENCHMARKS.md checks it against measurements):
//! - each unit costs the server the time it took in the trace (take the trace of a run with
//!   one connection: its units did not compete with each other);
//! - the stream produces each unit no earlier than it did in the trace, waits excluded
//!   (its `ready`);
//! - at most `cores` units progress at full speed: with k > cores running, each progresses
//!   at cores / k (the server's CPUs shared evenly);
//! - chunks of one table loading at the same time share its relation extension lock: with m
//!   of them, each progresses at 1 / (1 + lock_share × (m − 1)) of its speed.

use std::collections::VecDeque;

use super::pool::DEPTH;
use super::schedule::Schedule;
use super::trace::Line;

/// What the replay assumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub connections: usize,
    /// Server cores.
    pub cores: f64,
    /// The part of a COPY chunk's work done under its table's extension lock.
    pub lock_share: f64,
}

#[derive(Debug, Clone)]
struct Job {
    work: f64,
    /// A data chunk's table.
    table: Option<String>,
}

/// Connections, their queues and the work running: time advances from one end of a unit to
/// the next.
struct Engine {
    model: Model,
    t: f64,
    queues: Vec<VecDeque<Job>>,
    running: Vec<Option<Job>>,
}

impl Engine {
    fn new(model: Model) -> Engine {
        let n = model.connections.max(1);
        Engine {
            model,
            t: 0.0,
            queues: vec![VecDeque::new(); n],
            running: vec![None; n],
        }
    }

    fn n(&self) -> usize {
        self.running.len()
    }

    /// Units queued or running on connection `w`.
    fn load(&self, w: usize) -> usize {
        self.queues[w].len() + usize::from(self.running[w].is_some())
    }

    fn idle(&self, w: usize) -> bool {
        self.load(w) == 0
    }

    fn all_idle(&self) -> bool {
        (0..self.n()).all(|w| self.idle(w))
    }

    fn assign(&mut self, w: usize, job: Job) {
        self.queues[w].push_back(job);
        self.start_idle();
    }

    fn start_idle(&mut self) {
        for w in 0..self.n() {
            if self.running[w].is_none() {
                self.running[w] = self.queues[w].pop_front();
            }
        }
    }

    /// The speed of each running unit now.
    fn rates(&self) -> Vec<f64> {
        let k = self.running.iter().flatten().count() as f64;
        let cpu = if k > self.model.cores {
            self.model.cores / k
        } else {
            1.0
        };
        self.running
            .iter()
            .map(|j| match j {
                None => 0.0,
                Some(Job { table: Some(t), .. }) => {
                    let m = self
                        .running
                        .iter()
                        .flatten()
                        .filter(|o| o.table.as_ref() == Some(t))
                        .count() as f64;
                    cpu / (1.0 + self.model.lock_share * (m - 1.0))
                }
                Some(_) => cpu,
            })
            .collect()
    }

    /// Advances to the next end of a unit, or to `until` if that comes first; returns the
    /// connections whose unit ended.
    fn step(&mut self, until: Option<f64>) -> Vec<usize> {
        let rates = self.rates();
        let next = self
            .running
            .iter()
            .zip(&rates)
            .filter_map(|(j, r)| j.as_ref().map(|j| j.work / r))
            .fold(f64::INFINITY, f64::min);
        let dt = match until {
            Some(u) if u - self.t < next => (u - self.t).max(0.0),
            _ if next.is_finite() => next,
            _ => 0.0,
        };
        self.t += dt;
        let mut ended = Vec::new();
        for (w, (j, r)) in self.running.iter_mut().zip(&rates).enumerate() {
            if let Some(job) = j {
                job.work -= r * dt;
                if job.work <= 1e-12 {
                    *j = None;
                    ended.push(w);
                }
            }
        }
        self.start_idle();
        ended
    }

    /// Runs until `ready` holds and the stream has produced what comes next (`at`).
    fn wait(&mut self, at: f64, ready: impl Fn(&Engine) -> bool) {
        while !ready(self) || self.t < at {
            let busy = self.running.iter().any(Option::is_some);
            if !busy {
                if !ready(self) {
                    // Nothing runs and nothing will: the condition cannot change.
                    return;
                }
                self.t = self.t.max(at);
                return;
            }
            let until = (self.t < at).then_some(at);
            self.step(until);
        }
    }

    fn drain(&mut self) {
        self.wait(self.t, Engine::all_idle);
    }
}

/// What a trace holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub units: usize,
    /// Connections the run used.
    pub connections: usize,
    /// From its first start to its last end.
    pub wall: f64,
}

impl Summary {
    pub fn of(trace: &[Line]) -> Summary {
        let units = trace.iter().filter(|l| l.is_unit()).count();
        let connections = trace
            .iter()
            .filter_map(|l| l.conn)
            .max()
            .map_or(0, |c| c + 1);
        let first = trace.iter().map(|l| l.start).fold(f64::INFINITY, f64::min);
        let last = trace.iter().map(|l| l.end).fold(0.0, f64::max);
        Summary {
            units,
            connections,
            wall: if first.is_finite() { last - first } else { 0.0 },
        }
    }
}

fn job(l: &Line) -> Job {
    Job {
        work: (l.end - l.start).max(0.0),
        table: (l.op == "data").then(|| l.table.clone()).flatten(),
    }
}

/// The predicted wall time of the load in `trace` (its lines in `seq` order) under `model`.
pub fn wall_time(trace: &[Line], model: Model) -> f64 {
    let mut e = Engine::new(model);
    let mut serial_pending = false;
    let mut last_pick = 0;
    let mut i = 0;
    while i < trace.len() {
        let l = &trace[i];
        i += 1;
        match l.op.as_str() {
            "data" => {
                if serial_pending {
                    e.wait(l.ready, |e| e.idle(0));
                    serial_pending = false;
                }
                e.wait(l.ready, |e| (0..e.n()).any(|w| e.load(w) < DEPTH as usize));
                let n = e.n();
                let pick = (1..=n)
                    .map(|k| (last_pick + k) % n)
                    .min_by_key(|&w| e.load(w))
                    .unwrap_or(0);
                last_pick = pick;
                e.assign(pick, job(l));
            }
            "lane" => {
                e.wait(l.ready, |_| true);
                e.assign(0, job(l));
            }
            "post" => {
                let end = trace[i..]
                    .iter()
                    .position(|l| !matches!(l.op.as_str(), "index" | "fk" | "attach" | "rest"))
                    .map_or(trace.len(), |k| i + k);
                e.wait(l.ready, Engine::all_idle);
                post(&mut e, &trace[i..end]);
                i = end;
            }
            "data_end" | "close" => {
                e.drain();
                serial_pending = false;
                last_pick = 0;
            }
            // serial, attach, rest, passthrough: barriers on connection 1.
            _ => {
                e.wait(l.ready, |e| (1..e.n()).all(|w| e.idle(w)));
                e.assign(0, job(l));
                serial_pending = true;
            }
        }
    }
    e.drain();
    e.t
}

/// One database's post-data, in the loader's phases.
fn post(e: &mut Engine, items: &[Line]) {
    fn of<'a>(items: &'a [Line], op: &'static str) -> impl Iterator<Item = &'a Line> {
        items.iter().filter(move |l| l.op == op)
    }
    let of = |op: &'static str| of(items, op);
    let attach: Vec<&Line> = of("attach").collect();
    if attach.is_empty() {
        schedule(e, of("index").chain(of("fk")));
    } else {
        schedule(e, of("index"));
        for l in attach {
            e.wait(0.0, |e| (1..e.n()).all(|w| e.idle(w)));
            e.assign(0, job(l));
        }
        e.drain();
        schedule(e, of("fk"));
    }
    for l in of("rest") {
        e.wait(0.0, |e| (1..e.n()).all(|w| e.idle(w)));
        e.assign(0, job(l));
    }
    e.drain();
}

fn schedule<'a>(e: &mut Engine, items: impl Iterator<Item = &'a Line>) {
    e.drain();
    let mut s = Schedule::default();
    for l in items {
        s.push(u8::from(l.op == "fk"), l.locks(), l.weight, job(l));
    }
    let mut on = vec![None; e.n()];
    while !s.is_empty() {
        for (w, ticket) in on.iter_mut().enumerate() {
            if ticket.is_some() || !e.idle(w) {
                continue;
            }
            let Some((t, j)) = s.next() else { break };
            *ticket = Some(t);
            e.assign(w, j);
        }
        for w in e.step(None) {
            if let Some(t) = on[w].take() {
                s.finished(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seq: u64, op: &str, table: Option<&str>, start: f64, end: f64) -> Line {
        Line {
            seq,
            op: op.into(),
            table: table.map(str::to_string),
            start,
            end,
            ..Line::default()
        }
    }

    fn model(connections: usize, cores: f64) -> Model {
        Model {
            connections,
            cores,
            lock_share: 0.0,
        }
    }

    fn sample() -> Vec<Line> {
        let mut t = vec![unit(1, "serial", None, 0.0, 0.5)];
        for k in 0..8 {
            let s = 0.5 + k as f64;
            t.push(unit(
                2 + k,
                "data",
                Some(if k < 6 { "a" } else { "b" }),
                s,
                s + 1.0,
            ));
        }
        t.push(unit(10, "lane", None, 8.5, 8.6));
        t.push(unit(11, "post", None, 8.6, 8.6));
        let mut idx = unit(12, "index", None, 8.6, 10.6);
        idx.tables = vec!["a".into()];
        idx.weight = 6;
        let mut idx2 = unit(13, "index", None, 10.6, 11.6);
        idx2.tables = vec!["b".into()];
        idx2.weight = 2;
        let mut fk = unit(14, "fk", None, 11.6, 12.1);
        fk.tables = vec!["a".into(), "b".into()];
        t.extend([idx, idx2, fk, unit(15, "rest", None, 12.1, 12.2)]);
        t.push(unit(16, "close", None, 12.2, 12.2));
        t
    }

    #[test]
    fn one_connection_takes_the_sum_of_the_units() {
        let t = sample();
        let sum: f64 = t.iter().map(|l| l.end - l.start).sum();
        let wall = wall_time(&t, model(1, 2.0));
        assert!((wall - sum).abs() < 1e-9, "{wall} vs {sum}");
    }

    #[test]
    fn more_connections_help_up_to_the_cores() {
        let t = sample();
        let one = wall_time(&t, model(1, 2.0));
        let two = wall_time(&t, model(2, 2.0));
        let four = wall_time(&t, model(4, 2.0));
        assert!(two < one * 0.7, "{one} -> {two}");
        // Four connections on two cores: no faster than two, and not slower either.
        assert!((four - two).abs() < 0.5, "{two} -> {four}");
    }

    #[test]
    fn the_stream_can_be_the_limit() {
        let mut t = sample();
        for l in &mut t {
            if l.op == "data" {
                // Produced one a second, as slowly as one connection loads them.
                l.ready = l.start;
            }
        }
        let two = wall_time(&t, model(2, 2.0));
        // The last chunk is produced at 7.5 s: 8.5 s, then 2.7 s of post-data, against 7.2 s
        // when the stream keeps up.
        assert!((two - 11.2).abs() < 1e-6, "{two}");
    }

    #[test]
    fn the_extension_lock_slows_chunks_of_one_table() {
        let t = sample();
        let free = wall_time(&t, model(2, 2.0));
        let locked = wall_time(
            &t,
            Model {
                lock_share: 1.0,
                ..model(2, 2.0)
            },
        );
        assert!(locked > free + 1.0, "{free} -> {locked}");
    }
}
