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

/// `pg_restore ARGS -d db archive`, which must succeed: the reference for a pick.
fn pg_restore_into(c: &Cluster, db: &str, archive: &Path, args: &[&str]) {
    let out = std::process::Command::new(c.bin.join("pg_restore"))
        .args(args)
        .args(["-d", &c.dsn(db)])
        .arg(archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore: {}", stderr(&out));
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

/// `count md5` of one table's rows.
fn rows_of(c: &Cluster, db: &str, table: &str) -> String {
    c.sql(
        db,
        &format!("SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') FROM {table} x"),
    )
}

fn restore_pick(dir: &Path, c: &Cluster, db: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = crate::support::restore_to(dir, &c.dsn(db));
    cmd.args(extra);
    cmd.output().unwrap()
}

#[test]
fn restore_of_a_schema_into_a_new_database_beside_the_live_one_at_jobs_1_and_2() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = shop(tmp.path()) else { return };
    let before: Vec<String> = ["shop.orders", "shop.customers"]
        .iter()
        .map(|t| rows_of(&c, "shop", t))
        .collect();
    c.sql("shop", "DELETE FROM shop.orders WHERE id % 2 = 0");
    let today = table_checksums(&c, "shop");
    // The dry run says what is picked and where it goes, and changes nothing.
    let dry = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &[
            "--database",
            "shop",
            "--schema",
            "shop",
            "--into",
            "shop_yesterday",
            "--dry-run",
        ],
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = String::from_utf8_lossy(&dry.stdout).to_string() + &stderr(&dry);
    assert!(
        text.contains("only what is picked: database shop; schema shop")
            && text.contains("into the new database shop_yesterday"),
        "{text}"
    );
    assert_eq!(
        c.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'shop_yesterday'"
        ),
        "0"
    );
    for (i, jobs) in ["1", "2"].iter().enumerate() {
        let mut args = vec![
            "--database",
            "shop",
            "--schema",
            "shop",
            "--into",
            "shop_yesterday",
            "--jobs",
            jobs,
        ];
        if i > 0 {
            // The second time the database is there: refused, then dropped on purpose.
            let out = restore_pick(tmp.path(), &c, "postgres", &args);
            assert!(!out.status.success());
            assert!(
                stderr(&out).contains(
                    "--into shop_yesterday: the database exists on the target; nothing was changed"
                ),
                "{}",
                stderr(&out)
            );
            assert_eq!(rows_of(&c, "shop_yesterday", "shop.orders"), before[0]);
            args.push("--clean");
        }
        let out = restore_pick(tmp.path(), &c, "postgres", &args);
        let err = stderr(&out);
        assert!(out.status.success(), "--jobs {jobs}: {err}");
        assert!(err.contains("picked: "), "{err}");
        assert!(err.contains("row counts match the dump"), "{err}");
        assert_eq!(
            rows_of(&c, "shop_yesterday", "shop.orders"),
            before[0],
            "--jobs {jobs}"
        );
        assert_eq!(rows_of(&c, "shop_yesterday", "shop.customers"), before[1]);
        // Only the schema picked came: no public."Order Items", no other database.
        assert_eq!(
            c.sql(
                "shop_yesterday",
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ),
            "0"
        );
        assert_eq!(
            table_checksums(&c, "shop"),
            today,
            "the live database is untouched"
        );
    }
}

