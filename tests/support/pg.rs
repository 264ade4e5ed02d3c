//! Real PostgreSQL clusters for the tests, started with the library's own throwaway cluster
//! (`a9s_recover::pg::cluster::TempCluster`, what `drill` uses): initdb into a temporary
//! directory with the server binaries under /usr/lib/postgresql/*/bin, the unix socket in that
//! directory (no TCP), run as user postgres when the tests run as root; stopped and removed on
//! drop. Under `CI=true` a cluster that cannot start fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use a9s_recover::pg::cluster::TempCluster;
use a9s_recover::pg::PgTools;

use super::RunExt;

#[derive(Debug)]
pub struct Cluster {
    inner: TempCluster,
    pub port: u16,
    pub bin: PathBuf,
}

/// Where the version matrix's builds are (scripts/install-test-pg.sh writes its `env`).
const BUILDS_ENV: &str = "/opt/a9s-recover-test-pg/env";

/// The bin directory of the real PostgreSQL build of `major` that scripts/install-test-pg.sh
/// installed (13, 16, 17, 18): `A9S_PG<major>_BIN`, else the installer's `env` file. Under
/// `CI=true` a build that is not there fails the test.
pub fn build(major: u32) -> Option<PathBuf> {
    let key = format!("A9S_PG{major}_BIN");
    let dir = std::env::var_os(&key).map(PathBuf::from).or_else(|| {
        let env = std::fs::read_to_string(BUILDS_ENV).ok()?;
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(PathBuf::from)
    });
    match dir {
        Some(d) if d.join("postgres").is_file() => Some(d),
        _ => super::servers::unavailable_pub(&format!(
            "no PostgreSQL {major} build ({key}, or {BUILDS_ENV}: scripts/install-test-pg.sh makes them)"
        )),
    }
}

impl Cluster {
    fn wrap(inner: TempCluster) -> Cluster {
        Cluster {
            port: inner.port,
            bin: inner.bin().to_path_buf(),
            inner,
        }
    }

    /// A fresh primary.
    pub fn start() -> Option<Cluster> {
        match TempCluster::start(&PgTools::default(), None) {
            Ok(c) => Some(Self::wrap(c)),
            Err(e) => super::servers::unavailable_pub(&e.to_string()),
        }
    }

    /// A fresh primary of the server binaries in `bin` (a build of [`build`]).
    pub fn start_in(bin: &Path) -> Option<Cluster> {
        let tools = PgTools {
            bin_dir: Some(bin.to_path_buf()),
        };
        match TempCluster::start(&tools, None) {
            Ok(c) => Some(Self::wrap(c)),
            Err(e) => super::servers::unavailable_pub(&e.to_string()),
        }
    }

    /// A client program for this cluster: beside its server; for a build of the server
    /// alone, the newest client there is (18's, which reads every older server), else PATH's.
    pub fn program(&self, name: &str) -> PathBuf {
        let beside = self.bin.join(name);
        if beside.exists() {
            return beside;
        }
        if let Ok(d) = std::env::var("A9S_PG18_BIN")
            .map(PathBuf::from)
            .or_else(|_| {
                std::fs::read_to_string(BUILDS_ENV)
                    .ok()
                    .and_then(|e| {
                        e.lines()
                            .find_map(|l| l.strip_prefix("A9S_PG18_BIN="))
                            .map(PathBuf::from)
                    })
                    .ok_or(())
            })
        {
            if d.join(name).exists() {
                return d.join(name);
            }
        }
        self.inner.program(name)
    }

    /// The server's version, e.g. `17.10`.
    pub fn version(&self) -> String {
        self.sql("postgres", "SHOW server_version")
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// A streaming standby of this cluster (pg_basebackup -R).
    pub fn standby(&self) -> Cluster {
        Self::wrap(self.inner.standby().unwrap())
    }

    pub fn data(&self) -> PathBuf {
        self.inner.data_dir()
    }

    /// A libpq key=value string for `db`.
    pub fn dsn(&self, db: &str) -> String {
        // Quoted when it must be: the corpus has databases named `Odd DB ü "q"`.
        let db = if db.chars().all(|c| c.is_alphanumeric() || c == '_') {
            db.to_string()
        } else {
            format!("'{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
        };
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Runs SQL with psql; returns the unaligned, tuples-only output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.program("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.dsn(db),
                "-c",
                sql,
            ])
            .run();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Runs a client tool (pg_dumpall, pg_dump, ...) against this cluster; returns stdout.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Vec<u8> {
        let out = Command::new(self.program(tool))
            .args(["-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-U", "postgres"])
            .args(args)
            .run();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn socket_dir(&self) -> &Path {
        &self.inner.dir
    }
}

/// The fixture database of the issue: several schemas; COPY data with tabs, backslashes,
/// unicode and NULLs; a sequence, an index, a view and a role.
pub const FIXTURE_SQL: &str = r#"
CREATE ROLE app_reader;
CREATE SCHEMA sales;
CREATE SCHEMA "Odd Schema";
CREATE SEQUENCE public.invoice_no START 1000;
CREATE TABLE public.customers (id serial PRIMARY KEY, name text NOT NULL, email text, note text, invoice bigint DEFAULT nextval('public.invoice_no'));
CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer_id int REFERENCES public.customers(id), total numeric(10,2), placed_at timestamptz, tags text[]);
CREATE TABLE "Odd Schema"."Mixed Case" ("Key" text, v jsonb);
INSERT INTO public.customers (name, email, note)
  SELECT 'customer ' || g, CASE WHEN g % 11 = 0 THEN NULL ELSE 'c' || g || '@example.com' END,
         CASE WHEN g % 7 = 0 THEN NULL WHEN g % 5 = 0 THEN E'tab\there, backslash \\ and newline\nünïcödé ✓' ELSE 'regular' END
  FROM generate_series(1, 700) g;
INSERT INTO sales.orders (customer_id, total, placed_at, tags)
  SELECT 1 + (g % 700), (g * 37 % 10000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '17 minutes', ARRAY['a', E'b\\c', NULL]
  FROM generate_series(1, 3000) g;
INSERT INTO "Odd Schema"."Mixed Case" VALUES (E'\\.', '{"k": "v\\u00e9"}'), (NULL, NULL), ('', '[]');
CREATE INDEX orders_customer ON sales.orders (customer_id);
CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE total > 90;
GRANT SELECT ON ALL TABLES IN SCHEMA sales TO app_reader;
"#;

/// A checksum of every user table's contents, one line per table.
pub fn table_checksums(c: &Cluster, db: &str) -> String {
    let tables = c.sql(
        db,
        "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    tables
        .lines()
        .map(|t| {
            format!(
                "{t} {}",
                c.sql(
                    db,
                    &format!("SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') FROM {t} x")
                )
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
