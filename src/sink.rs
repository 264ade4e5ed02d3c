//! Where the recovered dump goes: standard output, a file written atomically, nowhere
//! (`verify`), `psql`, or `pg_restore` (streamed, or spooled to a private file for `--jobs`).
//!
//! A file is written as `FILE.partial` (mode 0600), fsynced, and renamed to `FILE` only by
//! [`Sink::commit`], which the pipeline calls after every check passed. Dropping an
//! uncommitted file sink removes the partial file, so a failed or interrupted recovery never
//! leaves something that looks complete.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::pg::ConnInfo;

mod child;
mod file;
mod transcode;

use child::{ChildSink, Spool};
pub use file::partial_path;
use file::{path_kind, refused, AtomicFile, PathKind};

/// Where the caller wants the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// A file; an existing one is replaced only with `force`.
    File { path: PathBuf, force: bool },
    /// Count and check only.
    Discard,
    /// Written to /dev/null (benchmarks: the same write calls as `> /dev/null`).
    Null,
    /// A plain dump loaded over `jobs` psql connections (`restore --jobs N`, 1 by default; see
    /// `load`).
    PsqlParallel {
        program: PathBuf,
        conn: ConnInfo,
        on_error_stop: bool,
        jobs: u32,
        /// Say what each connection is doing, on stderr.
        verbose: bool,
        /// The load's status line on the terminal.
        status: bool,
        /// `restore --trace FILE`: a line per unit, for the simulator.
        trace: Option<PathBuf>,
        /// Read the backup twice: first to learn each database's post-data (see
        /// `load::prescan`), then to load it. The layout is the first read's.
        two_pass: bool,
        layout: Option<std::sync::Arc<crate::load::Layout>>,
        /// A custom-format archive: its SQL comes from `pg_restore --file=-`.
        script: Option<PgRestoreScript>,
    },
    /// The first of two reads: nothing written, each database's post-data learnt (its
    /// summary's `layout`), the rows counted.
    Prescan {
        /// The target, for messages.
        target: String,
        on_error_stop: bool,
        jobs: u32,
        script: Option<PgRestoreScript>,
    },
    /// Only what a pick selects of a plain dump, as a plain dump, into `inner` (standard
    /// output or a file). See `pick`.
    Picked {
        pick: std::sync::Arc<crate::pick::Pick>,
        inner: Box<Output>,
        /// What the pick matched and left out, once the stream ended well.
        report: PickSlot,
        /// What turns a custom archive found at the head of the stream into SQL for the
        /// pick (`pg_restore --file=-`): the plain form, which learns the format only from
        /// the first bytes. None: a custom archive there is refused.
        archive: Option<PgRestoreScript>,
    },
    /// `pg_restore` reading a custom-format archive.
    PgRestore {
        program: PathBuf,
        conn: ConnInfo,
        /// Extra flags: `--no-owner`, `--no-privileges`, `--clean`, `--if-exists`, ...
        args: Vec<String>,
        /// `--jobs N` needs a seekable file: the stream is spooled to `spool_dir` first.
        jobs: Option<u32>,
        spool_dir: PathBuf,
    },
}

pub use crate::child::ChildSummary;

/// Where a picked output leaves its [`crate::pick::PickReport`] (equal to any other: it is
/// an outcome, not a setting).
#[derive(Debug, Clone, Default)]
pub struct PickSlot(pub std::sync::Arc<std::sync::Mutex<Option<crate::pick::PickReport>>>);

impl PartialEq for PickSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PickSlot {}

impl PickSlot {
    /// The report, once the stream ended.
    pub fn get(&self) -> Option<crate::pick::PickReport> {
        self.0.lock().ok().and_then(|r| r.clone())
    }
}

/// A pick in front of a sink.
#[derive(Debug)]
pub(crate) struct Picked {
    pick: std::sync::Arc<crate::pick::Pick>,
    picker: crate::pick::Picker,
    inner: Sink,
    slot: PickSlot,
    /// The first bytes were looked at.
    checked: bool,
    /// For a custom archive at the head of the stream: pg_restore, and the children it
    /// joins.
    archive: Option<(PgRestoreScript, crate::child::Children)>,
    /// The stream is a custom archive: pg_restore's SQL into a pick like this one.
    via: Option<Box<transcode::Transcode>>,
}

