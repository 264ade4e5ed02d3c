//! Real PostgreSQL clusters for the tests: initdb into a temporary directory with the server
//! binaries under /usr/lib/postgresql/*/bin, the unix socket in that directory (no TCP), run
//! as user postgres when the tests run as root; stopped and removed on drop. Under `CI=true`
//! a cluster that cannot start fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::servers::free_port;
use super::RunExt;

#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub bin: PathBuf,
    as_postgres: bool,
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl Cluster {
    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn checked(mut c: Command, what: &str) -> Result<Output, String> {
        let out = c
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "{what}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn new_dir(as_postgres: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let st = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
        dir
    }

    fn start_in(
        dir: tempfile::TempDir,
        bin: PathBuf,
        as_postgres: bool,
    ) -> Result<Cluster, String> {
        let c = Cluster {
            port: free_port(),
            dir,
            bin,
            as_postgres,
        };
        let opts = format!(
            "-p {} -k {} -c listen_addresses='' -c fsync=off -c wal_level=replica -c max_wal_senders=5",
            c.port,
            c.dir.path().display()
        );
        let mut start = c.cmd("pg_ctl");
        start
            .args(["-D"])
            .arg(c.data())
            .args(["-o", &opts, "-l"])
            .arg(c.dir.path().join("log"))
            .args(["-w", "start"]);
        Self::checked(start, "pg_ctl start").map_err(|e| {
            format!(
                "{e}\n{}",
                std::fs::read_to_string(c.dir.path().join("log")).unwrap_or_default()
            )
        })?;
        Ok(c)
    }

    /// A fresh primary.
    pub fn start() -> Option<Cluster> {
        let Some(bin) = a9s_recover::pg::newest_server_bin() else {
            return super::servers::unavailable_pub(
                "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin",
            );
        };
        let as_postgres = is_root();
        let dir = Self::new_dir(as_postgres);
        let mut init = if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join("initdb"));
            c
        } else {
            Command::new(bin.join("initdb"))
        };
        init.arg("-D").arg(dir.path().join("data")).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]);
        if let Err(e) = Self::checked(init, "initdb") {
            return super::servers::unavailable_pub(&e);
        }
        match Self::start_in(dir, bin, as_postgres) {
            Ok(c) => Some(c),
            Err(e) => super::servers::unavailable_pub(&e),
        }
    }

    /// A streaming standby of this cluster (pg_basebackup -R).
    pub fn standby(&self) -> Cluster {
        let dir = Self::new_dir(self.as_postgres);
        let mut bb = self.cmd("pg_basebackup");
        bb.arg("-D")
            .arg(dir.path().join("data"))
            .args(["-R", "-X", "stream", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres"]);
        Self::checked(bb, "pg_basebackup").unwrap();
        Self::start_in(dir, self.bin.clone(), self.as_postgres).unwrap()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A libpq key=value string for `db`.
    pub fn dsn(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.dir.path().display(),
            self.port
        )
    }

    /// Runs SQL with psql; returns the unaligned, tuples-only output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
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
        let out = Command::new(self.bin.join(tool))
            .args(["-h"])
            .arg(self.dir.path())
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
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = self.cmd("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = stop.status();
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
