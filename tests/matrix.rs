//! The version matrix (issue 21): real builds of PostgreSQL 13.23, 16.2, 17.10 and 18.6
//! (scripts/install-test-pg.sh, from PyPI and npm) beside the system's 15. Each version's own
//! dumps (pg_dumpall, with `--statistics` on 18; `pg_dump -Fc`) restored into that version at
//! `--jobs 1` and `2` and compared with `psql -f` or `pg_restore` into the same version, with
//! their rows verified and a `drill` of each; and the pairings across versions: a newer
//! pg_dump of an older server into that server, an older server's dump into newer servers,
//! a real downgrade, and client programs older than the dump needs.
//!
//! 13 and 17 come as servers alone (no psql or pg_dump): their dumps are made by the newer
//! pg_dump of 15 and 18, as on a backup host whose client tools are newer than the server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::parallel::{
    backup_of, fingerprint, psql_f, psql_f_via, same_fingerprint, KEYWORD, ODD, ODD_DB, SHOP,
};
use crate::support::pg::*;
use crate::support::*;

/// What 18 adds to the corpus: virtual generated columns, `NOT NULL … NOT VALID`,
/// `NOT ENFORCED`, `WITHOUT OVERLAPS`, and default privileges.
const ONLY_18: &str = r#"
CREATE EXTENSION btree_gist;
CREATE TABLE public.v18 (id int PRIMARY KEY, tripled int GENERATED ALWAYS AS (id * 3) VIRTUAL, n int);
INSERT INTO public.v18 (id, n) SELECT g, NULLIF(g % 5, 0) FROM generate_series(1, 300) g;
ALTER TABLE public.v18 ADD CONSTRAINT v18_n_nn NOT NULL n NOT VALID;
ALTER TABLE public.v18 ADD CONSTRAINT v18_pos CHECK (id < 0) NOT ENFORCED;
CREATE TABLE public.rooms (room int, during tstzrange, PRIMARY KEY (room, during WITHOUT OVERLAPS));
INSERT INTO public.rooms VALUES (1, '[2024-01-01, 2024-01-02)'), (1, '[2024-01-02, 2024-01-03)');
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO corpus_reader;
ANALYZE;
"#;

/// The equivalence corpus for `major`: 16.2's build has no contrib extensions, so a corpus
/// that goes into it uses core types where the others use hstore, citext and pg_trgm.
fn shop_sql(major: u32, contrib: bool) -> String {
    let mut sql = SHOP.to_string();
    if !contrib {
        for (from, to) in [
            (
                "CREATE EXTENSION hstore; CREATE EXTENSION citext; CREATE EXTENSION pg_trgm;",
                "",
            ),
            ("name citext NOT NULL UNIQUE", "name text NOT NULL UNIQUE"),
            ("attrs hstore,", "attrs jsonb,"),
            ("hstore('k', g::text)", "jsonb_build_object('k', g::text)"),
            (
                "CREATE INDEX orders_note_trgm ON sales.orders USING gin (note gin_trgm_ops);",
                "",
            ),
        ] {
            assert!(sql.contains(from), "{from}");
            sql = sql.replace(from, to);
        }
    }
    if major >= 18 {
        sql.push_str(ONLY_18);
    }
    sql
}

const DBS: [&str; 3] = ["shop", ODD_DB, "my-app"];

/// A cluster of `bin` with the corpus: `shop`, a unicode name, `my-app`.
fn source(bin: &Path, major: u32, contrib: bool) -> Option<Cluster> {
    let c = Cluster::start_in(bin)?;
    c.sql("postgres", "CREATE DATABASE shop");
    c.sql("shop", &shop_sql(major, contrib));
    c.sql("postgres", "CREATE DATABASE \"Odd DB ü \"\"q\"\"\"");
    c.sql(ODD_DB, ODD);
    c.sql("postgres", "CREATE DATABASE \"my-app\"");
    c.sql("my-app", KEYWORD);
    Some(c)
}

