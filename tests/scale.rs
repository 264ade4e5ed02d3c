//! What the target server pays for our checks at the scale of a real fleet (issue 18): the
//! verification of 10,000 tables costs each backend bounded memory and holds one lock at a
//! time, and an error of the check is reported as such, never as a mismatch of the data.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::pg::*;
use crate::support::*;

/// A dump as pg_dump 15 writes it, of `tables` tables `public.tN (id int primary key, v
/// text)` with 1 to 20 rows each: the primary keys in post-data.
pub fn many_tables_dump(tables: usize) -> Vec<u8> {
    let mut s = String::from(
        "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18\n\
         -- Dumped by pg_dump version 15.18\n\nSET statement_timeout = 0;\nSET lock_timeout = 0;\n\
         SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\
         SELECT pg_catalog.set_config('search_path', '', false);\nSET default_table_access_method = heap;\n\n",
    );
    for i in 0..tables {
        write!(
            s,
            "--\n-- Name: t{i}; Type: TABLE; Schema: public; Owner: postgres\n--\n\n\
             CREATE TABLE public.t{i} (\n    id integer NOT NULL,\n    v text\n);\n\n\n"
        )
        .unwrap();
    }
    for i in 0..tables {
        write!(
            s,
            "--\n-- Data for Name: t{i}; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
             COPY public.t{i} (id, v) FROM stdin;\n"
        )
        .unwrap();
        for r in 1..=(1 + i % 20) {
            writeln!(s, "{r}\trow {r} of t{i}").unwrap();
        }
        s.push_str("\\.\n\n\n");
    }
    for i in 0..tables {
        write!(
            s,
            "--\n-- Name: t{i} t{i}_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres\n--\n\n\
             ALTER TABLE ONLY public.t{i}\n    ADD CONSTRAINT t{i}_pkey PRIMARY KEY (id);\n\n\n"
        )
        .unwrap();
    }
    s.push_str("--\n-- PostgreSQL database dump complete\n--\n\n");
    s.into_bytes()
}

