//! Issue 18: a hostile environment and a tired operator. Values never become shell commands,
//! names never reach the terminal raw, what we read is bounded and never followed through a
//! link, and each reproduction of the issue is a test here.

use std::fs;
use std::path::Path;

use crate::support::*;

/// A backup of a one-table dump.
fn small_backup(dir: &Path) {
    let out = pack(
        dir,
        ID,
        b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (x int);\n",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Every placeholder a command can receive, with values that are shell code: none of it
/// runs (no marker appears), each arrives as the one word it was, and the dry run shows the
/// command exactly as the shell gets it.
#[test]
fn a_value_never_becomes_a_shell_command() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    fs::create_dir(&bucket).unwrap();
    small_backup(&bucket);
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let got = work.join("got");
    let plan = work.join("plan.toml");
    fs::write(
        &plan,
        format!(
            "[[stage]]\nkind = \"command\"\nname = \"show what arrived\"\n\
             run = \"printf '%s\\\\n' {{note}} {{target_db}} {{backup_id}} {{instance_id}} > {}\"\n\
             destructive = false\n\n[[stage]]\nkind = \"restore\"\n",
            got.display()
        ),
    )
    .unwrap();
    let note = "$(touch ./pwned2)`touch ./pwned3`;touch ./pwned4 'q' \"d\" \\";
    let target = "host=/nonexistent dbname='x$(touch ./pwned5)`touch ./pwned6`'";
    let run = |extra: &[&str]| {
        bin()
            .current_dir(&work)
            .args(["restore", "--bucket"])
            .arg(&bucket)
            .args(["--backup-id", ID, "--plan"])
            .arg(&plan)
            .args([
                "--var",
                &format!("note={note}"),
                "--target",
                target,
                "--yes",
            ])
            .args(extra)
            .env("A9S_SECRET", SECRET)
            .run()
    };
    let dry = run(&["--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let shown = String::from_utf8_lossy(&dry.stdout).to_string() + &stderr(&dry);
    assert!(
        shown.contains("'$(touch ./pwned2)`touch ./pwned3`;touch ./pwned4 '\\''q'\\'' \"d\" \\'"),
        "{shown}"
    );
    assert!(
        shown.contains("'x$(touch ./pwned5)`touch ./pwned6`'"),
        "{shown}"
    );
    // The run: the command stage runs, the restore then fails (there is no such server).
    let out = run(&[]);
    assert!(!out.status.success());
    let names: Vec<String> = files_in(&work);
    assert!(
        !names.iter().any(|n| n.starts_with("pwned")),
        "a value ran as a command: {names:?}"
    );
    let words = fs::read_to_string(&got).unwrap();
    let words: Vec<&str> = words.lines().collect();
    assert_eq!(words[0], note);
    assert_eq!(words[1], "x$(touch ./pwned5)`touch ./pwned6`");
    assert_eq!(words[2], ID);
    assert_eq!(words[3], "b6f4c071-ef44-4af2-9608-531b4ce4823f");
}

/// A plan that puts a value inside its own quotes, or a builtin as shell text, is refused
/// before anything runs, saying how to write it.
#[test]
fn a_placeholder_inside_quotes_or_a_builtin_as_shell_text_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    small_backup(tmp.path());
    for (run, said) in [
        ("echo '{note}'", "inside quotes"),
        ("echo \\\"{note}\\\"", "inside quotes"),
        ("echo {shell:target_db}", "never shell text"),
    ] {
        let plan = tmp.path().join("plan.toml");
        fs::write(
            &plan,
            format!(
                "[[stage]]\nkind = \"command\"\nrun = \"{run}\"\n\n[[stage]]\nkind = \"restore\"\n"
            ),
        )
        .unwrap();
        let out = bin()
            .args(["restore", "--bucket"])
            .arg(tmp.path())
            .args(["--backup-id", ID, "--plan"])
            .arg(&plan)
            .args(["--var", "note=x", "--dry-run"])
            .env("A9S_SECRET", SECRET)
            .run();
        assert!(!out.status.success(), "{run}");
        assert!(stderr(&out).contains(said), "{run}: {}", stderr(&out));
    }
}
