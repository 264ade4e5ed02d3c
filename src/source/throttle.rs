//! A source around a source that limits the read rate (`--limit-rate`): for recoveries that
//! must not saturate a shared link, and for tests that need a recovery to take a while.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{BoxFuture, GetRange, ObjectMeta, Source, Upload};
use crate::error::Result;

/// Limits the bytes per second read through `inner`.
#[derive(Debug)]
pub struct Throttled {
    inner: Arc<dyn Source>,
    bytes_per_sec: u64,
    next_free: Mutex<Instant>,
}

impl Throttled {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Source>, bytes_per_sec: u64) -> Self {
        Throttled {
            inner,
            bytes_per_sec: bytes_per_sec.max(1),
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the link for `len` bytes and returns when that transfer may complete.
    fn reserve(&self, len: u64) -> Instant {
        let cost = Duration::from_secs_f64(len as f64 / self.bytes_per_sec as f64);
        let mut next = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*next).max(Instant::now());
        *next = start + cost;
        *next
    }
}

impl Source for Throttled {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn describe(&self) -> String {
        format!(
            "{} (limited to {}/s)",
            self.inner.describe(),
            crate::format_bytes(self.bytes_per_sec)
        )
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        self.inner.list(prefix)
    }

    fn get_range<'a>(
        &'a self,
        name: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<GetRange>> {
        Box::pin(async move {
            let done_at = self.reserve(range.end - range.start);
            let got = self.inner.get_range(name, range).await?;
            tokio::time::sleep_until(done_at.into()).await;
            Ok(got)
        })
    }

    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn Upload>>> {
        self.inner.create(name)
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.inner.delete(name)
    }

    fn default_concurrency(&self) -> usize {
        self.inner.default_concurrency()
    }

    fn default_chunk_size(&self) -> u64 {
        // Small reads keep a throttled stream smooth.
        self.inner
            .default_chunk_size()
            .min((self.bytes_per_sec / 4).max(64 * 1024))
    }
}