/// The directory of a psql and pg_restore for a cluster: its own, or 18's for a build of
/// the server alone.
fn client_bin(c: &Cluster) -> PathBuf {
    c.program("psql").parent().unwrap().to_path_buf()
}

/// The same for a server directory, without a cluster.
fn client_for(server: &Path) -> Option<PathBuf> {
    if server.join("psql").is_file() {
        Some(server.to_path_buf())
    } else {
        build(18)
    }
}

fn restore(bucket: &Path, c: &Cluster, db: &str, extra: &[&str]) -> Output {
    restore_via(bucket, c, db, &client_bin(c), extra)
}

/// A restore through the psql and pg_restore in `client`.
fn restore_via(bucket: &Path, c: &Cluster, db: &str, client: &Path, extra: &[&str]) -> Output {
    bin()
        .args(["restore", "--bucket"])
        .arg(bucket)
        .args([
            "--backup-id",
            ID,
            "--target",
            &c.dsn(db),
            "--yes",
            "--pg-bin",
        ])
        .arg(client)
        .args(extra)
        .env("A9S_SECRET", SECRET)
        .run()
}

/// The statistics pg_dumpall --statistics carries, as the planner sees them.
fn statistics(c: &Cluster, db: &str) -> String {
    c.sql(
        db,
        "SELECT string_agg(c.oid::regclass::text || ' ' || c.reltuples || ' ' || c.relallvisible || ' ' || \
         coalesce((SELECT string_agg(s.attname || '=' || s.inherited || '=' || s.null_frac || '/' || s.n_distinct, ',' \
         ORDER BY s.attname, s.inherited) FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname), ''), \
         E'\\n' ORDER BY n.nspname, c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
}

/// What a dump is: a pg_dumpall, a plain `pg_dump` of `shop`, or a custom archive of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    All,
    Plain,
    Custom,
}

/// Restores `dump` (taken on a cluster of `bin`) with the reference tool and with ours at
/// `--jobs 1` and `2`, each into a fresh cluster of `bin`, and compares every database.
fn equivalent_in(server: &Path, name: &str, dump: &[u8], shape: Shape, stats: bool, jobs: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("dump");
    std::fs::write(&file, dump).unwrap();
    let one = shape != Shape::All;
    let dbs: &[&str] = if one { &["shop"] } else { &DBS };
    let connect = if one { "shop" } else { "postgres" };
    let fresh = || {
        let c = Cluster::start_in(server)?;
        if one {
            c.sql("postgres", "CREATE DATABASE shop");
        }
        Some(c)
    };
    let Some(reference) = fresh() else { return };
    if shape == Shape::Custom {
        // Its one error, the GRANT to a role this cluster lacks, is pg_restore's exit 1.
        Command::new(reference.program("pg_restore"))
            .args(["-d", &reference.dsn("shop")])
            .arg(&file)
            .run();
    } else {
        psql_f(&reference, &file, connect);
    }
    let want: Vec<String> = dbs.iter().map(|db| fingerprint(&reference, db)).collect();
    let want_stats = stats.then(|| statistics(&reference, "shop"));
    drop(reference);
    let bucket = backup_of(dump);
    for &jobs in jobs {
        let Some(c) = fresh() else { return };
        let out = restore(bucket.path(), &c, connect, &["--jobs", jobs]);
        let err = stderr(&out);
        assert!(out.status.success(), "{name} --jobs {jobs}: {err}");
        assert!(err.contains("row counts match the dump"), "{name}: {err}");
        assert!(!err.contains("ran on one connection"), "{name}: {err}");
        for (db, want) in dbs.iter().zip(&want) {
            same_fingerprint(
                &format!("{name} --jobs {jobs}"),
                db,
                want,
                &fingerprint(&c, db),
            );
        }
        if let Some(s) = &want_stats {
            assert_eq!(&statistics(&c, "shop"), s, "{name} --jobs {jobs}");
        }
    }
    if stats {
        return;
    }
    // And a drill of it, on a throwaway cluster of the dump's own version.
    let out = bin()
        .args(["drill", "--bucket"])
        .arg(bucket.path())
        .args(["--backup-id", ID, "--jobs", "2", "--server-bin"])
        .arg(server)
        .arg("--pg-bin")
        .arg(client_for(server).unwrap())
        .env("A9S_SECRET", SECRET)
        .run();
    let err = stderr(&out);
    assert!(out.status.success(), "drill of {name}: {err}");
    assert!(err.contains("drill passed"), "{err}");
}

