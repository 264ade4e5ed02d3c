//! Issue 10, "never make things worse": each repro of the issue as written, against the real
//! binary, real backups and (where a database is involved) real clusters. Every destructive
//! stage here would leave a marker file or drop a live database if it ran when it must not.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::pg::*;
use crate::support::*;

/// A plan whose destructive command stage, before the stream, leaves `marker`.
fn marker_plan(dir: &Path, marker: &Path, preflight: bool) -> PathBuf {
    let plan = dir.join("plan.toml");
    fs::write(
        &plan,
        format!(
            "{}[[stage]]\nkind = \"command\"\nname = \"stop the application\"\nrun = \"touch {}\"\ndestructive = true\n\n\
             [[stage]]\nkind = \"restore\"\n\n[[stage]]\nkind = \"verify\"\n",
            if preflight { "[[stage]]\nkind = \"preflight\"\n\n" } else { "" },
            marker.display()
        ),
    )
    .unwrap();
    plan
}

/// Packs `dump` in parts of `part_size` (a multiple of 16) and removes the metadata, as a
/// backup written by other tools has none.
fn packed_without_metadata(dir: &Path, id: &str, dump: &[u8], part_size: u64) -> Vec<PathBuf> {
    let out = pack(
        dir,
        id,
        dump,
        &["--part-size", &part_size.to_string(), "--level", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    fs::remove_file(dir.join(format!("{id}.json"))).unwrap();
    parts_in(dir, id)
}

/// Issue 10 §1: parts 1-2 of a good backup plus `head -c 4096` of part 3 (an upload cut at
/// a block boundary) fails before any stage, not at the end of the stream.
#[test]
fn a_cut_at_a_block_boundary_is_found_before_any_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("b");
    let parts = packed_without_metadata(&bucket, ID, &random_bytes(300_000, 3), 102_400);
    assert!(parts.len() >= 3);
    for p in &parts[3..] {
        fs::remove_file(p).unwrap();
    }
    let f = fs::OpenOptions::new().write(true).open(&parts[2]).unwrap();
    f.set_len(4096).unwrap();
    drop(f);
    let marker = tmp.path().join("MARKER");
    let plan = marker_plan(tmp.path(), &marker, true);
    let out = bin()
        .args(["restore", "--bucket"])
        .arg(&bucket)
        .args([
            "--backup-id",
            ID,
            "--target",
            "host=/nonexistent dbname=x",
            "--yes",
            "--plan",
        ])
        .arg(&plan)
        .env("A9S_SECRET", SECRET)
        .run();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("is truncated") && e.contains("-3 at byte 4080"),
        "{e}"
    );
    assert!(!e.contains("stage 1"), "no stage may start: {e}");
    assert!(!marker.exists());
    // The plain form writes nothing at all.
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = recover(
        &bucket,
        ID,
        SECRET,
        &["-o", out_dir.join("x").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is truncated"), "{}", stderr(&out));
    assert!(files_in(&out_dir).is_empty());
}

/// Issue 10 §1: a corrupt byte in the middle is found by reading the whole backup before a
/// destructive stage that comes before the stream; `--no-verify-first` skips that read, and
/// the dry run says which applies.
#[test]
fn the_whole_backup_is_read_before_destructive_stages_unless_told_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("b");
    let parts = cli_backup(
        &bucket,
        ID,
        &dump_text(6, 4000),
        "-md md5",
        6,
        Naming::FromOne,
    );
    flip_byte(&parts[2], 1000);
    let marker = tmp.path().join("MARKER");
    let plan = marker_plan(tmp.path(), &marker, false);
    let run = |extra: &[&str]| {
        bin()
            .args(["restore", "--bucket"])
            .arg(&bucket)
            .args([
                "--backup-id",
                ID,
                "--target",
                "host=/nonexistent dbname=x",
                "--plan",
            ])
            .arg(&plan)
            .args(extra)
            .env("A9S_SECRET", SECRET)
            .run()
    };
    let out = run(&["--yes"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("reading the whole backup before"), "{e}");
    assert!(e.contains("corrupt"), "{e}");
    assert!(
        !marker.exists(),
        "the destructive stage ran for a corrupt backup"
    );

    let dry = String::from_utf8(run(&["--dry-run"]).stdout).unwrap();
    assert!(
        dry.contains("the whole backup is read and checked"),
        "{dry}"
    );
    assert!(dry.contains("--no-verify-first skips"), "{dry}");
    let dry = String::from_utf8(run(&["--dry-run", "--no-verify-first"]).stdout).unwrap();
    assert!(
        dry.contains("run before the backup was read whole"),
        "{dry}"
    );

    // Skipped on request: the stage runs, and the stream then fails.
    let out = run(&["--yes", "--no-verify-first"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(marker.exists());
}

/// Issue 10 §1: `--resume` with a journal of a run into another target is refused.
#[test]
fn resume_refuses_a_journal_of_another_target() {
    let tmp = tiny_dump_backup();
    let journal = tmp.path().join("j.jsonl");
    let run = |target: &str, resume: bool| {
        let mut c = bin();
        c.args(["restore", "--bucket"])
            .arg(tmp.path())
            .args(["--backup-id", ID, "--yes", "--target", target, "--journal"])
            .arg(&journal);
        if resume {
            c.arg("--resume");
        }
        c.env("A9S_SECRET", SECRET).run()
    };
    let first = run("host=/nonexistent/a dbname=shop7", false);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let out = run("host=/nonexistent/a dbname=shop8", true);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("dbname=shop7") && e.contains("dbname=shop8"),
        "{e}"
    );
    assert!(e.contains("same target"), "{e}");
    let out = run("host=/tmp/otherhost dbname=shop7", true);
    assert!(stderr(&out).contains("same target"), "{}", stderr(&out));
}

fn tiny_dump_backup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = pack(
        tmp.path(),
        ID,
        b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (x int);\n",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    tmp
}

/// Issue 10 §1: a typo in `old_db` must never drop the live database: refused before any
/// stage when the whole read knows the dump's databases, before the rename when only the
/// stream does, and by the rename's own SQL when nothing knows them (a custom archive).
#[test]
fn a_typo_in_old_db_never_drops_the_live_database() {
    let Some(a) = Cluster::start() else { return };
    a.sql("postgres", "CREATE DATABASE shop");
    a.sql(
        "shop",
        "CREATE TABLE public.orders (id int); INSERT INTO public.orders VALUES (1), (2);",
    );
    let dumpall = a.tool("pg_dumpall", &[]);
    let custom = a.tool("pg_dump", &["-Fc", "-d", "shop"]);
    let Some(b) = Cluster::start() else { return };
    let live = || {
        b.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'live'",
        )
    };
    b.sql("postgres", "CREATE DATABASE live");
    b.sql(
        "live",
        "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42);",
    );

    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all");
    assert!(pack(&all, ID, &dumpall, &[]).status.success());
    let run = |bucket: &Path, extra: &[&str]| {
        bin()
            .args(["restore", "--bucket"])
            .arg(bucket)
            .args(["--backup-id", ID, "--target", &b.dsn("postgres"), "--yes"])
            .args(extra)
            .env("A9S_SECRET", SECRET)
            .run()
    };
    let typo = [
        "--preset",
        "a9s-single",
        "--var",
        "old_db=typo_db",
        "--var",
        "new_db=live",
    ];
    // 1. The whole read before terminate-sessions knows the databases: nothing runs.
    let out = run(&all, &typo);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("typo_db is not one the dump restores"), "{e}");
    assert!(!e.contains("stage 2/"), "no stage may start: {e}");
    assert_eq!(live(), "1");
    // 2. Without the whole read: the stream restores, the rename refuses.
    let mut args = typo.to_vec();
    args.push("--no-verify-first");
    let out = run(&all, &args);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("typo_db is not one the dump restores"), "{e}");
    assert_eq!(live(), "1");
    assert_eq!(b.sql("live", "SELECT x FROM precious"), "42");
    // 3. A custom archive through the loader: its databases are known as a plain dump's.
    let cust = tmp.path().join("custom");
    assert!(pack(&cust, ID, &custom, &[]).status.success());
    let plan = tmp.path().join("rename.toml");
    fs::write(
        &plan,
        "[[stage]]\nkind = \"restore\"\n\n[[stage]]\nkind = \"rename-database\"\nfrom = \"typo_db\"\nto = \"live\"\n",
    )
    .unwrap();
    let out = run(&cust, &["--plan", plan.to_str().unwrap()]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("typo_db is not one the dump restores"), "{e}");
    assert_eq!(live(), "1");
    // With --direct-pg-restore (databases unknown): the rename's SQL checks FROM first.
    b.sql("postgres", "DROP TABLE public.orders");
    let out = run(
        &cust,
        &["--plan", plan.to_str().unwrap(), "--direct-pg-restore"],
    );
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("does not exist: nothing was dropped or renamed"),
        "{e}"
    );
    assert_eq!(live(), "1");
    assert_eq!(b.sql("live", "SELECT x FROM precious"), "42");
    // The right name works: the restored shop becomes live.
    b.sql("postgres", "DROP DATABASE shop");
    let out = run(
        &all,
        &[
            "--preset",
            "a9s-single",
            "--var",
            "old_db=shop",
            "--var",
            "new_db=live",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.sql("live", "SELECT count(*) FROM public.orders"), "2");
}

