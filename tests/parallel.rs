//! `restore --jobs N` on plain dumps (issue 12): an equivalence corpus of real pg_dumpall and
//! pg_dump outputs, restored over 1 to 4 connections and compared with `psql -f` of the same
//! dump into another fresh cluster (the schema as pg_dump prints it, every table's rows,
//! sequences, large objects), in one read and in two (issue 20); custom archives through
//! pg_restore --file=- into the same loader, compared with pg_restore; and the faults, for
//! plain dumps and custom archives: an SQL error in a data chunk, Ctrl-C and SIGTERM in the
//! data and in the index phase, a connection refused, a corrupt stream, a backup rewritten
//! between the two reads.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::pg::*;
use crate::support::*;

/// Everything the issue lists, in three databases with odd names. `shop` is large enough for
/// its big tables to be cut into several COPY chunks.
pub(crate) const SHOP: &str = r#"
CREATE EXTENSION hstore; CREATE EXTENSION citext; CREATE EXTENSION pg_trgm;
CREATE ROLE corpus_reader;
CREATE SCHEMA sales; CREATE SCHEMA "Odd.Schema ü";
CREATE TABLE public.customers (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name citext NOT NULL UNIQUE,
  attrs hstore, doubled int GENERATED ALWAYS AS (id * 2) STORED, referrer int REFERENCES public.customers(id));
INSERT INTO public.customers (name, attrs, referrer)
  SELECT 'c' || g, hstore('k', g::text), NULLIF(g - 1, 0) FROM generate_series(1, 3000) g;
CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers(id),
  note text, payload bytea);
INSERT INTO sales.orders (customer_id, note, payload)
  SELECT 1 + g % 3000, repeat('x', 40) || E'\t\\ ü\n' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 120000) g;
CREATE TABLE sales.items (order_id bigint REFERENCES sales.orders(id), line int, qty int CHECK (qty >= 0),
  PRIMARY KEY (order_id, line));
INSERT INTO sales.items SELECT 1 + g % 120000, g, g % 9 FROM generate_series(1, 150000) g;
CREATE INDEX items_qty ON sales.items (qty);
CREATE INDEX orders_note_trgm ON sales.orders USING gin (note gin_trgm_ops);
CREATE TABLE "Odd.Schema ü"."Tab.le ✓" ("Key" text PRIMARY KEY, "select" int, v jsonb);
INSERT INTO "Odd.Schema ü"."Tab.le ✓" SELECT 'k' || g, g, jsonb_build_object('g', g) FROM generate_series(1, 500) g;
CREATE TABLE "Odd.Schema ü"."References" (id int PRIMARY KEY, k text REFERENCES "Odd.Schema ü"."Tab.le ✓"("Key"),
  o bigint REFERENCES sales.orders(id));
INSERT INTO "Odd.Schema ü"."References" SELECT g, 'k' || g, g FROM generate_series(1, 400) g;
CREATE TABLE public."order" (id int, "user" text, "UPPER" text);
INSERT INTO public."order" VALUES (1, 'select', 'X'), (2, NULL, E'\\.');
CREATE TABLE public.nothing ();
INSERT INTO public.nothing DEFAULT VALUES; INSERT INTO public.nothing DEFAULT VALUES;
CREATE UNLOGGED TABLE public.scratch (a int);
INSERT INTO public.scratch SELECT generate_series(1, 100);
CREATE TABLE public.animals (id int, name text);
CREATE TABLE public.dogs (bark text) INHERITS (public.animals);
INSERT INTO public.animals VALUES (1, 'cat'); INSERT INTO public.dogs VALUES (2, 'rex', 'woof');
CREATE TABLE public.events (id int, kind text, at date, PRIMARY KEY (id, at, kind)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
  PARTITION BY LIST (kind);
CREATE TABLE public.events_2024_a PARTITION OF public.events_2024 FOR VALUES IN ('a');
CREATE TABLE public.events_2024_other PARTITION OF public.events_2024 DEFAULT;
CREATE TABLE public.events_default PARTITION OF public.events DEFAULT;
INSERT INTO public.events SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, date '2023-06-01' + g % 700
  FROM generate_series(1, 5000) g;
CREATE INDEX events_kind ON public.events (kind);
CREATE TABLE public.event_refs (id int PRIMARY KEY, event_id int, event_at date, event_kind text,
  FOREIGN KEY (event_id, event_at, event_kind) REFERENCES public.events);
INSERT INTO public.event_refs SELECT g, g, date '2023-06-01' + g % 700, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END
  FROM generate_series(1, 100) g;
CREATE MATERIALIZED VIEW sales.per_customer AS SELECT customer_id, count(*) AS n FROM sales.orders GROUP BY 1;
CREATE UNIQUE INDEX per_customer_id ON sales.per_customer (customer_id);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := NEW.note || ';'; RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION public.touch();
ALTER TABLE sales.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY positive ON sales.orders USING (customer_id > 0);
CREATE SEQUENCE public.invoice_no START 1000;
SELECT setval('public.invoice_no', 4242);
SELECT lo_from_bytea(0, decode(repeat('ab', 100000), 'hex'));
SELECT lo_from_bytea(0, 'small');
COMMENT ON INDEX sales.items_qty IS 'qty index';
COMMENT ON TABLE sales.orders IS 'orders; with a semicolon';
GRANT SELECT ON sales.orders TO corpus_reader;
"#;

pub(crate) const ODD: &str = r#"
CREATE TABLE public.tree (id int PRIMARY KEY, parent int REFERENCES public.tree(id), body bytea, "Ünï" text);
INSERT INTO public.tree SELECT g, NULLIF(g / 2, 0), decode(repeat(to_hex(g % 16), 8), 'hex'), E'line\nbreak ' || g
  FROM generate_series(1, 2000) g;
CREATE TABLE public."select" ("from" int);
INSERT INTO public."select" VALUES (1), (NULL);
CREATE INDEX tree_parent ON public.tree (parent);
"#;

pub(crate) const KEYWORD: &str = r#"
CREATE TABLE public.t (a int PRIMARY KEY);
INSERT INTO public.t SELECT generate_series(1, 10);
"#;

pub(crate) const ODD_DB: &str = "Odd DB ü \"q\"";

fn source() -> Option<Cluster> {
    let c = Cluster::start()?;
    c.sql("postgres", "CREATE DATABASE shop");
    c.sql("shop", SHOP);
    c.sql("postgres", "CREATE DATABASE \"Odd DB ü \"\"q\"\"\"");
    c.sql(ODD_DB, ODD);
    c.sql("postgres", "CREATE DATABASE \"select\"");
    c.sql("select", KEYWORD);
    Some(c)
}

/// What must be the same after two restores of one dump: per database, the schema as
/// pg_dump prints it, every table's rows (order aside), every sequence, every large object.
pub(crate) fn fingerprint(c: &Cluster, db: &str) -> String {
    let schema: String = String::from_utf8(c.tool("pg_dump", &["--schema-only", "-d", &c.dsn(db)]))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n");
    let rels = c.sql(
        db,
        "SELECT c.relkind::text || ' ' || c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
    );
    let mut out = vec![schema];
    for line in rels.lines() {
        let (kind, rel) = line.split_once(' ').unwrap();
        let q = if kind == "S" {
            format!("SELECT last_value || ' ' || is_called FROM {rel}")
        } else {
            format!(
                "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') FROM ONLY {rel} x"
            )
        };
        out.push(format!("{rel}: {}", c.sql(db, &q)));
    }
    out.push(format!(
        "large objects: {}",
        c.sql(
            db,
            "SELECT coalesce(string_agg(oid || ':' || md5(lo_get(oid)), ',' ORDER BY oid), '-') FROM pg_largeobject_metadata"
        )
    ));
    out.join("\n")
}

/// Fails naming the first lines where `got` (ours) differs from `want` (the reference).
pub(crate) fn same_fingerprint(what: &str, db: &str, want: &str, got: &str) {
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("reference: {a}\n     ours: {b}"))
            .collect();
        panic!("{what}: database {db} differs:\n{}", diff.join("\n"));
    }
}