#[test]
fn restore_refuses_a_table_that_is_live_and_data_only_adds_its_rows_back() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = shop(tmp.path()) else { return };
    let before = rows_of(&c, "shop", "shop.orders");
    let live = table_checksums(&c, "shop");
    // Restored into the live database, CREATE TABLE would fail and the rows be added twice.
    let out = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &["--database", "shop", "--table", "shop.orders"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("shop.orders is already in database shop on the target; nothing was changed"),
        "{err}"
    );
    assert_eq!(table_checksums(&c, "shop"), live);
    // A pg_dumpall's tables need their database named.
    let out = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &["--table", "shop.orders", "--into", "x"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("name the one database they come from with --database NAME"),
        "{}",
        stderr(&out)
    );
    // --data-only into a table that is not there.
    let out = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &["--database", "shop", "--table", "shop.nope", "--data-only"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("shop.nope does not exist in database shop"),
        "{}",
        stderr(&out)
    );
    // A typo with --into, on one connection (no first read): the error, and no new database
    // left behind.
    let out = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &[
            "--database",
            "shop",
            "--table",
            "shop.order",
            "--into",
            "typo",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean shop.orders?"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        c.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'typo'"
        ),
        "0"
    );
    // The usual way rows come back: into the table emptied by mistake.
    c.sql("shop", "TRUNCATE shop.orders");
    let out = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &[
            "--database",
            "shop",
            "--table",
            "shop.orders",
            "--data-only",
            "--jobs",
            "2",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("every COPY was taken whole, 300 row(s) added"),
        "{err}"
    );
    assert_eq!(rows_of(&c, "shop", "shop.orders"), before);
}

