//! Bounded channels between pipeline stages.
//!
//! A stream ends with an explicit end marker. A receiver that sees the channel close without
//! it knows the upstream stage failed, returns [`Error::Aborted`], and so never reports a
//! misleading secondary error ("gzip truncated") for a primary one ("wrong padding").

use tokio::sync::mpsc;

use crate::error::{Error, Result};

enum Msg<T> {
    Data(T),
    End,
}

/// Sending half.
pub(crate) struct PipeTx<T>(mpsc::Sender<Msg<T>>);
/// Receiving half.
pub(crate) struct PipeRx<T>(mpsc::Receiver<Msg<T>>);

/// A pipe holding at most `capacity` items.
pub(crate) fn pipe<T>(capacity: usize) -> (PipeTx<T>, PipeRx<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (PipeTx(tx), PipeRx(rx))
}

impl<T> PipeTx<T> {
    pub(crate) async fn send(&self, t: T) -> Result<()> {
        self.0.send(Msg::Data(t)).await.map_err(|_| Error::Aborted)
    }
    pub(crate) async fn finish(self) -> Result<()> {
        self.0.send(Msg::End).await.map_err(|_| Error::Aborted)
    }
    pub(crate) fn blocking_send(&self, t: T) -> Result<()> {
        self.0
            .blocking_send(Msg::Data(t))
            .map_err(|_| Error::Aborted)
    }
    pub(crate) fn blocking_finish(self) -> Result<()> {
        self.0.blocking_send(Msg::End).map_err(|_| Error::Aborted)
    }
}

impl<T> PipeRx<T> {
    /// `Ok(None)` at the end of the stream; `Err(Aborted)` when the sender went away early.
    pub(crate) async fn recv(&mut self) -> Result<Option<T>> {
        match self.0.recv().await {
            Some(Msg::Data(t)) => Ok(Some(t)),
            Some(Msg::End) => Ok(None),
            None => Err(Error::Aborted),
        }
    }
    pub(crate) fn blocking_recv(&mut self) -> Result<Option<T>> {
        match self.0.blocking_recv() {
            Some(Msg::Data(t)) => Ok(Some(t)),
            Some(Msg::End) => Ok(None),
            None => Err(Error::Aborted),
        }
    }
}

/// Measures a stage's busy time: its run time minus the time it waited on pipes.
#[derive(Debug)]
pub(crate) struct Busy {
    start: std::time::Instant,
    waited: std::time::Duration,
}

impl Busy {
    pub(crate) fn start() -> Self {
        Busy {
            start: std::time::Instant::now(),
            waited: std::time::Duration::ZERO,
        }
    }

    /// Runs `f` (a pipe operation) and counts its time as waiting.
    pub(crate) fn wait<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let r = f();
        self.waited += t.elapsed();
        r
    }

    pub(crate) fn add_wait(&mut self, d: std::time::Duration) {
        self.waited += d;
    }

    /// Seconds spent working.
    pub(crate) fn seconds(&self) -> f64 {
        self.start
            .elapsed()
            .saturating_sub(self.waited)
            .as_secs_f64()
    }
}

/// Adapts a pipe of byte chunks into a blocking [`std::io::BufRead`] without copying.
pub(crate) struct PipeReader {
    rx: PipeRx<bytes::Bytes>,
    cur: bytes::Bytes,
    done: bool,
    /// Set when the upstream stage failed, so the consumer's error can be discarded.
    pub(crate) aborted: bool,
    /// Time spent waiting for upstream.
    pub(crate) waited: std::time::Duration,
}

impl PipeReader {
    pub(crate) fn new(rx: PipeRx<bytes::Bytes>) -> Self {
        PipeReader {
            rx,
            cur: bytes::Bytes::new(),
            done: false,
            aborted: false,
            waited: std::time::Duration::ZERO,
        }
    }
}

impl std::io::Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead;
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl std::io::BufRead for PipeReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.cur.is_empty() && !self.done {
            let t = std::time::Instant::now();
            let got = self.rx.blocking_recv();
            self.waited += t.elapsed();
            match got {
                Ok(Some(b)) => self.cur = b,
                Ok(None) => self.done = true,
                Err(_) => {
                    self.aborted = true;
                    return Err(std::io::Error::other("upstream stage failed"));
                }
            }
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, amt: usize) {
        let _ = self.cur.split_to(amt);
    }
}