/// A fresh cluster with `db` created when the dump is of one database.
fn target(db: Option<&str>) -> Option<Cluster> {
    let c = Cluster::start()?;
    if let Some(db) = db {
        c.sql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", db.replace('"', "\"\"")),
        );
    }
    Some(c)
}

/// `psql -X -q -f dump` as the manual does it.
pub(crate) fn psql_f(c: &Cluster, dump: &Path, db: &str) {
    psql_f_via(&c.program("psql"), c, dump, db)
}

/// The same with the psql given (another version's).
pub(crate) fn psql_f_via(psql: &Path, c: &Cluster, dump: &Path, db: &str) {
    let out = Command::new(psql)
        .args(["-X", "-q", "-d", &c.dsn(db), "-f"])
        .arg(dump)
        .stdout(Stdio::null())
        .run();
    assert!(out.status.success(), "psql -f: {}", stderr(&out));
}

fn restore(bucket: &Path, c: &Cluster, db: &str, extra: &[&str]) -> Output {
    bin()
        .args(["restore", "--bucket"])
        .arg(bucket)
        .args(["--backup-id", ID, "--target", &c.dsn(db), "--yes"])
        .args(extra)
        .env("A9S_SECRET", SECRET)
        .run()
}

pub(crate) fn backup_of(data: &[u8]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = pack(tmp.path(), ID, data, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    tmp
}

/// Restores `dump` with psql -f and with each of `jobs`, and compares the databases.
fn equivalent(name: &str, dump: &[u8], single_db: Option<&str>, dbs: &[&str], jobs: &[u32]) {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("dump.sql");
    std::fs::write(&file, dump).unwrap();
    let connect_db = single_db.unwrap_or("postgres");
    let Some(reference) = target(single_db) else {
        return;
    };
    psql_f(&reference, &file, connect_db);
    let expected: Vec<String> = dbs.iter().map(|db| fingerprint(&reference, db)).collect();
    drop(reference);
    let bucket = backup_of(dump);
    compare_restores(name, bucket.path(), single_db, dbs, &expected, jobs);
}

/// Restores the backup in `bucket` at each of `jobs` (and at 2 with --single-pass too) into
/// fresh clusters, and compares each database with `expected`.
fn compare_restores(
    name: &str,
    bucket: &Path,
    single_db: Option<&str>,
    dbs: &[&str],
    expected: &[String],
    jobs: &[u32],
) {
    let connect_db = single_db.unwrap_or("postgres");
    let runs = jobs
        .iter()
        .map(|&j| (j, false))
        .chain(jobs.contains(&2).then_some((2, true)));
    for (j, single) in runs {
        let Some(c) = target(single_db) else { return };
        let mut args = vec!["--jobs".to_string(), j.to_string()];
        if single {
            args.push("--single-pass".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = restore(bucket, &c, connect_db, &args);
        let name = if single {
            format!("{name} (--single-pass)")
        } else {
            name.to_string()
        };
        assert!(out.status.success(), "{name} --jobs {j}: {}", stderr(&out));
        if j > 1 {
            assert!(
                stderr(&out).contains(&format!("over {j} connections")),
                "{name} --jobs {j}: {}",
                stderr(&out)
            );
            // Two reads unless --single-pass, and then each table's indexes during the data.
            assert_eq!(
                stderr(&out).contains("a first read of"),
                !single,
                "{name} --jobs {j}: {}",
                stderr(&out)
            );
            assert!(
                !stderr(&out).contains("ran on one connection"),
                "{}",
                stderr(&out)
            );
        }
        for (db, want) in dbs.iter().zip(expected) {
            same_fingerprint(
                &format!("{name} --jobs {j}"),
                db,
                want,
                &fingerprint(&c, db),
            );
        }
    }
}

#[test]
fn pg_dumpall_over_one_to_four_connections_equals_psql_f() {
    let Some(src) = source() else { return };
    let dump = src.tool("pg_dumpall", &[]);
    drop(src);
    equivalent(
        "pg_dumpall",
        &dump,
        None,
        &["shop", ODD_DB, "select"],
        &[1, 2, 3, 4],
    );
}

#[test]
fn pg_dump_plain_inserts_and_partition_root_equal_psql_f() {
    let Some(src) = source() else { return };
    let plain = src.tool("pg_dump", &["-Fp", "-d", &src.dsn("shop")]);
    let root = src.tool(
        "pg_dump",
        &["-Fp", "--load-via-partition-root", "-d", &src.dsn("shop")],
    );
    let inserts = src.tool("pg_dump", &["-Fp", "--inserts", "-d", &src.dsn(ODD_DB)]);
    let created = src.tool("pg_dump", &["-Fp", "--create", "-d", &src.dsn(ODD_DB)]);
    // The role the grants name, as pg_dumpall would have made it.
    drop(src);
    let with_role = |d: &[u8]| [b"CREATE ROLE corpus_reader;\n".as_slice(), d].concat();
    equivalent(
        "pg_dump -Fp",
        &with_role(&plain),
        Some("shop"),
        &["shop"],
        &[2, 3],
    );
    equivalent(
        "pg_dump --load-via-partition-root",
        &with_role(&root),
        Some("shop"),
        &["shop"],
        &[4],
    );
    equivalent("pg_dump --inserts", &inserts, Some(ODD_DB), &[ODD_DB], &[2]);
    equivalent("pg_dump --create", &created, None, &[ODD_DB], &[3]);
}

/// A dump that passed through Windows (`sed 's/$/\r/'`): psql takes `\.` CR LF as the end
/// of COPY data, and the server wants each COPY's end marker in its rows' newline style. The
/// restore at every N equals psql -f's, and the row counts (the default plan verifies) find
/// every table with its exact rows (issue 18).
#[test]
fn a_dump_with_crlf_line_ends_equals_psql_f_at_every_n() {
    let Some(src) = source() else { return };
    let dumpall = src.tool("pg_dumpall", &[]);
    drop(src);
    let crlf = |d: &[u8]| {
        let mut out = Vec::with_capacity(d.len() + d.len() / 20);
        for &b in d {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        out
    };
    let dump = crlf(&dumpall);
    equivalent(
        "pg_dumpall with CR LF",
        &dump,
        None,
        &["shop", ODD_DB, "select"],
        &[1, 2, 4],
    );
    // The verification counts every table, the odd names among them, exactly.
    let bucket = backup_of(&dump);
    let Some(c) = target(None) else { return };
    // The dry run says which applies.
    for (flags, says) in [
        (&["--jobs", "2"][..], "read twice"),
        (
            &["--jobs", "2", "--single-pass"][..],
            "read once (--single-pass)",
        ),
    ] {
        let mut args = vec!["--dry-run"];
        args.extend_from_slice(flags);
        let out = restore(bucket.path(), &c, "postgres", &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
        assert!(text.contains(says), "{flags:?}: {text}");
    }
    let out = restore(bucket.path(), &c, "postgres", &["--jobs", "2", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = r["verification"].as_array().unwrap();
    let rows = |t: &str| {
        checks
            .iter()
            .find(|c| c["table"] == t)
            .map(|c| (c["dump_rows"].as_u64().unwrap(), c["status"].clone()))
    };
    assert_eq!(rows("sales.orders"), Some((120_000, "ok".into())));
    assert_eq!(rows("public.\"order\""), Some((2, "ok".into())));
    assert_eq!(rows("public.\"select\""), Some((2, "ok".into())));
    assert!(
        checks.iter().all(|c| c["status"] == "ok"),
        "{}",
        r["verification"]
    );
    // The indexes, keys and foreign keys went through the schedule, and --json counts them.
    let phases = &r["stream"]["restore"]["phases"];
    assert!(phases["parallel_items"].as_u64().unwrap() >= 10, "{phases}");
}

/// A dump whose data phase and index phase take long enough to be interrupted: a CHECK that
/// sleeps per row, and an index on an expression that sleeps per row.
fn slow_dump(src: &Cluster, format: &str) -> Vec<u8> {
    src.sql("postgres", "CREATE DATABASE slow");
    src.sql(
        "slow",
        // It naps only where `nap.off` is not set: in the restore, not here.
        "SET nap.off = 'yes'; \
         CREATE FUNCTION nap(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN \
           IF current_setting('nap.off', true) IS NULL OR current_setting('nap.off', true) = '' THEN PERFORM pg_sleep(0.002); END IF; \
           RETURN $1; END $$; \
         CREATE TABLE a (x int CHECK (nap(x) = x)); CREATE TABLE b (x int CHECK (nap(x) = x)); \
         INSERT INTO a SELECT generate_series(1, 3000); INSERT INTO b SELECT generate_series(1, 3000); \
         CREATE INDEX a_nap ON a (nap(x)); CREATE INDEX b_nap ON b (nap(x));",
    );
    src.tool("pg_dump", &[format, "-d", &src.dsn("slow")])
}

/// The restore's own connections to the target, by what they run.
fn restore_backends(c: &Cluster) -> String {
    c.sql(
        "postgres",
        "SELECT coalesce(string_agg(left(query, 40), ' | '), '') FROM pg_stat_activity \
         WHERE application_name = 'psql' AND pid <> pg_backend_pid() AND state <> 'idle'",
    )
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// No connection of ours is left on the target, and no psql of ours is left running.
fn nothing_left(c: &Cluster) {
    wait_for(
        "the restore's connections to end",
        Duration::from_secs(10),
        || {
            c.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'psql' AND pid <> pg_backend_pid()",
        ) == "0"
        },
    );
}

#[test]
fn ctrl_c_and_sigterm_in_the_data_and_index_phases_stop_every_connection() {
    // A plain dump, and a custom archive (pg_restore --file=- in front of the loader).
    for format in ["-Fp", "-Fc"] {
        let Some(src) = source_slow() else { return };
        let dump = slow_dump(&src, format);
        drop(src);
        interrupted_in_each_phase(&dump);
    }
}

fn interrupted_in_each_phase(dump: &[u8]) {
    let bucket = backup_of(dump);
    for (signal, phase, marker) in [("INT", "data", "COPY"), ("TERM", "index", "CREATE INDEX")] {
        let Some(c) = target(Some("slow")) else {
            return;
        };
        let journal = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        std::fs::remove_file(&journal).unwrap();
        let child = bin()
            .args(["restore", "--bucket"])
            .arg(bucket.path())
            .args([
                "--backup-id",
                ID,
                "--target",
                &c.dsn("slow"),
                "--yes",
                "--jobs",
                "2",
            ])
            .arg("--journal")
            .arg(&journal)
            .env("A9S_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(
            &format!("the {phase} phase"),
            Duration::from_secs(60),
            || restore_backends(&c).contains(marker),
        );
        send_signal(&format!("-{signal}"), child.id());
        let t0 = Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "SIG{signal} took {:?}",
            t0.elapsed()
        );
        assert!(!out.status.success(), "SIG{signal} in the {phase} phase");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("interrupted"), "SIG{signal}: {err}");
        nothing_left(&c);
        let j = std::fs::read_to_string(&journal).unwrap();
        assert!(
            j.contains("\"fail\""),
            "the journal records the stream's end: {j}"
        );
    }
}

fn source_slow() -> Option<Cluster> {
    Cluster::start()
}

#[test]
fn an_sql_error_in_a_data_chunk_with_on_error_stop_stops_every_connection() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE TABLE big (id int PRIMARY KEY, v text); \
         INSERT INTO big SELECT g, repeat('v', 100) FROM generate_series(1, 200000) g;",
    );
    // One bad row in the middle of the table's data: it falls in a later chunk. In an
    // uncompressed custom archive (-Z0) each row is a block of its own, as in SQL after its
    // length; the same length keeps that right. (No id up to 200000 ends in 150000.)
    let plain = src.tool("pg_dump", &["-Fp", "-d", &src.dsn("shop")]);
    let custom = src.tool("pg_dump", &["-Fc", "-Z0", "-d", &src.dsn("shop")]);
    drop(src);
    for dump in [plain, custom] {
        let bad = replace_once(&dump, b"150000\tv", b"x50000\tv");
        an_sql_error_stops(&bad);
    }
}

fn replace_once(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = data
        .windows(from.len())
        .position(|w| w == from)
        .expect("the row is there");
    let mut out = data.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

fn an_sql_error_stops(bad: &[u8]) {
    let bucket = backup_of(bad);
    let Some(c) = target(Some("shop")) else {
        return;
    };
    let journal = tempfile::tempdir().unwrap();
    let jpath = journal.path().join("journal");
    let out = restore(
        bucket.path(),
        &c,
        "shop",
        &[
            "--jobs",
            "3",
            "--on-error-stop",
            "--journal",
            jpath.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("invalid input syntax for type integer"),
        "{err}"
    );
    assert!(err.contains("every connection was stopped"), "{err}");
    assert!(err.contains("of 3"), "{err}");
    nothing_left(&c);
    let j = std::fs::read_to_string(&jpath).unwrap();
    assert!(j.contains("\"fail\"") && j.contains("restore"), "{j}");
    // No index was built: the post-data never started.
    assert_eq!(
        c.sql(
            "shop",
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'big'"
        ),
        "0"
    );
    // Without --on-error-stop the error is counted and the rest goes on.
    let Some(c2) = target(Some("shop")) else {
        return;
    };
    let out = restore(bucket.path(), &c2, "shop", &["--jobs", "3", "--no-verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 SQL error(s)"), "{}", stderr(&out));
    assert_eq!(
        c2.sql(
            "shop",
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'big'"
        ),
        "1"
    );
}

#[test]
fn a_connection_that_cannot_connect_fails_the_restore_and_stops_the_others() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT g, repeat('v', 100) FROM generate_series(1, 150000) g;",
    );
    let plain = src.tool("pg_dump", &["-Fp", "--no-owner", "-d", &src.dsn("shop")]);
    let custom = src.tool("pg_dump", &["-Fc", "--no-owner", "-d", &src.dsn("shop")]);
    drop(src);
    for dump in [plain, custom] {
        a_connection_refused(&dump);
    }
}

fn a_connection_refused(dump: &[u8]) {
    let bucket = backup_of(dump);
    let Some(c) = target(None) else { return };
    // A role allowed one connection: the second connection of --jobs 2 is refused.
    c.sql("postgres", "CREATE ROLE loader LOGIN CONNECTION LIMIT 1");
    c.sql("postgres", "CREATE DATABASE shop OWNER loader");
    let dsn = c.dsn("shop").replace("user=postgres", "user=loader");
    let out = bin()
        .args(["restore", "--bucket"])
        .arg(bucket.path())
        .args(["--backup-id", ID, "--target", &dsn, "--yes", "--jobs", "2"])
        .env("A9S_SECRET", SECRET)
        .run();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("too many connections"), "{err}");
    assert!(err.contains("connection 2 of 2"), "{err}");
    nothing_left(&c);
}

#[test]
fn a_corrupt_part_mid_stream_or_a_truncated_stream_stops_every_connection() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE TABLE big (id int PRIMARY KEY, v text); \
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 300000) g;",
    );
    let plain = src.tool("pg_dump", &["-Fp", "-d", &src.dsn("shop")]);
    let custom = src.tool("pg_dump", &["-Fc", "-d", &src.dsn("shop")]);
    drop(src);
    for dump in [plain, custom] {
        a_corrupt_part_stops(&dump);
    }
}