/// Issue 10 §2: `latest` takes neither a stray file dated in the future nor an upload still
/// in progress, nor one cut at a block boundary; `list` says why in listing words.
#[test]
fn latest_takes_the_newest_backup_that_is_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let dump = dump_text(2, 500);
    let done = "inst-1700000000000";
    assert!(pack(dir, done, &dump, &["--part-size", "2000"])
        .status
        .success());
    // An upload in progress: three parts, no metadata yet.
    let work = tempfile::tempdir().unwrap();
    assert!(pack(
        work.path(),
        "inst-1700000500000",
        &dump,
        &["--part-size", "2000"]
    )
    .status
    .success());
    for i in 1..=3 {
        let n = format!("inst-1700000500000-{i}");
        fs::copy(work.path().join(&n), dir.join(&n)).unwrap();
    }
    fs::write(dir.join("inst-99999999999999-1"), b"stray").unwrap();

    let list = bin()
        .args(["list", "--bucket"])
        .arg(dir)
        .args(["--instance-id", "inst"])
        .run();
    let l = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(l.contains("dated in the future"), "{l}");
    assert!(
        l.contains("no metadata while the others have it: upload in progress?"),
        "{l}"
    );
    assert!(!l.contains("Nothing was written"), "{l}");

    let out = recover(dir, "latest", SECRET, &["--instance-id", "inst"]);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(
        e.contains(&format!(
            "picked the newest complete backup of inst: {done}"
        )),
        "{e}"
    );
    assert_eq!(sha256(&out.stdout), sha256(&dump));

    // Without metadata anywhere, the padding probe decides: a newer backup cut at a block
    // boundary is skipped, and `list` with the secret says so.
    let plain = tempfile::tempdir().unwrap();
    packed_without_metadata(plain.path(), "inst-1700000000000", &dump, 2048);
    let cut = packed_without_metadata(
        plain.path(),
        "inst-1700000900000",
        &random_bytes(9000, 1),
        2048,
    );
    fs::remove_file(cut.last().unwrap()).unwrap();
    let out = recover(plain.path(), "latest", SECRET, &["--instance-id", "inst"]);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(
        e.contains("inst-1700000900000 (last block invalid: truncated?)"),
        "{e}"
    );
    assert_eq!(sha256(&out.stdout), sha256(&dump));
    let list = bin()
        .args(["list", "--bucket"])
        .arg(plain.path())
        .env("A9S_SECRET", SECRET)
        .run();
    let l = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(l.contains("last block invalid: truncated?"), "{l}");
}

