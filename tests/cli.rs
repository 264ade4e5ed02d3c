//! The command line as an operator meets it: output files, secrets, pipes, signals, help.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn output_file_is_atomic_private_and_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = dump_text(2, 500);
    cli_backup(tmp.path(), ID, &plain, "-md md5", 3, Naming::FromOne);
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("x.dump");
    let t = target.to_str().unwrap();

    let out = recover(tmp.path(), ID, SECRET, &["-o", t]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read(&target).unwrap(), plain);
    let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(files_in(out_dir.path()), vec!["x.dump"]);

    fs::write(&target, b"precious").unwrap();
    let out = recover(tmp.path(), ID, SECRET, &["-o", t]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(fs::read(&target).unwrap(), b"precious");

    let out = recover(tmp.path(), ID, SECRET, &["-o", t, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&target).unwrap(), plain);
}

#[test]
fn secret_from_file_env_and_flag() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(tmp.path(), ID, b"data\n", "-md md5", 1, Naming::FromOne);
    let secret_file = tmp.path().join("secret.txt");
    fs::write(&secret_file, format!("{SECRET}\n")).unwrap();

    let out = bin()
        .arg("--bucket")
        .arg(tmp.path())
        .args(["--backup-id", ID, "--secret-file"])
        .arg(&secret_file)
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"data\n");

    let out = bin()
        .arg("--bucket")
        .arg(tmp.path())
        .args(["--backup-id", ID, "--secret", SECRET])
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("visible to other users"), "{e}");
    assert!(!e.contains(SECRET), "the secret leaked: {e}");
}

#[test]
fn no_secret_and_no_terminal_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(tmp.path(), ID, b"data\n", "-md md5", 1, Naming::FromOne);
    let out = bin()
        .arg("--bucket")
        .arg(tmp.path())
        .args(["--backup-id", ID])
        .run();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let e = stderr(&out);
    assert!(
        e.contains("is encrypted") && e.contains("A9S_SECRET"),
        "{e}"
    );
}

#[test]
fn closed_stdout_exits_zero_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = random_bytes(3 << 20, 5);
    cli_backup(tmp.path(), ID, &plain, "-md md5", 4, Naming::FromOne);
    let mut child = bin()
        .arg("--bucket")
        .arg(tmp.path())
        .args(["--backup-id", ID])
        .env("A9S_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout); // like `| head -c 100`
    let out = child.finish();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(&first[..], &plain[..100]);
}

fn interrupt_during_stream(signal: &str, expected_code: i32) {
    let tmp = tempfile::tempdir().unwrap();
    let plain = random_bytes(4 << 20, 6);
    cli_backup(tmp.path(), ID, &plain, "-md md5", 4, Naming::FromOne);
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("x.dump");
    let partial = out_dir.path().join("x.dump.partial");
    let child = bin()
        .arg("--bucket")
        .arg(tmp.path())
        .args(["--backup-id", ID, "--limit-rate", "1MiB", "-o"])
        .arg(&target)
        .env("A9S_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the stream has started writing.
    let start = Instant::now();
    while fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    send_signal(signal, child.id());
    let out = child.finish();
    assert_eq!(out.status.code(), Some(expected_code), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(files_in(out_dir.path()), Vec::<String>::new());
}

#[test]
fn ctrl_c_exits_130_and_removes_the_partial_file() {
    interrupt_during_stream("-INT", 130);
}

#[test]
fn sigterm_exits_143_and_removes_the_partial_file() {
    interrupt_during_stream("-TERM", 143);
}

#[test]
fn help_teaches() {
    let out = bin().arg("--help").run();
    assert!(out.status.success());
    let h = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--bucket",
        "--backup-id",
        "--secret-file",
        "A9S_SECRET",
        "openssl enc",
        "Exit status",
        "verify",
        "pack",
    ] {
        assert!(h.contains(needle), "help lacks {needle}:\n{h}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = bin().args(["--bucket", "x"]).run();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--backup-id"), "{}", stderr(&out));
}

#[test]
fn quiet_hides_notices_and_verbose_tells_what_was_detected() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(
        tmp.path(),
        ID,
        &dump_text(1, 10),
        "-md sha256",
        2,
        Naming::FromOne,
    );
    let out = recover(tmp.path(), ID, SECRET, &["-v"]);
    let e = stderr(&out);
    assert!(e.contains("2 part(s)"), "{e}");
    assert!(e.contains("-md sha256"), "{e}");
    assert!(e.contains("pg_dumpall"), "{e}");
    assert!(e.contains("dump sha256"), "{e}");
    let out = recover(tmp.path(), ID, SECRET, &["-q"]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
}

/// Benchmarks are never timed tests: this only checks that `bench` runs and reports.
#[test]
fn bench_runs_on_a_small_size() {
    let work = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "bench",
            "--size",
            "4MiB",
            "--runs",
            "1",
            "--json",
            "--work-dir",
        ])
        .arg(work.path())
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["dump_bytes"].as_u64().unwrap() >= 4 << 20);
    assert!(r["speedup"].as_f64().unwrap() > 0.0);
    assert!(r["reference_command"]
        .as_str()
        .unwrap()
        .contains("openssl enc -aes256 -md md5 -d"));
    assert_eq!(r["stages"].as_array().unwrap().len(), 4);
    assert!(r["ours"]["peak_rss_mib"].as_f64().unwrap() > 0.0);
    assert_eq!(
        files_in(work.path()),
        Vec::<String>::new(),
        "the synthetic backup was removed"
    );
}