fn a_corrupt_part_stops(dump: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("dump.sql");
    std::fs::write(&file, dump).unwrap();
    let bucket = tmp.path().join("b");
    std::fs::create_dir(&bucket).unwrap();
    let parts = split_file_gz(&file, &bucket);
    // A byte in the middle of the second of four parts.
    let len = std::fs::metadata(&parts[1]).unwrap().len() as usize;
    flip_byte(&parts[1], len / 2);
    let Some(c) = target(Some("shop")) else {
        return;
    };
    let out = restore(&bucket, &c, "shop", &["--jobs", "2"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("part"), "{err}");
    assert!(!err.contains("restore: done"), "{err}");
    nothing_left(&c);
}

/// gzip | openssl enc | split into 4 parts with the real tools.
fn split_file_gz(file: &Path, dir: &Path) -> Vec<std::path::PathBuf> {
    sh(
        &format!(
            "cd '{}' && gzip -c '{}' | openssl enc -aes256 -md md5 -pass env:S > all.enc && \
             split -n 4 --numeric-suffixes=1 -a 1 all.enc '{ID}-' && rm all.enc",
            dir.display(),
            file.display()
        ),
        SECRET,
    );
    parts_in(dir, ID)
}

#[test]
fn drill_with_jobs_loads_over_n_connections_and_says_what_each_does_with_v() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE TABLE big (id int PRIMARY KEY, v text); \
         INSERT INTO big SELECT g, repeat('v', 100) FROM generate_series(1, 120000) g; \
         CREATE INDEX big_v ON big (v);",
    );
    let dump = src.tool("pg_dumpall", &[]);
    drop(src);
    let bucket = backup_of(&dump);
    let out = bin()
        .args(["drill", "--bucket"])
        .arg(bucket.path())
        .args(["--backup-id", ID, "--jobs", "2", "-v"])
        .env("A9S_SECRET", SECRET)
        .run();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("over 2 connections"), "{err}");
    assert!(err.contains("120000 rows"), "{err}");
    // -v: what each connection runs, and the phases as they end.
    assert!(err.contains("connection 2: COPY public.big"), "{err}");
    // Each chunk's line names its rows and bytes (not those of the COPY statement alone).
    assert!(!err.contains("(0 rows, "), "{err}");
    // Each database's schema-and-data line is said once.
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(": schema ") && l.contains(" chunks"))
        .filter_map(|l| l.split(": schema ").next())
        .collect();
    let mut unique = said.clone();
    unique.sort();
    unique.dedup();
    assert!(!said.is_empty() && unique.len() == said.len(), "{err}");
    assert!(
        err.contains("connection 1: CREATE") || err.contains("connection 2: CREATE"),
        "{err}"
    );
    assert!(err.contains("indexes and constraints"), "{err}");
    assert!(err.contains("data ") && err.contains("rows, "), "{err}");
    // --jobs 0 is a usage error.
    let out = bin()
        .args(["drill", "--bucket"])
        .arg(bucket.path())
        .args(["--backup-id", ID, "--jobs", "0"])
        .env("A9S_SECRET", SECRET)
        .run();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Hand-written SQL without pg_dump's headers, the target from the PG* variables: it loads
