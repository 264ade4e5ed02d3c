//! Restores into real PostgreSQL clusters started by the harness: real dumps made by the real
//! pg_dumpall and pg_dump -Fc, packed, restored into fresh clusters, and compared; the cluster
//! stages; plans, journal and resume; failures; drill.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::pg::*;
use crate::support::*;

/// A cluster holding the fixture database `shop` and a filled `repmgr_cluster`.
fn source_cluster() -> Option<Cluster> {
    let a = Cluster::start()?;
    a.sql("postgres", "CREATE DATABASE shop");
    a.sql("shop", FIXTURE_SQL);
    a.sql("postgres", "CREATE DATABASE repmgr_cluster");
    a.sql(
        "repmgr_cluster",
        "CREATE SCHEMA repmgr; CREATE TABLE repmgr.nodes (node_id int, name text); \
         CREATE TABLE repmgr.events (id int, what text); \
         INSERT INTO repmgr.nodes VALUES (1, 'pg/0'), (2, 'pg/1'); INSERT INTO repmgr.events VALUES (1, 'x');",
    );
    Some(a)
}

/// `restore --bucket BUCKET --backup-id ID`, for more arguments.
fn restore_cmd(bucket: &Path) -> Command {
    let mut c = bin();
    c.args(["restore", "--bucket"])
        .arg(bucket)
        .args(["--backup-id", ID]);
    c
}

fn restore(bucket: &Path, extra: &[&str]) -> Output {
    restore_cmd(bucket)
        .args(extra)
        .env("A9S_SECRET", SECRET)
        .run()
}

/// A backup of a dump with nothing in it but its banner.
fn tiny_backup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = pack(
        tmp.path(),
        ID,
        b"--\n-- PostgreSQL database dump\n--\n",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    tmp
}

