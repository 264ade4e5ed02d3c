//! The atomic output file: `FILE.partial` (mode 0600, locked), fsynced, and renamed to `FILE`
//! only on commit; removed on drop otherwise, so a failed or interrupted recovery never leaves
//! something that looks complete. And what an output path is: a link, a directory or anything
//! else that is not a regular file, a FIFO or a device is refused, never followed or replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What an output path is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathKind {
    Absent,
    Regular,
    /// A FIFO or a character device: written directly, never replaced.
    Stream,
    Refused(&'static str),
}

pub(super) fn path_kind(path: &Path) -> io::Result<PathKind> {
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

pub(super) fn refused(path: &Path, why: &'static str) -> Error {
    Error::OutputRefused {
        path: path.to_path_buf(),
        why,
    }
}

/// Opens `-o PATH` (already checked by the preflight): a FIFO's reader or a device gets the
/// bytes as they come; anything else is written atomically.
pub(super) fn open(path: &Path, force: bool) -> Result<super::Sink> {
    if path_kind(path).ok() == Some(PathKind::Stream) {
        return OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map(super::Sink::Stdout)
            .map_err(|e| Error::Output {
                what: path.display().to_string(),
                source: e,
            });
    }
    AtomicFile::create(path, force).map(super::Sink::File)
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
    pub(super) fn create(path: &Path, force: bool) -> Result<Self> {
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

    pub(super) fn write(&mut self, data: &[u8]) -> Result<()> {
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

    pub(super) fn commit(mut self) -> Result<()> {
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
