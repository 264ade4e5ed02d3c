//! Talking to PostgreSQL through its own client programs.
//!
//! Owns: parsing a libpq connection string (URI or `key=value`), keeping its password out of
//! every child's argv (it travels in `PGPASSWORD`), and finding `psql`/`pg_restore`/`initdb`.
//! (`restore` runs the SQL, through psql.) Using the real clients means libpq semantics for free: PG*
//! variables, `.pgpass`, `sslmode`, service files, unix sockets.
//! Does not own: which SQL a stage runs (`plan`) or streaming a dump (`sink`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dump::PgVersion;
use crate::error::{Error, Result};
use crate::secret::Secret;

pub mod cluster;
pub mod compat;

/// A parsed connection string without its password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    params: Vec<(String, String)>,
    password: Option<Secret>,
}

impl std::fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnInfo")
            .field("params", &self.params)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ConnInfo {
    /// Parses `postgresql://user:pw@host:port/db?sslmode=require` or
    /// `host=h port=5432 dbname=db user=u password='p w'`. An empty string means "libpq
    /// defaults" (the PG* environment variables).
    pub fn parse(dsn: &str) -> Result<ConnInfo> {
        let dsn = dsn.trim();
        let mut c = ConnInfo::default();
        if dsn.is_empty() {
            return Ok(c);
        }
        let bad = |why: &str| Error::Config(format!("cannot read the connection string: {why}"));
        if let Some(rest) = dsn
            .strip_prefix("postgresql://")
            .or_else(|| dsn.strip_prefix("postgres://"))
        {
            let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (authority, path) = main.split_once('/').unwrap_or((main, ""));
            let hostport = match authority.rsplit_once('@') {
                Some((userinfo, hp)) => {
                    let (user, pw) = match userinfo.split_once(':') {
                        Some((u, p)) => (u, Some(p)),
                        None => (userinfo, None),
                    };
                    if !user.is_empty() {
                        c.set("user", &percent_decode(user));
                    }
                    if let Some(p) = pw {
                        c.password = Some(Secret::new(percent_decode(p)));
                    }
                    hp
                }
                None => authority,
            };
            if !hostport.is_empty() {
                // host:port, [v6]:port, or a comma-separated list (kept as libpq takes it).
                let (host, port) = if hostport.contains(',') {
                    (hostport.to_string(), None)
                } else if let Some(v6) = hostport.strip_prefix('[') {
                    let (h, after) = v6
                        .split_once(']')
                        .ok_or_else(|| bad("unclosed [ in host"))?;
                    (h.to_string(), after.strip_prefix(':').map(str::to_string))
                } else {
                    match hostport.rsplit_once(':') {
                        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => {
                            (h.to_string(), Some(p.to_string()))
                        }
                        _ => (hostport.to_string(), None),
                    }
                };
                if !host.is_empty() {
                    c.set("host", &percent_decode(&host));
                }
                if let Some(p) = port.filter(|p| !p.is_empty()) {
                    c.set("port", &p);
                }
            }
            if !path.is_empty() {
                c.set("dbname", &percent_decode(path));
            }
            for kv in query.split('&').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let (k, v) = (percent_decode(k), percent_decode(v));
                if k == "password" {
                    c.password = Some(Secret::new(v));
                } else {
                    c.set(&k, &v);
                }
            }
            return Ok(c);
        }
        // key = value pairs; values may be single-quoted with \' and \\ escapes.
        let mut chars = dsn.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut key = String::new();
            while let Some(&ch) = chars.peek() {
                if ch == '=' || ch.is_whitespace() {
                    break;
                }
                key.push(ch);
                chars.next();
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('=') {
                return Err(bad(&format!("expected key=value, found {key:?} without =")));
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'\'') {
                chars.next();
                let mut closed = false;
                while let Some(ch) = chars.next() {
                    match ch {
                        '\\' => value.extend(chars.next()),
                        '\'' => {
                            closed = true;
                            break;
                        }
                        ch => value.push(ch),
                    }
                }
                if !closed {
                    return Err(bad("unterminated quoted value"));
                }
            } else {
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() {
                        break;
                    }
                    value.push(ch);
                    chars.next();
                }
            }
            if key == "password" {
                c.password = Some(Secret::new(value));
            } else {
                c.set(&key, &value);
            }
        }
        Ok(c)
    }

    /// A connection from `key`, `value` pairs (no password).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> ConnInfo {
        let mut c = ConnInfo::default();
        for (k, v) in pairs {
            c.set(k, v);
        }
        c
    }

    fn set(&mut self, k: &str, v: &str) {
        match self.params.iter_mut().find(|(key, _)| key == k) {
            Some(p) => p.1 = v.to_string(),
            None => self.params.push((k.to_string(), v.to_string())),
        }
    }

    /// A parameter's value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// The same connection to another database.
    pub fn with_db(&self, db: &str) -> ConnInfo {
        let mut c = self.clone();
        c.set("dbname", db);
        c
    }

    /// The database this connects to: `dbname`, else `PGDATABASE`, else the user name.
    pub fn database(&self) -> String {
        self.get("dbname")
            .map(str::to_string)
            .or_else(|| std::env::var("PGDATABASE").ok())
            .or_else(|| self.get("user").map(str::to_string))
            .or_else(|| std::env::var("PGUSER").ok())
            .unwrap_or_else(|| "postgres".into())
    }

    /// Which server, database and user this reaches, the PG* defaults filled in: what a
    /// journal must match before `--resume` may continue it. No password.
    pub fn identity(&self) -> String {
        let get = |k: &str, env: &str| {
            self.get(k)
                .map(str::to_string)
                .or_else(|| std::env::var(env).ok())
                .unwrap_or_default()
        };
        format!(
            "service={} host={} hostaddr={} port={} dbname={} user={}",
            get("service", "PGSERVICE"),
            get("host", "PGHOST"),
            get("hostaddr", "PGHOSTADDR"),
            get("port", "PGPORT"),
            self.database(),
            get("user", "PGUSER"),
        )
    }

    /// Whether the connection string itself held a password (it is in our own argv).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// `key='value' ...` without the password: safe to put in argv and to print.
    pub fn to_conninfo(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.params {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(k);
            s.push_str("='");
            for ch in v.chars() {
                if ch == '\'' || ch == '\\' {
                    s.push('\\');
                }
                s.push(ch);
            }
            s.push('\'');
        }
        s
    }

    /// For messages: `host=... dbname=...` or `the PG* defaults`.
    pub fn describe(&self) -> String {
        if self.params.is_empty() {
            "the PG* environment defaults".into()
        } else {
            self.to_conninfo()
        }
    }

    /// Gives a child the connection: `-d CONNINFO` in argv, the password in its environment.
    /// The backup secret is ours alone: it is taken out of the child's environment.
    pub fn apply(&self, cmd: &mut Command) {
        // Never prompt: the child runs in its own process group, away from the terminal.
        cmd.env_remove("A9S_SECRET").arg("-w");
        if !self.params.is_empty() {
            cmd.arg("-d").arg(self.to_conninfo());
        }
        if let Some(p) = &self.password {
            use std::os::unix::ffi::OsStrExt;
            cmd.env("PGPASSWORD", std::ffi::OsStr::from_bytes(p.expose()));
        }
    }
}

