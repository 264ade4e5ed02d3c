//! Where the recovered dump goes: standard output, a file written atomically, nowhere
//! (`verify`), `psql`, or `pg_restore` (streamed, or spooled to a private file for `--jobs`).
//!
//! A file is written as `FILE.partial` (mode 0600), fsynced, and renamed to `FILE` only by
//! [`Sink::commit`], which the pipeline calls after every check passed. Dropping an
//! uncommitted file sink removes the partial file, so a failed or interrupted recovery never
//! leaves something that looks complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command};
use std::thread::JoinHandle;

use crate::child::{drain_stderr, start_err};
use crate::error::{Error, Result};
use crate::pg::ConnInfo;

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
    /// `psql -X --quiet` reading the dump on stdin.
    Psql {
        program: PathBuf,
        conn: ConnInfo,
        /// `-v ON_ERROR_STOP=1`: the first SQL error stops psql and fails the restore.
        on_error_stop: bool,
    },
    /// A plain dump split over `jobs` psql connections (`restore --jobs N`, see `parallel`).
    PsqlParallel {
        program: PathBuf,
        conn: ConnInfo,
        on_error_stop: bool,
        jobs: u32,
        /// Say what each connection is doing, on stderr.
        verbose: bool,
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

/// Names that mean standard output: `-o -` and the system's aliases of fd 1, which are
/// symbolic links that must be written through, never replaced.
const STDOUT_NAMES: [&str; 4] = ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];

/// What an output path is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Absent,
    Regular,
    /// A FIFO or a character device: written directly, never replaced.
    Stream,
    Refused(&'static str),
}

fn path_kind(path: &Path) -> io::Result<PathKind> {
    use std::os::unix::fs::FileTypeExt;
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PathKind::Absent),
        Err(e) => return Err(e),
    };
    let t = md.file_type();
    Ok(if t.is_file() {
        PathKind::Regular
    } else if t.is_fifo() || t.is_char_device() {
        PathKind::Stream
    } else if t.is_symlink() {
        PathKind::Refused(
            "is a symbolic link, and an output path is never followed through a link: give the path it points to, or remove the link",
        )
    } else if t.is_dir() {
        PathKind::Refused("is a directory: give a file name inside it, e.g. DIR/x.dump")
    } else {
        PathKind::Refused("is neither a regular file, a FIFO nor a character device")
    })
}

fn refused(path: &Path, why: &'static str) -> Error {
    Error::OutputRefused {
        path: path.to_path_buf(),
        why,
    }
}

impl Output {
    /// The output for `-o PATH`: standard output for `-` and `/dev/stdout`, else a file.
    pub fn file(path: PathBuf, force: bool) -> Output {
        if STDOUT_NAMES.iter().any(|n| Path::new(n) == path) {
            Output::Stdout
        } else {
            Output::File { path, force }
        }
    }

    /// Whether what was written cannot be taken back: standard output, a FIFO, a device.
    pub fn is_stream(&self) -> bool {
        match self {
            Output::Stdout => true,
            Output::File { path, .. } => path_kind(path).ok() == Some(PathKind::Stream),
            _ => false,
        }
    }

