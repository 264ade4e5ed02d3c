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

/// Adapts a pipe of byte chunks into a blocking [`std::io::BufRead`] without copying.
pub(crate) struct PipeReader {
    rx: PipeRx<bytes::Bytes>,
    cur: bytes::Bytes,
    done: bool,
    /// Set when the upstream stage failed, so the consumer's error can be discarded.
    pub(crate) aborted: bool,
}

impl PipeReader {
    pub(crate) fn new(rx: PipeRx<bytes::Bytes>) -> Self {
        PipeReader {
            rx,
            cur: bytes::Bytes::new(),
            done: false,
            aborted: false,
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
            match self.rx.blocking_recv() {
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
