//! Concurrent ranged reads, reassembled strictly in order.
//!
//! Every part is cut into ranges of `chunk_size`; up to `concurrency` ranges (across part
//! boundaries) are in flight at once, and their bytes are handed on in stream order. Memory
//! is bounded by construction: at most `concurrency` chunks are held here, plus the one in
//! the pipe downstream and the one being decrypted ([`FetchOptions::memory_bound`]). A failed range is retried from its own start with
//! exponential backoff and jitter; finished ranges are never fetched again. An object whose
//! ETag changes mid-download is an error, because mixing two versions would be silent
//! corruption.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::catalog::Part;
use crate::error::{Error, Result, Retry};
use crate::pipe::PipeTx;
use crate::progress::Progress;
use crate::source::Source;

/// Retries of a failed range before giving up, unless the operator says otherwise.
pub const DEFAULT_RETRIES: u32 = 10;

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Ranged reads in flight.
    pub concurrency: usize,
    /// Bytes per ranged read.
    pub chunk_size: u64,
    /// Retries per range after the first attempt.
    pub retries: u32,
    /// First backoff delay; doubles per retry up to [`MAX_BACKOFF`].
    pub backoff: Duration,
}

/// Longest wait between two attempts at one range.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl FetchOptions {
    /// The backend's defaults with `overrides` applied.
    pub fn for_source(source: &dyn Source, concurrency: Option<usize>, chunk: Option<u64>) -> Self {
        FetchOptions {
            concurrency: concurrency
                .unwrap_or_else(|| source.default_concurrency())
                .max(1),
            chunk_size: chunk.unwrap_or_else(|| source.default_chunk_size()).max(1),
            retries: DEFAULT_RETRIES,
            backoff: Duration::from_millis(100),
        }
    }

    /// Upper bound of the fetched bytes held at once: the ranges in flight, one in the pipe
    /// to the decryption and the one it is decrypting. With the cloud defaults (16 × 8 MiB)
    /// that is 144 MiB; `--concurrency` and `--chunk-size` scale it.
    pub fn memory_bound(&self) -> u64 {
        (self.concurrency as u64 + 2) * self.chunk_size
    }
}

/// One fetched range, in stream order.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Index into the backup's parts.
    pub part: usize,
    /// Offset of `bytes` inside that part.
    pub offset: u64,
    /// The bytes.
    pub bytes: Bytes,
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fetches `parts` in order into `tx`.
pub(crate) async fn fetch_ordered(
    source: Arc<dyn Source>,
    parts: Vec<Part>,
    opts: FetchOptions,
    progress: Progress,
    tx: PipeTx<Chunk>,
) -> Result<f64> {
    let mut busy = crate::pipe::Busy::start();
    let parts = Arc::new(parts);
    let n_parts = parts.len();
    let mut ranges = parts.iter().enumerate().flat_map(|(i, p)| {
        let chunk = opts.chunk_size;
        (0..p.size.div_ceil(chunk)).map(move |k| (i, k * chunk..((k + 1) * chunk).min(p.size)))
    });
    let mut inflight: VecDeque<AbortOnDrop<Result<Chunk>>> = VecDeque::new();
    let mut shown_part = usize::MAX;
    loop {
        while inflight.len() < opts.concurrency {
            let Some((i, range)) = ranges.next() else {
                break;
            };
            let source = source.clone();
            let parts = parts.clone();
            let opts = opts.clone();
            inflight.push_back(AbortOnDrop(tokio::spawn(async move {
                let part = &parts[i];
                let bytes = get_with_retry(&*source, part, range.clone(), &opts).await?;
                Ok(Chunk {
                    part: i,
                    offset: range.start,
                    bytes,
                })
            })));
        }
        let Some(mut next) = inflight.pop_front() else {
            break;
        };
        let chunk = (&mut next.0)
            .await
            .map_err(Error::internal("a ranged read"))??;
        if chunk.part != shown_part {
            shown_part = chunk.part;
            progress.set_message(format!("part {} of {n_parts}", chunk.part + 1));
        }
        progress.inc(chunk.bytes.len() as u64);
        let t = std::time::Instant::now();
        tx.send(chunk).await?;
        busy.add_wait(t.elapsed());
    }
    tx.finish().await?;
    Ok(busy.seconds())
}

