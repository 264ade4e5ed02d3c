//! The fault matrix (README, "What we guarantee"): one table, each row a fault, the command,
//! and the expected outcome. Every row checks the exit code and that the message names the
//! cause; rows on the plain form check that no output file (nor a `.partial`) is left; rows on
//! `restore` check that no destructive stage ran: the plan's first destructive stage is a
//! command that would leave a marker file. Faults that need a server (S3, Azure, PostgreSQL
//! states, signals) are in their own modules and listed in the README's matrix.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fixture {
    /// 14 parts made by the real tools, no metadata.
    Cli,
    /// Packed by us: parts with metadata.
    Packed,
}

struct Row {
    fault: &'static str,
    fixture: Fixture,
    setup: fn(&Path, &[PathBuf]),
    args: &'static [&'static str],
    secret: &'static str,
    /// Run as a restore as well (faults knowable before streaming).
    restore: bool,
    /// Wrap in `ulimit -f` (KiB).
    ulimit_kib: Option<u32>,
    says: &'static [&'static str],
}

fn nothing(_: &Path, _: &[PathBuf]) {}

fn rows() -> Vec<Row> {
    vec![
        Row {
            fault: "wrong secret",
            fixture: Fixture::Cli,
            setup: nothing,
            args: &[],
            secret: "not-it",
            restore: true,
            ulimit_kib: None,
            says: &["secret is wrong", "-1"],
        },
        Row {
            fault: "wrong --md",
            fixture: Fixture::Cli,
            setup: nothing,
            args: &["--md", "sha256"],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["secret is wrong", "tried -md sha256", "leave out --md"],
        },
        Row {
            fault: "missing part",
            fixture: Fixture::Cli,
            setup: |_, p| fs::remove_file(&p[2]).unwrap(),
            args: &[],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["part index 3 is missing"],
        },
        Row {
            fault: "extra part",
            fixture: Fixture::Packed,
            setup: |d, p| {
                fs::copy(&p[0], d.join(format!("{ID}-{}", p.len() + 1))).unwrap();
            },
            args: &[],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["is not in the metadata"],
        },
        Row {
            fault: "empty part",
            fixture: Fixture::Cli,
            setup: |_, p| fs::write(&p[4], b"").unwrap(),
            args: &[],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["-5 is empty"],
        },
        Row {
            fault: "truncated last part",
            fixture: Fixture::Cli,
            setup: |_, p| {
                cut_tail(p.last().unwrap(), 7);
            },
            args: &[],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["truncated", "-14"],
        },
        Row {
            fault: "truncated at a block boundary (an upload cut short)",
            fixture: Fixture::Cli,
            setup: |_, p| {
                // 4096 is a multiple of 16: the stream stays block-aligned.
                cut_tail(p.last().unwrap(), 4096);
            },
            args: &[],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["is truncated", "-14 at byte"],
        },
        Row {
            fault: "truncated part (metadata)",
            fixture: Fixture::Packed,
            setup: |_, p| {
                cut_tail(&p[1], 100);
            },
            args: &[],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["-2 is", "the metadata says"],
        },
        Row {
            fault: "corrupted part",
            fixture: Fixture::Cli,
            setup: |_, p| flip_byte(&p[6], 1000),
            args: &[],
            secret: SECRET,
            // Found by the whole read before the plan's destructive stage.
            restore: true,
            ulimit_kib: None,
            says: &["corrupt"],
        },
        Row {
            fault: "corrupted part (metadata)",
            fixture: Fixture::Packed,
            setup: |_, p| flip_byte(&p[2], 500),
            args: &[],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["-3 does not match its recorded sha256"],
        },
        Row {
            fault: "malformed metadata JSON",
            fixture: Fixture::Packed,
            setup: |d, _| fs::write(d.join(format!("{ID}.json")), b"{\"parts\": [{").unwrap(),
            args: &[],
            secret: SECRET,
            restore: true,
            ulimit_kib: None,
            says: &["is not valid JSON"],
        },
        Row {
            fault: "disk full on -o (ulimit -f)",
            fixture: Fixture::Cli,
            setup: nothing,
            args: &[],
            secret: SECRET,
            restore: false,
            ulimit_kib: Some(64),
            says: &["File too large"],
        },
    ]
}

fn fixture(kind: Fixture, dir: &Path) -> Vec<PathBuf> {
    let plain = dump_text(6, 4000);
    match kind {
        Fixture::Cli => cli_backup(dir, ID, &plain, "-md md5", 14, Naming::FromOne),
        Fixture::Packed => {
            let out = pack(dir, ID, &plain, &["--part-size", "3000"]);
            assert!(out.status.success(), "{}", stderr(&out));
            parts_in(dir, ID)
        }
    }
}

