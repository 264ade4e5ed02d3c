//! The fed child: psql or pg_restore reading the dump on stdin ([`ChildSink`]), and the
//! archive spooled to a 0600 file for `pg_restore --jobs` ([`Spool`]).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Output;
use crate::child::{ChildSummary, Children, FedChild};
use crate::error::{Error, Result};

/// A child reading the dump on stdin, its stderr drained on another thread.
#[derive(Debug)]
pub(crate) struct ChildSink {
    child: FedChild,
}

impl ChildSink {
    pub(super) fn spawn(
        cmd: Command,
        program: &'static str,
        doing: String,
        children: &Children,
    ) -> Result<Self> {
        let (child, _) = FedChild::spawn(cmd, program, doing, children, false)?;
        Ok(ChildSink { child })
    }

    pub(super) fn write(&mut self, data: &[u8]) -> Result<()> {
        self.child.write(data)
    }

    pub(super) fn finish(&mut self) -> Result<ChildSummary> {
        self.child.finish()
    }
}

/// The archive spooled to a 0600 file for `pg_restore --jobs`; removed in any case.
#[derive(Debug)]
pub(crate) struct Spool {
    pub(super) file: Option<File>,
    pub(super) path: PathBuf,
    pub(super) output: Output,
    pub(super) children: Children,
}

impl Spool {
    /// A new 0600 file in `dir` for the archive of `output`.
    pub(super) fn create(dir: &Path, output: Output, children: &Children) -> Result<Spool> {
        crate::pg::ensure_dir(dir)?;
        let path = dir.join(format!(
            "a9s-recover-spool-{}.pgdump",
            crate::time::unique_suffix()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::Output {
                what: path.display().to_string(),
                source: e,
            })?;
        Ok(Spool {
            file: Some(file),
            path,
            output,
            children: children.clone(),
        })
    }

    pub(super) fn restore(&mut self) -> Result<ChildSummary> {
        drop(self.file.take());
        let Output::PgRestore {
            program,
            conn,
            args,
            jobs: Some(jobs),
            ..
        } = &self.output
        else {
            unreachable!("a spool is made for pg_restore --jobs")
        };
        let mut cmd = Command::new(program);
        cmd.args(args).arg(format!("--jobs={jobs}"));
        conn.apply(&mut cmd);
        cmd.arg(&self.path);
        let mut sink = ChildSink::spawn(
            cmd,
            "pg_restore",
            format!("restoring into {} with {jobs} jobs", conn.describe()),
            &self.children,
        )?;
        sink.finish()
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
