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

#[cfg(feature = "azure")]
pub mod azure;
pub mod local;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;
mod throttle;

#[cfg(feature = "azure")]
pub use azure::AzureSource;
pub use local::LocalSource;
#[cfg(feature = "s3")]
pub use s3::S3Source;
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
    /// Set when the name is not a regular file (local directories): what it is instead
    /// ("a symbolic link", "a FIFO", …). Such an object is never opened as a part.
    pub not_a_file: Option<&'static str>,
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

    /// The kind of storage, for reports: `local`, `s3` or `azure`.
    fn kind(&self) -> &'static str;

    /// All objects whose names start with `prefix` (pagination is the backend's business).
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>>;

    /// Reads `range` of object `name`, which callers never make empty. Returns exactly
    /// `range.end - range.start` bytes or an error; transient failures are marked so that
    /// `fetch` retries them.
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

/// How long a cloud request may receive nothing before it is given up (and retried).
pub const DEFAULT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Options for cloud backends (ignored by local directories).
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// S3 region (default: from the AWS config chain, else us-east-1).
    pub region: Option<String>,
    /// S3 endpoint (path-style) or Azure blob endpoint.
    pub endpoint: Option<String>,
    /// AWS shared-config profile.
    pub profile: Option<String>,
    /// Azure storage account.
    pub account: Option<String>,
    /// How to sign in to Azure.
    pub azure_auth: AzureAuth,
    /// Give up on a request that sends nothing for this long (then it is retried).
    pub read_timeout: Option<std::time::Duration>,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            region: None,
            endpoint: None,
            profile: None,
            account: None,
            azure_auth: AzureAuth::Auto,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
        }
    }
}

/// How to sign in to Azure Blob Storage, from the variables the az CLI and the Azure SDKs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AzureAuth {
    /// A connection string, an account key or a SAS token when one is set; else a service
    /// principal or a workload identity when their variables are set; else, with
    /// `AZURE_STORAGE_AUTH_MODE=login`, the az CLI's login.
    #[default]
    Auto,
    /// `AZURE_STORAGE_CONNECTION_STRING`, `AZURE_STORAGE_KEY` or `AZURE_STORAGE_SAS_TOKEN`.
    Key,
    /// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID` (Microsoft Entra ID).
    ServicePrincipal,
    /// The VM's (or App Service's) managed identity: system-assigned, or user-assigned with
    /// `AZURE_CLIENT_ID` (or `AZURE_OBJECT_ID`, `AZURE_MSI_RESOURCE_ID`).
    ManagedIdentity,
    /// Kubernetes workload identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity,
    /// The az CLI's login (`az account get-access-token`).
    Cli,
}

/// The kind of storage behind a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// A local directory.
    Local,
    /// AWS S3 or an S3-compatible store.
    S3,
    /// Azure Blob Storage.
    Azure,
}

/// A parsed `--bucket` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Local(PathBuf),
    /// An S3 bucket and a prefix (empty or ending in `/`).
    S3 { bucket: String, prefix: String },
    /// An Azure container and a prefix (empty or ending in `/`).
    Azure { container: String, prefix: String },
}

fn split_bucket(rest: &str) -> (String, String) {
    let rest = rest.trim_matches('/');
    match rest.split_once('/') {
        Some((b, p)) => {
            let p = p.trim_matches('/');
            (
                b.to_string(),
                if p.is_empty() {
                    String::new()
                } else {
                    format!("{p}/")
                },
            )
        }
        None => (rest.to_string(), String::new()),
    }
}

/// Whether `s` can be an S3 bucket name (3-63 of a-z, 0-9, `.`, `-`).
fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