fn schema_only(c: &Cluster, db: &str) -> String {
    let s = String::from_utf8(c.tool(
        "pg_dump",
        &["--schema-only", "--no-owner", "--no-privileges", "-d", db],
    ))
    .unwrap();
    // The random \restrict key differs per run. Schema public is left out: the runbook's
    // DROP SCHEMA public CASCADE; CREATE SCHEMA public; makes one without initdb's comment.
    s.lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        .filter(|l| !l.contains("SCHEMA public"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn pg_dumpall_restores_into_a_fresh_cluster_identically() {
    let Some(a) = source_cluster() else { return };
    let dump = a.tool("pg_dumpall", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = pack(tmp.path(), ID, &dump, &["--part-size", "20000"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let Some(b) = Cluster::start() else { return };
    let out = restore(
        tmp.path(),
        &["--target", &b.dsn("postgres"), "--yes", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["dump_kind"], "pg_dumpall");
    assert_eq!(r["mismatches"], 0);
    let checks = r["verification"].as_array().unwrap();
    assert!(checks.len() >= 5, "{checks:?}");
    assert!(checks
        .iter()
        .any(|c| c["table"] == "sales.orders" && c["restored_rows"] == 3000));
    // pg_dumpall output re-creates the postgres role: one expected, counted SQL error.
    assert_eq!(r["stream"]["restore"]["sql_errors"], 1);

    assert_eq!(schema_only(&a, "shop"), schema_only(&b, "shop"));
    assert_eq!(table_checksums(&a, "shop"), table_checksums(&b, "shop"));
    assert_eq!(
        b.sql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'app_reader'"
        ),
        "1"
    );
    assert_eq!(
        b.sql("shop", "SELECT last_value FROM public.invoice_no"),
        a.sql("shop", "SELECT last_value FROM public.invoice_no")
    );
}

#[test]
fn custom_format_with_the_pgdump_custom_preset_and_with_jobs() {
    let Some(a) = source_cluster() else { return };
    let archive = a.tool("pg_dump", &["-Fc", "-d", "shop"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = pack(tmp.path(), ID, &archive, &["--part-size", "9000"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let Some(b) = Cluster::start() else { return };
    b.sql("postgres", "CREATE DATABASE app");
    b.sql(
        "app",
        "CREATE TABLE public.stale (x int); INSERT INTO public.stale VALUES (1)",
    );
    b.sql("app", "CREATE ROLE app_reader");
    let out = restore(
        tmp.path(),
        &[
            "--target",
            &b.dsn("app"),
            "--preset",
            "pgdump-custom",
            "--yes",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("drop-schema: done"), "{e}");
    assert!(e.contains("pg_dump custom format"), "{e}");
    assert_eq!(schema_only(&a, "shop"), schema_only(&b, "app"));
    assert_eq!(table_checksums(&a, "shop"), table_checksums(&b, "app"));
    assert_eq!(
        b.sql(
            "app",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'stale'"
        ),
        "0"
    );

    // --jobs spools to a private file that is removed afterwards.
    b.sql("postgres", "CREATE DATABASE app2");
    let spool = tempfile::tempdir().unwrap();
    let out = restore(
        tmp.path(),
        &[
            "--target",
            &b.dsn("app2"),
            "--jobs",
            "2",
            "--no-owner",
            "--spool-dir",
            spool.path().to_str().unwrap(),
            "--yes",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table_checksums(&a, "shop"), table_checksums(&b, "app2"));
    assert_eq!(files_in(spool.path()), Vec::<String>::new());
}

#[test]
fn a9s_cluster_preset_runs_the_manuals_steps() {
    let Some(a) = source_cluster() else { return };
    let dump = a.tool("pg_dumpall", &[]);
    let tmp = tempfile::tempdir().unwrap();
    assert!(pack(tmp.path(), ID, &dump, &[]).status.success());

    let Some(b) = Cluster::start() else { return };
    // Two physical slots; one kept active by a WAL receiver.
    b.sql(
        "postgres",
        "SELECT pg_create_physical_replication_slot('inactive_slot')",
    );
    b.sql(
        "postgres",
        "SELECT pg_create_physical_replication_slot('active_slot')",
    );
    let wal = tempfile::tempdir().unwrap();
    let mut receiver = Command::new(b.bin.join("pg_receivewal"))
        .args(["-h"])
        .arg(b.socket_dir())
        .args([
            "-p",
            &b.port.to_string(),
            "-U",
            "postgres",
            "-S",
            "active_slot",
            "-D",
        ])
        .arg(wal.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // An application session that must be terminated.
    let mut session = Command::new(b.bin.join("psql"))
        .args(["-X", "-d", &b.dsn("postgres"), "-c", "SELECT pg_sleep(120)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while b.sql(
        "postgres",
        "SELECT count(*) FROM pg_replication_slots WHERE active",
    ) != "1"
        || b.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'",
        ) != "1"
    {
        assert!(t0.elapsed().as_secs() < 20, "setup did not settle");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display().to_string();
    let out = restore(
        tmp.path(),
        &[
            "--target", &b.dsn("postgres"),
            "--preset", "a9s-cluster",
            "--var", "old_db=shop",
            "--var", "new_db=shop_new",
            "--var", "stop_repmgr_cmd=echo 'Failed to stop repmgr.service: Unit repmgr.service not loaded.' >&2; exit 5",
            "--var", &format!("configure_cmd=touch {m}/configured-$A9S_TARGET_DB"),
            "--var", &format!("start_repmgr_cmd=touch {m}/repmgr-started"),
            "--yes",
        ],
    );
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("tolerated a missing unit"), "{e}");
    assert!(e.contains("dropped 1 slot(s): inactive_slot"), "{e}");
    assert!(e.contains("stop the standby nodes (monit stop postgresql-ha): skipped (variable stop_standbys_cmd not set)"), "{e}");
    assert_eq!(
        b.sql(
            "postgres",
            "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"
        ),
        "active_slot"
    );
    let st = session.wait().unwrap();
    assert!(!st.success(), "the session was terminated");
    assert_eq!(
        b.sql(
            "repmgr_cluster",
            "SELECT (SELECT count(*) FROM repmgr.nodes) + (SELECT count(*) FROM repmgr.events)"
        ),
        "0"
    );
    assert_eq!(b.sql("postgres", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'shop%'"), "shop_new");
    assert_eq!(table_checksums(&a, "shop"), table_checksums(&b, "shop_new"));
    assert_eq!(
        files_in(marks.path()),
        vec!["configured-postgres", "repmgr-started"]
    );
    let _ = receiver.kill();
    let _ = receiver.wait();
}

#[test]
fn a_failing_command_stage_stops_before_the_stream_and_resume_continues() {
    let Some(b) = Cluster::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dump = b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.t (x int);\nCOPY public.t (x) FROM stdin;\n1\n2\n\\.\n".to_vec();
    assert!(pack(tmp.path(), ID, &dump, &[]).status.success());
    let work = tempfile::tempdir().unwrap();
    let flag = work.path().join("maintenance-window-open");
    let plan = work.path().join("plan.toml");
    fs::write(
        &plan,
        format!(
            "[[stage]]\nkind = \"preflight\"\n\n[[stage]]\nkind = \"command\"\nname = \"check the window\"\nrun = \"test -f {}\"\n\n[[stage]]\nkind = \"restore\"\n\n[[stage]]\nkind = \"verify\"\n",
            flag.display()
        ),
    )
    .unwrap();
    let journal = work.path().join("journal.jsonl");
    let args = |resume: bool| {
        let mut v = vec![
            "--target".to_string(),
            b.dsn("postgres"),
            "--plan".into(),
            plan.display().to_string(),
            "--journal".into(),
            journal.display().to_string(),
            "--yes".into(),
        ];
        if resume {
            v.push("--resume".into());
        }
        v
    };
    let run = |resume: bool| {
        let a = args(resume);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        restore(tmp.path(), &a)
    };
    let out = run(false);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("stage 2 (check the window) failed"), "{e}");
    assert!(e.contains("--resume"), "{e}");
    assert_eq!(
        b.sql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 't'"
        ),
        "0",
        "the stream never ran"
    );
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(&journal).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600);

    // Without --resume, the journal of the earlier run is not overwritten.
    let out = run(false);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pass --resume"), "{}", stderr(&out));

    fs::write(&flag, b"").unwrap();
    let out = run(true);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    // Checks run again on a resume: they say what holds now.
    assert!(
        e.contains("stage 1/4 preflight: running again (checks always run)"),
        "{e}"
    );
    assert!(
        e.contains("stage 2/4 check the window: running again"),
        "{e}"
    );
    assert_eq!(b.sql("postgres", "SELECT count(*) FROM public.t"), "2");
    let journal_text = fs::read_to_string(&journal).unwrap();
    assert!(!journal_text.contains(SECRET));
}

#[test]
fn a_psql_error_mid_stream_stops_the_plan_with_on_error_stop() {
    let Some(b) = Cluster::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut dump =
        b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.t (x int);\n".to_vec();
    dump.extend_from_slice(b"INSERT INTO public.no_such_table VALUES (1);\n");
    dump.extend_from_slice(b"CREATE TABLE public.after (x int);\n");
    dump.extend(std::iter::repeat_n(b'-', 300_000));
    dump.extend_from_slice(b"\n");
    assert!(pack(tmp.path(), ID, &dump, &[]).status.success());
    let work = tempfile::tempdir().unwrap();
    let post = work.path().join("post-ran");
    let plan = work.path().join("plan.toml");
    fs::write(
        &plan,
        format!(
            "[[stage]]\nkind = \"restore\"\n\n[[stage]]\nkind = \"command\"\nrun = \"touch {}\"\n",
            post.display()
        ),
    )
    .unwrap();
    let out = restore(
        tmp.path(),
        &[
            "--target",
            &b.dsn("postgres"),
            "--plan",
            plan.to_str().unwrap(),
            "--on-error-stop",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("psql failed"), "{e}");
    assert!(
        e.contains("relation \"public.no_such_table\" does not exist"),
        "{e}"
    );
    assert!(!post.exists(), "the post-stage must not run");
    assert_eq!(
        b.sql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'after'"
        ),
        "0"
    );
}

#[test]
fn a_standby_target_is_refused_before_any_destructive_stage() {
    let Some(p) = Cluster::start() else { return };
    let standby = p.standby();
    assert_eq!(standby.sql("postgres", "SELECT pg_is_in_recovery()"), "t");
    let tmp = tempfile::tempdir().unwrap();
    assert!(pack(
        tmp.path(),
        ID,
        b"--\n-- PostgreSQL database dump\n--\nSELECT 1;\n",
        &[]
    )
    .status
    .success());
    let out = restore(
        tmp.path(),
        &[
            "--target",
            &standby.dsn("postgres"),
            "--preset",
            "a9s-single",
            "--var",
            "old_db=a",
            "--var",
            "new_db=b",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("is a standby"), "{e}");
    assert!(!e.contains("terminate-sessions: starting"), "{e}");
}

#[test]
fn dry_run_shows_every_stage_and_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(pack(
        tmp.path(),
        ID,
        b"--\n-- PostgreSQL database cluster dump\n--\n",
        &[]
    )
    .status
    .success());
    let out = restore(
        tmp.path(),
        &[
            "--target",
            "postgresql://admin:TopSecretPw@db.example:5432/postgres",
            "--preset",
            "a9s-cluster",
            "--var",
            "old_db=d_old",
            "--var",
            "new_db=d_new",
            "--var",
            "stop_repmgr_cmd=monit stop repmgr",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = String::from_utf8(out.stdout.clone()).unwrap();
    for needle in [
        "pg_drop_replication_slot",
        "pg_terminate_backend",
        "ALTER DATABASE \"d_old\" RENAME TO \"d_new\";",
        "TRUNCATE",
        "$ monit stop repmgr",
        "(a missing unit is tolerated)",
        "psql -X --quiet",
        // As the child gets it: never prompting.
        " -w -d \"",
        "[skipped: variable start_standbys_cmd not set]",
        " * drop-inactive-slots",
        "  preflight",
    ] {
        assert!(s.contains(needle), "dry run lacks {needle:?}:\n{s}");
    }
    let all = format!("{s}{}", stderr(&out));
    assert!(
        !all.contains("TopSecretPw") && !all.contains(SECRET),
        "{all}"
    );
}

#[test]
fn destructive_stages_need_consent() {
    let tmp = tiny_backup();
    let out = restore(tmp.path(), &["--target", "host=/nonexistent dbname=x"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("destructive stages") && e.contains("--yes"),
        "{e}"
    );
}

#[test]
fn a_bad_backup_is_caught_before_any_stage() {
    let Some(b) = Cluster::start() else { return };
    let tmp = tiny_backup();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("ran");
    let out = restore_cmd(tmp.path())
        .args(["--target", &b.dsn("postgres"), "--yes"])
        .args([
            "--preset",
            "a9s-cluster",
            "--var",
            "old_db=a",
            "--var",
            "new_db=b",
        ])
        .arg("--var")
        .arg(format!("stop_repmgr_cmd=touch {}", marker.display()))
        .env("A9S_SECRET", "wrong secret")
        .run();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("secret is wrong"), "{}", stderr(&out));
    assert!(!marker.exists(), "no stage may run after a failed check");
}

#[test]
fn drill_restores_into_a_throwaway_cluster_and_reports() {
    let Some(a) = source_cluster() else { return };
    let dump = a.tool("pg_dumpall", &[]);
    let tmp = tempfile::tempdir().unwrap();
    assert!(pack(tmp.path(), ID, &dump, &[]).status.success());
    let work = tempfile::tempdir().unwrap();
    let drill = |args: &[&str]| {
        bin()
            .arg("drill")
            .args(args)
            .arg("--bucket")
            .arg(tmp.path())
            .args(["--backup-id", ID, "--work-dir"])
            .arg(work.path())
            .env("A9S_SECRET", SECRET)
            .run()
    };
    let out = drill(&["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mismatches"], 0);
    assert!(r["verification"].as_array().unwrap().len() >= 5);
    assert_eq!(r["plaintext_sha256"], sha256(&dump));
    assert_eq!(
        files_in(work.path()),
        Vec::<String>::new(),
        "the cluster was removed"
    );

    // Two reads of a backup without metadata: the digest is the first read's (taken while the
    // server is idle), and still the dump's.
    let meta = tmp.path().join(format!("{ID}.json"));
    let kept = std::fs::read(&meta).unwrap();
    std::fs::remove_file(&meta).unwrap();
    let out = drill(&["--json", "--jobs", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mismatches"], 0);
    assert_eq!(r["plaintext_sha256"], sha256(&dump));
    std::fs::write(&meta, kept).unwrap();

    let out = drill(&["--keep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("keeps running: psql -h"), "{e}");
    let kept = files_in(work.path());
    assert_eq!(kept.len(), 1);
    let data = work.path().join(&kept[0]).join("data");
    let st = Command::new(a.bin.join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .args(["-m", "immediate", "stop"])
        .run();
    if !st.status.success() {
        // As root the cluster belongs to postgres.
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(a.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn resume_refuses_to_redo_a_stream_that_failed_partway() {
    let Some(b) = Cluster::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut dump =
        b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.first (x int);\n".to_vec();
    dump.extend_from_slice(b"INSERT INTO public.no_such_table VALUES (1);\n");
    assert!(pack(tmp.path(), ID, &dump, &[]).status.success());
    let work = tempfile::tempdir().unwrap();
    let journal = work.path().join("j.jsonl");
    let j = journal.to_str().unwrap();
    let t = b.dsn("postgres");
    let out = restore(
        tmp.path(),
        &["--target", &t, "--journal", j, "--on-error-stop", "--yes"],
    );
    assert_eq!(out.status.code(), Some(1));
    // The first table is there: the stream failed partway.
    assert_eq!(
        b.sql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'first'"
        ),
        "1"
    );
    let out = restore(
        tmp.path(),
        &[
            "--target",
            &t,
            "--journal",
            j,
            "--resume",
            "--on-error-stop",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("failed partway") && e.contains("--redo-interrupted"),
        "{e}"
    );
    // The operator cleans up, fixes nothing else, and says so: it runs (and fails) again.
    b.sql("postgres", "DROP TABLE public.first");
    let out = restore(
        tmp.path(),
        &[
            "--target",
            &t,
            "--journal",
            j,
            "--resume",
            "--redo-interrupted",
            "--on-error-stop",
            "--yes",
        ],
    );
    assert!(
        stderr(&out).contains("stage 2/3 restore: running again"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_password_in_the_dsn_reaches_psql_through_the_environment() {
    let Some(b) = Cluster::start() else { return };
    b.sql("postgres", "ALTER ROLE postgres PASSWORD 'Pw-in-dsn-42'");
    // Require a password on the socket from now on.
    let hba = b.data().join("pg_hba.conf");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&hba)
        .unwrap();
    use std::io::Write;
    writeln!(f, "local all all scram-sha-256").unwrap();
    drop(f);
    b.sql("postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tmp = tempfile::tempdir().unwrap();
    let dump = b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.pw_ok (x int);\nCOPY public.pw_ok (x) FROM stdin;\n7\n\\.\n";
    assert!(pack(tmp.path(), ID, dump, &[]).status.success());
    let dir = b.socket_dir().display().to_string().replace('/', "%2F");
    let uri = format!(
        "postgresql://postgres:Pw-in-dsn-42@/postgres?host={dir}&port={}",
        b.port
    );
    let out = restore_cmd(tmp.path())
        .args(["--target", &uri, "--yes"])
        .env("A9S_SECRET", SECRET)
        .env_remove("PGPASSWORD")
        .run();
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(!e.contains("Pw-in-dsn-42"), "{e}");
    assert!(e.contains("1 table(s) verified"), "{e}");
    // Without it, the same restore is refused by the server.
    let out = restore(tmp.path(), &["--target", &b.dsn("postgres"), "--yes"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
}

#[test]
fn flightctl_preset_stops_and_starts_only_the_application_units() {
    let Some(b) = Cluster::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dump = b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.devices (id int);\n";
    assert!(pack(tmp.path(), ID, dump, &[]).status.success());
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("calls");
    let fake = work.path().join("systemctl");
    // A stand-in systemctl: records calls; this host ships no UI or image builder.
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$1 $2\" >> {log}\ncase \"$2\" in flightctl-ui.service|flightctl-imagebuilder-*) echo \"Failed to $1 $2: Unit $2 not loaded.\" >&2; exit 5;; esac\n",
            log = log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let out = restore(
        tmp.path(),
        &[
            "--target",
            &b.dsn("postgres"),
            "--preset",
            "flightctl-quadlet",
            "--var",
            &format!("systemctl={}", fake.display()),
            "--yes",
        ],
    );
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    let calls = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 24, "{calls}");
    assert!(lines[..12].iter().all(|l| l.starts_with("stop flightctl-")));
    assert!(lines[12..]
        .iter()
        .all(|l| l.starts_with("start flightctl-")));
    assert!(
        !calls.contains("flightctl-db") && !calls.contains("flightctl-kv"),
        "{calls}"
    );
    assert_eq!(
        b.sql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'devices'"
        ),
        "1"
    );
}

/// Secrets never reach a child's argv: a wrapper psql records its own /proc cmdline and
/// environment, then runs the real psql. The backup secret reaches no child at all.
#[test]
fn secrets_stay_out_of_children_argv_and_environment() {
    let Some(b) = Cluster::start() else { return };
    b.sql("postgres", "ALTER ROLE postgres PASSWORD 'Db-Pass-Xyz-77'");
    let hba = b.data().join("pg_hba.conf");
    fs::write(&hba, "local all all scram-sha-256\n").unwrap();
    b.sql("postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let work = tempfile::tempdir().unwrap();
    let wrap = work.path().join("bin");
    fs::create_dir(&wrap).unwrap();
    let log = work.path().join("calls");
    for tool in ["psql", "pg_restore"] {
        let real = b.bin.join(tool);
        let script = format!(
            "#!/bin/sh\ntr '\\0' ' ' < /proc/$$/cmdline >> {log}\necho >> {log}\nenv >> {log}\necho ---- >> {log}\nexec {real} \"$@\"\n",
            log = log.display(),
            real = real.display()
        );
        let p = wrap.join(tool);
        fs::write(&p, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    assert!(pack(
        tmp.path(),
        ID,
        b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.s (x int);\nCOPY public.s (x) FROM stdin;\n1\n\\.\n",
        &[]
    )
    .status
    .success());
    let dir = b.socket_dir().display().to_string().replace('/', "%2F");
    let uri = format!(
        "postgresql://postgres:Db-Pass-Xyz-77@/postgres?host={dir}&port={}",
        b.port
    );
    let env_dump = work.path().join("stage-env");
    let plan = work.path().join("plan.toml");
    fs::write(
        &plan,
        format!(
            "[[stage]]\nkind = \"preflight\"\n[[stage]]\nkind = \"restore\"\n[[stage]]\nkind = \"command\"\nrun = \"env > {}\"\n[[stage]]\nkind = \"verify\"\n",
            env_dump.display()
        ),
    )
    .unwrap();
    let out = restore_cmd(tmp.path())
        .args(["--target", &uri, "--yes", "--plan"])
        .arg(&plan)
        .arg("--pg-bin")
        .arg(&wrap)
        .args(["--journal"])
        .arg(work.path().join("journal"))
        .env("A9S_SECRET", SECRET)
        .env_remove("PGPASSWORD")
        .run();
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    let calls = fs::read_to_string(&log).unwrap();
    let invocations: Vec<&str> = calls
        .split("----")
        .filter(|c| !c.trim().is_empty())
        .collect();
    assert!(
        invocations.len() >= 4,
        "psql --version, preflight, stream and verify ran psql ({} calls): {}",
        invocations.len(),
        calls
            .lines()
            .filter(|l| l.starts_with("/bin/sh"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for call in &invocations {
        let argv = call.trim().lines().next().unwrap().trim_end();
        assert!(!argv.contains("Db-Pass-Xyz-77"), "password in argv: {argv}");
        assert!(
            !call.contains(SECRET),
            "the backup secret reached psql: {call}"
        );
        // `psql --version`, asked before anything runs, carries no connection and no password.
        if argv.ends_with("--version") {
            assert!(!call.contains("Db-Pass-Xyz-77"), "{call}");
        } else {
            assert!(
                call.contains("PGPASSWORD=Db-Pass-Xyz-77"),
                "password not in the environment: {call}"
            );
        }
    }
    let stage_env = fs::read_to_string(&env_dump).unwrap();
    assert!(
        !stage_env.contains(SECRET),
        "the backup secret reached a command stage"
    );
    for f in [log.clone(), work.path().join("journal")] {
        let text = fs::read_to_string(&f).unwrap_or_default();
        if f != log {
            assert!(
                !text.contains("Db-Pass-Xyz-77") && !text.contains(SECRET),
                "secret in {}",
                f.display()
            );
        }
    }
    assert!(!e.contains("Db-Pass-Xyz-77") && !e.contains(SECRET));
}

/// SIGTERM while a stage runs: the stage's child and what it started in the background are
/// stopped, the journal records the stage as failed (interrupted), and the exit status is 143.
#[test]
fn sigterm_during_a_stage_stops_its_child_and_keeps_the_journal_consistent() {
    interrupt_during_a_stage("-TERM", 143, "SIGTERM");
}

/// The same for Ctrl-C (SIGINT): exit status 130.
#[test]
fn ctrl_c_during_a_stage_stops_its_child_and_keeps_the_journal_consistent() {
    interrupt_during_a_stage("-INT", 130, "Ctrl-C");
}

fn interrupt_during_a_stage(signal: &str, code: i32, said: &str) {
    let tmp = tiny_backup();
    let work = tempfile::tempdir().unwrap();
    let pidfile = work.path().join("stage.pid");
    let grandfile = work.path().join("grandchild.pid");
    let plan = work.path().join("plan.toml");
    fs::write(
        &plan,
        format!(
            "[[stage]]\nkind = \"command\"\nname = \"long maintenance\"\nrun = \"sleep 60 & echo $! > {}; echo $$ > {}; wait\"\n\n[[stage]]\nkind = \"restore\"\n",
            grandfile.display(),
            pidfile.display()
        ),
    )
    .unwrap();
    let journal = work.path().join("j.jsonl");
    let child = restore_cmd(tmp.path())
        .args(["--target", "host=/nonexistent dbname=x", "--yes", "--plan"])
        .arg(&plan)
        .arg("--journal")
        .arg(&journal)
        .env("A9S_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !pidfile.exists() || fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        assert!(t0.elapsed().as_secs() < 20, "the stage never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stage_pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let grandchild = fs::read_to_string(&grandfile).unwrap().trim().to_string();
    send_signal(signal, child.id());
    let out = child.finish();
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(200));
    for (who, pid) in [("child", &stage_pid), ("grandchild", &grandchild)] {
        assert!(!is_running(pid), "the stage's {who} was stopped");
    }
    interrupted_in_journal(&journal, said, 1);
}

/// The journal's last entry says stage `stage` failed, interrupted by `said`.
fn interrupted_in_journal(journal: &Path, said: &str, stage: usize) {
    let j = fs::read_to_string(journal).unwrap();
    let last = j.lines().last().unwrap();
    assert!(
        last.contains("\"event\":\"fail\"")
            && last.contains(&format!("\"stage\":{stage},"))
            && last.contains(&format!("interrupted by {said}")),
        "{j}"
    );
}

/// SIGTERM while psql runs a long statement with its input pipe full: psql is stopped with us
/// (its process group no longer gets the terminal's signals, so we must stop it), and the
/// exit is prompt, not after the statement.
#[test]
fn sigterm_during_a_busy_psql_stops_it() {
    let Some(b) = Cluster::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut dump = b"--\n-- PostgreSQL database dump\n--\nSELECT pg_sleep(120);\n".to_vec();
    // More than the pipes between us and psql hold, so the sink blocks on psql.
    for _ in 0..40_000 {
        dump.extend_from_slice(b"-- filler filler filler filler filler filler filler filler\n");
    }
    assert!(pack(tmp.path(), ID, &dump, &[]).status.success());
    let work = tempfile::tempdir().unwrap();
    let journal = work.path().join("j.jsonl");
    let child = restore_cmd(tmp.path())
        .args(["--target", &b.dsn("postgres"), "--yes"])
        .arg("--journal")
        .arg(&journal)
        .env("A9S_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let me = child.id().to_string();
    let t0 = std::time::Instant::now();
    let psql = loop {
        assert!(t0.elapsed().as_secs() < 30, "psql never started");
        let sleeping = b.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(120)%'",
        );
        let psql = fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once(") ")?;
            let ppid = rest.split_whitespace().nth(1)?;
            (comm.ends_with("(psql") && ppid == me).then(|| e.file_name())
        });
        if let (Some(p), "1") = (psql, sleeping.as_str()) {
            break p.to_string_lossy().into_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let t1 = std::time::Instant::now();
    send_signal("-TERM", child.id());
    let out = child.finish();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(
        t1.elapsed().as_secs() < 8,
        "the exit waited for the statement: {:?}",
        t1.elapsed()
    );
    assert!(!is_running(&psql), "psql was stopped");
    // The journal says the restore stage failed, interrupted: --resume will not redo it blindly.
    interrupted_in_journal(&journal, "SIGTERM", 2);
}
