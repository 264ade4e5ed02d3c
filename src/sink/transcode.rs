//! A custom-format archive through the loader: `pg_restore -f -` turns the stream into the
//! SQL it would run, reading forward only (a whole restore needs no seek; only `-j` does),
//! and that SQL goes to the same splitter and connections as a plain dump's, or to the first
//! read's prescan. No spool, and the same rules as a plain dump: rows counted and verified,
//! databases known (`-C`), SQL errors counted with the first shown.
//!
//! Two threads: the pipeline's writes the archive into pg_restore; a reader moves its SQL
//! into the loader. Only the pipeline's thread ends the load ([`Transcode::finish`]), after
//! pg_restore exited well: a pg_restore that died partway (or was killed by Ctrl-C) never
//! lets the loader run the post-data of a stream cut short.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;

use super::{Committed, Sink};
use crate::child::{Children, FedChild};
use crate::error::{Error, Result};

/// What reads pg_restore's SQL: the loader, the prescan, or a pick in front of either.
pub(crate) type Inner = Box<Sink>;

/// pg_restore writing SQL into the loader.
#[derive(Debug)]
pub(crate) struct Transcode {
    child: FedChild,
    /// Returns the loader at the end of pg_restore's output (or its error).
    reader: Option<JoinHandle<Result<Inner>>>,
}

impl Transcode {
    /// Starts `program args --file=-`.
    pub(crate) fn spawn(
        program: &Path,
        args: &[String],
        inner: Inner,
        children: &Children,
    ) -> Result<Transcode> {
        let mut cmd = Command::new(program);
        cmd.args(args).arg("--file=-");
        let (child, out) = FedChild::spawn(
            cmd,
            "pg_restore",
            "turning the custom archive into SQL (pg_restore --file=-)".into(),
            children,
            true,
        )?;
        let mut out = out.expect("stdout piped");
        let reader = std::thread::spawn(move || {
            let mut inner = inner;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match out.read(&mut buf) {
                    Ok(0) => return Ok(inner),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Error::Child {
                            program: "pg_restore".into(),
                            doing: "turning the custom archive into SQL".into(),
                            status: format!("reading its output failed: {e}"),
                            stderr: String::new(),
                        })
                    }
                };
                inner.write(&buf[..n])?;
            }
        });
        Ok(Transcode {
            child,
            reader: Some(reader),
        })
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        self.child.write(data).map_err(|e| {
            // pg_restore stops reading when the loader behind it failed: that is the cause.
            self.reader_error().unwrap_or(e)
        })
    }

    fn reader_error(&mut self) -> Option<Error> {
        match self.reader.take()?.join() {
            Ok(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// The archive is all in: pg_restore must end well, then the loader ends the load.
    pub(crate) fn finish(mut self) -> Result<Committed> {
        let (status, said) = self.child.wait();
        let inner = match self.reader.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) | None => {
                return Err(Error::Internal {
                    what: "the custom archive's reader",
                    reason: "its thread ended without a result".into(),
                })
            }
        };
        let status = status.map_err(|e| crate::child::start_err("pg_restore", e))?;
        let inner = inner?;
        if !status.success() {
            // The loader is dropped unfinished: its connections are stopped, and the
            // post-data of a cut stream never runs.
            drop(inner);
            return Err(self.child.error(status.to_string(), &said));
        }
        inner.commit()
    }
}

impl Drop for Transcode {
    /// Not finished (the stream failed, or was interrupted): pg_restore is stopped, and the
    /// loader behind it dropped here, its connections killed, before we go on: never left
    /// to a thread that the process may outlive.
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            self.child.kill();
            let _ = reader.join();
        }
    }
}