impl Picked {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Some(t) = &mut self.via {
            return t.write(data);
        }
        if !self.checked {
            self.checked = true;
            if data.starts_with(b"PGDMP") {
                let Some((script, children)) = self.archive.take() else {
                    return Err(Error::Pick {
                        reason: "--database, --schema, --table and --into need a plain dump (pg_dump or pg_dumpall SQL) here; this backup is a custom-format archive: use `restore` with the picks, or pg_restore -t/-n on the recovered archive".into(),
                    });
                };
                // An archive newer than this pg_restore reads: what to install, not
                // pg_restore's own "unsupported version".
                crate::pg::compat::check_tool(
                    &crate::dump::origin(data),
                    crate::dump::DumpFormat::Custom,
                    &script.program,
                    script.version,
                )?;
                // pg_restore turns the archive into the SQL pg_dump -Fp would have written;
                // the pick reads that, as it reads a plain dump.
                let behind = Picked {
                    pick: self.pick.clone(),
                    picker: std::mem::replace(
                        &mut self.picker,
                        crate::pick::Picker::new(self.pick.clone()),
                    ),
                    inner: std::mem::replace(&mut self.inner, Sink::Discard),
                    slot: self.slot.clone(),
                    checked: true,
                    archive: None,
                    via: None,
                };
                let mut t = transcode::Transcode::spawn(
                    &script.program,
                    &script.args,
                    Box::new(Sink::Picked(Box::new(behind))),
                    &children,
                )?;
                t.write(data)?;
                self.via = Some(Box::new(t));
                return Ok(());
            }
        }
        self.picker.feed(data)?;
        let out = self.picker.take();
        if out.is_empty() {
            return Ok(());
        }
        self.inner.write(&out)
    }

    fn commit(mut self) -> Result<Committed> {
        if let Some(t) = self.via.take() {
            return t.finish();
        }
        let report = self.picker.finish()?;
        let out = self.picker.take();
        if !out.is_empty() {
            self.inner.write(&out)?;
        }
        let c = self.inner.commit()?;
        if let Ok(mut r) = self.slot.0.lock() {
            *r = Some(report);
        }
        Ok(c)
    }
}

/// `pg_restore ARGS --file=-`: a custom-format archive turned into the SQL it would run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgRestoreScript {
    pub program: PathBuf,
    /// `--no-owner`, `--create`, … (nothing that connects or needs a seek: no `-d`, `-j`).
    pub args: Vec<String>,
    /// Its version, when it says one: an archive newer than it reads is refused before it
    /// starts, with what to install.
    pub version: Option<crate::dump::PgVersion>,
}

/// Names that mean standard output: `-o -` and the system's aliases of fd 1, which are
/// symbolic links that must be written through, never replaced.
const STDOUT_NAMES: [&str; 4] = ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];

impl Output {
    /// The output for `-o PATH`: standard output for `-` and `/dev/stdout`, else a file.
    pub fn file(path: PathBuf, force: bool) -> Output {
        if STDOUT_NAMES.iter().any(|n| Path::new(n) == path) {
            Output::Stdout
        } else {
            Output::File { path, force }
        }
    }

    /// The first of two reads, when this loads in two and has no plan yet.
    pub fn first_read(&self) -> Option<Output> {
        match self {
            // The first read sees what the second will: the same pick in front.
            Output::Picked {
                pick,
                inner,
                archive,
                ..
            } => inner.first_read().map(|f| Output::Picked {
                pick: pick.clone(),
                inner: Box::new(f),
                report: PickSlot::default(),
                archive: archive.clone(),
            }),
            Output::PsqlParallel {
                conn,
                on_error_stop,
                jobs,
                two_pass: true,
                layout: None,
                script,
                ..
            } => Some(Output::Prescan {
                target: conn.describe(),
                on_error_stop: *on_error_stop,
                jobs: *jobs,
                script: script.clone(),
            }),
            _ => None,
        }
    }

    /// Whether the load has the plan of a first read.
    pub fn has_layout(&self) -> bool {
        if let Output::Picked { inner, .. } = self {
            return inner.has_layout();
        }
        matches!(
            self,
            Output::PsqlParallel {
                layout: Some(_),
                ..
            }
        )
    }

    /// Gives the load the plan of the first read (see [`Output::first_read`]).
    pub fn set_layout(&mut self, plan: std::sync::Arc<crate::load::Layout>) {
        match self {
            Output::PsqlParallel { layout, .. } => *layout = Some(plan),
            Output::Picked { inner, .. } => inner.set_layout(plan),
            _ => {}
        }
    }

    /// Where a pick leaves its report, when this output has one.
    pub fn pick_slot(&self) -> Option<PickSlot> {
        match self {
            Output::Picked { report, .. } => Some(report.clone()),
            _ => None,
        }
    }

    /// The pick of this output, if any.
    pub fn pick(&self) -> Option<&crate::pick::Pick> {
        match self {
            Output::Picked { pick, .. } => Some(pick),
            _ => None,
        }
    }

