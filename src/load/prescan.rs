//! The first of the two reads (the two-pass plan): the same splitter and planner as the
//! load, with nothing sent anywhere. What it keeps is each database's post-data, whose
//! weights are then the exact bytes of each table's data, and the rows of every table (the
//! read is also the whole read before destructive stages, and `verify`'s counts).
//!
//! Memory: every database's post-data text (indexes, constraints, foreign keys, triggers,
//! comments, grants: a few hundred bytes an item, so some MB for tens of thousands of
//! tables), never any data.

use std::sync::Arc;

use super::plan::{Op, Planner, PostData};
use crate::child::ChildSummary;
use crate::error::Result;
use crate::split::Splitter;

/// What the first read learnt, database by database in stream order (the n-th entry is the
/// n-th stretch between `\connect`s, the one before the first included).
#[derive(Debug, Default)]
pub struct Layout {
    pub(crate) dbs: Vec<DbLayout>,
}

/// One database's stretch of the stream.
#[derive(Debug, Default)]
pub(crate) struct DbLayout {
    pub name: Option<String>,
    /// Its post-data, when the load can start it early: handed over once, in one piece,
    /// with no `INDEX ATTACH`, and the stream never fell back to one connection.
    pub post: Option<PostData>,
    /// Bytes of COPY rows (the progress's total).
    pub data_bytes: u64,
    /// Why the post-data cannot start early, when it cannot.
    pub single: Option<&'static str>,
}

impl Layout {
    /// How many of the databases with post-data get it early, of how many.
    pub fn early_databases(&self) -> (usize, usize) {
        let with_post = self
            .dbs
            .iter()
            .filter(|d| d.post.is_some() || d.single.is_some())
            .count();
        let early = self.dbs.iter().filter(|d| d.post.is_some()).count();
        (early, with_post)
    }

    /// The bytes of COPY rows of the whole dump.
    pub fn data_bytes(&self) -> u64 {
        self.dbs.iter().map(|d| d.data_bytes).sum()
    }
}

/// Two layouts are the same plan only when they are the same read.
impl PartialEq for Layout {
    fn eq(&self, other: &Layout) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for Layout {}

/// The sink of the first read.
#[derive(Debug)]
pub(crate) struct Prescan {
    splitter: Splitter,
    planner: Planner,
    ops: Vec<Op>,
    rows: crate::dump::RowCounter,
    layout: Layout,
    cur: DbLayout,
    posts: u32,
}

impl Prescan {
    pub(crate) fn new(target: String, on_error_stop: bool, jobs: u32) -> Prescan {
        Prescan {
            splitter: Splitter::new(),
            planner: Planner::new(target, on_error_stop, jobs),
            ops: Vec::new(),
            rows: Default::default(),
            layout: Layout::default(),
            cur: DbLayout::default(),
            posts: 0,
        }
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        let mut items = Vec::new();
        self.splitter.feed(data, &mut |i| items.push(i));
        self.items(items)
    }

    fn items(&mut self, items: Vec<crate::split::Item>) -> Result<()> {
        for item in items {
            self.rows.item(&item);
            self.planner.item(item, &mut self.ops)?;
            self.take_ops();
        }
        Ok(())
    }

    fn take_ops(&mut self) {
        for op in std::mem::take(&mut self.ops) {
            match op {
                Op::Data(u) => {
                    if let Some(r) = &u.rows {
                        self.cur.data_bytes += r.len() as u64;
                    }
                }
                Op::Database(d) => self.cur.name = Some(d),
                Op::Passthrough(_) => self.cur.single = Some("it falls back to one connection"),
                Op::Post(p) => {
                    self.posts += 1;
                    if p.is_empty() {
                        continue;
                    }
                    if !p.attach.is_empty() {
                        self.cur.single = Some("it attaches partitioned indexes");
                    }
                    if self.posts > 1 || self.cur.post.is_some() {
                        self.cur.single = Some("an unrecognised post-data item runs alone");
                    }
                    self.cur.post = Some(p);
                }
                Op::Close => {
                    let mut db = std::mem::take(&mut self.cur);
                    if db.single.is_some() {
                        db.post = None;
                    }
                    self.layout.dbs.push(db);
                    self.posts = 0;
                }
                _ => {}
            }
        }
    }

    /// The rows counted and the layout.
    pub(crate) fn finish(mut self) -> Result<(ChildSummary, Arc<Layout>)> {
        let mut items = Vec::new();
        self.splitter.finish(&mut |i| items.push(i));
        self.items(items)?;
        self.planner.finish(&mut self.ops);
        self.take_ops();
        let rows = std::mem::take(&mut self.rows);
        let summary = ChildSummary {
            databases: Some(rows.databases().to_vec()),
            tables: Some(rows.into_tables()),
            ..ChildSummary::default()
        };
        Ok((summary, Arc::new(self.layout)))
    }
}