/// (on one connection, in order) and the report says that nothing ran in parallel.
#[test]
fn sql_without_pg_dump_headers_runs_in_order_and_says_so() {
    let sql = "CREATE TABLE hand (a int, b text);\nINSERT INTO hand VALUES (1, $$x;y$$);\n\
               COPY hand (a, b) FROM stdin;\n2\tz\n3\tw\n\\.\nCREATE INDEX ON hand (a);\n";
    let bucket = backup_of(sql.as_bytes());
    let Some(c) = target(Some("hand")) else {
        return;
    };
    let out = bin()
        .args(["restore", "--bucket"])
        .arg(bucket.path())
        .args(["--backup-id", ID, "--yes", "--jobs", "3"])
        .env("A9S_SECRET", SECRET)
        .env("PGHOST", c.socket_dir())
        .env("PGPORT", c.port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "hand")
        .run();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("nothing ran in parallel"), "{err}");
    assert!(err.contains("not one pg_dump or pg_dumpall wrote"), "{err}");
    assert_eq!(
        c.sql("hand", "SELECT string_agg(b, ',' ORDER BY a) FROM hand"),
        "x;y,z,w"
    );
}

/// A data-only dump with `--disable-triggers` into a schema that is already there: each
/// table's `DISABLE TRIGGER ALL` runs before its chunks and `ENABLE` after all of them.
#[test]
fn a_data_only_dump_with_disable_triggers_equals_psql_f() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE TABLE parent (id int PRIMARY KEY); \
         CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent(id), v text); \
         CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.v := 'trigger ran'; RETURN NEW; END $$; \
         INSERT INTO parent SELECT generate_series(1, 1000); \
         INSERT INTO child SELECT g, 1 + g % 1000, repeat('v', 60) FROM generate_series(1, 150000) g; \
         CREATE TRIGGER stamp BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION stamp();",
    );
    let schema = src.tool("pg_dump", &["--schema-only", "-d", &src.dsn("shop")]);
    let data = src.tool(
        "pg_dump",
        &["--data-only", "--disable-triggers", "-d", &src.dsn("shop")],
    );
    drop(src);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("schema.sql"), &schema).unwrap();
    std::fs::write(work.path().join("data.sql"), &data).unwrap();
    let Some(reference) = target(Some("shop")) else {
        return;
    };
    psql_f(&reference, &work.path().join("schema.sql"), "shop");
    psql_f(&reference, &work.path().join("data.sql"), "shop");
    let want = fingerprint(&reference, "shop");
    drop(reference);
    let bucket = backup_of(&data);
    let Some(c) = target(Some("shop")) else {
        return;
    };
    psql_f(&c, &work.path().join("schema.sql"), "shop");
    let out = restore(
        bucket.path(),
        &c,
        "shop",
        &["--jobs", "3", "--on-error-stop"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fingerprint(&c, "shop"), want);
    // The trigger did not fire and is enabled again.
    assert_eq!(
        c.sql("shop", "SELECT count(*) FROM child WHERE v = 'trigger ran'"),
        "0"
    );
    assert_eq!(
        c.sql(
            "shop",
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'stamp'"
        ),
        "O"
    );
}