/// A `--schema-only --sequence-data` dump (no rows; a materialized view left unpopulated):
/// the schema and every sequence as `psql -f` leaves them.
fn schema_and_sequences_as_psql_f(server: &Path, dump: &[u8]) {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("dump.sql");
    std::fs::write(&file, dump).unwrap();
    let look = |c: &Cluster| {
        let schema = String::from_utf8(c.tool("pg_dump", &["--schema-only", "-d", &c.dsn("shop")]))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n");
        let seqs = c.sql(
            "shop",
            "SELECT string_agg(schemaname || '.' || sequencename || ' ' || coalesce(last_value, 0), ',' ORDER BY 1) FROM pg_sequences",
        );
        format!("{schema}\n{seqs}")
    };
    let Some(reference) = Cluster::start_in(server) else {
        return;
    };
    psql_f(&reference, &file, "postgres");
    let want = look(&reference);
    drop(reference);
    let bucket = backup_of(dump);
    let Some(c) = Cluster::start_in(server) else {
        return;
    };
    let out = restore(bucket.path(), &c, "postgres", &["--jobs", "2"]);
    assert!(out.status.success(), "--sequence-data: {}", stderr(&out));
    assert_eq!(look(&c), want);
    assert!(want.contains("public.invoice_no 4242"), "{want}");
}

/// 16.2 and 18.6 (the whole tool sets): each version's pg_dumpall (18 also with
/// `--statistics`, whose `pg_restore_relation_stats` calls must land as psql -f lands them,
/// and with `--schema-only --sequence-data`), `pg_dump -Fc` and `pg_dump -Fp` (at `--jobs 2`),
/// restored into the same version.
#[test]
fn each_versions_own_dumps_restore_into_it_as_psql_f_and_pg_restore_do() {
    for major in [16, 18] {
        let Some(bin) = build(major) else { return };
        let Some(src) = source(&bin, major, major != 16) else {
            return;
        };
        let v = src.version();
        assert!(v.starts_with(&format!("{major}.")), "{v}");
        let all = src.tool("pg_dumpall", &[]);
        let custom = src.tool("pg_dump", &["-Fc", "-d", "shop"]);
        let plain = src.tool("pg_dump", &["-Fp", "-d", "shop"]);
        let stats = (major >= 18).then(|| src.tool("pg_dumpall", &["--statistics"]));
        // 18's --sequence-data beside --schema-only: definitions and sequence values.
        let seqs =
            (major >= 18).then(|| src.tool("pg_dumpall", &["--schema-only", "--sequence-data"]));
        drop(src);
        equivalent_in(
            &bin,
            &format!("pg_dumpall {v}"),
            &all,
            Shape::All,
            false,
            &["1", "2"],
        );
        equivalent_in(
            &bin,
            &format!("pg_dump -Fc {v}"),
            &custom,
            Shape::Custom,
            false,
            &["1", "2"],
        );
        equivalent_in(
            &bin,
            &format!("pg_dump -Fp {v}"),
            &plain,
            Shape::Plain,
            false,
            &["2"],
        );
        if let Some(stats) = stats {
            assert!(
                String::from_utf8_lossy(&stats).contains("pg_restore_relation_stats"),
                "no statistics in pg_dumpall --statistics"
            );
            let name = format!("pg_dumpall --statistics {v}");
            equivalent_in(&bin, &name, &stats, Shape::All, true, &["2"]);
        }
        if let Some(seqs) = seqs {
            assert!(String::from_utf8_lossy(&seqs).contains("SELECT pg_catalog.setval("));
            schema_and_sequences_as_psql_f(&bin, &seqs);
        }
    }
}

