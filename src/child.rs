//! Child processes that are stopped together with everything they started.
//!
//! psql and pg_restore `--jobs` fork workers, and command stages run `sh -c`, whose commands
//! fork more. Killing only the direct child would leave those running after a failed or
//! interrupted restore. So every child starts in a process group of its own, and an abandoned
//! one is stopped by signalling the whole group.
//!
//! A group of its own also means a Ctrl-C at the terminal reaches only us, not the children
//! directly: we decide what stops and in what order, and the journal records it.
//!
//! This is the one place that starts processes: [`output`] (async: a child run to its end,
//! stdin fed, stdout collected and stderr drained at once, killed with its group if the caller
//! gives up), [`FedChild`] (the restoring psql or pg_restore, and each connection of the
//! parallel loader, fed from a blocking thread) and
//! [`run_blocking`] (setup steps on a blocking thread).

use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// The process groups of the children running now, so that Ctrl-C and SIGTERM reach them.
/// Owned by [`crate::Shutdown`] (every clone shares it), not a static: a run's children are
/// that run's.
#[derive(Debug, Clone, Default)]
pub(crate) struct Children {
    live: Arc<Mutex<Vec<u32>>>,
}

impl Children {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a running child's group, so that [`Children::stop_all`] reaches it.
    pub(crate) fn register(&self, pid: u32) {
        self.lock().push(pid);
    }

    /// Forgets a child that exited or was stopped.
    pub(crate) fn unregister(&self, pid: u32) {
        self.lock().retain(|&p| p != pid);
    }

    /// Sends SIGKILL to the process group led by `pid` (a child started with [`own_group`]).
    /// A group that is already gone is not an error.
    pub(crate) fn kill_group(&self, pid: u32) {
        self.unregister(pid);
        kill_group(pid);
    }

    /// Stops every registered child group: on Ctrl-C or SIGTERM, a sink child that is busy (a
    /// psql running a long statement, its input pipe full) must not outlive us, and its group
    /// no longer receives the terminal's signals.
    pub(crate) fn stop_all(&self) {
        let live = std::mem::take(&mut *self.lock());
        for pid in live {
            kill_group(pid);
        }
    }
}

/// Makes `cmd` start in a new process group whose id is the child's pid.
pub(crate) fn own_group(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0)
}

/// Sends SIGKILL to the process group led by `pid`.
fn kill_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Some(pid) = rustix::process::Pid::from_raw(raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Runs `cmd` to its end and collects its output, blocking: for code already on a blocking
/// thread (the drill cluster's initdb and pg_ctl, a program's `--version`). No stdin.
pub(crate) fn run_blocking(mut cmd: Command) -> std::io::Result<std::process::Output> {
    cmd.stdin(std::process::Stdio::null()).output()
}

/// A child fed on its stdin from a blocking thread (the restoring psql or pg_restore, a
/// connection of the parallel loader): started in a process group of its own and registered,
/// so that Ctrl-C and SIGTERM stop it with everything it started; its stderr drained on a
/// thread into a [`ChildSummary`]; its group killed if it is dropped before [`finish`].
///
/// [`finish`]: FedChild::finish
#[derive(Debug)]
pub(crate) struct FedChild {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<ChildSummary>>,
    program: &'static str,
    doing: String,
    children: Children,
}

impl FedChild {
    /// Starts `cmd` with stdin and stderr piped, and stdout piped too when `stdout` (a
    /// loader connection, whose stdout says which units it finished), else to /dev/null.
    pub(crate) fn spawn(
        mut cmd: Command,
        program: &'static str,
        doing: String,
        children: &Children,
        stdout: bool,
    ) -> Result<(FedChild, Option<ChildStdout>)> {
        let mut child = own_group(&mut cmd)
            .stdin(Stdio::piped())
            .stdout(if stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| start_err(program, e))?;
        children.register(child.id());
        let out = child.stdout.take();
        let stderr = child.stderr.take().map(drain_stderr);
        let fed = FedChild {
            stdin: child.stdin.take(),
            child,
            stderr,
            program,
            doing,
            children: children.clone(),
        };
        Ok((fed, out))
    }

    /// Its stdin, for a writer thread of its own (the loader's connections).
    pub(crate) fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Writes to its stdin; a child that stopped reading has failed: its error, in its words.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        let stdin = self.stdin.as_mut().expect("open until finished");
        if stdin.write_all(data).is_err() {
            // Say why, not "broken pipe".
            return Err(self.finish().err().unwrap_or_else(|| Error::Child {
                program: self.program.into(),
                doing: self.doing.clone(),
                status: "it stopped reading its input".into(),
                stderr: String::new(),
            }));
        }
        Ok(())
    }

    /// Waits for it to exit (its stdin closed first) and collects what it said on stderr.
    pub(crate) fn wait(&mut self) -> (io::Result<std::process::ExitStatus>, ChildSummary) {
        drop(self.stdin.take());
        let status = self.child.wait();
        self.children.unregister(self.child.id());
        let summary = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, summary)
    }

    /// Closes its stdin and waits: its summary if it succeeded, else its error quoting its
    /// stderr.
    pub(crate) fn finish(&mut self) -> Result<ChildSummary> {
        let (status, summary) = self.wait();
        let status = status.map_err(|e| start_err(self.program, e))?;
        if status.success() {
            Ok(summary)
        } else {
            Err(self.error(status.to_string(), &summary))
        }
    }

    /// Its error for `status`, quoting the last lines of its stderr.
    pub(crate) fn error(&self, status: String, summary: &ChildSummary) -> Error {
        Error::Child {
            program: self.program.into(),
            doing: self.doing.clone(),
            status,
            stderr: summary.tail.join("\n"),
        }
    }

    /// Stops it and whatever it started (pg_restore --jobs forks its workers).
    pub(crate) fn kill(&mut self) {
        if self.stderr.is_some() {
            self.children.kill_group(self.child.id());
        }
    }
}

