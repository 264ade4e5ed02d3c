//! Child processes that are stopped together with everything they started.
//!
//! psql and pg_restore `--jobs` fork workers, and command stages run `sh -c`, whose commands
//! fork more. Killing only the direct child would leave those running after a failed or
//! interrupted restore. So every child starts in a process group of its own, and an abandoned
//! one is stopped by signalling the whole group.
//!
//! A group of its own also means a Ctrl-C at the terminal reaches only us, not the children
//! directly: we decide what stops and in what order, and the journal records it.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

/// Process groups of children that are running now.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Makes `cmd` start in a new process group whose id is the child's pid.
pub(crate) fn own_group(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0)
}

/// Records a running child's group, so that [`stop_all`] reaches it.
pub(crate) fn register(pid: u32) {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// Forgets a child that exited or was stopped.
pub(crate) fn unregister(pid: u32) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
}

/// Sends SIGKILL to the process group led by `pid` (a child started with [`own_group`]).
/// A group that is already gone is not an error.
pub(crate) fn kill_group(pid: u32) {
    unregister(pid);
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Some(pid) = rustix::process::Pid::from_raw(raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Stops every registered child group: on Ctrl-C or SIGTERM, a sink child that is busy (a psql
/// running a long statement, its input pipe full) must not outlive us, and its group no
/// longer receives the terminal's signals.
pub(crate) fn stop_all() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in live {
        kill_group(pid);
    }
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
