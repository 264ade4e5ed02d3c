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

/// A pg_dump of one database: `public.big (id int, pad text)` of `rows` rows of about 210
/// bytes, and `public.small` of 3 rows.
fn big_dump(rows: usize) -> Vec<u8> {
    let mut s = one_table_dump_head("big", "pad", "text");
    let pad = "x".repeat(200);
    for i in 0..rows {
        s.push_str(&format!("{i}\t{pad}\n"));
    }
    s.push_str("\\.\n\n");
    s.push_str(SMALL_TABLE_DATA);
    s.into_bytes()
}

/// A small tmpfs, mounted for the test and unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return crate::support::servers::unavailable_pub("cannot mount a tmpfs (needs root)");
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Issue 18 §4: a restore that runs out of disk without --on-error-stop ends with SQL errors
/// and a failed verification; the journal must not call it done, the hint must name the
/// way that works, and the preflight's free-space warning comes back on the resume.
#[test]
fn a_full_disk_restore_is_not_done_for_resume() {
    use crate::support::pg::Cluster;
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = Cluster::start() else { return };
    let space = tmp.path().join("small-volume");
    let Some(_mounted) = Tmpfs::mount(&space, "24m") else {
        return;
    };
    let ts = space.join("ts");
    fs::create_dir(&ts).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&space)
        .status()
        .unwrap();
    assert!(chown.success());
    c.sql(
        "postgres",
        &format!("CREATE TABLESPACE small LOCATION '{}'", ts.display()),
    );
    c.sql("postgres", "CREATE DATABASE filled TABLESPACE small");
    let bucket = tmp.path().join("bucket");
    fs::create_dir(&bucket).unwrap();
    let out = pack(&bucket, ID, &big_dump(250_000), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let journal = tmp.path().join("journal");
    let run = |extra: &[&str]| {
        restore_to(&bucket, &c.dsn("filled"))
            .arg("--journal")
            .arg(&journal)
            .args(extra)
            .run()
    };
    let out = run(&[]);
    let e = stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(
        e.contains("warning:") && e.contains("free on"),
        "the preflight warns: {e}"
    );
    assert!(e.contains("No space left on device"), "{e}");
    assert!(e.contains("verification failed"), "{e}");
    assert!(
        e.contains("--resume --redo-interrupted"),
        "the hint names the way that works: {e}"
    );
    assert!(
        !e.contains("run the same command with --resume to continue"),
        "{e}"
    );
    // --resume does not skip the restore as done, and the preflight warns again.
    for extra in [
        &["--resume"][..],
        &["--resume", "--accept-restore-errors"][..],
    ] {
        let out = run(extra);
        let e = stderr(&out);
        assert!(!out.status.success(), "{extra:?}: {e}");
        assert!(!e.contains("already done"), "{extra:?}: {e}");
        assert!(
            e.contains("free on"),
            "{extra:?}: the free-space warning comes back: {e}"
        );
        assert!(e.contains("its verification found"), "{extra:?}: {e}");
        assert!(e.contains("--resume --redo-interrupted"), "{extra:?}: {e}");
    }
}

/// A restore that ends with an SQL error psql went past (a role that already exists) is not
/// done for --resume until the operator says its errors are harmless.
#[test]
fn a_restore_with_sql_errors_resumes_only_when_its_errors_are_accepted() {
    use crate::support::pg::Cluster;
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = Cluster::start() else { return };
    let bucket = tmp.path().join("bucket");
    fs::create_dir(&bucket).unwrap();
    let dump = b"--\n-- PostgreSQL database dump\n--\nCREATE ROLE postgres;\nCREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\n";
    assert!(pack(&bucket, ID, dump, &[]).status.success());
    let flag = tmp.path().join("window-open");
    let plan = tmp.path().join("plan.toml");
    fs::write(
        &plan,
        format!(
            "[[stage]]\nkind = \"preflight\"\n[[stage]]\nkind = \"restore\"\n\
             [[stage]]\nkind = \"command\"\nname = \"check the window\"\nrun = \"test -f {}\"\n",
            flag.display()
        ),
    )
    .unwrap();
    let journal = tmp.path().join("journal");
    let run = |extra: &[&str]| {
        restore_to(&bucket, &c.dsn("postgres"))
            .arg("--plan")
            .arg(&plan)
            .arg("--journal")
            .arg(&journal)
            .args(extra)
            .run()
    };
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("1 SQL error(s)"), "{}", stderr(&out));
    fs::write(&flag, b"").unwrap();
    let out = run(&["--resume"]);
    let e = stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(
        e.contains("with 1 SQL error(s)") && e.contains("already exists"),
        "{e}"
    );
    assert!(e.contains("--accept-restore-errors"), "{e}");
    assert_eq!(
        c.sql("postgres", "SELECT count(*) FROM t"),
        "1",
        "nothing ran again"
    );
    let out = run(&["--resume", "--accept-restore-errors"]);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("stage 2/3 restore: already done"), "{e}");
    assert_eq!(c.sql("postgres", "SELECT count(*) FROM t"), "1");
}

/// Issue 18 §6: metadata larger than any real metadata is refused before it is read, by the
/// recovery and by `list`.
#[test]
fn huge_metadata_is_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    small_backup(tmp.path());
    let meta = tmp.path().join(format!("{ID}.json"));
    // 3 GiB of nothing: a sparse file, so the test costs no disk.
    let f = fs::OpenOptions::new().write(true).open(&meta).unwrap();
    f.set_len(3 << 30).unwrap();
    drop(f);
    let t0 = std::time::Instant::now();
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("3.0 GiB") && stderr(&out).contains("refused without reading it"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    let list = bin()
        .args(["list", "--bucket"])
        .arg(tmp.path())
        .arg("--json")
        .run();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t0.elapsed()
    );
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("refused without reading it")
            || stderr(&list).contains("refused without reading it"),
        "{text}{}",
        stderr(&list)
    );
}