/// What the scheduler does not recognise makes it fall back to one connection, in order:
/// a meta-command in the middle of the data, and a transaction left open across items.
#[test]
fn unknown_meta_commands_and_open_transactions_fall_back_to_one_connection() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, a int REFERENCES a(id)); \
         INSERT INTO a SELECT g, repeat('a', 50) FROM generate_series(1, 100000) g; \
         INSERT INTO b SELECT g, g FROM generate_series(1, 1000) g;",
    );
    let dump = String::from_utf8(src.tool("pg_dump", &["-Fp", "-d", &src.dsn("shop")])).unwrap();
    drop(src);
    // Inside `\restrict KEY` … `\unrestrict KEY` a meta-command is refused, as psql refuses it:
    // an SQL error, or the end of the restore with --on-error-stop.
    let restricted = dump.replacen(
        "\n--\n-- Data for Name: b;",
        "\n\\! touch /tmp/should-not-exist\n--\n-- Data for Name: b;",
        1,
    );
    let bucket = backup_of(restricted.as_bytes());
    let Some(c) = target(Some("shop")) else {
        return;
    };
    let out = restore(bucket.path(), &c, "shop", &["--jobs", "2"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("backslash commands are restricted"), "{err}");
    drop(c);
    let Some(c) = target(Some("shop")) else {
        return;
    };
    let out = restore(
        bucket.path(),
        &c,
        "shop",
        &["--jobs", "2", "--on-error-stop"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("backslash commands are restricted"),
        "{}",
        stderr(&out)
    );
    // Without `\restrict`, inside which psql (and we) refuse every other meta-command.
    let dump: String = dump
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .map(|l| format!("{l}\n"))
        .collect();
    let marker = "\n--\n-- Data for Name: b;";
    assert!(dump.contains(marker));
    for (what, inject) in [
        ("a meta-command", "\n\\set x 1\n"),
        ("an open transaction", "\nBEGIN;\n"),
    ] {
        let mut changed = dump.replacen(marker, &format!("{inject}{marker}"), 1);
        if what == "an open transaction" {
            changed = changed.replacen(
                "\n--\n-- PostgreSQL database dump complete",
                "\nCOMMIT;\n--\n-- PostgreSQL database dump complete",
                1,
            );
        }
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("dump.sql"), &changed).unwrap();
        let Some(reference) = target(Some("shop")) else {
            return;
        };
        psql_f(&reference, &work.path().join("dump.sql"), "shop");
        let want = fingerprint(&reference, "shop");
        drop(reference);
        let bucket = backup_of(changed.as_bytes());
        let Some(c) = target(Some("shop")) else {
            return;
        };
        let out = restore(bucket.path(), &c, "shop", &["--jobs", "2"]);
        let err = stderr(&out);
        assert!(out.status.success(), "{what}: {err}");
        assert!(
            err.contains("the rest ran on one connection"),
            "{what}: {err}"
        );
        assert_eq!(fingerprint(&c, "shop"), want, "{what}");
    }
}