fn run_row(row: &Row, bucket: &Path, extra: &[String]) -> std::process::Output {
    let exe = crate::support::exe();
    let mut args: Vec<String> = Vec::new();
    args.extend(extra.iter().cloned());
    args.extend([
        "--bucket".into(),
        bucket.display().to_string(),
        "--backup-id".into(),
        ID.into(),
    ]);
    args.extend(row.args.iter().map(|s| s.to_string()));
    let mut cmd = match row.ulimit_kib {
        Some(k) => {
            let mut c = std::process::Command::new("sh");
            c.args(["-c", &format!("ulimit -f {k}; exec \"$0\" \"$@\"")])
                .arg(&exe);
            c.args(&args);
            c
        }
        None => {
            let mut c = bin();
            c.args(&args);
            c
        }
    };
    cmd.env("A9S_SECRET", row.secret)
        .stdin(std::process::Stdio::null());
    cmd.run()
}

#[test]
fn fault_matrix() {
    let mut failures = Vec::new();
    for row in rows() {
        let tmp = tempfile::tempdir().unwrap();
        let bucket = tmp.path().join("bucket");
        let parts = fixture(row.fixture, &bucket);
        (row.setup)(&bucket, &parts);

        // The plain form into a file.
        let out_dir = tmp.path().join("out");
        fs::create_dir(&out_dir).unwrap();
        let target = out_dir.join("x.dump");
        let out = run_row(&row, &bucket, &["-o".into(), target.display().to_string()]);
        let e = stderr(&out);
        if out.status.code() != Some(1) {
            failures.push(format!("{}: exit {:?}: {e}", row.fault, out.status.code()));
        }
        for s in row.says {
            if !e.contains(s) {
                failures.push(format!("{}: message lacks {s:?}: {e}", row.fault));
            }
        }
        if !files_in(&out_dir).is_empty() {
            failures.push(format!("{}: left {:?}", row.fault, files_in(&out_dir)));
        }
        if e.contains(SECRET) {
            failures.push(format!("{}: the secret is in the message", row.fault));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{}: wrote to stdout", row.fault));
        }

        // The same fault under a restore: no destructive stage may start.
        if row.restore {
            let marker = tmp.path().join("destructive-stage-ran");
            let plan = tmp.path().join("plan.toml");
            fs::write(
                &plan,
                format!(
                    "[[stage]]\nkind = \"command\"\nname = \"stop the application\"\nrun = \"touch {}\"\n\n[[stage]]\nkind = \"restore\"\n",
                    marker.display()
                ),
            )
            .unwrap();
            let out = run_row(
                &row,
                &bucket,
                &[
                    "restore".into(),
                    "--target".into(),
                    "host=/nonexistent/socket/dir dbname=postgres".into(),
                    "--plan".into(),
                    plan.display().to_string(),
                    "--yes".into(),
                ],
            );
            let e = stderr(&out);
            if out.status.code() != Some(1) || !row.says.iter().all(|s| e.contains(s)) {
                failures.push(format!(
                    "{} (restore): exit {:?}: {e}",
                    row.fault,
                    out.status.code()
                ));
            }
            if marker.exists() {
                failures.push(format!("{} (restore): a destructive stage ran", row.fault));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Rows about the target, with a good backup: PostgreSQL down, psql or pg_restore missing.
#[test]
fn target_faults_stop_before_destructive_stages() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("b");
    fixture(Fixture::Cli, &bucket);
    let marker = tmp.path().join("ran");
    let plan = tmp.path().join("plan.toml");
    fs::write(
        &plan,
        format!(
            "[[stage]]\nkind = \"preflight\"\n\n[[stage]]\nkind = \"command\"\nrun = \"touch {}\"\n\n[[stage]]\nkind = \"restore\"\n",
            marker.display()
        ),
    )
    .unwrap();
    // A custom-format backup, for pg_restore; a --pg-bin that holds neither psql nor it.
    let custom = tmp.path().join("custom");
    let archive = b"PGDMP\x01\x0e\x00\x04\x08\x01 the rest of an archive";
    assert!(pack(&custom, ID, archive, &[]).status.success());
    let no_tools = tmp.path().join("no-tools");
    fs::create_dir(&no_tools).unwrap();
    let no_tools = no_tools.to_str().unwrap();
    let cases: [(&str, &Path, &[&str], &[&str]); 3] = [
        (
            "PostgreSQL down",
            &bucket,
            &[],
            &[
                "stage 1 (preflight) failed",
                "psql failed",
                "No such file or directory",
            ],
        ),
        (
            "psql not installed",
            &bucket,
            &["--pg-bin", no_tools],
            &["psql is not installed", "--pg-bin"],
        ),
        (
            "pg_restore not installed",
            &custom,
            &["--pg-bin", no_tools],
            &["pg_restore is not installed", "--pg-bin"],
        ),
    ];
    for (fault, bucket, extra, says) in cases {
        let out = bin()
            .args(["restore", "--bucket"])
            .arg(bucket)
            .args([
                "--backup-id",
                ID,
                "--target",
                &format!("host={} dbname=postgres", tmp.path().display()),
                "--plan",
            ])
            .arg(&plan)
            .args(["--yes"])
            .args(extra)
            .env("A9S_SECRET", SECRET)
            .run();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{fault}: {e}");
        for s in says {
            assert!(e.contains(s), "{fault}: lacks {s:?}: {e}");
        }
        assert!(!marker.exists(), "{fault}: a destructive stage ran");
    }
}