/// The postmaster's pid, from its pid file.
fn postmaster_pid(c: &Cluster) -> u32 {
    let text = std::fs::read_to_string(c.data().join("postmaster.pid")).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

/// A field of /proc/PID/status in kB.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples the private memory (RssAnon) of every backend of `c` every 10 ms while it runs:
/// the largest seen, in MiB. Shared buffers are not counted; what a query makes a backend
/// allocate is.
struct BackendMemory {
    stop: Arc<AtomicBool>,
    peak_kb: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackendMemory {
    fn watch(c: &Cluster) -> BackendMemory {
        let postmaster = postmaster_pid(c);
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kb = Arc::new(Mutex::new(0));
        let (s, p) = (stop.clone(), peak_kb.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    if status_kb(pid, "PPid:") != Some(postmaster as u64) {
                        continue;
                    }
                    if let Some(kb) = status_kb(pid, "RssAnon:") {
                        let mut peak = p.lock().unwrap();
                        *peak = (*peak).max(kb);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        BackendMemory {
            stop,
            peak_kb,
            thread: Some(thread),
        }
    }

    fn peak_mib(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        *self.peak_kb.lock().unwrap() as f64 / 1024.0
    }
}

fn restore_json(
    bucket: &Path,
    c: &Cluster,
    db: &str,
    extra: &[&str],
) -> (bool, serde_json::Value, String) {
    let out = restore_to(bucket, &c.dsn(db))
        .arg("--json")
        .args(extra)
        .run();
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    (out.status.success(), r, stderr(&out))
}

fn stage_seconds(r: &serde_json::Value, name: &str) -> f64 {
    r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["seconds"].as_f64())
        .unwrap_or(-1.0)
}

#[test]
fn verify_of_ten_thousand_tables_costs_each_backend_bounded_memory() {
    const TABLES: usize = 10_000;
    let dump = many_tables_dump(TABLES);
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir(&bucket).unwrap();
    assert!(pack(&bucket, ID, &dump, &[]).status.success());
    let Some(c) = Cluster::start() else { return };
    c.sql("postgres", "CREATE DATABASE many");
    // The restore (two connections) with a journal and without the verification; then
    // --resume runs the verification alone, watched.
    let journal = tmp.path().join("journal");
    let j = journal.to_str().unwrap();
    let (ok, r, err) = restore_json(
        &bucket,
        &c,
        "many",
        &["--jobs", "2", "--journal", j, "--no-verify"],
    );
    assert!(ok, "{err}");
    assert_eq!(r["stream"]["restore"]["sql_errors"], 0, "{err}");
    let watch = BackendMemory::watch(&c);
    let t0 = Instant::now();
    let (ok, r, err) = restore_json(&bucket, &c, "many", &["--journal", j, "--resume"]);
    let seconds = t0.elapsed().as_secs_f64();
    let peak = watch.peak_mib();
    assert!(ok, "{err}");
    let checks = r["verification"].as_array().unwrap();
    assert_eq!(checks.len(), TABLES);
    assert!(checks.iter().all(|c| c["status"] == "ok"), "{err}");
    assert_eq!(checks[TABLES - 1]["restored_rows"], 20);
    eprintln!(
        "verify of {TABLES} tables: {:.1} s for the stage ({seconds:.1} s the run), backend peak RssAnon {peak:.1} MiB",
        stage_seconds(&r, "verify")
    );
    // One statement of 1,000 UNION ALL branches took a backend to 0.87 GB, 5,000 to 23 GB.
    assert!(
        peak < 32.0,
        "a backend reached {peak:.1} MiB of private memory"
    );
    // The server is still the one we started: no backend was killed, no crash recovery.
    assert_eq!(
        c.sql("many", "SELECT count(*) FROM pg_stat_user_tables"),
        TABLES.to_string()
    );
}

#[test]
fn a_check_that_cannot_get_its_lock_is_not_checked_not_a_mismatch() {
    let dump = many_tables_dump(3);
    let tmp = tempfile::tempdir().unwrap();
    assert!(pack(tmp.path(), ID, &dump, &[]).status.success());
    let Some(c) = Cluster::start() else { return };
    c.sql("postgres", "CREATE DATABASE many");
    let journal = tmp.path().join("journal");
    let j = journal.to_str().unwrap();
    let (ok, _, err) = restore_json(tmp.path(), &c, "many", &["--journal", j, "--no-verify"]);
    assert!(ok, "{err}");
    // An application holds an ACCESS EXCLUSIVE lock on t1 (a migration) for 30 s.
    let mut holder = std::process::Command::new(c.bin.join("psql"))
        .args(["-X", "-q", "-d", &c.dsn("many"), "-c"])
        .arg("BEGIN; LOCK TABLE public.t1 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT;")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.sql("many", "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'public.t1'::regclass") != "1" {
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    let (ok, r, err) = restore_json(tmp.path(), &c, "many", &["--journal", j, "--resume"]);
    let waited = t0.elapsed();
    holder.kill().ok();
    holder.wait().ok();
    // The migration's session ends (its client is gone, but the server's sleep goes on).
    c.sql(
        "many",
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = 'public.t1'::regclass AND mode = 'AccessExclusiveLock'",
    );
    assert!(!ok);
    assert_eq!(r["kind"], "stage", "{err}");
    assert_eq!(r["stage_error_kind"], "verification_incomplete", "{err}");
    let checks = r["verification"].as_array().unwrap();
    let t1 = checks.iter().find(|c| c["table"] == "public.t1").unwrap();
    assert_eq!(t1["status"], "not_checked");
    assert!(
        t1["error"].as_str().unwrap().contains("lock timeout"),
        "{t1}"
    );
    assert!(
        checks.iter().filter(|c| c["status"] == "ok").count() == 2,
        "{err}"
    );
    assert!(
        err.contains("could not be checked") && !err.contains("MISMATCH"),
        "{err}"
    );
    assert!(err.contains("NOT CHECKED"), "{err}");
    // The count waited 10 s for its lock, not the 30 s of the migration.
    assert!(waited < Duration::from_secs(25), "{waited:?}");
    // Once the lock is gone, --resume runs the verification again, and only it.
    let (ok, r, err) = restore_json(tmp.path(), &c, "many", &["--journal", j, "--resume"]);
    assert!(ok, "{err}");
    assert!(err.contains("stage 2/3 restore: already done"), "{err}");
    assert!(
        !err.contains("many.public.t2"),
        "the last failure is said in a few lines: {err}"
    );
    assert!(r["verification"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "ok"));
}

/// A pg_dump of one table holding one bytea value of `mib` MiB: one COPY line of twice that
/// (hex), and a small second table.
fn huge_row_dump(mib: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(mib * 2 * 1024 * 1024 + 4096);
    s.extend_from_slice(one_table_dump_head("blobs", "body", "bytea").as_bytes());
    s.extend_from_slice(b"1\t\\\\x");
    let hex = b"0123456789abcdef";
    let mut x: u32 = 12345;
    for _ in 0..mib * 1024 * 1024 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let b = (x >> 16) as u8;
        s.push(hex[(b >> 4) as usize]);
        s.push(hex[(b & 15) as usize]);
    }
    s.extend_from_slice(b"\n2\t\\\\x00\n\\.\n\n");
    s.extend_from_slice(SMALL_TABLE_DATA.as_bytes());
    s
}

/// The same value as one `INSERT` statement on one line, as `pg_dump --inserts` writes it.
fn huge_insert_dump(mib: usize) -> Vec<u8> {
    let copy = huge_row_dump(mib);
    let start = memchr::memmem::find(&copy, b"1\t\\\\x").unwrap() + 2;
    let end = start + memchr::memchr(b'\n', &copy[start..]).unwrap();
    let mut s = copy[..memchr::memmem::find(&copy, b"COPY public.blobs").unwrap()].to_vec();
    s.extend_from_slice(b"INSERT INTO public.blobs VALUES (1, '");
    s.extend_from_slice(&copy[start + 1..end]);
    s.extend_from_slice(b"');\nINSERT INTO public.blobs VALUES (2, '\\x00');\n\n");
    s
}

/// Issue 18 §5: one row or statement of hundreds of MB under --jobs 2 is held once (the
/// splitter's buffer of the row being cut, or the statement it lexed as it arrived), not
/// copied into each unit and again into each job.
#[test]
fn a_huge_row_under_jobs_is_held_once() {
    const MIB: usize = 32;
    let line_mib = (MIB * 2) as f64;
    let Some(c) = Cluster::start() else { return };
    c.sql("postgres", "CREATE DATABASE blobs");
    for (what, dump, jobs) in [
        ("COPY", huge_row_dump(MIB), "1"),
        ("COPY", huge_row_dump(MIB), "2"),
        ("INSERT", huge_insert_dump(MIB), "2"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        assert!(pack(tmp.path(), ID, &dump, &[]).status.success());
        drop(dump);
        c.sql("blobs", "DROP TABLE IF EXISTS public.blobs, public.small");
        // Our own peak (VmHWM), read from /proc while the run lasts: /usr/bin/time would
        // report psql's, which holds a whole INSERT statement three times over.
        let mut child = restore_to(tmp.path(), &c.dsn("blobs"))
            .args(["--jobs", jobs])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut kb = 0u64;
        let status = loop {
            if let Some(hwm) = status_kb(pid, "VmHWM:") {
                kb = kb.max(hwm);
            }
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = child.wait_with_output().unwrap();
        assert_no_secret(&out);
        let err = stderr(&out);
        assert!(status.success(), "--jobs {jobs}: {err}");
        let kb = kb as f64;
        let mib = kb / 1024.0;
        eprintln!("--jobs {jobs}: one {what} line of {line_mib} MiB, peak RSS {mib:.0} MiB");
        assert_eq!(
            c.sql(
                "blobs",
                "SELECT octet_length(body) FROM public.blobs WHERE id = 1"
            ),
            (MIB << 20).to_string()
        );
        // The bound: one copy of the longest row or statement, plus what a run without it
        // takes (about 45 MiB). Before, --jobs 2 held three of a row and two of a statement.
        assert!(
            mib < line_mib + 70.0,
            "{what} --jobs {jobs}: {mib:.0} MiB for a {line_mib} MiB line"
        );
    }
}

/// A database the dump restores that is not in the target has lost its rows: a mismatch,
/// not a check that could not run.
#[test]
fn a_database_missing_from_the_target_is_a_mismatch() {
    let dump = b"--\n-- PostgreSQL database cluster dump\n--\n\nCREATE DATABASE victim;\n\\connect victim\n\
                 CREATE TABLE public.t (x int);\nCOPY public.t (x) FROM stdin;\n1\n2\n\\.\n";
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir(&bucket).unwrap();
    assert!(pack(&bucket, ID, dump, &[]).status.success());
    let plan = tmp.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[[stage]]\nkind = \"restore\"\n[[stage]]\nkind = \"sql\"\ndatabase = \"postgres\"\n\
         sql = \"DROP DATABASE victim;\"\n[[stage]]\nkind = \"verify\"\n",
    )
    .unwrap();
    let Some(c) = Cluster::start() else { return };
    let (ok, r, err) = restore_json(&bucket, &c, "postgres", &["--plan", plan.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(r["stage_error_kind"], "verification", "{err}");
    let t = &r["verification"][0];
    assert_eq!(t["status"], "mismatch", "{t}");
    assert_eq!(t["error"], "the database does not exist in the target");
}

/// Our literals are standard strings even on a server whose `standard_conforming_strings`
/// is off: a table named `t\` is counted under its own name, and a name cannot end a literal
/// early.
#[test]
fn names_with_backslashes_are_literals_whatever_the_servers_string_settings() {
    let dump = b"--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE public.\"t\\\" (x int);\n\
                 COPY public.\"t\\\" (x) FROM stdin;\n1\n2\n\\.\n";
    let tmp = tempfile::tempdir().unwrap();
    assert!(pack(tmp.path(), ID, dump, &[]).status.success());
    let Some(c) = Cluster::start() else { return };
    c.sql("postgres", "CREATE DATABASE legacy");
    c.sql(
        "postgres",
        "ALTER DATABASE legacy SET standard_conforming_strings = off",
    );
    let (ok, r, err) = restore_json(tmp.path(), &c, "legacy", &[]);
    assert!(ok, "{err}");
    let t = &r["verification"][0];
    assert_eq!(t["table"], "public.\"t\\\"", "{t}");
    assert_eq!(t["status"], "ok", "{t}");
    assert_eq!(t["restored_rows"], 2, "{t}");
}
