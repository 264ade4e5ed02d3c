//! `a9s-recover bench`: how long will a recovery of this size take here, and how does it
//! compare with the manual's shell pipeline?
//!
//! Owns: a synthetic pg_dumpall-shaped dump of any size (pgbench-like COPY rows), packing it
//! as a9s does, running the reference pipeline (`cat | openssl enc -d | gunzip > /dev/null`)
//! and ours alternately, per-stage throughput from the stages' busy times, and peak memory.
//! Benchmarks are never timed tests: the test suite only checks that this runs.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::pipeline::{self, Encryption, Request, RunOptions};
use crate::shutdown::Shutdown;
use crate::sink::Output;
use crate::source::{LocalSource, Source};

/// A pg_dumpall-shaped dump of about `size` bytes, generated as it is read.
#[derive(Debug)]
pub struct SyntheticDump {
    size: u64,
    produced: u64,
    buf: Vec<u8>,
    pos: usize,
    state: u64,
    table: u32,
    row: u64,
    finished: bool,
}

const ROWS_PER_TABLE: u64 = 1_000_000;

impl SyntheticDump {
    /// About `size` bytes (the last line may go over a little).
    pub fn new(size: u64) -> Self {
        let mut d = SyntheticDump {
            size,
            produced: 0,
            buf: Vec::with_capacity(1 << 16),
            pos: 0,
            state: 0x9e37_79b9_7f4a_7c15,
            table: 0,
            row: ROWS_PER_TABLE,
            finished: false,
        };
        d.buf.extend_from_slice(
            b"--\n-- PostgreSQL database cluster dump\n--\n\nSET default_transaction_read_only = off;\n\nCREATE ROLE app;\n\nCREATE DATABASE bench;\n\n\\connect bench\n\n",
        );
        d
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        while self.buf.len() < (1 << 16) - 256 {
            if self.produced + self.buf.len() as u64 >= self.size {
                if self.row < ROWS_PER_TABLE {
                    self.buf.extend_from_slice(b"\\.\n\n");
                    self.row = ROWS_PER_TABLE;
                }
                self.buf
                    .extend_from_slice(b"--\n-- PostgreSQL database cluster dump complete\n--\n\n");
                self.finished = true;
                return;
            }
            if self.row >= ROWS_PER_TABLE {
                if self.table > 0 {
                    self.buf.extend_from_slice(b"\\.\n\n");
                }
                self.table += 1;
                self.row = 0;
                let _ = write!(
                    self.buf,
                    "CREATE TABLE public.accounts_{t} (aid integer, bid integer, abalance integer, filler text);\n\nCOPY public.accounts_{t} (aid, bid, abalance, filler) FROM stdin;\n",
                    t = self.table
                );
            }
            self.row += 1;
            let x = &mut self.state;
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            let v = *x;
            let _ = writeln!(
                self.buf,
                "{}\t{}\t{}\tcustomer {:x} {}",
                self.row,
                self.row / 100_000 + 1,
                (v % 20_000) as i64 - 10_000,
                v >> 40,
                ["active", "closed", "pending", "on hold"][(v % 4) as usize]
            );
        }
    }
}

impl Read for SyntheticDump {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.finished {
                return Ok(0);
            }
            self.produced += self.buf.len() as u64;
            self.refill();
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Size of the synthetic dump when no backup is given.
    pub size: u64,
    /// Runs of each pipeline (the median is reported).
    pub runs: usize,
    /// Where to put the synthetic backup.
    pub work_dir: Option<PathBuf>,
    pub show_progress: bool,
}

/// Median figures of one pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStats {
    pub seconds: Vec<f64>,
    pub median_seconds: f64,
    /// Dump bytes per second, in MB/s (10^6).
    pub dump_mb_s: f64,
    /// Peak resident memory, when it could be measured.
    pub peak_rss_mib: Option<f64>,
}

