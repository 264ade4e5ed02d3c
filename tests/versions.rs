//! Dumps from pg_dump 13, 14, 16 and 17: committed fixtures made by those real programs from
//! one database (tests/fixtures/pgdump/README.md), since this machine runs only PostgreSQL 15.
//! Each is backed up with the real gzip, openssl and split, recovered byte for byte, verified,
//! and restored into a real PostgreSQL 15 where PostgreSQL supports that; where it does not
//! (newer archive formats, newer servers) the restore is refused before anything changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::pg::*;
use crate::support::*;

/// (major, pg_dump version, server version, emits \restrict, custom archive version,
/// openssl options of the backup).
const VERSIONS: [(&str, &str, &str, bool, &str, &str); 4] = [
    ("13", "13.16", "13.23", false, "1.14", "-md md5"),
    ("14", "14.24", "14.23", true, "1.14", "-md sha256"),
    ("16", "16.15", "16.14", true, "1.15", "-pbkdf2"),
    ("17", "17.11", "17.10", true, "1.16", "-md md5"),
];

/// Rows of fixture.sql, as COPY names the tables.
const ROWS: [(&str, u64); 4] = [
    ("public.\"Order Items\"", 4),
    ("public.empty_table", 0),
    ("shop.customers", 120),
    ("shop.orders", 300),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pgdump")
}

fn fixture(name: &str) -> Vec<u8> {
    fs::read(fixture_dir().join(name)).unwrap()
}

fn id(major: &str, kind: &str) -> String {
    format!("0e5a7c11-{major}00-4000-8000-00000000{kind}-1732183200000")
}

/// A location holding every fixture, backed up with the real CLIs in 3 parts each.
fn bucket() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (major, .., enc) in VERSIONS {
        for (kind, file) in [("0001", "dumpall.sql"), ("0002", "custom.dump")] {
            let data = fixture(&format!("pg{major}-{file}"));
            cli_backup(dir.path(), &id(major, kind), &data, enc, 3, Naming::FromOne);
        }
    }
    dir
}

fn restore(bucket: &Path, id: &str, extra: &[&str]) -> Output {
    bin()
        .args(["restore", "--bucket"])
        .arg(bucket)
        .args(["--backup-id", id, "--yes"])
        .args(extra)
        .env("A9S_SECRET", SECRET)
        .run()
}