/// Where PostgreSQL's client and server programs are.
#[derive(Debug, Clone, Default)]
pub struct PgTools {
    /// `--pg-bin DIR`, if given.
    pub bin_dir: Option<PathBuf>,
}

impl PgTools {
    /// Finds `name`: in `--pg-bin`, on PATH, else the newest `/usr/lib/postgresql/*/bin`.
    pub fn find(&self, name: &str) -> Result<PathBuf> {
        self.find_as(name, name == "psql")
    }

    /// Finds `name` for a use that connects to nothing (pg_restore writing a custom
    /// archive's SQL): past Debian's wrapper to the newest installed one too, which reads
    /// every archive an older one does.
    pub fn find_offline(&self, name: &str) -> Result<PathBuf> {
        self.find_as(name, true)
    }

    fn find_as(&self, name: &str, unwrap: bool) -> Result<PathBuf> {
        if let Some(d) = &self.bin_dir {
            let p = d.join(name);
            return if p.exists() {
                Ok(p)
            } else {
                Err(Error::ToolMissing {
                    tool: name.into(),
                    hint: format!("it is not in --pg-bin {}", d.display()),
                })
            };
        }
        if let Some(paths) = std::env::var_os("PATH") {
            for d in std::env::split_paths(&paths) {
                let p = d.join(name);
                if p.is_file() {
                    return Ok(if unwrap { past_wrapper(p, name) } else { p });
                }
            }
        }
        newest_server_bin()
            .map(|d| d.join(name))
            .filter(|p| p.exists())
            .ok_or_else(|| Error::ToolMissing {
                tool: name.into(),
                hint: "install the PostgreSQL client (apt-get install postgresql-client) or pass --pg-bin DIR".into(),
            })
    }

