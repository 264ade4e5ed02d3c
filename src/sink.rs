//! Where the recovered dump goes: standard output, a file written atomically, or nowhere
//! (`verify`). Later: psql and pg_restore.
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

use crate::error::{Error, Result};

/// Where the caller wants the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// A file; an existing one is replaced only with `force`.
    File { path: PathBuf, force: bool },
    /// Count and check only.
    Discard,
}

impl Output {
    /// Refuses an existing output file before any work is done.
    pub fn preflight(&self) -> Result<()> {
        if let Output::File { path, force: false } = self {
            if fs::symlink_metadata(path).is_ok() {
                return Err(Error::OutputExists { path: path.clone() });
            }
        }
        Ok(())
    }

    /// Opens the sink.
    pub(crate) fn open(&self) -> Result<Sink> {
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
                AtomicFile::create(path, *force).map(Sink::File)
            }
            Output::Discard => Ok(Sink::Discard),
        }
    }
}

/// An open sink.
#[derive(Debug)]
pub(crate) enum Sink {
    Stdout(File),
    File(AtomicFile),
    Discard,
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
        }
    }

    /// Makes the output final. Only called when every check passed.
    pub(crate) fn commit(self) -> Result<()> {
        match self {
            Sink::Stdout(mut f) => f.flush().map_err(|e| Error::Output {
                what: "standard output".into(),
                source: e,
            }),
            Sink::File(f) => f.commit(),
            Sink::Discard => Ok(()),
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

/// The temporary name of an output file while it is written.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

impl AtomicFile {
    fn create(path: &Path, force: bool) -> Result<Self> {
        let partial = partial_path(path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| Error::Output {
                what: partial.display().to_string(),
                source: e,
            })?;
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

    fn commit(mut self) -> Result<()> {
        let f = self.file.take().expect("open until commit");
        f.sync_all().map_err(|e| self.fail(e))?;
        drop(f);
        if !self.force && fs::symlink_metadata(&self.path).is_ok() {
            return Err(Error::OutputExists {
                path: self.path.clone(),
            });
        }
        fs::rename(&self.partial, &self.path).map_err(|e| self.fail(e))?;
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
        // Still open means not committed.
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.partial);
        }
    }
}