impl Drop for FedChild {
    fn drop(&mut self) {
        // Not finished: the stream failed or was interrupted.
        if self.stderr.is_some() {
            self.children.kill_group(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to its end in a process group of its own, `stdin` fed to it, stdout collected
/// and stderr drained at the same time (so that neither pipe can fill and stall the child),
/// without blocking the async runtime. The group is killed if the caller gives up on it (an
/// error elsewhere, Ctrl-C, SIGTERM) before the child exits.
pub(crate) async fn output(
    mut cmd: std::process::Command,
    stdin: Option<Vec<u8>>,
    children: &Children,
) -> Result<(std::process::ExitStatus, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// Stops the child's whole process group if the stage is abandoned (an error elsewhere,
    /// Ctrl-C, SIGTERM) before the child exits.
    struct Abandon(Option<u32>, Children);
    impl Drop for Abandon {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                self.1.kill_group(pid);
            }
        }
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    own_group(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Child {
        program: program.clone(),
        doing: "starting".into(),
        status: e.to_string(),
        stderr: String::new(),
    })?;
    let mut abandon = Abandon(child.id(), children.clone());
    if let Some(pid) = abandon.0 {
        children.register(pid);
    }
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = w.write_all(&data).await;
        });
    }
    fn collect(
        mut r: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    ) -> tokio::task::JoinHandle<Vec<u8>> {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf).await;
            buf
        })
    }
    let out = collect(child.stdout.take().expect("piped"));
    let err = collect(child.stderr.take().expect("piped"));
    let status = child.wait().await.map_err(|e| Error::Child {
        program,
        doing: "waiting".into(),
        status: e.to_string(),
        stderr: String::new(),
    })?;
    if let Some(pid) = abandon.0.take() {
        children.unregister(pid);
    }
    // Something the command left running in the background may hold its output open; what it
    // said before it exited is enough.
    let grace = std::time::Duration::from_secs(2);
    let o = tokio::time::timeout(grace, out)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let e = tokio::time::timeout(grace, err)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    Ok((
        status,
        String::from_utf8_lossy(&o).into_owned(),
        String::from_utf8_lossy(&e).into_owned(),
    ))
}

/// What a restoring child said on stderr: SQL errors counted, the first few kept.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ChildSummary {
    /// Lines with `ERROR:` (psql, pg_restore).
    pub sql_errors: u64,
    /// The first few of them.
    pub first_errors: Vec<String>,
    /// The last lines of stderr, for a failure message.
    #[serde(skip)]
    pub tail: Vec<String>,
    /// The phases of a parallel restore (`--jobs N` on a plain dump).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<crate::phases::Phases>,
    /// The COPY chunks the server refused (their tables' rows not loaded), each named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_copies: Vec<crate::phases::FailedCopy>,
    /// The rows of each table and the databases, when the loader counted them from the items
    /// it loaded (so that a plain dump is read once).
    #[serde(skip)]
    pub tables: Option<Vec<crate::dump::TableRows>>,
    #[serde(skip)]
    pub databases: Option<Vec<String>>,
}

/// The error of a child that could not be started.
pub(crate) fn start_err(program: &str, e: io::Error) -> Error {
    Error::Child {
        program: program.into(),
        doing: "starting".into(),
        status: e.to_string(),
        stderr: String::new(),
    }
}

/// Drains a child's stderr on a thread of its own: SQL errors counted, the first few and the
/// last lines kept.
pub(crate) fn drain_stderr(r: impl io::Read + Send + 'static) -> JoinHandle<ChildSummary> {
    std::thread::spawn(move || {
        let mut sum = ChildSummary::default();
        let mut tail = VecDeque::new();
        let mut r = io::BufReader::new(r);
        let mut line = Vec::new();
        while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            line.clear();
            if text.contains("ERROR:") {
                sum.sql_errors += 1;
                if sum.first_errors.len() < 5 {
                    sum.first_errors.push(text.clone());
                }
            }
            tail.push_back(text);
            if tail.len() > 30 {
                tail.pop_front();
            }
        }
        sum.tail = tail.into();
        sum
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(pid: u32) -> bool {
        // Gone, or a zombie nobody reaped yet: not running either way.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|st| st.rsplit(')').next().and_then(|r| r.trim().chars().next()))
            .is_some_and(|state| state != 'Z' && state != 'X')
    }

    #[test]
    fn killing_the_group_stops_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "sleep 60 & echo $! > {}.tmp; mv {0}.tmp {0}; wait",
            pidfile.display()
        ));
        let mut child = own_group(&mut cmd).spawn().unwrap();
        let t0 = std::time::Instant::now();
        while !pidfile.exists() {
            assert!(t0.elapsed().as_secs() < 10, "the grandchild never started");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(running(grandchild));
        kill_group(child.id());
        child.wait().unwrap();
        let t0 = std::time::Instant::now();
        while running(grandchild) {
            assert!(t0.elapsed().as_secs() < 5, "the grandchild survived");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