    /// A custom archive's SQL comes from pg_restore in front of this output; returns the
    /// script and the output without it, so that something (a pick) can go between.
    fn split_script(&self) -> Option<(PgRestoreScript, Output)> {
        let mut bare = self.clone();
        let script = match &mut bare {
            Output::PsqlParallel { script, .. } | Output::Prescan { script, .. } => script.take(),
            _ => None,
        }?;
        Some((script, bare))
    }

    /// Whether what was written cannot be taken back: standard output, a FIFO, a device.
    pub fn is_stream(&self) -> bool {
        match self {
            Output::Picked { inner, .. } => inner.is_stream(),
            Output::Stdout => true,
            Output::File { path, .. } => path_kind(path).ok() == Some(PathKind::Stream),
            _ => false,
        }
    }

    /// Refuses, before any work is done: an existing file without `force`; a symbolic link,
    /// a directory or anything else that is not a regular file, a FIFO or a character device;
    /// a `FILE.partial` that is not a regular file of ours.
    pub fn preflight(&self) -> Result<()> {
        if let Output::Picked { inner, .. } = self {
            return inner.preflight();
        }
        let Output::File { path, force } = self else {
            return Ok(());
        };
        let io_err = |e: io::Error| Error::Output {
            what: path.display().to_string(),
            source: e,
        };
        match path_kind(path).map_err(io_err)? {
            PathKind::Refused(why) => return Err(refused(path, why)),
            PathKind::Regular if !force => return Err(Error::OutputExists { path: path.clone() }),
            // Written in place: nothing to replace, nothing to stage.
            PathKind::Stream => return Ok(()),
            PathKind::Regular | PathKind::Absent => {}
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            return Err(Error::OutputRefused {
                path: path.to_path_buf(),
                why: "is in a directory that does not exist: create it first, or give another path",
            });
        }
        let partial = partial_path(path);
        match fs::symlink_metadata(&partial) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
            Ok(md) => {
                use std::os::unix::fs::MetadataExt;
                if !md.file_type().is_file() {
                    Err(refused(
                        &partial,
                        "exists and is not a regular file (a symbolic link?): remove it; it is never followed or replaced",
                    ))
                } else if md.uid() != rustix::process::getuid().as_raw() {
                    Err(refused(
                        &partial,
                        "exists and belongs to another user: it is not a leftover of ours; remove it or choose another output",
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The loader of `Output::PsqlParallel`, behind pg_restore for a custom archive.
    fn open_loader(&self, children: &crate::child::Children) -> Result<Sink> {
        let Output::PsqlParallel {
            program,
            conn,
            on_error_stop,
            jobs,
            verbose,
            status,
            trace,
            layout,
            script,
            ..
        } = self
        else {
            unreachable!("called for the loader's output")
        };
        let loader = crate::load::Loader::new(crate::load::Config {
            program: program.clone(),
            conn: conn.clone(),
            on_error_stop: *on_error_stop,
            jobs: *jobs,
            verbose: *verbose,
            status: *status,
            trace: trace.clone(),
            layout: layout.clone(),
            children: children.clone(),
        })?;
        match script {
            None => Ok(Sink::Parallel(Box::new(loader))),
            Some(s) => transcode(s, Box::new(Sink::Parallel(Box::new(loader))), children),
        }
    }

    /// Opens the sink.
    pub(crate) fn open(&self, children: &crate::child::Children) -> Result<Sink> {
        match self {
            Output::Stdout => {
                // Write straight to fd 1: std's stdout is line-buffered.
                let fd = io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::Output {
                        what: "standard output".into(),
                        source: e,
                    })?;
                Ok(Sink::Stdout(File::from(fd)))
            }
            Output::File { path, force } => {
                self.preflight()?;
                file::open(path, *force)
            }
            Output::Discard => Ok(Sink::Discard),
            Output::Null => {
                File::create("/dev/null")
                    .map(Sink::Stdout)
                    .map_err(|e| Error::Output {
                        what: "/dev/null".into(),
                        source: e,
                    })
            }
            Output::PsqlParallel { .. } => self.open_loader(children),
            Output::Picked {
                pick,
                inner,
                report,
                archive,
            } => {
                // A custom archive: pg_restore's SQL is what the pick reads.
                let (script, inner) = match inner.split_script() {
                    Some((s, bare)) => (Some(s), bare),
                    None => (None, (**inner).clone()),
                };
                let picked = Sink::Picked(Box::new(Picked {
                    pick: pick.clone(),
                    picker: crate::pick::Picker::new(pick.clone()),
                    inner: inner.open(children)?,
                    slot: report.clone(),
                    checked: false,
                    archive: archive.clone().map(|a| (a, children.clone())),
                    via: None,
                }));
                match script {
                    None => Ok(picked),
                    Some(s) => transcode(&s, Box::new(picked), children),
                }
            }
            Output::Prescan {
                target,
                on_error_stop,
                jobs,
                script,
            } => {
                let p = crate::load::Prescan::new(target.clone(), *on_error_stop, *jobs);
                match script {
                    None => Ok(Sink::Prescan(Box::new(p))),
                    Some(s) => transcode(s, Box::new(Sink::Prescan(Box::new(p))), children),
                }
            }
            Output::PgRestore {
                program,
                conn,
                args,
                jobs: None,
                ..
            } => {
                let mut cmd = Command::new(program);
                cmd.args(args);
                conn.apply(&mut cmd);
                ChildSink::spawn(
                    cmd,
                    "pg_restore",
                    format!("restoring into {}", conn.describe()),
                    children,
                )
                .map(Sink::Child)
            }
            Output::PgRestore {
                jobs: Some(_),
                spool_dir,
                ..
            } => Spool::create(spool_dir, self.clone(), children).map(Sink::Spool),
        }
    }
}

fn transcode(
    s: &PgRestoreScript,
    inner: transcode::Inner,
    children: &crate::child::Children,
) -> Result<Sink> {
    transcode::Transcode::spawn(&s.program, &s.args, inner, children)
        .map(|t| Sink::Transcoded(Box::new(t)))
}

/// What a sink ends with: the restoring child's summary, the first read's layout.
pub(crate) type Committed = (
    Option<ChildSummary>,
    Option<std::sync::Arc<crate::load::Layout>>,
);

/// An open sink.
#[derive(Debug)]
pub(crate) enum Sink {
    Stdout(File),
    File(AtomicFile),
    Discard,
    Child(ChildSink),
    Spool(Spool),
    Parallel(Box<crate::load::Loader>),
    Prescan(Box<crate::load::Prescan>),
    /// A custom archive's SQL, from pg_restore, into the loader or the prescan.
    Transcoded(Box<transcode::Transcode>),
    /// What a pick selects, into another sink.
    Picked(Box<Picked>),
}

impl Sink {
    /// Whether the sink counts the rows of a plain dump itself (the loader reads every item).
    pub(crate) fn counts_rows(&self) -> bool {
        match self {
            Sink::Picked(p) => p.inner.counts_rows(),
            s => matches!(
                s,
                Sink::Parallel(_) | Sink::Prescan(_) | Sink::Transcoded(_)
            ),
        }
    }

    /// Whether the dump reaches the sink as another format's SQL (a custom archive's, from
    /// pg_restore): what it counts is that SQL's, and counts as a plain dump's.
    pub(crate) fn transcodes(&self) -> bool {
        matches!(self, Sink::Transcoded(_))
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Sink::Stdout(f) => f.write_all(data).map_err(|e| {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    Error::BrokenPipe
                } else {
                    Error::Output {
                        what: "standard output".into(),
                        source: e,
                    }
                }
            }),
            Sink::File(f) => f.write(data),
            Sink::Discard => Ok(()),
            Sink::Child(c) => c.write(data),
            Sink::Parallel(p) => p.write(data),
            Sink::Prescan(p) => p.write(data),
            Sink::Transcoded(t) => t.write(data),
            Sink::Picked(p) => p.write(data),
            Sink::Spool(s) => s
                .file
                .as_mut()
                .expect("open until restored")
                .write_all(data)
                .map_err(|e| Error::Output {
                    what: s.path.display().to_string(),
                    source: e,
                }),
        }
    }

    /// Makes the output final. Only called when every check passed. A restoring child is
    /// waited for, and what it said on stderr summarized; a first read gives its layout.
    pub(crate) fn commit(self) -> Result<Committed> {
        let child = |c: Result<ChildSummary>| c.map(|c| (Some(c), None));
        match self {
            Sink::Stdout(mut f) => f.flush().map(|_| (None, None)).map_err(|e| Error::Output {
                what: "standard output".into(),
                source: e,
            }),
            Sink::File(f) => f.commit().map(|_| (None, None)),
            Sink::Discard => Ok((None, None)),
            Sink::Child(mut c) => child(c.finish()),
            Sink::Spool(mut s) => child(s.restore()),
            Sink::Parallel(p) => child(p.finish()),
            Sink::Prescan(p) => p.finish().map(|(c, l)| (Some(c), Some(l))),
            Sink::Transcoded(t) => t.finish(),
            Sink::Picked(p) => p.commit(),
        }
    }
}