/// `program` (a pg_dumpall or pg_dump of another version) against cluster `c`.
fn dump_with(program: &Path, c: &Cluster, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(["-h"])
        .arg(c.socket_dir())
        .args(["-p", &c.port.to_string(), "-U", "postgres"])
        .args(args)
        .run();
    assert!(
        out.status.success(),
        "{}: {}",
        program.display(),
        stderr(&out)
    );
    out.stdout
}

/// `psql -f` of `dump` into a fresh cluster of `server` and our restore of it at `--jobs 2`
/// into another (with `extra`), both through the psql in `client`: the same databases.
fn same_as_psql_f(server: &Path, client: &Path, dump: &[u8], dbs: &[&str], extra: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("dump.sql");
    std::fs::write(&file, dump).unwrap();
    let Some(reference) = Cluster::start_in(server) else {
        return;
    };
    psql_f_via(&client.join("psql"), &reference, &file, "postgres");
    let want: Vec<String> = dbs.iter().map(|db| fingerprint(&reference, db)).collect();
    drop(reference);
    let bucket = backup_of(dump);
    let Some(c) = Cluster::start_in(server) else {
        return;
    };
    let mut args = vec!["--jobs", "2"];
    args.extend_from_slice(extra);
    let out = restore_via(bucket.path(), &c, "postgres", client, &args);
    let err = stderr(&out);
    assert!(out.status.success(), "into {}: {err}", c.version());
    for (db, want) in dbs.iter().zip(&want) {
        assert_eq!(&fingerprint(&c, db), want, "{db} in {}", c.version());
    }
}

/// Whether database `db` exists on `c`: a refusal made none.
fn has_database(c: &Cluster, db: &str) -> bool {
    c.sql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            a9s_recover::pg::quote_literal(db)
        ),
    ) != "0"
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(out)))
}

/// A `--json` run refused as `incompatible`: its message.
fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "{}", stderr(out));
    let v = json(out);
    assert_eq!(v["kind"], "incompatible", "{v:#}");
    v["error"].as_str().unwrap().to_string()
}