#[test]
fn dumps_of_pg_dump_13_to_17_recover_byte_exact_and_verify() {
    let b = bucket();
    for (major, by, from, restrict, archive, _) in VERSIONS {
        for (kind, file) in [("0001", "dumpall.sql"), ("0002", "custom.dump")] {
            let want = fixture(&format!("pg{major}-{file}"));
            let out = recover(b.path(), &id(major, kind), SECRET, &[]);
            assert!(out.status.success(), "{major} {file}: {}", stderr(&out));
            assert!(
                out.stdout == want,
                "pg{major}-{file} differs after recovery"
            );

            let out = bin()
                .args(["verify", "--json", "--bucket"])
                .arg(b.path())
                .args(["--backup-id", &id(major, kind)])
                .env("A9S_SECRET", SECRET)
                .run();
            assert!(out.status.success(), "{major} {file}: {}", stderr(&out));
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["origin"]["pg_dump"], by, "{major} {file}");
            assert_eq!(r["origin"]["server"], from, "{major} {file}");
            if kind == "0001" {
                assert_eq!(r["dump_kind"], "pg_dumpall");
                assert_eq!(r["origin"]["restrict"], restrict, "{major}");
                let tables = r["tables"].as_array().unwrap();
                let got: Vec<(String, u64)> = tables
                    .iter()
                    .map(|t| {
                        assert_eq!(t["database"], "shop");
                        (
                            t["table"].as_str().unwrap().to_string(),
                            t["rows"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                let want: Vec<(String, u64)> =
                    ROWS.iter().map(|(t, n)| (t.to_string(), *n)).collect();
                assert_eq!(got, want, "{major}");
            } else {
                assert_eq!(r["dump_kind"], "custom");
                assert_eq!(r["origin"]["archive"], archive, "{major}");
            }
        }
    }
}

/// pg_dump 13 and 14 into PostgreSQL 15, both formats: the data equals fixture.sql run
/// directly on PostgreSQL 15, table by table.
#[test]
fn dumps_of_pg_dump_13_and_14_restore_into_postgresql_15() {
    let b = bucket();
    let Some(reference) = Cluster::start() else {
        return;
    };
    reference.sql("postgres", "CREATE DATABASE shop");
    reference.sql("shop", &String::from_utf8(fixture("fixture.sql")).unwrap());
    let want = table_checksums(&reference, "shop");
    for (major, ..) in &VERSIONS[..2] {
        // pg_dumpall: roles, the database, everything, into a fresh cluster.
        let Some(c) = Cluster::start() else { return };
        let out = restore(
            b.path(),
            &id(major, "0001"),
            &["--target", &c.dsn("postgres"), "--json"],
        );
        assert!(out.status.success(), "{major}: {}", stderr(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["mismatches"], 0, "{major}");
        assert_eq!(r["verification"].as_array().unwrap().len(), 4, "{major}");
        assert_eq!(
            r["origin"]["pg_dump"].as_str().unwrap().split('.').next(),
            Some(*major)
        );
        assert_eq!(table_checksums(&c, "shop"), want, "pg_dumpall {major}");

        // pg_dump -Fc into an existing database of the reference cluster, through pg_restore.
        let db = format!("custom{major}");
        reference.sql("postgres", &format!("CREATE DATABASE {db}"));
        let out = restore(
            b.path(),
            &id(major, "0002"),
            &["--target", &reference.dsn(&db)],
        );
        assert!(out.status.success(), "{major}: {}", stderr(&out));
        assert_eq!(
            table_checksums(&reference, &db),
            want,
            "pg_dump -Fc {major}"
        );
    }
}

/// pg_dump 16 and 17 against PostgreSQL 15's programs: their custom archives are refused
/// before anything runs (pg_restore 15 cannot read them), their SQL into a 15 server too
/// (PostgreSQL does not support it), with what to do; --allow-older-target lets the SQL
/// through, and the errors it meets are counted, not hidden.
#[test]
fn dumps_of_pg_dump_16_and_17_are_refused_before_anything_changes() {
    let b = bucket();
    let Some(c) = Cluster::start() else { return };
    c.sql("postgres", "CREATE DATABASE app");
    c.sql("postgres", "CREATE ROLE shop_owner");
    c.sql(
        "app",
        "CREATE TABLE keep (x int); INSERT INTO keep VALUES (1)",
    );
    let work = tempfile::tempdir().unwrap();
    for (major, by, _, _, archive, _) in &VERSIONS[2..] {
        // Custom format: refused while preparing, even before the plan's first stage.
        let journal = work.path().join(format!("j{major}.jsonl"));
        let out = restore(
            b.path(),
            &id(major, "0002"),
            &[
                "--target",
                &c.dsn("app"),
                "--preset",
                "pgdump-custom",
                "--journal",
                journal.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{major}");
        let e = stderr(&out);
        assert!(
            e.contains(&format!(
                "custom-format archive of version {archive} made by pg_dump {by}"
            )) && e.contains("reads archives up to 1.14")
                && e.contains(&format!("postgresql-client-{major}"))
                && e.contains(&format!("--pg-bin /usr/lib/postgresql/{major}/bin")),
            "{e}"
        );
        assert!(!e.contains("starting"), "no stage may start: {e}");
        assert_eq!(c.sql("app", "SELECT count(*) FROM keep"), "1");

        // pg_dumpall SQL: the preflight stage refuses it, before the destructive stages.
        let out = restore(
            b.path(),
            &id(major, "0001"),
            &[
                "--target",
                &c.dsn("postgres"),
                "--preset",
                "a9s-single",
                "--var",
                "old_db=shop",
                "--var",
                "new_db=shop_new",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{major}");
        let e = stderr(&out);
        assert!(
            e.contains(&format!("made by pg_dump {by} from PostgreSQL"))
                && e.contains("the target runs PostgreSQL 15.")
                && e.contains(&format!("Restore into PostgreSQL {major} or later"))
                && e.contains("--allow-older-target"),
            "{e}"
        );
        assert!(e.contains("preflight: starting"), "{e}");
        assert!(!e.contains("terminate-sessions: starting"), "{e}");
        assert_eq!(
            c.sql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname = 'shop'"
            ),
            "0"
        );
    }

    // PostgreSQL 17's SQL into 15 when the operator insists: it loads, and the settings 15 does
    // not know are reported as SQL errors.
    let out = restore(
        b.path(),
        &id("17", "0001"),
        &[
            "--target",
            &c.dsn("postgres"),
            "--allow-older-target",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("warning: restoring a dump made by pg_dump 17.11"),
        "{e}"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mismatches"], 0);
    let errors = r["stream"]["restore"]["sql_errors"].as_u64().unwrap();
    assert!(errors >= 1, "{r}");
    let first = r["stream"]["restore"]["first_errors"].to_string();
    assert!(first.contains("transaction_timeout"), "{first}");
    assert_eq!(c.sql("shop", "SELECT count(*) FROM shop.orders"), "300");
}

/// The kind, origin and row counts are read while the dump streams past the sink; they must
/// not depend on how the stream is cut (here: 7-byte reads of a gzip-only backup, so the
/// inflated chunks straddle the 4 KiB sniffing window).
#[test]
fn what_verify_reads_does_not_depend_on_chunking() {
    let dir = tempfile::tempdir().unwrap();
    let id = id("17", "0003");
    let work = tempfile::tempdir().unwrap();
    let plain = work.path().join("plain");
    // COPY rows from the first lines on, so they straddle the sniffing window too.
    let mut dump =
        b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 17.10\n\
-- Dumped by pg_dump version 17.11 (Debian 17.11-0+deb13u1)\n\nCOPY public.t (x) FROM stdin;\n"
            .to_vec();
    for i in 0..3000 {
        dump.extend_from_slice(format!("row {i}\n").as_bytes());
    }
    dump.extend_from_slice(b"\\.\n");
    fs::write(&plain, dump).unwrap();
    sh(
        &format!(
            "gzip -c < '{}' > '{}/{id}-1'",
            plain.display(),
            dir.path().display()
        ),
        "",
    );
    let report = |chunk: &str| {
        let out = bin()
            .args(["verify", "--json", "--bucket"])
            .arg(dir.path())
            .args(["--backup-id", &id, "--chunk-size", chunk])
            .run();
        assert!(out.status.success(), "{}", stderr(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            r["dump_kind"].clone(),
            r["origin"].clone(),
            r["tables"].clone(),
        )
    };
    let whole = report("1MiB");
    assert_eq!(whole.0, "pg_dump_plain");
    assert_eq!(whole.1["pg_dump"], "17.11");
    assert_eq!(whole.2[0]["rows"], 3000);
    for chunk in ["7", "4096"] {
        assert_eq!(report(chunk), whole, "--chunk-size {chunk}");
    }
}