    /// Refuses, before any work is done: an existing file without `force`; a symbolic link,
    /// a directory or anything else that is not a regular file, a FIFO or a character device;
    /// a `FILE.partial` that is not a regular file of ours.
    pub fn preflight(&self) -> Result<()> {
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
                if path_kind(path).ok() == Some(PathKind::Stream) {
                    // A FIFO's reader or a device gets the bytes as they come.
                    return OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(path)
                        .map(Sink::Stdout)
                        .map_err(|e| Error::Output {
                            what: path.display().to_string(),
                            source: e,
                        });
                }
                AtomicFile::create(path, *force).map(Sink::File)
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
            Output::Psql {
                program,
                conn,
                on_error_stop,
            } => {
                let cmd = crate::pg::psql_command(program, conn, *on_error_stop);
                ChildSink::spawn(
                    cmd,
                    "psql",
                    format!("restoring into {}", conn.describe()),
                    children,
                )
                .map(Sink::Child)
            }
            Output::PsqlParallel {
                program,
                conn,
                on_error_stop,
                jobs,
                verbose,
            } => Ok(Sink::Parallel(Box::new(
                crate::parallel::ParallelLoad::new(crate::parallel::Config {
                    program: program.clone(),
                    conn: conn.clone(),
                    on_error_stop: *on_error_stop,
                    jobs: *jobs,
                    verbose: *verbose,
                    children: children.clone(),
                }),
            ))),
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
            } => {
                crate::pg::ensure_dir(spool_dir)?;
                let path = spool_dir.join(format!(
                    "a9s-recover-spool-{}.pgdump",
                    crate::time::unique_suffix()
                ));
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| Error::Output {
                        what: path.display().to_string(),
                        source: e,
                    })?;
                Ok(Sink::Spool(Spool {
                    file: Some(file),
                    path,
                    output: self.clone(),
                    children: children.clone(),
                }))
            }
        }
    }
}

/// A child reading the dump on stdin, its stderr drained on another thread.
#[derive(Debug)]
pub(crate) struct ChildSink {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<ChildSummary>>,
    program: &'static str,
    doing: String,
    children: crate::child::Children,
}