#[test]
fn a_custom_archive_pick_matches_pg_restore_and_a_journal_of_one_pick_does_not_resume_another() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = Cluster::start() else { return };
    c.sql("postgres", "CREATE DATABASE shop");
    c.sql("shop", &fixture());
    let archive = c.tool("pg_dump", &["-Fc", "-d", &c.dsn("shop")]);
    let out = pack(tmp.path(), ID, &archive, &["--part-size", "5000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let journal = tmp.path().join("journal");
    let out = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &[
            "--table",
            "public.\"Order Items\"",
            "--into",
            "items_back",
            "--jobs",
            "2",
            "--journal",
            journal.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("row counts match the dump"), "{err}");
    // pg_restore -t of the same archive, into a database of its own.
    c.sql("postgres", "CREATE DATABASE by_pg_restore");
    let file = tmp.path().join("archive.dump");
    std::fs::write(&file, &archive).unwrap();
    pg_restore_into(&c, "by_pg_restore", &file, &["-t", "Order Items"]);
    assert_eq!(
        table_checksums(&c, "items_back"),
        table_checksums(&c, "by_pg_restore")
    );
    assert_eq!(
        rows_of(&c, "items_back", "public.\"Order Items\""),
        rows_of(&c, "shop", "public.\"Order Items\"")
    );
    // A schema, against pg_restore -n of the same archive (which does not make the schema).
    let out = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &["--schema", "shop", "--into", "shop_n"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    c.sql("postgres", "CREATE DATABASE by_pg_restore_n");
    c.sql(
        "by_pg_restore_n",
        "CREATE SCHEMA shop AUTHORIZATION shop_owner",
    );
    pg_restore_into(&c, "by_pg_restore_n", &file, &["-n", "shop"]);
    assert_eq!(
        table_checksums(&c, "shop_n"),
        table_checksums(&c, "by_pg_restore_n")
    );
    let defs = "SELECT string_agg(indexdef, ';' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'shop'";
    assert_eq!(c.sql("shop_n", defs), c.sql("by_pg_restore_n", defs));
    // The journal is of that pick: another one is not its resume.
    let out = restore_pick(
        tmp.path(),
        &c,
        "postgres",
        &[
            "--table",
            "public.empty_table",
            "--into",
            "items_back",
            "--journal",
            journal.to_str().unwrap(),
            "--resume",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("journal"), "{}", stderr(&out));
}

#[test]
fn the_plain_form_picks_out_of_a_custom_archive_as_pg_restore_would() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = Cluster::start() else { return };
    c.sql("postgres", "CREATE DATABASE shop");
    c.sql("shop", &fixture());
    let archive = c.tool("pg_dump", &["-Fc", "-d", &c.dsn("shop")]);
    let out = pack(tmp.path(), ID, &archive, &["--part-size", "5000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plain = |extra: &[&str], file: &Path| {
        let mut cmd = crate::support::bin();
        cmd.args(["--bucket"])
            .arg(tmp.path())
            .args(["--backup-id", ID])
            .args(extra)
            .arg("-o")
            .arg(file)
            .env("A9S_SECRET", SECRET);
        cmd.output().unwrap()
    };
    // One table, loaded with psql -f into an empty database, against pg_restore -t.
    let file = tmp.path().join("items.sql");
    let out = plain(&["--table", "public.\"Order Items\""], &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(!sql.starts_with("PGDMP"), "{sql}");
    assert!(!sql.contains("customers"), "{sql}");
    c.sql("postgres", "CREATE DATABASE empty");
    psql_file(&c, "empty", &file);
    c.sql("postgres", "CREATE DATABASE by_pg_restore");
    let dump = tmp.path().join("archive.dump");
    std::fs::write(&dump, &archive).unwrap();
    pg_restore_into(&c, "by_pg_restore", &dump, &["-t", "Order Items"]);
    assert_eq!(
        table_checksums(&c, "empty"),
        table_checksums(&c, "by_pg_restore")
    );
    // The database whole, under a new name: a dump that creates it, as pg_dump --create's.
    let file = tmp.path().join("shop.sql");
    let out = plain(&["--database", "shop", "--into", "shop_copy"], &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(sql.contains("CREATE DATABASE \"shop_copy\""), "{sql}");
    psql_file(&c, "postgres", &file);
    assert_eq!(
        table_checksums(&c, "shop_copy"),
        table_checksums(&c, "shop")
    );
    // A pick that matches nothing in the archive: an error, and no file.
    let file = tmp.path().join("none.sql");
    let out = plain(&["--table", "public.empty_tabel"], &file);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean public.empty_table?"),
        "{}",
        stderr(&out)
    );
    assert!(!file.exists());
    // A --pg-bin without pg_restore is said before anything is read.
    let out = plain(&["--table", "public.x", "--pg-bin", "/nonexistent"], &file);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pg_restore"), "{}", stderr(&out));
}

#[test]
fn drill_of_one_table_passes_on_a_throwaway_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_c) = shop(tmp.path()) else { return };
    let drill = |extra: &[&str]| {
        crate::support::bin()
            .args(["drill", "--bucket"])
            .arg(tmp.path())
            .args(["--backup-id", ID, "--database", "shop"])
            .args(extra)
            .env("A9S_SECRET", SECRET)
            .output()
            .unwrap()
    };
    let out = drill(&["--table", "public.events", "--jobs", "2"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("2 table(s): row counts match the dump"),
        "{err}"
    );
    assert!(err.contains("drill passed"), "{err}");
    assert!(err.contains("restored what was picked ("), "{err}");
    // A table in a schema of its own, owned by a role of the dump: the throwaway cluster
    // gets the schema and the dump's roles (no live role to set back): the one SQL error is
    // the dump's CREATE ROLE of the cluster's own superuser, as in a drill of the whole.
    let out = drill(&["--table", "shop.customers"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("1 table(s): row counts match the dump"),
        "{err}"
    );
    assert!(err.contains("1 SQL error(s)"), "{err}");
    assert!(err.contains("role \"postgres\" already exists"), "{err}");
}

#[test]
fn verify_lists_each_databases_schemas_and_tables_with_their_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_c) = shop(tmp.path()) else { return };
    let mut cmd = crate::support::bin();
    cmd.args(["verify", "--bucket"])
        .arg(tmp.path())
        .args(["--backup-id", ID])
        .env("A9S_SECRET", SECRET);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  database shop: "), "{text}");
    assert!(
        text.contains("    schema shop: 2 table(s), 420 rows, "),
        "{text}"
    );
    assert!(text.contains("public.\"Order Items\""), "{text}");
    let mut cmd = crate::support::bin();
    cmd.args(["verify", "--json", "--bucket"])
        .arg(tmp.path())
        .args(["--backup-id", ID])
        .env("A9S_SECRET", SECRET);
    let out = cmd.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let orders = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "shop.orders")
        .unwrap();
    assert_eq!(orders["rows"], 300);
    assert!(orders["bytes"].as_u64().unwrap() > 300 * 20, "{orders}");
}

/// A hostile last database: a pick of its dotted, quoted, unicode and uppercase names,
/// restored beside it, equals its source; the plain form's output loads with psql.
#[test]
fn a_pick_of_odd_names_in_the_last_database_of_a_pg_dumpall() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(c) = Cluster::start() else { return };
    let db = "zz Zoë \"Q\"";
    c.sql("postgres", "CREATE DATABASE shop");
    c.sql("shop", &fixture());
    c.sql("postgres", "CREATE DATABASE \"zz Zoë \"\"Q\"\"\"");
    c.sql(
        db,
        "CREATE SCHEMA \"Odd.Schema\";
         CREATE TABLE \"Odd.Schema\".\"Mixed Case\" (id serial PRIMARY KEY, \"Ünï\" text);
         INSERT INTO \"Odd.Schema\".\"Mixed Case\" (\"Ünï\") SELECT 'row ' || g FROM generate_series(1, 50) g;
         CREATE INDEX \"mixed.idx\" ON \"Odd.Schema\".\"Mixed Case\" (\"Ünï\");
         CREATE TABLE public.\"UPPER\" (x int);
         INSERT INTO public.\"UPPER\" SELECT generate_series(1, 7);
         CREATE TABLE public.upper (y int);
         INSERT INTO public.upper VALUES (1);
         CREATE TABLE public.parent (id int);
         CREATE TABLE public.child (extra text) INHERITS (public.parent);
         INSERT INTO public.parent VALUES (1), (2);
         INSERT INTO public.child VALUES (3, 'x');",
    );
    let dump = c.tool("pg_dumpall", &[]);
    let out = pack(tmp.path(), ID, &dump, &["--part-size", "9000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let picks = [
        "--database",
        db,
        "--table",
        "\"Odd.Schema\".\"Mixed Case\"",
        "--table",
        "\"UPPER\"",
        "--table",
        "public.parent",
    ];
    let mut args: Vec<&str> = picks.to_vec();
    args.extend(["--into", "odd_back", "--jobs", "2"]);
    let out = restore_pick(tmp.path(), &c, "postgres", &args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("3 table(s): row counts match the dump"),
        "{err}"
    );
    for t in [
        "\"Odd.Schema\".\"Mixed Case\"",
        "public.\"UPPER\"",
        "ONLY public.parent",
    ] {
        assert_eq!(rows_of(&c, "odd_back", t), rows_of(&c, db, t), "{t}");
    }
    // An inheritance parent comes without its children, as pg_dump -t brings it.
    assert_eq!(
        c.sql(
            "odd_back",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'child'"
        ),
        "0"
    );
    // "UPPER" is not upper: the lower-case table stayed behind.
    assert_eq!(
        c.sql(
            "odd_back",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'upper'"
        ),
        "0"
    );
    assert_eq!(
        c.sql(
            "odd_back",
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'mixed.idx'"
        ),
        "1"
    );
    // The plain form, loaded into an empty database that has the schema.
    let file = tmp.path().join("odd.sql");
    let mut args: Vec<&str> = picks.to_vec();
    args.extend(["-o", file.to_str().unwrap()]);
    let out = recover(tmp.path(), ID, SECRET, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    c.sql("postgres", "CREATE DATABASE odd_plain");
    c.sql("odd_plain", "CREATE SCHEMA \"Odd.Schema\"");
    psql_file(&c, "odd_plain", &file);
    assert_eq!(
        table_checksums(&c, "odd_plain"),
        table_checksums(&c, "odd_back")
    );
}
