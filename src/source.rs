//! Where backups live: one [`Source`] trait, one backend per module.
//!
//! A source lists the objects at a location (a directory, later a bucket or container with an
//! optional prefix), reads byte ranges of one object, and creates objects (for `pack`).
//! Names are relative to the location. Wrappers such as [`Throttled`] are sources around
//! sources. Owns: [`Location`] parsing and opening a backend. Does not own: which objects
//! form a backup (`catalog`) or concurrency and retries (`fetch`).

use std::fmt::Debug;
use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};

pub mod local;
mod throttle;

pub use local::LocalSource;
pub use throttle::Throttled;

/// A boxed, sendable future: what trait methods return so that sources are object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Name relative to the location.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// A version marker (S3/Azure ETag, or mtime and size for local files).
    pub etag: Option<String>,
}

/// The bytes of one ranged read and the object's version marker at the time of the read.
#[derive(Debug, Clone)]
pub struct GetRange {
    /// Exactly the requested range.
    pub bytes: Bytes,
    /// The object's ETag when the store reports one.
    pub etag: Option<String>,
}

/// A store of backup objects.
pub trait Source: Send + Sync + Debug {
    /// Where this is, for messages: `local directory /srv/backups`.
    fn describe(&self) -> String;

    /// All objects whose names start with `prefix` (pagination is the backend's business).
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>>;

    /// Reads `range` of object `name`. Returns exactly `range.end - range.start` bytes or an
    /// error; transient failures are marked so that `fetch` retries them.
    fn get_range<'a>(&'a self, name: &'a str, range: Range<u64>)
        -> BoxFuture<'a, Result<GetRange>>;

    /// Starts writing object `name`; it becomes visible only when the upload finishes.
    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn Upload>>>;

    /// Deletes object `name` (used to clean up after a failed `pack`).
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Ranged reads in flight that suit this backend.
    fn default_concurrency(&self) -> usize;

    /// Bytes per ranged read that suit this backend.
    fn default_chunk_size(&self) -> u64;
}

/// An object being written.
pub trait Upload: Send + Debug {
    /// Appends bytes.
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>>;
    /// Makes the object visible. Dropping an unfinished upload discards it.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
}

/// The kind of storage behind a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// A local directory.
    Local,
}

/// A parsed `--bucket` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Local(PathBuf),
}

impl Location {
    /// Parses a location: a directory path or a `file://` URL.
    pub fn parse(s: &str, kind: Option<StorageKind>) -> Result<Location> {
        let bad = |reason: &str| Error::BadLocation {
            location: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad("file:// needs a path, e.g. file:///var/backups"));
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(bad(&format!(
                "the {scheme}:// scheme is not supported by this build; use a local directory or file:// URL"
            )));
        }
        match kind {
            Some(StorageKind::Local) | None => Ok(Location::Local(PathBuf::from(s))),
        }
    }

    /// Opens the backend.
    pub fn open(&self) -> Result<Arc<dyn Source>> {
        match self {
            Location::Local(p) => Ok(Arc::new(LocalSource::new(p.clone()))),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("file:///srv/b", None).unwrap(),
            Location::Local("/srv/b".into())
        );
        assert_eq!(
            Location::parse("examples/bucket", None).unwrap(),
            Location::Local("examples/bucket".into())
        );
        assert!(Location::parse("", None).is_err());
        assert!(Location::parse("gopher://x", None).is_err());
    }
}
