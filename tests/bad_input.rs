//! Bad input: a clear message naming the problem and the part, a non-zero exit, nothing on
//! stdout when the problem is knowable before streaming, and no output file left behind.

use std::fs;
use std::path::Path;

use crate::support::*;

/// A 14-part backup of compressible text, made by the real tools.
fn fixture(dir: &Path) -> (Vec<u8>, Vec<std::path::PathBuf>) {
    let plain = dump_text(6, 4000);
    let parts = cli_backup(dir, ID, &plain, "-md md5", 14, Naming::FromOne);
    assert_eq!(parts.len(), 14);
    (plain, parts)
}

/// Runs with `-o` too and checks that neither the file nor its `.partial` is left.
fn assert_no_output_file(dir: &Path, extra: &[&str]) -> std::process::Output {
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("x.dump");
    let mut args = vec!["-o", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = recover(dir, ID, SECRET, &args);
    assert!(!out.status.success());
    assert_eq!(
        files_in(out_dir.path()),
        Vec::<String>::new(),
        "{}",
        stderr(&out)
    );
    out
}

#[test]
fn decoy_names_are_not_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, _) = fixture(tmp.path());
    for decoy in [
        format!("{ID}0-1"),
        format!("{ID}x-1"),
        format!("{ID}-1.bak"),
        format!("{ID}-abc"),
        format!("{ID}-"),
    ] {
        fs::write(tmp.path().join(decoy), b"garbage that must never be read").unwrap();
    }
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain);
}

#[test]
fn truncated_last_part() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = fixture(tmp.path());
    // Not a whole number of blocks: knowable before streaming.
    let cut = cut_tail(parts.last().unwrap(), 5);
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let e = stderr(&out);
    assert!(e.contains("truncated"), "{e}");
    assert!(
        e.contains(&format!("{ID}-14 ends at its byte {cut}")),
        "{e}"
    );
    assert_no_output_file(tmp.path(), &[]);
}

#[test]
fn flipped_byte_in_a_middle_part() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = fixture(tmp.path());
    let size = fs::metadata(&parts[6]).unwrap().len() as usize;
    flip_byte(&parts[6], size / 2);
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("corrupt"), "{e}");
    // Without metadata, deflate usually decodes damaged data and only the CRC32 at the end
    // of the member tells: the message then gives the span the damage lies in.
    assert!(
        e.contains(&format!("part {ID}-7 at byte"))
            || e.contains(&format!("between part {ID}-1 at byte 16 and part {ID}-14")),
        "{e}"
    );
    assert_no_output_file(tmp.path(), &[]);
}

#[test]
fn flipped_byte_with_metadata_names_the_part_by_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = random_bytes(600_000, 11);
    let out = pack(tmp.path(), ID, &plain, &["--part-size", "100000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    flip_byte(&tmp.path().join(format!("{ID}-3")), 777);
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains(&format!("part {ID}-3")),
        "the damaged part is named: {e}"
    );
    assert_no_output_file(tmp.path(), &[]);
}

#[test]
fn directory_that_does_not_exist() {
    let out = recover(Path::new("/nonexistent/backups"), ID, SECRET, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let e = stderr(&out);
    assert!(e.contains("/nonexistent/backups does not exist"), "{e}");
}

#[test]
fn unknown_backup_lists_the_existing_ones() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let other = "b6f4c071-ef44-4af2-9608-531b4ce4823f-1600000000000";
    let out = recover(tmp.path(), other, SECRET, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains(&format!("no backup \"{other}\"")), "{e}");
    assert!(e.contains(&format!("Backups there: {ID}")), "{e}");
}

#[test]
fn metadata_disagreeing_with_the_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pack(
        tmp.path(),
        ID,
        &dump_text(2, 3000),
        &["--part-size", "20000"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The last part vanished: only the metadata can tell.
    let names = files_in(tmp.path());
    let last = names
        .iter()
        .filter(|n| !n.ends_with(".json"))
        .max_by_key(|n| n.rsplit('-').next().unwrap().parse::<u32>().unwrap())
        .unwrap()
        .clone();
    fs::remove_file(tmp.path().join(&last)).unwrap();
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let e = stderr(&out);
    assert!(e.contains(&format!("part {last} is missing")), "{e}");
}

#[test]
fn not_a_backup_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(format!("{ID}-1")), b"just some text file\n").unwrap();
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("Salted__"), "{}", stderr(&out));
}

/// ISA-L reports corruption without an exact offset: the backup is read again with our own
/// decoder, and the operator gets the same precise message as with `--inflate zlib`.
#[test]
fn corruption_under_isal_is_located_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = random_bytes(3 << 20, 31);
    let parts = cli_backup(tmp.path(), ID, &plain, "-md md5", 4, Naming::FromOne);
    flip_byte(&parts[1], 5000);
    let fast = recover(tmp.path(), ID, SECRET, &["--inflate", "isal"]);
    let exact = recover(tmp.path(), ID, SECRET, &["--inflate", "zlib"]);
    assert!(!fast.status.success() && !exact.status.success());
    let (f, x) = (stderr(&fast), stderr(&exact));
    assert!(x.contains("CRC32 mismatch"), "{x}");
    assert!(
        !f.contains("ISA-L"),
        "the diagnosis replaced ISA-L's message: {f}"
    );
    assert_eq!(f, x);
    assert_no_output_file(tmp.path(), &["--inflate", "isal"]);
}

#[test]
fn empty_metadata_file() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    fs::write(tmp.path().join(format!("{ID}.json")), b"").unwrap();
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains(".json is not valid JSON: the file is empty"),
        "{}",
        stderr(&out)
    );
}