    /// The version a PostgreSQL program reports (`psql (PostgreSQL) 15.18 (Debian ...)`), or
    /// None when it does not say one we can read.
    pub async fn version(program: &Path) -> Option<PgVersion> {
        let mut cmd = Command::new(program);
        cmd.arg("--version").env_remove("A9S_SECRET");
        let (_, text, _) = crate::child::output(cmd, None, &crate::child::Children::default())
            .await
            .ok()?;
        let (_, rest) = text.split_once("(PostgreSQL) ")?;
        PgVersion::parse(rest)
    }
}

/// The first psql release of each major version that knows `\restrict` (August 2025).
pub fn psql_knows_restrict(psql: PgVersion) -> bool {
    let minimum = match psql.0 / 10_000 {
        0..=12 => return false,
        13 => 130022,
        14 => 140019,
        15 => 150014,
        16 => 160010,
        17 => 170006,
        _ => return true,
    };
    psql.0 >= minimum
}

/// The `bin` directory of the newest PostgreSQL under /usr/lib/postgresql.
/// Debian's `/usr/bin/psql` is a link to `pg_wrapper`, a Perl script that runs the newest
/// installed `/usr/lib/postgresql/*/bin/psql` (its manual: psql is downwards compatible). A
/// restore starts a psql per connection and database, and the script costs each start 30-50
/// ms of a core, so psql is taken from where the wrapper would take it, unless `PGCLUSTER`
/// asks the wrapper for something else. A program that connects keeps the wrapper (its choice
/// depends on the cluster), except psql, for which the wrapper always takes the newest.
fn past_wrapper(found: PathBuf, name: &str) -> PathBuf {
    let wrapped = std::fs::canonicalize(&found)
        .is_ok_and(|p| p.file_name().is_some_and(|f| f == "pg_wrapper"));
    if !wrapped || std::env::var_os("PGCLUSTER").is_some() {
        return found;
    }
    newest_with(name).unwrap_or(found)
}

/// The newest `/usr/lib/postgresql/<major>/bin/<name>` there is.
fn newest_with(name: &str) -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((v, p))
        })
        .max()
        .map(|(_, p)| p)
}

pub fn newest_server_bin() -> Option<PathBuf> {
    newest_with("postgres").and_then(|p| p.parent().map(Path::to_path_buf))
}

/// Where psql is and how to reach the target; `restore` runs SQL through it (`ON_ERROR_STOP`,
/// no psqlrc, unaligned tab-separated rows).
#[derive(Debug, Clone)]
pub struct Psql {
    pub conn: ConnInfo,
    pub program: PathBuf,
    /// Where its children are registered, so that Ctrl-C and SIGTERM stop them.
    children: crate::child::Children,
}

impl Psql {
    /// Finds psql.
    pub fn new(conn: ConnInfo, tools: &PgTools, shutdown: &crate::Shutdown) -> Result<Self> {
        Ok(Psql {
            conn,
            program: tools.find("psql")?,
            children: shutdown.children().clone(),
        })
    }

    /// Runs SQL (`ON_ERROR_STOP`) on `db` (default: the connection's) and returns the rows,
    /// tab-separated fields split. psql runs as a child that is killed if the caller gives
    /// up (an interrupted restore).
    pub async fn query(&self, db: Option<&str>, sql: &str) -> Result<Vec<Vec<String>>> {
        let (conn, status, stdout, stderr) = self.run(db, sql, true).await?;
        if !status.success() {
            return Err(Error::Child {
                program: "psql".into(),
                doing: format!("running SQL on {}", conn.describe()),
                status: status.to_string(),
                stderr: stderr.trim().to_string(),
            });
        }
        Ok(rows(&stdout))
    }

    /// Runs a script of statements on `db` that goes on after a failed statement (no
    /// `ON_ERROR_STOP`): each statement in a transaction of its own, as psql runs them. Gives
    /// the rows of the statements that succeeded and psql's stderr (an `ERROR:` line for each
    /// statement that failed) even when psql itself failed partway (a connection lost).
    pub async fn script(&self, db: Option<&str>, sql: &str) -> Result<ScriptOutput> {
        let (_, status, stdout, stderr) = self.run(db, sql, false).await?;
        Ok(ScriptOutput {
            completed: status.success(),
            rows: rows(&stdout),
            stderr,
        })
    }