#[test]
fn latest_for_an_unknown_instance_names_the_backups_there() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(tmp.path(), ID, b"x\n", "-md md5", 1, Naming::FromOne);
    let out = recover(tmp.path(), "latest", SECRET, &["--instance-id", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("latest of instance nobody") && e.contains(&format!("Backups there: {ID}")),
        "{e}"
    );
}

#[test]
fn bad_option_values_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(tmp.path(), ID, b"x\n", "-md md5", 1, Naming::FromOne);
    let out = recover(tmp.path(), ID, SECRET, &["--concurrency", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn pg_restore_options_on_a_plain_dump_are_said_to_be_ignored_and_jobs_split_it() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(
        tmp.path(),
        ID,
        &dump_text(1, 5),
        "-md md5",
        1,
        Naming::FromOne,
    );
    let out = bin()
        .args(["restore", "--bucket"])
        .arg(tmp.path())
        .args(["--backup-id", ID, "--jobs", "4", "--no-owner", "--dry-run"])
        .env("A9S_SECRET", SECRET)
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(
        text.contains("--no-owner only apply to pg_restore"),
        "{text}"
    );
    // The dry run shows the phases and N.
    assert!(text.contains("into 4 psql connections"), "{text}");
    assert!(text.contains("foreign keys over 4"), "{text}");
}

/// The suite-wide secret check reads stdout too (dumps, JSON reports), not only messages.
#[test]
#[should_panic(expected = "a secret appeared on stdout")]
fn the_suite_wide_secret_check_reads_stdout() {
    Command::new("echo").arg(SECRET).run();
}

/// No arguments print the help; every subcommand's help has examples; pack's --md is about
/// encrypting, and its missing-id error names both ways to give one (issue 13 §4).
#[test]
fn help_without_arguments_and_examples_everywhere() {
    let out = bin().run();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    for sub in ["verify", "pack", "list", "restore", "drill", "bench"] {
        let out = bin().args([sub, "--help"]).run();
        let h = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(h.contains("Examples:\n  "), "{sub}: {h}");
    }
    let h = String::from_utf8_lossy(&bin().args(["pack", "--help"]).run().stdout).to_string();
    assert!(
        h.contains("to encrypt with") && !h.contains("decrypted block"),
        "{h}"
    );
    let out = bin().args(["pack", "--bucket", "/nonexistent"]).run();
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("--backup-id") && e.contains("--instance-id"),
        "{e}"
    );
}

/// Shell completions and the man page (issue 13 §4): generated from the same flags.
#[test]
fn completions_and_man_page() {
    for (shell, needle) in [
        ("bash", "_a9s__recover()"),
        ("zsh", "#compdef a9s-recover"),
        ("fish", "complete -c a9s-recover"),
    ] {
        let out = bin().args(["completions", shell]).run();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(needle) && text.contains("--backup-id"),
            "{shell}"
        );
    }
    let out = bin().arg("man").run();
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        man.contains(".TH a9s-recover 1") && man.contains("backup\\-id"),
        "{man}"
    );
}

/// `--version` (long) names what the binary was built with (issue 13 §2); `-V` stays one line.
#[test]
fn long_version_names_features_engines_and_libraries() {
    let out = bin().arg("-V").run();
    assert!(out.status.success());
    let short = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        short.trim(),
        concat!("a9s-recover ", env!("CARGO_PKG_VERSION"))
    );

    let out = bin().arg("--version").run();
    assert!(out.status.success(), "{}", stderr(&out));
    let long = String::from_utf8_lossy(&out.stdout);
    for needle in ["features: ", "inflate:  ", "zlib-rs", "OpenSSL:  OpenSSL "] {
        assert!(long.contains(needle), "no {needle:?} in\n{long}");
    }
    // The test binary is built with the default features: the system's libisal, loaded
    // dynamically, and named with its release; the system's OpenSSL.
    if cfg!(feature = "isal") {
        assert!(
            long.contains("features: s3, azure, isal")
                && long.contains("isal (the default): ISA-L 2.")
                && long.contains("linked dynamically (/"),
            "{long}"
        );
    }
    if !cfg!(feature = "vendored-openssl") {
        assert!(
            long.contains("(the system's, linked dynamically)"),
            "{long}"
        );
    }
    // Nothing secret in it, and no environment leaks in.
    let out = bin()
        .arg("--version")
        .env("A9S_SECRET", "hunter2-not-shown")
        .run();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}