/// Runs `f` until it succeeds, fails for good, or `opts.retries` retries of transient
/// failures are used up.
pub(crate) async fn retrying<T, F, Fut>(opts: &FetchOptions, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt: u32 = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < opts.retries => {
                tokio::time::sleep(backoff(opts.backoff, attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn get_with_retry(
    source: &dyn Source,
    part: &Part,
    range: std::ops::Range<u64>,
    opts: &FetchOptions,
) -> Result<Bytes> {
    let want = range.end - range.start;
    retrying(opts, || async {
        let got = source.get_range(&part.name, range.clone()).await?;
        if let (Some(expected), Some(found)) = (&part.etag, &got.etag) {
            if normalize_etag(expected) != normalize_etag(found) {
                return Err(Error::ObjectChanged {
                    part: part.name.clone(),
                    expected: format!("ETag {expected}"),
                    found: format!("ETag {found}"),
                });
            }
        }
        if got.bytes.len() as u64 != want {
            return Err(Error::storage(
                "reading",
                &part.name,
                Some(range.clone()),
                Retry::Transient,
                format!("short read: {} of {want} bytes", got.bytes.len()),
            ));
        }
        Ok(got.bytes)
    })
    .await
}

/// ETags compare without quotes or a weak marker: stores quote them in some responses
/// (Azure's GET) and not in others (its listing).
fn normalize_etag(e: &str) -> &str {
    e.trim().trim_start_matches("W/").trim_matches('"')
}

/// Full-jitter exponential backoff: a random delay in [base*2^n / 2, base*2^n], capped.
fn backoff(base: Duration, attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let cap = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let frac = (h.finish() % 1000) as f64 / 1000.0;
    cap.mul_f64(0.5 + frac / 2.0)
}

#[cfg(test)]
mod tests {
    use crate::source::memory::MemorySource;

    /// Retries on the in-memory source with tokio's paused clock: the backoff sleeps take no
    /// real time. Issue 11: retries tested on a source every backend shares the code of.
    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_the_retries_run_out() {
        let m = MemorySource::new();
        m.put("x", vec![7u8; 100]);
        let opts = FetchOptions {
            concurrency: 1,
            chunk_size: 10,
            retries: 3,
            backoff: Duration::from_millis(100),
        };
        m.fail_next_reads(3);
        let got = retrying(&opts, || m.get_range("x", 0..10)).await.unwrap();
        assert_eq!(got.bytes.len(), 10);
        m.fail_next_reads(4);
        let e = retrying(&opts, || m.get_range("x", 0..10))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x failed (bytes 0..10)") && e.contains("gave up after retries"),
            "{e}"
        );
        // A permanent failure is not retried at all.
        let e = retrying(&opts, || m.get_range("missing", 0..10))
            .await
            .unwrap_err();
        assert!(!e.is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_rewritten_during_the_read_is_an_error() {
        let m = Arc::new(MemorySource::new());
        m.put("b-1", vec![1u8; 64]);
        let listed = m.list("b-").await.unwrap();
        let part = Part {
            name: "b-1".into(),
            index: Some(1),
            size: 64,
            etag: listed[0].etag.clone(),
        };
        m.put("b-1", vec![2u8; 64]);
        let opts = FetchOptions::for_source(&*m, None, None);
        let e = get_with_retry(&*m, &part, 0..64, &opts).await.unwrap_err();
        assert!(matches!(e, Error::ObjectChanged { .. }), "{e}");
    }

    use super::*;

    #[test]
    fn etags_compare_without_quotes() {
        assert_eq!(normalize_etag("\"0x269C\""), normalize_etag("0x269C"));
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_ne!(normalize_etag("\"a\""), normalize_etag("\"b\""));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_millis(100);
        assert!(backoff(b, 0) <= Duration::from_millis(100));
        assert!(backoff(b, 0) >= Duration::from_millis(50));
        assert!(backoff(b, 3) >= Duration::from_millis(400));
        assert!(backoff(b, 30) <= MAX_BACKOFF);
    }
}