impl Location {
    /// Parses a location: `s3://BUCKET[/PREFIX]`, `az://` or `azure://CONTAINER[/PREFIX]`,
    /// `file:///path`, a directory, or (as the a9s manual writes it) a bare bucket name, which
    /// means S3 unless a local directory of that name exists. `kind` forces the kind.
    pub fn parse(s: &str, kind: Option<StorageKind>) -> Result<Location> {
        let bad = |reason: &str| Error::BadLocation {
            location: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, s),
        };
        let kind = match (scheme.as_deref(), kind) {
            (Some("file"), k @ (None | Some(StorageKind::Local))) => {
                let _ = k;
                if rest.is_empty() {
                    return Err(bad("file:// needs a path, e.g. file:///var/backups"));
                }
                return Ok(Location::Local(PathBuf::from(rest)));
            }
            (Some("s3"), None | Some(StorageKind::S3)) => StorageKind::S3,
            (Some("az" | "azure"), None | Some(StorageKind::Azure)) => StorageKind::Azure,
            (Some(other), None) => {
                return Err(bad(&format!(
                    "unknown scheme {other}://; use s3://, az://, file:// or a directory"
                )))
            }
            (Some(other), Some(k)) => {
                return Err(bad(&format!(
                    "--storage {} does not go with a {other}:// location",
                    match k {
                        StorageKind::Local => "local",
                        StorageKind::S3 => "s3",
                        StorageKind::Azure => "azure",
                    }
                )))
            }
            (None, Some(k)) => k,
            (None, None) => {
                let first = s.split('/').next().unwrap_or("");
                let looks_local = std::path::Path::new(s).is_dir()
                    || s.starts_with('/')
                    || s.starts_with('.')
                    || s.starts_with('~')
                    || !is_bucket_name(first);
                if looks_local {
                    StorageKind::Local
                } else {
                    StorageKind::S3
                }
            }
        };
        let (bucket, prefix) = split_bucket(rest);
        match kind {
            StorageKind::Local => Ok(Location::Local(PathBuf::from(s))),
            StorageKind::S3 if bucket.is_empty() => Err(bad("s3:// needs a bucket name")),
            StorageKind::S3 => Ok(Location::S3 { bucket, prefix }),
            StorageKind::Azure if bucket.is_empty() => Err(bad("az:// needs a container name")),
            StorageKind::Azure => Ok(Location::Azure {
                container: bucket,
                prefix,
            }),
        }
    }

    /// Opens the backend.
    pub async fn open(&self, opts: &CloudOptions) -> Result<Arc<dyn Source>> {
        Ok(match self {
            Location::Local(p) => Arc::new(LocalSource::new(p.clone())),
            #[cfg(feature = "s3")]
            Location::S3 { bucket, prefix } => {
                Arc::new(S3Source::connect(bucket, prefix, opts).await?)
            }
            #[cfg(feature = "azure")]
            Location::Azure { container, prefix } => {
                Arc::new(AzureSource::connect(container, prefix, opts)?)
            }
            #[allow(unreachable_patterns)]
            other => {
                let _ = opts;
                return Err(Error::BadLocation {
                    location: other.to_string(),
                    reason: "this build of a9s-recover has no support for it (built without the s3 or azure feature)".into(),
                });
            }
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Location::Azure { container, prefix } => write!(f, "az://{container}/{prefix}"),
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
        assert_eq!(
            Location::parse("s3://my-bucket/backups/pg/", None).unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "backups/pg/".into()
            }
        );
        assert_eq!(
            Location::parse("azure://cont", None).unwrap(),
            Location::Azure {
                container: "cont".into(),
                prefix: String::new()
            }
        );
        // The a9s manual's bare bucket name means S3, unless such a directory exists.
        assert_eq!(
            Location::parse("a9s-backups-prod", None).unwrap(),
            Location::S3 {
                bucket: "a9s-backups-prod".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Location::parse("/srv/backups", None).unwrap(),
            Location::Local("/srv/backups".into())
        );
        assert_eq!(
            Location::parse("src", None).unwrap(),
            Location::Local("src".into()),
            "an existing directory wins"
        );
        assert_eq!(
            Location::parse("src", Some(StorageKind::Azure)).unwrap(),
            Location::Azure {
                container: "src".into(),
                prefix: String::new()
            }
        );
        assert!(Location::parse("s3://", None).is_err());
        assert!(Location::parse("az://x", Some(StorageKind::S3)).is_err());
    }
}