/// A database whose `stock.embeddings` uses a type the target lacks (the dump is edited so
/// that its extension is `vector`, which this server does not have): its CREATE TABLE and
/// so its COPY fail. Its rows hold `;` and SQL, as rows read as SQL would run them.
const INVENTORY: &str = r#"
CREATE EXTENSION hstore; CREATE SCHEMA stock;
CREATE TABLE stock.warehouses (id int PRIMARY KEY, name text);
INSERT INTO stock.warehouses SELECT g, 'w' || g FROM generate_series(1, 50) g;
CREATE TABLE stock.embeddings (id int PRIMARY KEY, v public.hstore);
INSERT INTO stock.embeddings SELECT g, hstore('k' || g, 'v''; DROP TABLE stock.items; ' || g)
  FROM generate_series(1, 3000) g;
CREATE TABLE stock.items (id int PRIMARY KEY, warehouse int REFERENCES stock.warehouses(id), sku text);
INSERT INTO stock.items SELECT g, 1 + g % 50, 'sku' || g FROM generate_series(1, 20000) g;
CREATE TABLE stock.movements (id int, item int REFERENCES stock.items(id), qty int);
INSERT INTO stock.movements SELECT g, 1 + g % 20000, g % 7 FROM generate_series(1, 30000) g;
"#;

fn stock_counts(c: &Cluster) -> String {
    c.sql(
        "inventory",
        "SELECT (SELECT count(*) FROM stock.items) || ' ' || (SELECT count(*) FROM stock.warehouses) \
         || ' ' || (SELECT count(*) FROM stock.movements) || ' ' || (to_regclass('stock.embeddings') IS NULL)",
    )
}

/// Issue 19: psql reads the rows of a COPY it could not start as SQL, and they swallow what
/// follows. Ours lose their own rows and nothing else, at every N, and the report names them.
#[test]
fn a_failed_copy_loses_only_its_own_rows_at_every_n() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE inventory");
    src.sql("inventory", INVENTORY);
    let dump = String::from_utf8(src.tool("pg_dumpall", &["-d", &src.dsn("postgres")]))
        .unwrap()
        .replace(
            "EXTENSION IF NOT EXISTS hstore",
            "EXTENSION IF NOT EXISTS vector",
        )
        .replace("EXTENSION hstore", "EXTENSION vector")
        .replace("public.hstore", "public.vector");
    drop(src);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("dump.sql");
    std::fs::write(&file, &dump).unwrap();
    let Some(reference) = target(None) else {
        return;
    };
    psql_f(&reference, &file, "postgres");
    let by_psql = stock_counts(&reference);
    drop(reference);
    assert_ne!(
        by_psql, "20000 50 30000 true",
        "psql -f lost nothing more: the case is moot"
    );
    let bucket = backup_of(dump.as_bytes());
    for jobs in ["1", "2", "4"] {
        let Some(c) = target(None) else { return };
        let out = restore(bucket.path(), &c, "postgres", &["--jobs", jobs, "--json"]);
        let err = stderr(&out);
        assert_eq!(
            stock_counts(&c),
            "20000 50 30000 true",
            "--jobs {jobs} (psql -f: {by_psql}): {err}"
        );
        // The verification finds the one table, and only it.
        assert!(!out.status.success(), "--jobs {jobs}: {err}");
        assert!(err.contains("stock.embeddings"), "--jobs {jobs}: {err}");
        let mismatches: Vec<&str> = err.lines().filter(|l| l.contains("MISMATCH")).collect();
        assert_eq!(mismatches.len(), 1, "--jobs {jobs}: {err}");
        assert!(
            mismatches[0].contains("stock.embeddings"),
            "--jobs {jobs}: {err}"
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let failed = &report["stream"]["restore"]["failed_copies"];
        assert_eq!(
            failed[0]["table"], "stock.embeddings",
            "--jobs {jobs}: {report}"
        );
        assert_eq!(failed[0]["database"], "inventory");
        assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed}");
        assert_eq!(failed[0]["rows"], 3000);
    }
}