/// A 17.10 server dumped by pg_dumpall and pg_dump 18.6, the backup host's newer client
/// tools. Into 17.10 it is refused before anything changes, saying what is the case (the
/// server it came from is not newer than the target, the pg_dump is) and the three ways on;
/// with `--allow-older-target` it restores as `psql -f` does; into 18.6 it is accepted. A
/// drill of it takes an 18 server, and says which.
#[test]
fn a_17_server_dumped_by_pg_dump_18_into_17_and_18() {
    let (Some(b17), Some(b18)) = (build(17), build(18)) else {
        return;
    };
    let Some(src) = source(&b17, 17, true) else {
        return;
    };
    let dump = dump_with(&b18.join("pg_dumpall"), &src, &[]);
    let custom = dump_with(&b18.join("pg_dump"), &src, &["-Fc", "-d", "shop"]);
    drop(src);
    for (what, data, db) in [
        ("pg_dumpall", &dump, "postgres"),
        ("pg_dump -Fc", &custom, "shop"),
    ] {
        let bucket = backup_of(data);
        let Some(t) = Cluster::start_in(&b17) else {
            return;
        };
        if db == "shop" {
            t.sql("postgres", "CREATE DATABASE shop");
        }
        let out = restore(bucket.path(), &t, db, &["--json"]);
        let e = refused(&out);
        for says in [
            "pg_dump 18.6 from a PostgreSQL 17.10 server",
            "the target runs PostgreSQL 17.10",
            "the server it came from is not newer than the target",
            "Restore into PostgreSQL 18 or later",
            "dump again with the server's own pg_dump (PostgreSQL 17)",
            "--allow-older-target",
        ] {
            assert!(e.contains(says), "{what}: {says}: {e}");
        }
        assert!(!e.contains("older major version"), "{what}: {e}");
        // Nothing changed: no database of the dump was made.
        assert!(!has_database(&t, "my-app"));
    }
    same_as_psql_f(&b17, &b18, &dump, &DBS, &["--allow-older-target"]);
    same_as_psql_f(&b18, &b18, &dump, &DBS, &[]);
    // drill: nothing here but 15 and --server-bin's; without it, what to install.
    let bucket = backup_of(&dump);
    let drill = |extra: &[&std::ffi::OsStr]| {
        bin()
            .args(["drill", "--bucket"])
            .arg(bucket.path())
            .args(["--backup-id", ID])
            .args(extra)
            .env("A9S_SECRET", SECRET)
            .run()
    };
    let out = drill(&[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("needs a PostgreSQL 18 server or newer"),
        "{err}"
    );
    assert!(err.contains("apt-get install postgresql-18"), "{err}");
    assert!(
        err.contains("postgresql-client-18 alone is not enough"),
        "{err}"
    );
    // --pg-bin naming a server that does not take the dump (17's, for pg_dump 18's SQL):
    // not taken, and named among those found.
    let out = drill(&["--pg-bin".as_ref(), b17.as_os_str()]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("found PostgreSQL 17.10 ("), "{err}");
    // --pg-bin naming the 18 tool set: its server too, and the drill says so.
    let out = drill(&["--pg-bin".as_ref(), b18.as_os_str()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("throwaway PostgreSQL 18.6 cluster"), "{err}");
    assert!(err.contains("through psql 18.6"), "{err}");
    // The 17 server itself, with --allow-older-target.
    let out = drill(&[
        "--server-bin".as_ref(),
        b17.as_os_str(),
        "--pg-bin".as_ref(),
        b18.as_os_str(),
        "--allow-older-target".as_ref(),
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("throwaway PostgreSQL 17.10 cluster"), "{err}");
}

/// 13.23 as the source of dumps restored into newer servers: dumped by the system's
/// pg_dumpall 15.18, it restores into 15, 16 and 18 as `psql -f` does there. Dumped by 18's
/// into 13 itself it is refused (psql -f of it fails at `locale_provider`).
#[test]
fn a_13_server_dumped_by_newer_pg_dumps_into_newer_servers_and_itself() {
    let (Some(b13), Some(b16), Some(b18)) = (build(13), build(16), build(18)) else {
        return;
    };
    let Some(b15) = a9s_recover::pg::newest_server_bin() else {
        return;
    };
    let Some(src) = source(&b13, 13, false) else {
        return;
    };
    let by15 = dump_with(&b15.join("pg_dumpall"), &src, &[]);
    let by18 = dump_with(&b18.join("pg_dumpall"), &src, &[]);
    drop(src);
    assert!(String::from_utf8_lossy(&by15).contains("-- Dumped from database version 13.23"));
    // Into 16.2 through 18's psql: 16.2's own does not know the \restrict of pg_dump 15.18
    // (refused, as downgrades_and_older_clients_… shows).
    for (server, client) in [(&b15, &b15), (&b16, &b18), (&b18, &b18)] {
        same_as_psql_f(server, client, &by15, &DBS, &[]);
    }
    // A drill of it takes the server of the version it needs (15: pg_dump 15's SQL).
    let bucket15 = backup_of(&by15);
    let out = bin()
        .args(["drill", "--bucket"])
        .arg(bucket15.path())
        .args(["--backup-id", ID])
        .env("A9S_SECRET", SECRET)
        .run();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("cluster (") && err.contains("the dump's own major version) for a dump made by pg_dump 15.18 from PostgreSQL 13.23"),
        "{err}"
    );
    let bucket = backup_of(&by18);
    let Some(t) = Cluster::start_in(&b13) else {
        return;
    };
    let out = restore(bucket.path(), &t, "postgres", &["--json"]);
    let e = refused(&out);
    assert!(
        e.contains("pg_dump 18.6 from a PostgreSQL 13.23 server"),
        "{e}"
    );
    assert!(e.contains("locale_provider"), "{e}");
    assert!(!has_database(&t, "shop"));
}

/// A real downgrade (an 18 dump into 16) and client programs older than the dump needs
/// (psql 16.2 for an 18 dump's `\restrict`, pg_restore 16.2 for an 18 archive): each refused
/// before anything changes, of one kind, saying what the older program would really do.
#[test]
fn downgrades_and_older_clients_are_refused_before_anything_changes() {
    let (Some(b16), Some(b18)) = (build(16), build(18)) else {
        return;
    };
    let Some(src) = source(&b18, 18, true) else {
        return;
    };
    let all = src.tool("pg_dumpall", &[]);
    let custom = src.tool("pg_dump", &["-Fc", "-d", "shop"]);
    drop(src);
    let all_b = backup_of(&all);
    let custom_b = backup_of(&custom);
    // 18 into 16.2.
    let Some(t16) = Cluster::start_in(&b16) else {
        return;
    };
    let out = restore_via(all_b.path(), &t16, "postgres", &b18, &["--json"]);
    let e = refused(&out);
    assert!(
        e.contains("does not support restoring into an older major version"),
        "{e}"
    );
    assert!(e.contains("Restore into PostgreSQL 18 or later"), "{e}");
    assert!(!has_database(&t16, "shop"));
    // 18 into 18 through the 16.2 client programs.
    let Some(t18) = Cluster::start_in(&b18) else {
        return;
    };
    let with16 = |bucket: &Path, db: &str| restore_via(bucket, &t18, db, &b16, &["--json"]);
    let e = refused(&with16(all_b.path(), "postgres"));
    assert!(e.contains("psql 16.2"), "{e}");
    assert!(e.contains("invalid command \\restrict"), "{e}");
    t18.sql("postgres", "CREATE DATABASE shop");
    let e = refused(&with16(custom_b.path(), "shop"));
    assert!(e.contains("pg_restore 16.2"), "{e}");
    // The plain form's pick of that archive through pg_restore 16.2: what to install, not
    // pg_restore's own "unsupported version".
    let out = bin()
        .args(["--bucket"])
        .arg(custom_b.path())
        .args(["--backup-id", ID, "--table", "sales.orders", "--pg-bin"])
        .arg(&b16)
        .env("A9S_SECRET", SECRET)
        .run();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("pg_restore 16.2") && err.contains("reads archives up to 1.15"),
        "{err}"
    );
    assert_eq!(
        t18.sql(
            "shop",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'sales'"
        ),
        "0"
    );
}

/// A pick out of PostgreSQL 18's pg_dumpall --statistics (issue 22 on 18): the table, its
/// rows, and its own statistics and its indexes', and no other table's.
#[test]
fn a_pick_out_of_an_18_dump_with_statistics_brings_the_tables_own() {
    let Some(b18) = build(18) else { return };
    let Some(src) = source(&b18, 18, true) else {
        return;
    };
    let dump = src.tool("pg_dumpall", &["--statistics"]);
    let bucket = backup_of(&dump);
    let Some(t) = Cluster::start_in(&b18) else {
        return;
    };
    let out = restore(
        bucket.path(),
        &t,
        "postgres",
        &[
            "--database",
            "shop",
            "--table",
            "sales.items",
            "--into",
            "items_back",
            "--jobs",
            "2",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("1 table(s): row counts match the dump"),
        "{err}"
    );
    let stats = |c: &Cluster, db: &str| {
        c.sql(
            db,
            "SELECT c.relname || ' ' || c.reltuples || ' ' || (SELECT count(*) FROM pg_stats s \
             WHERE s.schemaname = 'sales' AND s.tablename = c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'sales' \
             AND c.relname IN ('items', 'items_pkey', 'items_qty') ORDER BY 1",
        )
    };
    assert_eq!(stats(&t, "items_back"), stats(&src, "shop"));
    assert!(
        stats(&t, "items_back").contains("items 150000 3"),
        "{}",
        stats(&t, "items_back")
    );
    assert_eq!(
        t.sql(
            "items_back",
            "SELECT count(*) FROM pg_class WHERE relname IN ('orders', 'customers')"
        ),
        "0"
    );
}