/// One stage's median throughput when it is not waiting on its neighbours.
#[derive(Debug, Clone, Serialize)]
pub struct StageStat {
    pub stage: &'static str,
    pub mb_s: f64,
    /// Against the reference pipeline's end-to-end rate.
    pub ratio_to_reference: Option<f64>,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub backup_id: String,
    pub location: String,
    pub dump_bytes: u64,
    pub stored_bytes: u64,
    pub parts: usize,
    pub runs: usize,
    pub reference_command: Option<String>,
    pub reference: Option<PipelineStats>,
    pub ours: PipelineStats,
    /// reference median / our median.
    pub speedup: Option<f64>,
    pub stages: Vec<StageStat>,
    pub machine: String,
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn reset_peak_rss() {
    // "5" resets the peak resident set size (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A short description of the machine.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|k| format!(", {} GiB", k / 1_048_576))
        .unwrap_or_default();
    format!("{cores} cores{mem}, {cpu}")
}

/// A synthetic backup in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct SyntheticBackup {
    pub dir: PathBuf,
    pub backup_id: String,
    pub secret: crate::Secret,
}

impl Drop for SyntheticBackup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Packs a synthetic dump of `size` bytes as a9s does (gzip -6, `-md md5`, 1 GiB parts, or
/// a quarter of the size for small runs).
pub async fn make_synthetic_backup(
    opts: &BenchOptions,
    shutdown: Shutdown,
) -> Result<SyntheticBackup> {
    let parent = opts.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!("a9s-bench-{}", std::process::id()));
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| Error::Config(e.to_string()))?;
    let backup = SyntheticBackup {
        dir: dir.clone(),
        backup_id: "bench0000-0000-0000-0000-000000000000-1700000000000".into(),
        secret: crate::Secret::new(crate::hex(&salt)),
    };
    let source: Arc<dyn Source> = Arc::new(LocalSource::new(dir));
    let req = crate::pack::PackRequest {
        backup_id: backup.backup_id.clone(),
        secret: backup.secret.clone(),
        kdf: crate::crypto::Kdf::A9S,
        part_size: (opts.size / 4).clamp(1 << 20, 1 << 30),
        level: 6,
    };
    crate::pack::pack(
        source,
        req,
        Box::new(SyntheticDump::new(opts.size)),
        opts.show_progress,
        shutdown,
    )
    .await?;
    Ok(backup)
}

/// The manual's pipeline over a local directory of parts, as `sh -c`; the secret travels in
/// the environment (`-pass env:`), never in argv.
fn reference_command(dir: &Path, backup: &pipeline::PreparedBackup) -> String {
    let cat = if backup.backup.parts.len() == 1 {
        format!("cat '{}'", dir.join(&backup.backup.parts[0].name).display())
    } else {
        format!(
            "cd '{}' && cat $(ls -1v {}-*)",
            dir.display(),
            backup.backup.id
        )
    };
    match backup.kdf() {
        Some(kdf) => format!(
            "{cat} | openssl enc -aes256 {kdf} -d -pass env:A9S_BENCH_SECRET 2>/dev/null | gunzip -c > /dev/null"
        ),
        None => format!("{cat} | gunzip -c > /dev/null"),
    }
}

async fn run_reference(
    cmd: &str,
    secret: &crate::Secret,
    shutdown: &Shutdown,
) -> Result<(f64, Option<f64>)> {
    use std::os::unix::ffi::OsStrExt;
    let time = Path::new("/usr/bin/time");
    let rss_file = std::env::temp_dir().join(format!("a9s-bench-rss-{}", std::process::id()));
    let mut c = if time.exists() {
        let mut c = std::process::Command::new(time);
        c.args(["-f", "%M", "-o"])
            .arg(&rss_file)
            .args(["sh", "-c", cmd]);
        c
    } else {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", cmd]);
        c
    };
    c.env(
        "A9S_BENCH_SECRET",
        std::ffi::OsStr::from_bytes(secret.expose()),
    );
    let t = Instant::now();
    let (st, _, stderr) = crate::child::output(c, None, shutdown.children()).await?;
    let secs = t.elapsed().as_secs_f64();
    if !st.success() {
        return Err(Error::Child {
            program: "sh".into(),
            doing: "running the reference pipeline".into(),
            status: st.to_string(),
            stderr,
        });
    }
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.trim().lines().last()?.trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0);
    let _ = std::fs::remove_file(&rss_file);
    Ok((secs, rss))
}

