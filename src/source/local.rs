//! A local directory as a source: objects are the regular files directly inside it. An entry
//! that is not one (a link, a FIFO, a device, a directory) is listed as what it is and never
//! opened.
//!
//! Used for backups already downloaded, for `pack` fixtures and drills, and in tests. The
//! version marker is mtime and size, so a file rewritten during a recovery is detected.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use bytes::Bytes;

use super::{BoxFuture, GetRange, ObjectMeta, Source, Upload};
use crate::error::{Error, Result, Retry};

/// A directory of backup objects.
#[derive(Debug, Clone)]
pub struct LocalSource {
    root: PathBuf,
}

impl LocalSource {
    /// A source over `root`.
    pub fn new(root: PathBuf) -> Self {
        LocalSource { root }
    }
}

fn etag(md: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{:x}.{:x}-{:x}", md.mtime(), md.mtime_nsec(), md.len())
}

/// What a directory entry is when it is not a regular file.
fn not_a_file(md: &fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = md.file_type();
    if t.is_file() {
        None
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Opens a part for reading: never through a link, never blocking on a FIFO, and only a
/// regular file (the listing said so; this holds it if the name was replaced since).
fn open_part(path: &std::path::Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let md = f.metadata()?;
    match not_a_file(&md) {
        None => Ok(f),
        Some(what) => Err(std::io::Error::other(format!(
            "it is now {what}, not a regular file; refused"
        ))),
    }
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> BoxFuture<'static, Result<T>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| Err(Error::internal("a blocking task")(e)))
    })
}

impl Source for LocalSource {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            let missing = |e| Error::LocationMissing {
                location: root.display().to_string(),
                source: e,
            };
            let mut out = Vec::new();
            for entry in fs::read_dir(&root).map_err(missing)? {
                let entry = entry.map_err(missing)?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if !name.starts_with(&prefix) {
                    continue;
                }
                // Links are not followed: a part is a regular file of the directory. What is
                // not one is listed as what it is, so that it is refused by name when a
                // backup names it, and never opened.
                let Ok(md) = fs::symlink_metadata(entry.path()) else {
                    continue;
                };
                out.push(ObjectMeta {
                    name,
                    size: if md.is_file() { md.len() } else { 0 },
                    etag: Some(etag(&md)),
                    not_a_file: not_a_file(&md),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn get_range<'a>(
        &'a self,
        name: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<GetRange>> {
        let path = self.root.join(name);
        let name = name.to_string();
        blocking(move || {
            let fail = |e: std::io::Error| {
                Error::storage("reading", &name, Some(range.clone()), Retry::Permanent, e)
            };
            let f = open_part(&path).map_err(fail)?;
            let md = f.metadata().map_err(fail)?;
            let len = (range.end - range.start) as usize;
            let mut buf = vec![0u8; len];
            if md.len() < range.end {
                // Shorter than listed: report it as a change of the object.
                return Ok(GetRange {
                    bytes: Bytes::new(),
                    etag: Some(etag(&md)),
                });
            }
            f.read_exact_at(&mut buf, range.start).map_err(fail)?;
            Ok(GetRange {
                bytes: Bytes::from(buf),
                etag: Some(etag(&md)),
            })
        })
    }

    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn Upload>>> {
        let root = self.root.clone();
        let name = name.to_string();
        blocking(move || {
            let fail = |e| Error::Output {
                what: root.join(&name).display().to_string(),
                source: e,
            };
            fs::create_dir_all(&root).map_err(fail)?;
            let final_path = root.join(&name);
            let partial = root.join(format!("{name}.partial"));
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)
                .map_err(fail)?;
            Ok(Box::new(LocalUpload {
                file: Some(file),
                partial,
                final_path,
                done: false,
            }) as Box<dyn Upload>)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        let path = self.root.join(name);
        let name = name.to_string();
        blocking(move || {
            fs::remove_file(&path)
                .map_err(|e| Error::storage("deleting", name, None, Retry::Permanent, e))
        })
    }

    fn default_concurrency(&self) -> usize {
        // Local reads come from the page cache or one disk: a little read-ahead is enough.
        4
    }

    fn default_chunk_size(&self) -> u64 {
        1 << 20
    }
}

#[derive(Debug)]
struct LocalUpload {
    file: Option<File>,
    partial: PathBuf,
    final_path: PathBuf,
    done: bool,
}

impl Upload for LocalUpload {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut f = self.file.take().expect("upload used after failure");
            let path = self.partial.clone();
            let f = tokio::task::spawn_blocking(move || {
                f.write_all(&data).map(|_| f).map_err(|e| Error::Output {
                    what: path.display().to_string(),
                    source: e,
                })
            })
            .await
            .map_err(Error::internal("a blocking write"))??;
            self.file = Some(f);
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        blocking(move || {
            let f = self.file.take().expect("upload used after failure");
            let fail = |e| Error::Output {
                what: self.final_path.display().to_string(),
                source: e,
            };
            f.sync_all().map_err(fail)?;
            drop(f);
            fs::rename(&self.partial, &self.final_path).map_err(fail)?;
            if let Some(dir) = self.final_path.parent() {
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            self.done = true;
            Ok(())
        })
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.partial);
        }
    }
}
