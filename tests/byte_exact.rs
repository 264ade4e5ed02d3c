//! Byte-exactness against the real `gzip`, `openssl enc` and `split`.

use std::fs;

use crate::support::*;

/// Plaintext sizes named in the issue: empty, sub-block, block edges, page edge, MiB + 3,
/// and 5 MiB of incompressible random data.
fn plaintexts() -> Vec<(String, Vec<u8>)> {
    vec![
        ("0 bytes".into(), vec![]),
        ("1 byte".into(), b"x".to_vec()),
        ("15 bytes".into(), random_bytes(15, 1)),
        ("16 bytes".into(), random_bytes(16, 2)),
        ("17 bytes".into(), random_bytes(17, 3)),
        ("4095 bytes".into(), dump_text(1, 100)[..4095].to_vec()),
        ("1 MiB + 3 text".into(), {
            let mut d = dump_text(4, 20_000);
            d.resize((1 << 20) + 3, b'\n');
            d
        }),
        ("5 MiB random".into(), random_bytes(5 << 20, 4)),
    ]
}

/// (openssl enc arguments, our flags) — auto-detection covers the first three.
const ENCRYPTIONS: [(&str, &[&str]); 4] = [
    ("-md md5", &[]),
    ("-md sha256", &[]),
    ("-pbkdf2", &[]),
    ("-pbkdf2 -iter 1000", &["--pbkdf2", "--iter", "1000"]),
];

#[test]
fn real_cli_backups_recover_byte_exact() {
    let part_counts = [1, 2, 3, 7, 11, 25];
    let namings = [Naming::FromOne, Naming::Padded, Naming::FromZero];
    let mut case = 0;
    for (label, plain) in plaintexts() {
        let want = sha256(&plain);
        for (enc, flags) in ENCRYPTIONS {
            let parts = part_counts[case % part_counts.len()];
            let naming = namings[case % namings.len()];
            case += 1;
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("bucket");
            let made = cli_backup(&dir, ID, &plain, enc, parts, naming);
            let out = recover(&dir, ID, SECRET, flags);
            assert!(
                out.status.success(),
                "{label}, {enc}, {} parts: {}",
                made.len(),
                stderr(&out)
            );
            assert_eq!(
                sha256(&out.stdout),
                want,
                "{label}, {enc}, {} parts {naming:?}",
                made.len()
            );
        }
    }
}

#[test]
fn twenty_five_unpadded_parts_need_natural_order() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = dump_text(3, 3000);
    let made = cli_backup(tmp.path(), ID, &plain, "-md md5", 25, Naming::FromOne);
    assert!(made.len() >= 20, "{} parts", made.len());
    // Lexicographic order would put -10 before -2: only natural order decrypts.
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain);
}