/// Runs the benchmark on a backup: the reference (when the backup is a local directory and
/// `local_dir` is given) and ours, alternately, `opts.runs` times each.
pub async fn run(
    source: Arc<dyn Source>,
    req: &Request,
    local_dir: Option<&Path>,
    opts: &BenchOptions,
    shutdown: Shutdown,
    notify: &(dyn Fn(&str) + Sync),
) -> Result<BenchReport> {
    let probe = pipeline::prepare(source.clone(), req).await?;
    let location = probe.location.clone();
    let backup_id = probe.backup.id.clone();
    let stored = probe.total_size();
    let parts = probe.backup.parts.len();
    let reference_cmd = match (local_dir, &probe.encryption, &req.secret) {
        (Some(d), Encryption::Aes { .. }, Some(_)) | (Some(d), Encryption::None, _) => {
            Some(reference_command(d, &probe))
        }
        _ => None,
    };
    drop(probe);
    let no_secret = crate::Secret::new(Vec::new());
    let secret = req.secret.as_ref().unwrap_or(&no_secret);
    let mut ref_secs = Vec::new();
    let mut ref_rss: Option<f64> = None;
    let mut ours = Vec::new();
    let mut our_rss: Option<f64> = None;
    let mut stages: Vec<[f64; 4]> = Vec::new();
    let mut dump_bytes = 0u64;
    for i in 0..opts.runs.max(1) {
        if let Some(cmd) = &reference_cmd {
            notify(&format!("run {}/{}: reference pipeline", i + 1, opts.runs));
            let (s, rss) = run_reference(cmd, secret, &shutdown).await?;
            ref_secs.push(s);
            ref_rss = max_opt(ref_rss, rss);
        }
        notify(&format!("run {}/{}: a9s-recover", i + 1, opts.runs));
        reset_peak_rss();
        let plan = pipeline::prepare(source.clone(), req).await?;
        let t = Instant::now();
        let r = pipeline::run(
            plan,
            &Output::Null,
            RunOptions {
                progress: false,
                hash: false,
                count_rows: false,
                part_digests: false,
                shutdown: shutdown.clone(),
            },
        )
        .await?;
        ours.push(t.elapsed().as_secs_f64());
        our_rss = max_opt(our_rss, peak_rss_kib().map(|k| k as f64 / 1024.0));
        dump_bytes = r.bytes_dump;
        let mb = |bytes: u64, secs: f64| bytes as f64 / secs.max(1e-9) / 1e6;
        stages.push([
            mb(r.bytes_stored, r.stage_seconds.read),
            mb(r.bytes_stored, r.stage_seconds.decrypt),
            mb(r.bytes_dump, r.stage_seconds.inflate),
            mb(r.bytes_dump, r.stage_seconds.sink),
        ]);
    }
    let stats = |secs: Vec<f64>, rss: Option<f64>| {
        let m = median(&secs);
        PipelineStats {
            median_seconds: m,
            dump_mb_s: dump_bytes as f64 / m.max(1e-9) / 1e6,
            seconds: secs,
            peak_rss_mib: rss,
        }
    };
    let ours = stats(ours, our_rss);
    let reference = (!ref_secs.is_empty()).then(|| stats(ref_secs, ref_rss));
    let speedup = reference
        .as_ref()
        .map(|r| r.median_seconds / ours.median_seconds.max(1e-9));
    let names = ["read", "decrypt", "inflate", "sink"];
    let stages = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mb_s = median(&stages.iter().map(|s| s[k]).collect::<Vec<_>>());
            StageStat {
                stage: name,
                mb_s,
                ratio_to_reference: reference.as_ref().map(|r| mb_s / r.dump_mb_s.max(1e-9)),
            }
        })
        .collect();
    Ok(BenchReport {
        backup_id,
        location,
        dump_bytes,
        stored_bytes: stored,
        parts,
        runs: opts.runs.max(1),
        reference_command: reference_cmd.map(|c| c.replace("env:A9S_BENCH_SECRET", "env:SECRET")),
        reference,
        ours,
        speedup,
        stages,
        machine: machine(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_dump_has_the_size_and_shape_asked() {
        let mut d = SyntheticDump::new(3 << 20);
        let mut all = Vec::new();
        d.read_to_end(&mut all).unwrap();
        assert!(all.len() as u64 >= 3 << 20 && (all.len() as u64) < (3 << 20) + (1 << 16));
        assert_eq!(crate::dump::sniff(&all), crate::dump::DumpKind::PgDumpall);
        let mut c = crate::dump::CopyCounter::new();
        c.feed(&all);
        c.finish();
        assert!(!c.in_copy(), "every COPY block is closed");
        assert!(c.tables()[0].rows > 10_000);
        assert_eq!(c.tables()[0].database.as_deref(), Some("bench"));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        assert_eq!(max_opt(None, Some(1.0)), Some(1.0));
    }
}