/// Issue 18 §6: in a local bucket, a part that is a link (to /etc/shadow, say), a FIFO, a
/// device or a directory is refused by name before it is opened, and no byte of anything
/// that is not a part is printed.
#[test]
fn a_part_that_is_not_a_regular_file_is_refused_by_name_unopened() {
    use std::os::unix::fs::symlink;
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    fs::write(secret_file.path(), b"root:*:19000:0:99999:7:::\n").unwrap();
    type Make<'a> = &'a dyn Fn(&Path);
    let kinds: [(&str, Make<'_>); 4] = [
        ("a symbolic link", &|p: &Path| {
            symlink(secret_file.path(), p).unwrap()
        }),
        ("a FIFO", &|p: &Path| {
            let ok = std::process::Command::new("mkfifo")
                .arg(p)
                .status()
                .unwrap();
            assert!(ok.success());
        }),
        ("a directory", &|p: &Path| fs::create_dir(p).unwrap()),
        ("a symbolic link", &|p: &Path| {
            symlink("/dev/zero", p).unwrap()
        }),
    ];
    for (what, make) in kinds {
        let tmp = tempfile::tempdir().unwrap();
        let out = pack(
            tmp.path(),
            ID,
            &dump_text(20, 200),
            &["--part-size", "4096"],
        );
        assert!(out.status.success());
        let parts = parts_in(tmp.path(), ID);
        assert!(parts.len() >= 2);
        // Part 1 replaced; the metadata removed, so that only the kind of file can refuse it.
        fs::remove_file(tmp.path().join(format!("{ID}.json"))).unwrap();
        fs::remove_file(&parts[0]).unwrap();
        make(&parts[0]);
        let name = parts[0].file_name().unwrap().to_str().unwrap().to_string();
        let t0 = std::time::Instant::now();
        let out = recover(tmp.path(), ID, SECRET, &[]);
        let e = stderr(&out);
        assert!(!out.status.success(), "{what}");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "{what}: it blocked"
        );
        assert!(
            e.contains(&format!("{name} is {what}, not a regular file")),
            "{what}: {e}"
        );
        assert!(
            !e.contains("72 6f 6f 74") && !e.contains("root:"),
            "{what}: {e}"
        );
        assert!(out.stdout.is_empty());
    }
}

/// Issue 18 §7: a name with control characters (a part named `inst-q<ESC>[2J-…`) is shown
/// escaped in text, never sent to the terminal raw; JSON escapes it by itself.
#[test]
fn names_reach_the_terminal_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let id = "inst-q\x1b[2J\x07-1732183200000";
    let out = pack(
        tmp.path(),
        "inst-plain-1732183200000",
        &dump_text(2, 10),
        &[],
    );
    assert!(out.status.success());
    fs::write(tmp.path().join(format!("{id}-1")), b"not a backup").unwrap();
    let no_raw = |what: &str, bytes: &[u8]| {
        assert!(
            !bytes.iter().any(|&b| b == 0x1b || b == 0x07),
            "{what}: a raw control character reached the terminal: {}",
            String::from_utf8_lossy(bytes)
        );
    };
    let list = bin().args(["list", "--bucket"]).arg(tmp.path()).run();
    no_raw("list", &list.stdout);
    no_raw("list", &list.stderr);
    assert!(String::from_utf8_lossy(&list.stdout).contains("inst-q\\e[2J\\x07-1732183200000"));
    // The error of a backup that does not exist names the ids there, escaped.
    let out = recover(tmp.path(), "inst-nope-1", SECRET, &[]);
    no_raw("error", &out.stderr);
    assert!(stderr(&out).contains("inst-q\\e[2J"), "{}", stderr(&out));
    // And the one with the odd name itself: its bytes are no backup.
    let out = recover(tmp.path(), id, SECRET, &[]);
    assert!(!out.status.success());
    no_raw("error", &out.stderr);
    let json = bin()
        .args(["list", "--bucket"])
        .arg(tmp.path())
        .arg("--json")
        .run();
    no_raw("list --json", &json.stdout);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(v.to_string().contains("\\u001b[2J"), "{v}");
}

/// Issue 18 §8: the --target password warning is said once, whatever else is said.
#[test]
fn the_target_password_warning_is_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    small_backup(tmp.path());
    for extra in [
        &["--dry-run"][..],
        &["--yes"][..],
        &["--yes", "--json"][..],
        &["--yes", "-v", "--jobs", "2"][..],
    ] {
        let out = bin()
            .args(["restore", "--bucket"])
            .arg(tmp.path())
            .args([
                "--backup-id",
                ID,
                "--target",
                "postgresql://u:Pw-in-dsn-42@127.0.0.1:1/db",
            ])
            .args(extra)
            .env("A9S_SECRET", SECRET)
            .run();
        let e = stderr(&out);
        assert_eq!(
            e.matches("visible to other users").count(),
            1,
            "{extra:?}: {e}"
        );
    }
}

/// Issue 18 §8: `latest` without --instance-id names the instances it sees.
#[test]
fn latest_without_an_instance_names_the_instances() {
    let tmp = tempfile::tempdir().unwrap();
    for id in [
        "inst-a-1732183200000",
        "inst-a-1732186800000",
        "inst-b-1732183200000",
    ] {
        assert!(pack(tmp.path(), id, &dump_text(1, 5), &[]).status.success());
    }
    let out = recover(tmp.path(), "latest", SECRET, &[]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(
        e.contains("inst-a (2 backup(s)") && e.contains("inst-b (1 backup(s)"),
        "{e}"
    );
}
