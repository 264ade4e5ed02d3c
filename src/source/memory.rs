//! An in-memory source: objects in a map, for tests and for trying the pipeline without a
//! store. Every object has a version (its ETag) that changes when it is written again. A
//! test can make the next ranged reads fail as a flaky store would (transiently), to try the
//! retries, with tokio's paused clock, in no time.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use super::{BoxFuture, GetRange, ObjectMeta, Source, Upload};
use crate::error::{Error, Result, Retry};

#[derive(Debug, Default)]
struct Objects {
    map: BTreeMap<String, (Bytes, u64)>,
}

/// Objects in memory.
#[derive(Debug, Default, Clone)]
pub struct MemorySource {
    objects: Arc<Mutex<Objects>>,
    versions: Arc<AtomicU64>,
    failures: Arc<AtomicU32>,
}

impl MemorySource {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts (or replaces) an object.
    pub fn put(&self, name: &str, data: impl Into<Bytes>) {
        let version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock()
            .map
            .insert(name.to_string(), (data.into(), version));
    }

    /// The next `n` ranged reads fail transiently (as a reset connection would).
    pub fn fail_next_reads(&self, n: u32) {
        self.failures.store(n, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Source for MemorySource {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .map
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, (data, version))| ObjectMeta {
                    name: k.clone(),
                    size: data.len() as u64,
                    etag: Some(format!("v{version}")),
                    not_a_file: None,
                })
                .collect())
        })
    }

    fn get_range<'a>(
        &'a self,
        name: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<GetRange>> {
        Box::pin(async move {
            let failing = self
                .failures
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err(Error::storage(
                    "reading",
                    name,
                    Some(range),
                    Retry::Transient,
                    "connection reset (injected)",
                ));
            }
            let objects = self.lock();
            let Some((data, version)) = objects.map.get(name) else {
                return Err(Error::storage(
                    "reading",
                    name,
                    Some(range),
                    Retry::Permanent,
                    "no such object",
                ));
            };
            let end = range.end.min(data.len() as u64);
            if range.start >= end {
                return Err(Error::storage(
                    "reading",
                    name,
                    Some(range),
                    Retry::Permanent,
                    "the range is past the end",
                ));
            }
            Ok(GetRange {
                bytes: data.slice(range.start as usize..end as usize),
                etag: Some(format!("v{version}")),
            })
        })
    }

    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn Upload>>> {
        Box::pin(async move {
            Ok(Box::new(MemoryUpload {
                store: self.clone(),
                name: name.to_string(),
                data: BytesMut::new(),
            }) as Box<dyn Upload>)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.lock().map.remove(name);
            Ok(())
        })
    }

    fn default_concurrency(&self) -> usize {
        4
    }

    fn default_chunk_size(&self) -> u64 {
        1 << 20
    }
}

#[derive(Debug)]
struct MemoryUpload {
    store: MemorySource,
    name: String,
    data: BytesMut,
}

impl Upload for MemoryUpload {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>> {
        self.data.extend_from_slice(&data);
        Box::pin(async { Ok(()) })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        let MemoryUpload { store, name, data } = *self;
        Box::pin(async move {
            store.put(&name, data.freeze());
            Ok(())
        })
    }
}