impl ChildSink {
    fn spawn(
        cmd: Command,
        program: &'static str,
        doing: String,
        children: &crate::child::Children,
    ) -> Result<Self> {
        let mut child =
            crate::child::spawn_piped(cmd, children).map_err(|e| start_err(program, e))?;
        let stderr = child.stderr.take().map(drain_stderr);
        Ok(ChildSink {
            children: children.clone(),
            stdin: child.stdin.take(),
            child,
            stderr,
            program,
            doing,
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        let stdin = self.stdin.as_mut().expect("open until finished");
        if stdin.write_all(data).is_err() {
            // The child stopped reading: it failed. Say why, not "broken pipe".
            return Err(self.finish().err().unwrap_or_else(|| Error::Child {
                program: self.program.into(),
                doing: self.doing.clone(),
                status: "it stopped reading its input".into(),
                stderr: String::new(),
            }));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ChildSummary> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| start_err(self.program, e));
        self.children.unregister(self.child.id());
        let status = status?;
        let summary = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            Ok(summary)
        } else {
            Err(Error::Child {
                program: self.program.into(),
                doing: self.doing.clone(),
                status: status.to_string(),
                stderr: summary.tail.join("\n"),
            })
        }
    }
}

impl Drop for ChildSink {
    fn drop(&mut self) {
        // Not finished: the stream failed or was interrupted. Stop the child and whatever it
        // started (pg_restore --jobs forks its workers).
        if self.stderr.is_some() {
            self.children.kill_group(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// The archive spooled to a 0600 file for `pg_restore --jobs`; removed in any case.
#[derive(Debug)]
pub(crate) struct Spool {
    file: Option<File>,
    path: PathBuf,
    output: Output,
    children: crate::child::Children,
}

impl Spool {
    fn restore(&mut self) -> Result<ChildSummary> {
        drop(self.file.take());
        let Output::PgRestore {
            program,
            conn,
            args,
            jobs: Some(jobs),
            ..
        } = &self.output
        else {
            unreachable!("a spool is made for pg_restore --jobs")
        };
        let mut cmd = Command::new(program);
        cmd.args(args).arg(format!("--jobs={jobs}"));
        conn.apply(&mut cmd);
        cmd.arg(&self.path);
        let mut sink = ChildSink::spawn(
            cmd,
            "pg_restore",
            format!("restoring into {} with {jobs} jobs", conn.describe()),
            &self.children,
        )?;
        drop(sink.stdin.take());
        sink.finish()
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// An open sink.
#[derive(Debug)]
pub(crate) enum Sink {
    Stdout(File),
    File(AtomicFile),
    Discard,
    Child(ChildSink),
    Spool(Spool),
    Parallel(Box<crate::parallel::ParallelLoad>),
}

impl Sink {
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
    /// waited for, and what it said on stderr summarized.
    pub(crate) fn commit(self) -> Result<Option<ChildSummary>> {
        match self {
            Sink::Stdout(mut f) => f.flush().map(|_| None).map_err(|e| Error::Output {
                what: "standard output".into(),
                source: e,
            }),
            Sink::File(f) => f.commit().map(|_| None),
            Sink::Discard => Ok(None),
            Sink::Child(mut c) => c.finish().map(Some),
            Sink::Spool(mut s) => s.restore().map(Some),
            Sink::Parallel(p) => p.finish().map(Some),
        }
    }
}

/// `FILE.partial`, renamed to `FILE` on commit, removed on drop otherwise.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    file: Option<File>,
    partial: PathBuf,
    path: PathBuf,
    force: bool,
}

/// Takes the exclusive lock that tells other runs this partial file is being written.
fn lock(f: &File) -> io::Result<()> {
    rustix::fs::flock(f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(io::Error::from)
}

/// The temporary name of an output file while it is written.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

impl AtomicFile {
    fn create(path: &Path, force: bool) -> Result<Self> {
        let partial = partial_path(path);
        let err = |e: io::Error| Error::Output {
            what: partial.display().to_string(),
            source: e,
        };
        // A leftover of ours (checked by preflight: a regular file of this user) goes, unless
        // another run holds its lock: that run is writing it now. Then a new file that cannot
        // be anything planted there: O_EXCL never follows a link, and the mode is 0600
        // whatever the leftover's was. Our lock on it lasts until it is renamed or removed.
        if fs::symlink_metadata(&partial).is_ok_and(|m| m.file_type().is_file()) {
            let leftover = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&partial)
                .map_err(err)?;
            if lock(&leftover).is_err() {
                return Err(refused(
                    &partial,
                    "is being written by another a9s-recover run right now: wait for it to finish, or choose another output",
                ));
            }
            fs::remove_file(&partial).map_err(err)?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&partial)
            .map_err(err)?;
        lock(&file).map_err(err)?;
        Ok(AtomicFile {
            file: Some(file),
            partial,
            path: path.to_path_buf(),
            force,
        })
    }

    fn fail(&self, e: io::Error) -> Error {
        Error::Output {
            what: self.partial.display().to_string(),
            source: e,
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        let f = self.file.as_mut().expect("open until commit");
        f.write_all(data).map_err(|e| Error::Output {
            what: self.partial.display().to_string(),
            source: e,
        })
    }

    /// Whether `FILE.partial` is still the file we wrote (and lock).
    fn still_ours(&self, f: &File) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (f.metadata(), fs::symlink_metadata(&self.partial)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    fn commit(mut self) -> Result<()> {
        let f = self.file.take().expect("open until commit");
        f.sync_all().map_err(|e| self.fail(e))?;
        // Held (with its lock) until the rename: the partial file renamed is the one written.
        if !self.still_ours(&f) {
            return Err(refused(
                &self.partial,
                "was replaced while the dump was written (by hand, or by another run): nothing was put in place",
            ));
        }
        // What was checked at the start may have changed while we streamed.
        match path_kind(&self.path).map_err(|e| self.fail(e))? {
            PathKind::Absent => {}
            PathKind::Regular if self.force => {}
            PathKind::Regular => {
                return Err(Error::OutputExists {
                    path: self.path.clone(),
                })
            }
            PathKind::Stream => {
                return Err(refused(
                    &self.path,
                    "became a FIFO or a device while the dump was written; it is not replaced",
                ))
            }
            PathKind::Refused(why) => return Err(refused(&self.path, why)),
        }
        fs::rename(&self.partial, &self.path).map_err(|e| self.fail(e))?;
        drop(f);
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Still open means not committed; remove the partial file only if it is ours.
        if let Some(f) = self.file.take() {
            if self.still_ours(&f) {
                let _ = fs::remove_file(&self.partial);
            }
        }
    }
}