/// `restore --trace FILE` then `simulate`: the trace of a real run replays, and at one
/// connection the prediction is the sum of its units (and the waits for the stream). A trace that cannot be written is
/// refused before any stage runs.
#[test]
fn a_trace_of_a_restore_replays_in_the_simulator() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE k");
    src.sql("k", KEYWORD);
    let dump = src.tool("pg_dump", &["-d", &src.dsn("k")]);
    drop(src);
    let bucket = backup_of(&dump);
    let Some(c) = target(Some("k")) else { return };
    let out = restore(
        bucket.path(),
        &c,
        "k",
        &["--trace", "/nonexistent/dir/t.jsonl"],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--trace /nonexistent/dir/t.jsonl"), "{err}");
    assert!(!err.contains("stage 1/"), "refused before any stage: {err}");
    let work = tempfile::tempdir().unwrap();
    let trace = work.path().join("t.jsonl");
    let t = trace.to_str().unwrap();
    let out = restore(bucket.path(), &c, "k", &["--jobs", "2", "--trace", t]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<&str> = lines.iter().map(|l| l["op"].as_str().unwrap()).collect();
    for op in ["serial", "data", "post", "index", "close"] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    let data = lines.iter().find(|l| l["op"] == "data").unwrap();
    assert_eq!(data["table"], "public.t");
    assert_eq!(data["rows"], 10);
    let units: f64 = lines
        .iter()
        .filter(|l| !matches!(l["op"].as_str(), Some("post" | "data_end" | "close")))
        .map(|l| l["end"].as_f64().unwrap() - l["start"].as_f64().unwrap())
        .sum();
    let sim = bin()
        .args(["simulate", "--trace", t, "--cores", "2", "--json"])
        .run();
    assert!(sim.status.success(), "{}", stderr(&sim));
    let v: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    let predicted = v["predicted"].as_array().unwrap();
    assert_eq!(predicted.len(), 16);
    let one = predicted[0]["seconds"].as_f64().unwrap();
    // The units one after the other, and the waits for the stream where it was slower.
    let wall = lines
        .iter()
        .map(|l| l["end"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        one >= units - 1e-6 && one <= wall + 1e-6,
        "{one}: the sum {units}, the run {wall}"
    );
    assert!(predicted
        .iter()
        .all(|p| p["seconds"].as_f64().unwrap() <= one + 1e-6));
    // Not a trace: said plainly.
    let bad = work.path().join("bad.jsonl");
    std::fs::write(&bad, "not json\n").unwrap();
    let sim = bin()
        .args(["simulate", "--trace", bad.to_str().unwrap()])
        .run();
    assert!(!sim.status.success());
    assert!(
        stderr(&sim).contains("not a line of a trace"),
        "{}",
        stderr(&sim)
    );
}

/// A refused table of several chunks: its first chunk is refused by the server, the others
/// are not sent (no new connection for each), and every row of it is reported lost.
#[test]
fn the_chunks_after_a_refused_one_of_the_same_table_are_not_sent() {
    let mut dump = String::from(
        "--\n-- PostgreSQL database dump\n--\n\n\
         --\n-- Name: kept; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.kept (a int);\n\n\
         --\n-- Data for Name: gone; Type: TABLE DATA; Schema: public; Owner: -\n--\n\n\
         COPY public.gone (a, b) FROM stdin;\n",
    );
    for i in 0..200_000 {
        dump.push_str(&format!("{i}\tsome text to make the chunks fill up\n"));
    }
    dump.push_str(
        "\\.\n\n--\n-- Data for Name: kept; Type: TABLE DATA; Schema: public; Owner: -\n--\n\n\
                   COPY public.kept (a) FROM stdin;\n1\n2\n\\.\n",
    );
    let bucket = backup_of(dump.as_bytes());
    let Some(c) = target(Some("shop")) else {
        return;
    };
    let out = restore(
        bucket.path(),
        &c,
        "shop",
        &["--jobs", "2", "--no-verify", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["stream"]["restore"];
    assert!(r["phases"]["copy_chunks"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(r["failed_copies"][0]["table"], "public.gone", "{r}");
    assert_eq!(r["failed_copies"][0]["rows"], 200_000, "{r}");
    assert_eq!(r["sql_errors"], 1, "one refusal, not one a chunk: {r}");
    assert_eq!(c.sql("shop", "SELECT count(*) FROM public.kept"), "2");
}

/// A custom archive (`pg_dump -Fc`) through pg_restore --file=- into the loader, at every N
/// and in one read and two: identical to pg_restore into the same kind of target, with no
/// spool, its rows verified, and the SQL error of its missing role counted, not fatal.
#[test]
fn a_custom_archive_through_the_loader_equals_pg_restore_at_every_n() {
    let Some(src) = source() else { return };
    let archive = src.tool("pg_dump", &["-Fc", "-d", "shop"]);
    drop(src);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("shop.dump");
    std::fs::write(&file, &archive).unwrap();
    let Some(reference) = target(Some("shop")) else {
        return;
    };
    // pg_restore fails the GRANT to corpus_reader (not in this cluster) and says so at the
    // end ("errors ignored on restore: 1"); everything else is restored.
    let out = Command::new(reference.bin.join("pg_restore"))
        .args(["-d", &reference.dsn("shop")])
        .arg(&file)
        .run();
    assert!(
        stderr(&out).contains("corpus_reader"),
        "pg_restore: {}",
        stderr(&out)
    );
    let expected = vec![fingerprint(&reference, "shop")];
    drop(reference);
    let bucket = backup_of(&archive);
    compare_restores(
        "pg_dump -Fc",
        bucket.path(),
        Some("shop"),
        &["shop"],
        &expected,
        &[1, 2, 3, 4],
    );
    // The report: through the loader, rows verified, the error counted.
    let Some(c) = target(Some("shop")) else {
        return;
    };
    let out = restore(bucket.path(), &c, "shop", &["--jobs", "2", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["stream"]["restore"];
    assert_eq!(r["sql_errors"], 1, "{report:#}");
    // shop's partitioned index (INDEX ATTACH) keeps its post-data after its data.
    assert_eq!(r["phases"]["early_items"], 0, "{report:#}");
    let stages = report["stages"].as_array().unwrap();
    let verify = stages.iter().find(|s| s["name"] == "verify").unwrap();
    assert_eq!(verify["status"], "done", "{report:#}");
    assert!(!stderr(&out).contains("spool"), "{}", stderr(&out));
}

/// `drill` of a one-database custom archive whose role is missing on the scratch cluster
/// passes with its error counted, as the same plain dump does.
#[test]
fn drill_of_a_custom_archive_with_a_missing_role_passes_with_its_error_counted() {
    let Some(src) = source() else { return };
    let archive = src.tool("pg_dump", &["-Fc", "-d", "shop"]);
    drop(src);
    let bucket = backup_of(&archive);
    let out = bin()
        .args(["drill", "--bucket"])
        .arg(bucket.path())
        .args(["--backup-id", ID, "--jobs", "2"])
        .env("A9S_SECRET", SECRET)
        .run();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("1 SQL error(s)") && err.contains("corpus_reader"),
        "{err}"
    );
}

/// The backup rewritten between the two reads (here by a plan's command stage, after the
/// read before destructive stages): the second read is refused before it sends anything.
#[test]
fn a_backup_rewritten_between_the_two_reads_fails_before_the_second() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000);",
    );
    let dump = src.tool("pg_dumpall", &[]);
    drop(src);
    let bucket = backup_of(&dump);
    let part = bucket.path().join(format!("{ID}-1"));
    let plan = bucket.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "[[stage]]\nkind = \"command\"\nname = \"rewrite\"\nrun = \"cp {p} {p}.new && mv {p}.new {p} && touch -d 2001-01-01 {p}\"\n\n[[stage]]\nkind = \"restore\"\n",
            p = part.display()
        ),
    )
    .unwrap();
    let Some(c) = target(None) else { return };
    let out = restore(
        bucket.path(),
        &c,
        "postgres",
        &["--jobs", "2", "--plan", plan.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("changed while the backup was being read"),
        "{err}"
    );
    // Nothing of the second read reached the target.
    assert_eq!(
        c.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'shop'"
        ),
        "0"
    );
}

/// With two reads, a table's key builds while a later table's rows still load, and the
/// databases come out as psql -f makes them; `-v` says how far the load is.
#[test]
fn a_tables_key_builds_while_the_next_table_loads() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE TABLE a1 (id int PRIMARY KEY, v text); \
         INSERT INTO a1 SELECT g, repeat('v', 100) FROM generate_series(1, 100000) g; \
         CREATE TABLE b2 (id int, v text); \
         INSERT INTO b2 SELECT g, repeat('w', 100) FROM generate_series(1, 400000) g; \
         CREATE INDEX b2_id ON b2 (id);",
    );
    let dump = src.tool("pg_dumpall", &[]);
    drop(src);
    let bucket = backup_of(&dump);
    let Some(c) = target(None) else { return };
    let out = restore(bucket.path(), &c, "postgres", &["--jobs", "2", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &report["stream"]["restore"]["phases"];
    assert!(p["early_items"].as_u64().unwrap() >= 1, "{p:#}");
    assert_eq!(c.sql("shop", "SELECT count(*) FROM b2"), "400000");
    assert_eq!(
        c.sql(
            "shop",
            "SELECT count(*) FROM pg_indexes WHERE tablename IN ('a1', 'b2')"
        ),
        "2"
    );
}

/// Issue 20 §4: on a terminal, `restore --jobs 2` shows the load's phase, the data against
/// the first read's total, the post-data items done of their total and what runs, with
/// `pg_stat_progress_create_index` for an index being built (here one whose expression
/// sleeps, so that it is seen); with `-v` and no terminal, the same as a line every 3 s.
#[test]
fn a_restore_shows_its_phases_and_the_index_it_builds_on_a_terminal_and_with_v() {
    let Some(src) = Cluster::start() else { return };
    src.sql("postgres", "CREATE DATABASE shop");
    src.sql(
        "shop",
        "CREATE FUNCTION public.slow(i int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT i FROM pg_sleep(0.008) $$;
         CREATE TABLE public.t (id int PRIMARY KEY, note text);
         INSERT INTO public.t SELECT g, repeat('x', 100) FROM generate_series(1, 450) g;
         CREATE INDEX t_slow ON public.t (public.slow(id));",
    );
    let dump = src.tool("pg_dumpall", &[]);
    drop(src);
    let bucket = backup_of(&dump);
    let Some(c) = target(None) else { return };
    let dsn = c.dsn("postgres");
    let args = [
        "restore",
        "--bucket",
        bucket.path().to_str().unwrap(),
        "--backup-id",
        ID,
        "--target",
        &dsn,
        "--yes",
        "--jobs",
        "2",
    ];
    let (code, screen, _) = crate::safety::on_a_terminal(
        &args,
        &[("A9S_SECRET", SECRET)],
        "a9s-recover: restored",
        "",
    );
    assert_eq!(code, 0, "{screen}");
    for says in [
        "data 450 rows, 46.0 KiB of 46.0 KiB",
        "shop post-data 100%, post-data 1/2",
        "running: CREATE INDEX t_slow ON public.t",
        "(shop: building index: scanning table",
        "s left",
    ] {
        assert!(screen.contains(says), "{says}: {screen}");
    }
    // -v with stderr not a terminal: the same words, a line every 3 s.
    let Some(c) = target(None) else { return };
    let out = restore(bucket.path(), &c, "postgres", &["--jobs", "2", "-v"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("restore --jobs 2: ") && l.contains("s: shop post-data"))
        .unwrap_or_else(|| panic!("no status line: {err}"));
    assert!(line.contains("running: CREATE INDEX t_slow"), "{line}");
}