#[test]
fn auto_detection_reports_the_key_derivation() {
    for (enc, expect) in [
        ("-md md5", "-md md5"),
        ("-md sha256", "-md sha256"),
        ("-pbkdf2", "-pbkdf2 -iter 10000 -md sha256"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        cli_backup(tmp.path(), ID, b"select 1;\n", enc, 1, Naming::FromOne);
        let out = recover(tmp.path(), ID, SECRET, &["-v"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("key derivation {expect}")),
            "{enc}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn explicit_md_and_sha1() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(tmp.path(), ID, b"abc\n", "-md sha1", 2, Naming::FromOne);
    // sha1 is not among the automatic guesses; naming it works.
    let auto = recover(tmp.path(), ID, SECRET, &[]);
    assert!(!auto.status.success());
    assert!(stderr(&auto).contains("--md sha1"), "{}", stderr(&auto));
    let out = recover(tmp.path(), ID, SECRET, &["--md", "sha1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"abc\n");
}

#[test]
fn azure_single_blob_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = dump_text(2, 100);
    let parts = cli_backup(tmp.path(), "x", &plain, "-md md5", 1, Naming::FromOne);
    fs::rename(&parts[0], tmp.path().join(ID)).unwrap();
    let out = recover(tmp.path(), ID, SECRET, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain);
}

#[test]
fn unencrypted_gzip_backup_passes_with_a_notice() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = dump_text(1, 50);
    let gz = tmp.path().join("gz");
    fs::write(tmp.path().join("plain"), &plain).unwrap();
    sh(
        &format!(
            "gzip -c < '{}' > '{}'",
            tmp.path().join("plain").display(),
            gz.display()
        ),
        "",
    );
    let dir = tmp.path().join("b");
    fs::create_dir(&dir).unwrap();
    split_file(&gz, &dir, ID, 3, Naming::FromOne);
    let out = bin()
        .arg("--bucket")
        .arg(&dir)
        .args(["--backup-id", ID])
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain);
    assert!(stderr(&out).contains("not encrypted"), "{}", stderr(&out));
}

#[test]
fn encrypted_custom_format_without_gzip_passes_through() {
    let tmp = tempfile::tempdir().unwrap();
    let mut custom = b"PGDMP\x01\x0e\x00\x04\x08\x01\x01".to_vec();
    custom.extend(random_bytes(70_000, 9));
    let plain = tmp.path().join("plain");
    fs::write(&plain, &custom).unwrap();
    let ct = tmp.path().join("ct");
    sh(
        &format!(
            "openssl enc -aes256 -md md5 -pass env:S < '{}' > '{}' 2>/dev/null",
            plain.display(),
            ct.display()
        ),
        SECRET,
    );
    let dir = tmp.path().join("b");
    fs::create_dir(&dir).unwrap();
    split_file(&ct, &dir, ID, 4, Naming::FromOne);
    let out = recover(&dir, ID, SECRET, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, custom);
    assert!(stderr(&out).contains("not gzip"), "{}", stderr(&out));
}

#[test]
fn pack_output_decrypts_with_the_manual_pipeline() {
    let plain = dump_text(5, 2000);
    for (flags, dec) in [
        (&[][..], "-md md5"),
        (&["--md", "sha256"][..], "-md sha256"),
        (&["--pbkdf2"][..], "-pbkdf2"),
        (&["--pbkdf2", "--iter", "1000"][..], "-pbkdf2 -iter 1000"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["--part-size", "3000"];
        args.extend_from_slice(flags);
        let out = pack(tmp.path(), ID, &plain, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let parts = files_in(tmp.path())
            .into_iter()
            .filter(|n| !n.ends_with(".json"))
            .count();
        assert!(parts > 10, "{parts} parts");
        assert_eq!(manual_pipeline(tmp.path(), ID, dec, SECRET), plain, "{dec}");
    }
}

#[test]
fn file_url_location() {
    let tmp = tempfile::tempdir().unwrap();
    cli_backup(tmp.path(), ID, b"hello\n", "-md md5", 2, Naming::FromOne);
    let url = format!("file://{}", tmp.path().display());
    let out = bin()
        .args(["--bucket", &url, "--backup-id", ID])
        .env("A9S_SECRET", SECRET)
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello\n");
}

/// The README's quick start: the bundled example backup recovers and verifies.
#[test]
fn bundled_example_backup_recovers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bucket");
    let id = "5d3c9a1e-7f2b-4c1a-9e8d-2b6f0a4c8e17-1732183200000";
    let out = recover(&dir, id, "demo", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("--\n-- PostgreSQL database cluster dump\n"));
    assert!(text.contains("COPY sales.orders (id, customer_id, total, placed_at) FROM stdin;"));
    let out = bin()
        .args(["verify", "--json", "--bucket"])
        .arg(&dir)
        .args(["--backup-id", id])
        .env("A9S_SECRET", "demo")
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["metadata"], "matched");
    assert_eq!(r["parts"], 14);
    assert_eq!(r["tables"][1]["rows"], 2000);
}

/// gzip streams made by pigz (multi-threaded) and igzip (ISA-L) recover byte-exact too, with
/// either inflate engine.
#[test]
fn gzip_streams_from_pigz_and_igzip() {
    let plain = {
        let mut d = dump_text(8, 20_000);
        d.extend(random_bytes(300_000, 12));
        d
    };
    for compressor in ["pigz -c -p 2", "igzip -c"] {
        let exe = compressor.split_whitespace().next().unwrap();
        if std::process::Command::new("sh")
            .args(["-c", &format!("command -v {exe}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            assert!(
                std::env::var("CI").is_err(),
                "{exe} is not installed (.ci/run installs it)"
            );
            eprintln!("SKIPPED: {exe} is not installed");
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("plain");
        fs::write(&p, &plain).unwrap();
        let ct = tmp.path().join("ct");
        sh(
            &format!(
                "{compressor} < '{}' | openssl enc -aes256 -md md5 -pass env:S 2>/dev/null > '{}'",
                p.display(),
                ct.display()
            ),
            SECRET,
        );
        let dir = tmp.path().join("b");
        fs::create_dir(&dir).unwrap();
        split_file(&ct, &dir, ID, 5, Naming::FromOne);
        for engine in ["isal", "zlib"] {
            let out = recover(&dir, ID, SECRET, &["--inflate", engine]);
            assert!(
                out.status.success(),
                "{compressor} {engine}: {}",
                stderr(&out)
            );
            assert_eq!(sha256(&out.stdout), sha256(&plain), "{compressor} {engine}");
        }
    }
}
