//! `pack` and `verify` together: metadata, digests, dump kind and row counts.

use std::fs;

use crate::support::*;

#[test]
fn verify_reports_rows_kind_and_digests_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = dump_text(3, 1234);
    let out = pack(tmp.path(), ID, &plain, &["--part-size", "3000", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let packed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(packed["plaintext_sha256"], sha256(&plain));

    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join(format!("{ID}.json"))).unwrap()).unwrap();
    assert_eq!(meta["backup_id"], ID);
    assert_eq!(meta["created_at"], "2019-01-31T20:52:27.154Z");
    assert_eq!(meta["plaintext_sha256"], sha256(&plain));
    let parts = meta["parts"].as_array().unwrap();
    assert!(parts.len() > 1);
    for p in parts {
        let name = p["name"].as_str().unwrap();
        let data = fs::read(tmp.path().join(name)).unwrap();
        assert_eq!(p["size"], data.len() as u64);
        assert_eq!(p["sha256"], sha256(&data));
    }

    let out = bin()
        .args(["verify", "--bucket"])
        .arg(tmp.path())
        .args(["--backup-id", ID, "--json"])
        .env("A9S_SECRET", SECRET)
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["dump_kind"], "pg_dumpall");
    assert_eq!(r["plaintext_sha256"], sha256(&plain));
    assert_eq!(r["bytes_dump"], plain.len() as u64);
    assert_eq!(r["metadata"], "matched");
    assert_eq!(r["parts_checked"], parts.len() as u64);
    assert_eq!(r["key_derivation"], "-md md5");
    let tables = r["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 3);
    for (i, t) in tables.iter().enumerate() {
        assert_eq!(t["table"], format!("public.t{i}"));
        assert_eq!(t["database"], "shop");
        assert_eq!(t["rows"], 1234);
    }

    let text = bin()
        .args(["verify", "--bucket"])
        .arg(tmp.path())
        .args(["--backup-id", ID])
        .env("A9S_SECRET", SECRET)
        .run();
    assert!(text.status.success());
    let s = String::from_utf8_lossy(&text.stdout);
    assert!(s.contains("result       OK"), "{s}");
    assert!(s.contains("database shop: 3702 rows"), "{s}");
    assert!(s.contains("schema public: 3 table(s), 3702 rows"), "{s}");
    assert!(s.contains("1234   67.6 KiB  public.t2"), "{s}");
}

#[test]
fn verify_fails_on_a_digest_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = dump_text(1, 100);
    assert!(pack(tmp.path(), ID, &plain, &[]).status.success());
    let meta_path = tmp.path().join(format!("{ID}.json"));
    let meta = fs::read_to_string(&meta_path).unwrap();
    fs::write(&meta_path, meta.replace(&sha256(&plain), &"0".repeat(64))).unwrap();
    let out = bin()
        .args(["verify", "--bucket"])
        .arg(tmp.path())
        .args(["--backup-id", ID])
        .env("A9S_SECRET", SECRET)
        .run();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not match its recorded sha256"),
        "{}",
        stderr(&out)
    );
    // The same check guards a recovery to a file: nothing is put in place.
    let o = tempfile::tempdir().unwrap();
    let target = o.path().join("d.sql");
    let out = recover(tmp.path(), ID, SECRET, &["-o", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(files_in(o.path()), Vec::<String>::new());
}

#[test]
fn pack_refuses_an_existing_backup_and_makes_ids() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(pack(tmp.path(), ID, b"one", &[]).status.success());
    let again = pack(tmp.path(), ID, b"two", &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds"),
        "{}",
        stderr(&again)
    );

    let out = bin()
        .args(["pack", "--bucket"])
        .arg(tmp.path())
        .args(["--instance-id", "my-instance", "--secret", "x", "-q"])
        .stdin(fs::File::open("/dev/null").unwrap())
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = String::from_utf8(out.stdout).unwrap();
    let id = id.trim();
    assert!(a9s_recover::catalog::split_backup_id(id).is_some(), "{id}");
    let rec = bin()
        .arg("--bucket")
        .arg(tmp.path())
        .args(["--backup-id", id, "--secret", "x", "-q"])
        .run();
    assert!(rec.status.success(), "{}", stderr(&rec));
    assert!(rec.stdout.is_empty());
}

#[test]
fn verify_counts_rows_of_a_plain_pg_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let dump =
        b"--\n-- PostgreSQL database dump\n--\n\nCOPY public.a (x) FROM stdin;\n1\n2\n3\n\\.\n"
            .to_vec();
    assert!(pack(tmp.path(), ID, &dump, &[]).status.success());
    let out = bin()
        .args(["verify", "--bucket"])
        .arg(tmp.path())
        .args(["--backup-id", ID, "--json"])
        .env("A9S_SECRET", SECRET)
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["dump_kind"], "pg_dump_plain");
    assert_eq!(r["tables"][0]["rows"], 3);
    assert_eq!(r["tables"][0]["database"], serde_json::Value::Null);
}