/// Issue 10 §2: a part name or a metadata name given as the backup id is said to be one,
/// before anything is read or written.
#[test]
fn a_part_or_metadata_name_as_backup_id_says_which_backup_to_name() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        pack(tmp.path(), ID, &dump_text(2, 300), &["--part-size", "1000"])
            .status
            .success()
    );
    for (given, says) in [
        (
            format!("{ID}-1"),
            format!("`{ID}-1` is part 1 of backup `{ID}`"),
        ),
        (format!("{ID}-3"), format!("is part 3 of backup `{ID}`")),
        (
            format!("{ID}.json"),
            "is the metadata file of backup".to_string(),
        ),
    ] {
        let out = recover(tmp.path(), &given, SECRET, &[]);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{given}: {e}");
        assert!(
            e.contains(&says) && e.contains(&format!("--backup-id {ID}")),
            "{e}"
        );
        assert!(out.stdout.is_empty(), "{given}: wrote to stdout");
    }
}

/// Issue 10 §2: a mistyped local directory taken for an S3 bucket says so in one line, at
/// once, without Rust debug output. The instance metadata service is off: no traffic leaves
/// the machine.
#[test]
fn a_mistyped_directory_without_aws_credentials_says_so_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = bin()
        .current_dir(tmp.path())
        .args(["--bucket", "examples-bucket", "--backup-id", ID])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", tmp.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", tmp.path().join("none"))
        .env("HOME", tmp.path())
        .run();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(e.contains("no AWS credentials were found"), "{e}");
    assert!(e.contains("./examples-bucket"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    for debug in ["DispatchFailure", "ConnectorError", "Some(", "{ "] {
        assert!(!e.contains(debug), "{e}");
    }
}

/// Issue 10 §3: output paths are never followed through a link nor replaced when they are a
/// FIFO, a device or a directory.
#[test]
fn output_paths_are_never_followed_or_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("b");
    let dump = dump_text(2, 300);
    cli_backup(&bucket, ID, &dump, "-md md5", 3, Naming::FromOne);
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();

    // A symlink planted as FILE.partial: refused, its target untouched, nothing replaced.
    let victim = tmp.path().join("root-owned");
    fs::write(&victim, b"precious").unwrap();
    let target = out_dir.join("out.sql");
    std::os::unix::fs::symlink(&victim, out_dir.join("out.sql.partial")).unwrap();
    let out = recover(&bucket, ID, SECRET, &["-o", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(!target.exists());
    fs::remove_file(out_dir.join("out.sql.partial")).unwrap();

    // -o pointing at a symlink: refused, not followed.
    std::os::unix::fs::symlink(&victim, &target).unwrap();
    let out = recover(
        &bucket,
        ID,
        SECRET,
        &["-o", target.to_str().unwrap(), "--force"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    fs::remove_file(&target).unwrap();

    // A stale 0644 .partial of ours: replaced by a 0600 file.
    fs::write(out_dir.join("out.sql.partial"), b"stale").unwrap();
    fs::set_permissions(
        out_dir.join("out.sql.partial"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = recover(&bucket, ID, SECRET, &["-o", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&target).unwrap(), dump);
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A directory: refused before anything is read; no DIR.partial.
    let dir = out_dir.join("adir");
    fs::create_dir(&dir).unwrap();
    let out = recover(
        &bucket,
        ID,
        SECRET,
        &["-o", dir.to_str().unwrap(), "--force"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
    assert!(!out_dir.join("adir.partial").exists());

    // A directory that does not exist: said before anything is read.
    let missing = out_dir.join("no-such-dir").join("x.sql");
    let out = recover(&bucket, ID, SECRET, &["-o", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("directory that does not exist"),
        "{}",
        stderr(&out)
    );

    // `-` and /dev/stdout are standard output; /dev/stdout stays the system's link.
    for name in ["-", "/dev/stdout"] {
        let out = recover(&bucket, ID, SECRET, &["-o", name, "--force"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(out.stdout, dump, "{name}");
    }
    assert!(fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!Path::new("-").exists());

    // A FIFO: its reader gets the dump, and it stays a FIFO.
    let fifo = out_dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    let out = recover(
        &bucket,
        ID,
        SECRET,
        &["-o", fifo.to_str().unwrap(), "--force"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(reader.join().unwrap(), dump);
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

/// Issue 10 §3: SIGTERM while writing to a redirected stdout says the output is incomplete
/// (it cannot be removed), not that it was removed.
#[test]
fn sigterm_on_redirected_stdout_says_the_output_is_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(
        tmp.path(),
        ID,
        &random_bytes(4 << 20, 2),
        "-md md5",
        4,
        Naming::FromOne,
    );
    let file = tmp.path().join("shell-redirect.sql");
    let child = bin()
        .arg("--bucket")
        .arg(tmp.path())
        .args(["--backup-id", ID, "--limit-rate", "1MiB"])
        .env("A9S_SECRET", SECRET)
        .stdout(fs::File::create(&file).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while fs::metadata(&file).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    send_signal("-TERM", child.id());
    let out = child.finish();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{e}");
    assert!(e.contains("standard output is incomplete"), "{e}");
    assert!(!e.contains("removed"), "{e}");
}

/// Issue 10 §4: the real pg_dumpall and `pg_dump --load-via-partition-root` of a database
/// with inheritance, partitions, a COPY line inside a multi-line comment, a table named with
/// a newline and one without columns restore with their row counts verified, every table
/// reported under its exact name.
#[test]
fn row_counts_of_real_dumps_have_no_false_alarms() {
    let Some(a) = Cluster::start() else { return };
    a.sql("postgres", "CREATE DATABASE shop");
    a.sql(
        "shop",
        "CREATE TABLE cities (name text, population int); \
         CREATE TABLE capitals (state text) INHERITS (cities); \
         INSERT INTO cities SELECT 'c' || g, g FROM generate_series(1, 1000) g; \
         INSERT INTO capitals SELECT 'k' || g, g, 's' FROM generate_series(1, 370) g; \
         CREATE TABLE m (k int, v text) PARTITION BY RANGE (k); \
         CREATE TABLE m_1 PARTITION OF m FOR VALUES FROM (0) TO (10); \
         CREATE TABLE m_2 PARTITION OF m FOR VALUES FROM (10) TO (100) PARTITION BY RANGE (k); \
         CREATE TABLE m_2a PARTITION OF m_2 FOR VALUES FROM (10) TO (50); \
         CREATE TABLE m_2b PARTITION OF m_2 DEFAULT; \
         INSERT INTO m SELECT g, 'v' FROM generate_series(0, 29) g; \
         CREATE TABLE staging (a int, b text); \
         COMMENT ON TABLE staging IS E'Load with psql:\\nCOPY public.staging (a, b) FROM stdin;\\n1\\tx\\n\\\\.\\n'; \
         INSERT INTO staging SELECT g, 'b' FROM generate_series(1, 10) g; \
         CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 44); \
         CREATE TABLE \"new\nline\" (x int); INSERT INTO \"new\nline\" VALUES (1), (2), (3); \
         CREATE TABLE zero (); INSERT INTO zero DEFAULT VALUES; INSERT INTO zero DEFAULT VALUES;",
    );
    let dumps = [
        ("pg_dumpall", a.tool("pg_dumpall", &[])),
        (
            "pg_dump --load-via-partition-root",
            a.tool("pg_dump", &["--load-via-partition-root", "-d", "shop"]),
        ),
    ];
    for (what, dump) in dumps {
        let tmp = tempfile::tempdir().unwrap();
        assert!(pack(tmp.path(), ID, &dump, &["--part-size", "5000"])
            .status
            .success());
        let Some(b) = Cluster::start() else { return };
        let db = if what == "pg_dumpall" {
            "postgres"
        } else {
            "restored"
        };
        if db == "restored" {
            b.sql("postgres", "CREATE DATABASE restored");
        }
        let out = bin()
            .args(["restore", "--bucket"])
            .arg(tmp.path())
            .args(["--backup-id", ID, "--target", &b.dsn(db), "--yes", "--json"])
            .env("A9S_SECRET", SECRET)
            .run();
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["ok"], true);
        assert_eq!(r["mismatches"], 0, "{what}: {}", r["verification"]);
        let rows = |table: &str| {
            r["verification"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["table"] == table)
                .map(|c| {
                    (
                        c["dump_rows"].as_u64().unwrap(),
                        c["restored_rows"].as_u64(),
                    )
                })
        };
        assert_eq!(rows("public.cities"), Some((1000, Some(1000))), "{what}");
        assert_eq!(rows("public.capitals"), Some((370, Some(370))), "{what}");
        assert_eq!(rows("public.staging"), Some((10, Some(10))), "{what}");
        assert_eq!(rows("public.orders"), Some((44, Some(44))), "{what}");
        assert_eq!(rows("public.\"new\nline\""), Some((3, Some(3))), "{what}");
        assert_eq!(rows("public.zero"), Some((2, Some(2))), "{what}");
        if what.contains("partition-root") {
            assert_eq!(rows("public.m"), Some((30, Some(30))), "{what}");
        } else {
            assert_eq!(rows("public.m_1"), Some((10, Some(10))), "{what}");
        }
    }
}

/// Runs the binary on a pseudo-terminal (Python's pty module), waits for `prompt`, types
/// `keys`, and returns the exit code, what the terminal showed, and how long the exit took
/// after the keys.
pub(crate) fn on_a_terminal(
    args: &[&str],
    env: &[(&str, &str)],
    prompt: &str,
    keys: &str,
) -> (i32, String, Duration) {
    const SCRIPT: &str = r#"
import os, pty, sys, time, select
prompt, keys = sys.argv[1].encode(), sys.argv[2].encode().decode('unicode_escape').encode()
pid, fd = pty.fork()
if pid == 0:
    import fcntl, struct, termios
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
    os.execv(sys.argv[3], sys.argv[3:])
seen, deadline = b"", time.time() + 60
while prompt not in seen and time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try: seen += os.read(fd, 4096)
        except OSError: break
os.write(fd, keys)
t = time.time()
done, status = 0, 0
while True:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            data = os.read(fd, 4096)
            if not data: break
            seen += data
        except OSError: break
    done, status = os.waitpid(pid, os.WNOHANG)
    if done: break
    if time.time() - t > 30: os.kill(pid, 9)
_, status = (done, status) if done else os.waitpid(pid, 0)
elapsed = time.time() - t
sys.stdout.write("%d %.3f\n" % (os.waitstatus_to_exitcode(status), elapsed))
sys.stdout.write(seen.decode(errors="replace"))
"#;
    let mut c = Command::new("python3");
    c.args(["-c", SCRIPT, prompt, keys])
        .arg(crate::support::exe())
        .args(args)
        .env_remove("A9S_SECRET");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let mut it = first.split_whitespace();
    let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(-1);
    let secs: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(99.0);
    if code == -1 {
        // The driver itself failed: what it said is the screen.
        return (
            code,
            format!("{text}{}", stderr(&out)),
            Duration::from_secs_f64(secs),
        );
    }
    (code, rest.to_string(), Duration::from_secs_f64(secs))
}

/// Issue 10 §5: Ctrl-C at the confirmation prompt and at the secret prompt exits 130 at once;
/// `no` says the operator aborted; an empty secret is no secret.
#[test]
fn prompts_answer_ctrl_c_at_once() {
    let tmp = tiny_dump_backup();
    let marker = tmp.path().join("MARKER");
    let plan = marker_plan(tmp.path(), &marker, false);
    let bucket = tmp.path().to_str().unwrap();
    let restore_args = [
        "restore",
        "--bucket",
        bucket,
        "--backup-id",
        ID,
        "--target",
        "host=/nonexistent dbname=x",
        "--plan",
        plan.to_str().unwrap(),
    ];
    let secret = [("A9S_SECRET", SECRET)];
    let (code, screen, took) = on_a_terminal(&restore_args, &secret, "Type yes", "\\x03");
    assert_eq!(code, 130, "{screen}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {screen}");
    assert!(!marker.exists());
    let (code, screen, _) = on_a_terminal(&restore_args, &secret, "Type yes", "no\\r");
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("aborted by the operator"), "{screen}");
    assert!(!marker.exists());

    let plain = ["--bucket", bucket, "--backup-id", ID];
    let (code, screen, took) = on_a_terminal(&plain, &[], "Backup secret:", "\\x03");
    assert_eq!(code, 130, "{screen}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {screen}");
    let (code, screen, _) = on_a_terminal(&plain, &[], "Backup secret:", "\\r");
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("no secret given"), "{screen}");
}

/// Issue 10 §5: `--json` prints a JSON object on failure too; usage mistakes exit 2.
#[test]
fn json_on_failure_and_usage_errors() {
    let tmp = tiny_dump_backup();
    let bucket = tmp.path().to_str().unwrap();
    let out = bin()
        .args(["verify", "--bucket", bucket, "--backup-id", ID, "--json"])
        .env("A9S_SECRET", "wrong")
        .run();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["result"], "failed");
    assert_eq!(v["kind"], "wrong_secret");
    assert!(v["error"].as_str().unwrap().contains("secret is wrong"));

    let out = bin()
        .args(["verify", "--bucket", bucket, "--backup-id", ID, "--json"])
        .env("A9S_SECRET", SECRET)
        .run();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ok"].clone(), v["result"].clone()),
        (true.into(), "ok".into())
    );
    assert_eq!(v["storage"], "local");
    assert_eq!(v["inflate_engine"], "zlib-rs");

    let out = bin()
        .args([
            "restore",
            "--bucket",
            bucket,
            "--backup-id",
            ID,
            "--json",
            "--yes",
        ])
        .args(["--target", "host=/nonexistent dbname=x"])
        .env("A9S_SECRET", SECRET)
        .run();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["kind"], "stage");
    assert!(v["error"].as_str().unwrap().contains("preflight"));
    assert_eq!(v["backup_id"], ID);

    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let usage: [Case<'_>; 6] = [
        (
            &[
                "restore",
                "--bucket",
                bucket,
                "--backup-id",
                ID,
                "--var",
                "old_db",
            ],
            &[("A9S_SECRET", SECRET)],
            "expected NAME=VALUE",
        ),
        (
            &[
                "restore",
                "--bucket",
                bucket,
                "--backup-id",
                ID,
                "--preset",
                "nope",
            ],
            &[("A9S_SECRET", SECRET)],
            "no preset",
        ),
        (
            &["--bucket", "", "--backup-id", ID],
            &[("A9S_SECRET", SECRET)],
            "empty",
        ),
        (
            &["--bucket", bucket, "--backup-id", ID],
            &[("A9S_SECRET", "")],
            "no secret given",
        ),
        (
            &[
                "--bucket",
                bucket,
                "--backup-id",
                ID,
                "--instance-id",
                "other",
            ],
            &[("A9S_SECRET", SECRET)],
            "disagrees",
        ),
        (
            &["--bucket", bucket, "--backup-id", ID, "--secret", ""],
            &[],
            "no secret given",
        ),
    ];
    for (args, env, says) in usage {
        let mut c = bin();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.run();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }

    // A password inside --target warns, like --secret, and is never printed.
    let out = bin()
        .args([
            "restore",
            "--bucket",
            bucket,
            "--backup-id",
            ID,
            "--dry-run",
        ])
        .args([
            "--target",
            "postgresql://u:Pw-in-dsn-42@/x?host=/nonexistent",
        ])
        .env("A9S_SECRET", SECRET)
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("password in --target is visible"),
        "{}",
        stderr(&out)
    );
}

/// Issue 10 §5: the progress bar (shown on a terminal) is cleared on Ctrl-C as on success:
/// the line it was on is erased before the messages that follow.
#[test]
fn the_progress_bar_is_cleared_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(
        tmp.path(),
        ID,
        &random_bytes(3 << 20, 4),
        "-md md5",
        4,
        Naming::FromOne,
    );
    let out = tmp.path().join("x.dump");
    let args = [
        "--bucket",
        tmp.path().to_str().unwrap(),
        "--backup-id",
        ID,
        "--limit-rate",
        "512KiB",
        "-o",
        out.to_str().unwrap(),
    ];
    let (code, screen, _) = on_a_terminal(&args, &[("A9S_SECRET", SECRET)], "part 1 of", "\\x03");
    assert_eq!(code, 130, "{screen}");
    let after = screen.rsplit("part 1 of").next().unwrap_or_default();
    let erased = after.find("\u{1b}[2K").unwrap_or(usize::MAX);
    let message = after.find("a9s-recover:").unwrap_or(0);
    assert!(erased < message, "the bar was left on screen: {after:?}");
}

/// A second run into the same `-o FILE` while the first is still writing it (a rerun in
/// another terminal) is refused; the first run's output is the whole dump, never a file the
/// second one started.
#[test]
fn a_second_run_into_the_same_output_is_refused_while_the_first_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = random_bytes(3 << 20, 8);
    cli_backup(tmp.path(), ID, &plain, "-md md5", 4, Naming::FromOne);
    let out = tmp.path().join("x.dump");
    let partial = tmp.path().join("x.dump.partial");
    let first = bin()
        .arg("--bucket")
        .arg(tmp.path())
        .args(["--backup-id", ID, "--limit-rate", "2MiB", "-o"])
        .arg(&out)
        .env("A9S_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = recover(
        tmp.path(),
        ID,
        SECRET,
        &["-o", out.to_str().unwrap(), "--force"],
    );
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("being written by another a9s-recover run"),
        "{}",
        stderr(&second)
    );
    let first = first.finish();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(sha256(&fs::read(&out).unwrap()), sha256(&plain));
    assert!(!partial.exists());
}
