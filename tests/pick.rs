//! Selective restore (issue 22) through the plain form: the real binary, a real cluster, a
//! real pg_dumpall, and psql loading what was picked.

use std::path::Path;

use crate::support::pg::{table_checksums, Cluster};
use crate::support::{pack, recover, stderr, ID, SECRET};

fn fixture() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pgdump/fixture.sql"),
    )
    .unwrap()
}

/// A cluster with database `shop` (the version fixture, and a partitioned table), and its
/// pg_dumpall packed into `dir`.
fn shop(dir: &Path) -> Option<Cluster> {
    let c = Cluster::start()?;
    c.sql("postgres", "CREATE DATABASE shop");
    c.sql("shop", &fixture());
    c.sql(
        "shop",
        "CREATE TABLE public.events (id int, k int) PARTITION BY LIST (k);
         CREATE TABLE public.events_1 PARTITION OF public.events FOR VALUES IN (1);
         CREATE TABLE public.events_2 PARTITION OF public.events FOR VALUES IN (2);
         INSERT INTO public.events SELECT g, 1 + g % 2 FROM generate_series(1, 1000) g;",
    );
    let dump = c.tool("pg_dumpall", &[]);
    let out = pack(dir, ID, &dump, &["--part-size", "7000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    Some(c)
}

fn psql_file(c: &Cluster, db: &str, file: &Path) {
    let out = std::process::Command::new(c.bin.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &c.dsn(db), "-f"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql -f {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_plain_form_writes_a_dump_of_tables_that_psql_loads_into_an_empty_database() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = shop(tmp.path()) else { return };
    let file = tmp.path().join("picked.sql");
    let out = {
        let mut cmd = crate::support::bin();
        cmd.args(["--bucket"])
            .arg(tmp.path())
            .args(["--backup-id", ID, "--database", "shop"])
            .args([
                "--table",
                "public.\"Order Items\"",
                "--table",
                "public.events",
                "-o",
            ])
            .arg(&file)
            .env("A9S_SECRET", SECRET);
        cmd.output().unwrap()
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("picked: "), "{err}");
    assert!(err.contains("public.events_1"), "{err}");
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(!sql.contains("customers"), "{sql}");
    assert!(!sql.contains("CREATE ROLE"), "{sql}");
    c.sql("postgres", "CREATE DATABASE empty");
    psql_file(&c, "empty", &file);
    for t in [
        "public.\"Order Items\"",
        "public.events",
        "public.events_1",
        "public.events_2",
    ] {
        assert_eq!(
            c.sql("empty", &format!("SELECT count(*) FROM {t}")),
            c.sql("shop", &format!("SELECT count(*) FROM {t}")),
            "{t}"
        );
    }
    assert_eq!(
        c.sql(
            "empty",
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.events'::regclass"
        ),
        "2"
    );
    assert_eq!(
        c.sql("empty", "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"),
        "4"
    );
}

#[test]
fn a_database_into_a_new_name_leaves_the_live_one_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = shop(tmp.path()) else { return };
    let before = table_checksums(&c, "shop");
    // Today's damage, after the backup.
    c.sql("shop", "DELETE FROM shop.orders WHERE id % 2 = 0");
    let today = table_checksums(&c, "shop");
    assert_ne!(before, today);
    let file = tmp.path().join("yesterday.sql");
    let out = recover(
        tmp.path(),
        ID,
        SECRET,
        &[
            "--database",
            "shop",
            "--into",
            "shop_yesterday",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = std::fs::read_to_string(&file).unwrap();
    for line in sql.lines().filter(|l| l.starts_with("\\connect")) {
        assert_eq!(line, "\\connect shop_yesterday");
    }
    psql_file(&c, "postgres", &file);
    assert_eq!(table_checksums(&c, "shop_yesterday"), before);
    assert_eq!(table_checksums(&c, "shop"), today);
    assert_eq!(
        c.sql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop_yesterday'"
        ),
        "postgres"
    );
}

#[test]
fn data_only_copies_rows_back_into_a_table_that_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = shop(tmp.path()) else { return };
    let before = c.sql(
        "shop",
        "SELECT count(*) || ' ' || md5(string_agg(o::text, '|' ORDER BY id)) FROM shop.orders o",
    );
    c.sql("shop", "TRUNCATE shop.orders");
    let file = tmp.path().join("rows.sql");
    let out = recover(
        tmp.path(),
        ID,
        SECRET,
        &[
            "--database",
            "shop",
            "--table",
            "shop.orders",
            "--data-only",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(!sql.contains("CREATE "), "{sql}");
    psql_file(&c, "shop", &file);
    assert_eq!(
        c.sql("shop", "SELECT count(*) || ' ' || md5(string_agg(o::text, '|' ORDER BY id)) FROM shop.orders o"),
        before
    );
}

#[test]
fn a_pick_that_matches_nothing_fails_naming_the_closest_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_c) = shop(tmp.path()) else { return };
    let file = tmp.path().join("none.sql");
    let out = recover(
        tmp.path(),
        ID,
        SECRET,
        &[
            "--database",
            "shop",
            "--table",
            "shop.order",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "--table shop.order matches no table in database shop: did you mean shop.orders?"
        ),
        "{err}"
    );
    assert!(!file.exists());
    assert!(!a9s_recover::sink::partial_path(&file).exists());
    let out = recover(
        tmp.path(),
        ID,
        SECRET,
        &["--database", "Shop", "-o", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean shop?"),
        "{}",
        stderr(&out)
    );
    let out = recover(
        tmp.path(),
        ID,
        SECRET,
        &["--into", "x", "--database", "a", "--database", "b"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at most one --database"),
        "{}",
        stderr(&out)
    );
}