    async fn run(
        &self,
        db: Option<&str>,
        sql: &str,
        stop: bool,
    ) -> Result<(ConnInfo, std::process::ExitStatus, String, String)> {
        let conn = match db {
            Some(d) => self.conn.with_db(d),
            None => self.conn.clone(),
        };
        let mut std_cmd = std::process::Command::new(&self.program);
        std_cmd.args(["-X", "-q", "-A", "-t", "-F", "\t"]);
        if stop {
            std_cmd.args(["-v", "ON_ERROR_STOP=1"]);
        }
        conn.apply(&mut std_cmd);
        // Our literals (quote_literal: names from the dump and the plan) are standard
        // strings: on a server with standard_conforming_strings off, a backslash in a name
        // would end the literal early. The operator's own PGOPTIONS are kept.
        let mut options = std::env::var("PGOPTIONS").unwrap_or_default();
        options.push_str(" -c standard_conforming_strings=on");
        std_cmd.env("PGOPTIONS", options.trim_start());
        let (status, stdout, stderr) =
            crate::child::output(std_cmd, Some(sql.as_bytes().to_vec()), &self.children).await?;
        Ok((conn, status, stdout, stderr))
    }
}

/// What a [`Psql::script`] printed.
#[derive(Debug)]
pub struct ScriptOutput {
    /// psql ran to the end of the script (it exits non-zero when it cannot connect or loses
    /// the connection, not for a failed statement).
    pub completed: bool,
    pub rows: Vec<Vec<String>>,
    pub stderr: String,
}

/// psql's unaligned, tuples-only output: a row a line, fields split at tabs.
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// `psql -X --quiet [-v ON_ERROR_STOP=1]` reaching `conn`: the restoring psql, and each
/// connection of a parallel restore.
pub(crate) fn psql_command(program: &Path, conn: &ConnInfo, on_error_stop: bool) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-X", "--quiet"]);
    if on_error_stop {
        cmd.args(["-v", "ON_ERROR_STOP=1"]);
    }
    conn.apply(&mut cmd);
    cmd
}

/// Quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Checks that a path is a directory we can use.
pub fn ensure_dir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::Output {
        what: p.display().to_string(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_is_taken_past_debians_wrapper_to_the_newest_installed() {
        let dir = std::env::temp_dir().join(format!("a9s-wrapper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pg_wrapper"), "#!/usr/bin/perl\n").unwrap();
        let link = dir.join("psql");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("pg_wrapper", &link).unwrap();
        let got = past_wrapper(link.clone(), "psql");
        match newest_with("psql") {
            Some(p) => assert_eq!(got, p),
            None => assert_eq!(got, link),
        }
        // A program that is not the wrapper is left as found.
        let plain = dir.join("psql-15");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(past_wrapper(plain.clone(), "psql"), plain);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uri_with_password_keeps_it_out_of_the_conninfo() {
        let c = ConnInfo::parse("postgresql://app:s%40cret@db.example:6432/shop?sslmode=require")
            .unwrap();
        assert_eq!(c.get("host"), Some("db.example"));
        assert_eq!(c.get("port"), Some("6432"));
        assert_eq!(c.get("user"), Some("app"));
        assert_eq!(c.get("dbname"), Some("shop"));
        assert_eq!(c.get("sslmode"), Some("require"));
        assert_eq!(c.password.as_ref().unwrap().expose(), b"s@cret");
        let ci = c.to_conninfo();
        assert!(!ci.contains("cret"), "{ci}");
        assert!(!format!("{c:?}").contains("cret"));
        assert_eq!(c.with_db("postgres").get("dbname"), Some("postgres"));
    }

    #[test]
    fn keyword_value_with_quotes() {
        let c = ConnInfo::parse("host=/tmp port = 5433 dbname='my db' password='p\\'w' user=x")
            .unwrap();
        assert_eq!(c.get("host"), Some("/tmp"));
        assert_eq!(c.get("port"), Some("5433"));
        assert_eq!(c.get("dbname"), Some("my db"));
        assert_eq!(c.password.as_ref().unwrap().expose(), b"p'w");
        assert_eq!(
            c.to_conninfo(),
            "host='/tmp' port='5433' dbname='my db' user='x'"
        );
        assert!(ConnInfo::parse("host").is_err());
        assert!(ConnInfo::parse("password='open").is_err());
        assert_eq!(ConnInfo::parse("").unwrap(), ConnInfo::default());
    }

    #[test]
    fn ipv6_and_socket_uris() {
        let c = ConnInfo::parse("postgres://[::1]:5432/db").unwrap();
        assert_eq!(c.get("host"), Some("::1"));
        let s = ConnInfo::parse("postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql").unwrap();
        assert_eq!(s.get("host"), Some("/var/run/postgresql"));
        assert_eq!(s.get("dbname"), Some("db"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
