//! A throwaway PostgreSQL cluster: `drill` restores into one, and the test suite starts its
//! clusters with it. Owns initdb, start and stop with the local server binaries, as user
//! postgres when we are root; the socket in the cluster's own directory, no TCP.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pg::{ConnInfo, PgTools};

/// A throwaway PostgreSQL cluster for `drill`: initdb into a temporary directory, the unix
/// socket in that directory (no TCP), run as user postgres when we are root. Stopped and
/// removed on drop unless kept.
#[derive(Debug)]
pub struct TempCluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
    keep: bool,
    stopped: bool,
    opts: ClusterOptions,
}

/// The server binaries a drill's cluster is made with, and why those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChoice {
    /// The directory of initdb, pg_ctl and postgres.
    pub bin: PathBuf,
    pub version: crate::dump::PgVersion,
    /// Why this one: `--server-bin`, `--pg-bin`, or which fits the dump.
    pub why: String,
}

/// Whether `dir` holds a server: initdb, pg_ctl and postgres.
fn holds_server(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|p| dir.join(p).is_file())
}

/// The usual places of PostgreSQL servers: Debian's `/usr/lib/postgresql/N/bin`, the PGDG
/// RPMs' `/usr/pgsql-N/bin`, a source build's `/usr/local/pgsql/bin`, and the directory of
/// an initdb on PATH.
fn usual_servers() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (parent, prefix, suffix) in [
        ("/usr/lib/postgresql", "", "bin"),
        ("/usr", "pgsql-", "bin"),
    ] {
        if let Ok(rd) = std::fs::read_dir(parent) {
            for e in rd.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.strip_prefix(prefix).is_some_and(|v| !v.is_empty()) {
                    out.push(e.path().join(suffix));
                }
            }
        }
    }
    out.push(PathBuf::from("/usr/local/pgsql/bin"));
    if let Some(paths) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&paths) {
            let initdb = d.join("initdb");
            if initdb.is_file() {
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                out.extend(real.parent().map(Path::to_path_buf));
            }
        }
    }
    out.retain(|d| holds_server(d));
    out.sort();
    out.dedup();
    out
}

/// Picks the server for a drill of a dump made as `origin` says: `--server-bin`; else
/// `--pg-bin` when it holds a server; else, of the usual places, one of the major version
/// the dump needs (the newer of its pg_dump's and its server's), else the newest that takes
/// it; with `allow_older` and none that takes it, the one of the source server's major, else
/// the newest. None that fits: what to install.
pub async fn choose_server(
    server_bin: Option<&Path>,
    pg_bin: Option<&Path>,
    origin: &crate::dump::Origin,
    allow_older: bool,
) -> Result<ServerChoice> {
    let version = |bin: PathBuf| async move {
        let v = PgTools::version(&bin.join("postgres")).await;
        (bin, v)
    };
    if let Some(d) = server_bin {
        if !holds_server(d) {
            return Err(Error::ToolMissing {
                tool: "the PostgreSQL server (initdb, pg_ctl, postgres)".into(),
                hint: format!("they are not all in --server-bin {}", d.display()),
            });
        }
        let (bin, v) = version(d.to_path_buf()).await;
        return Ok(ServerChoice {
            bin,
            version: v.unwrap_or(crate::dump::PgVersion(0)),
            why: "--server-bin".into(),
        });
    }
    let needed = origin.newest_major();
    let mut found = Vec::new();
    if let Some(d) = pg_bin.filter(|d| holds_server(d)) {
        // Its server, when it takes the dump (else the usual places are looked at).
        let (bin, v) = version(d.to_path_buf()).await;
        if allow_older || needed.is_none() || v.is_some_and(|v| Some(v.major()) >= needed) {
            return Ok(ServerChoice {
                bin,
                version: v.unwrap_or(crate::dump::PgVersion(0)),
                why: "--pg-bin".into(),
            });
        }
        if let Some(v) = v {
            found.push((v, bin));
        }
    }
    for d in usual_servers() {
        if let (bin, Some(v)) = version(d).await {
            found.push((v, bin));
        }
    }
    // Newest first.
    found.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
    let own = found
        .iter()
        .find(|(v, _)| needed.is_some_and(|n| v.major() == n));
    let newer = found
        .iter()
        .find(|(v, _)| needed.is_none_or(|n| v.major() >= n));
    let pick = match own.or(newer) {
        Some(f) => Some((
            f.clone(),
            match needed {
                Some(n) if f.0.major() == n => "the dump's own major version".to_string(),
                Some(_) => "the newest here, none of the dump's own major version".to_string(),
                None => "the newest here (the dump does not say its version)".to_string(),
            },
        )),
        None if allow_older => origin
            .server
            .and_then(|s| found.iter().find(|(v, _)| v.major() == s.major()))
            .map(|f| {
                (
                    f.clone(),
                    "the source server's major version (--allow-older-target)".to_string(),
                )
            })
            .or_else(|| {
                found.first().map(|f| {
                    (
                        f.clone(),
                        "the newest here (--allow-older-target)".to_string(),
                    )
                })
            }),
        None => None,
    };
    match pick {
        Some(((version, bin), why)) => Ok(ServerChoice { bin, version, why }),
        None => Err(Error::Incompatible(
            crate::error::Incompatibility::NoDrillServer {
                made: origin
                    .describe()
                    .map(|m| format!(" made by {m}"))
                    .unwrap_or_default(),
                needed: needed.map(|n| n.major_name()).unwrap_or_default(),
                found: if found.is_empty() {
                    "no PostgreSQL server was found".into()
                } else {
                    format!(
                        "found {}",
                        found
                            .iter()
                            .map(|(v, b)| format!("PostgreSQL {v} ({})", b.display()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            },
        )),
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// How to make a [`TempCluster`].
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Where its directory goes (default: the system temp directory).
    pub parent: Option<PathBuf>,
    /// More server settings, `name=value`, each passed as `-c` after ours.
    pub settings: Vec<String>,
}

impl TempCluster {
    /// initdb and start a cluster under `parent` (default: the system temp directory).
    /// Blocking: an async caller runs it on a blocking thread.
    pub fn start(tools: &PgTools, parent: Option<&Path>) -> Result<TempCluster> {
        Self::start_with(
            tools,
            &ClusterOptions {
                parent: parent.map(Path::to_path_buf),
                settings: Vec::new(),
            },
        )
    }

    /// initdb and start a cluster as `opts` say.
    pub fn start_with(tools: &PgTools, opts: &ClusterOptions) -> Result<TempCluster> {
        let initdb = tools
            .find("initdb")
            .or_else(|_| {
                crate::pg::newest_server_bin()
                    .map(|d| d.join("initdb"))
                    .filter(|p| p.exists())
                    .ok_or(Error::ToolMissing {
                        tool: "initdb".into(),
                        hint: "install the PostgreSQL server (apt-get install postgresql) or pass --pg-bin DIR".into(),
                    })
            })?;
        // A link to initdb (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) stands
        // for the directory that holds pg_ctl and pg_basebackup beside it.
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        let bin = initdb.parent().expect("a directory").to_path_buf();
        let c = Self::empty(bin, opts)?;
        c.sh(
            "initdb",
            &[
                "-D".into(),
                c.data_dir().display().to_string(),
                "-U".into(),
                "postgres".into(),
                "-A".into(),
                "trust".into(),
                "-E".into(),
                "UTF8".into(),
                "--locale=C.UTF-8".into(),
                "--no-sync".into(),
            ],
            true,
        )?;
        c.run()
    }

    /// A streaming standby of this cluster (`pg_basebackup -R`), started.
    pub fn standby(&self) -> Result<TempCluster> {
        let c = Self::empty(self.bin.clone(), &self.opts)?;
        c.sh(
            "pg_basebackup",
            &[
                "-D".into(),
                c.data_dir().display().to_string(),
                "-R".into(),
                "-X".into(),
                "stream".into(),
                "-h".into(),
                self.dir.display().to_string(),
                "-p".into(),
                self.port.to_string(),
                "-U".into(),
                "postgres".into(),
            ],
            true,
        )?;
        c.run()
    }

    /// A directory for a cluster (owned by postgres when we are root) and a free port.
    fn empty(bin: PathBuf, opts: &ClusterOptions) -> Result<TempCluster> {
        let parent = opts.parent.clone().unwrap_or_else(std::env::temp_dir);
        let dir = parent.join(format!("a9s-drill-{}", crate::time::unique_suffix()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::Output {
            what: dir.display().to_string(),
            source: e,
        })?;
        let as_postgres = is_root();
        let c = TempCluster {
            dir,
            port: std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or(54329),
            bin,
            as_postgres,
            keep: false,
            stopped: true,
            opts: opts.clone(),
        };
        if as_postgres {
            c.sh(
                "chown",
                &["postgres:".into(), c.dir.display().to_string()],
                false,
            )?;
        }
        Ok(c)
    }

    /// Starts the server of a cluster directory that holds `data/`.
    fn run(mut self) -> Result<TempCluster> {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses='' -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        for s in &self.opts.settings {
            opts.push_str(&format!(" -c {s}"));
        }
        self.sh(
            "pg_ctl",
            &[
                "-D".into(),
                self.data_dir().display().to_string(),
                "-o".into(),
                opts,
                "-l".into(),
                self.dir.join("server.log").display().to_string(),
                "-w".into(),
                "start".into(),
            ],
            true,
        )
        .map_err(|e| match e {
            Error::Child {
                program,
                doing,
                status,
                stderr,
            } => Error::Child {
                program,
                doing,
                status,
                stderr: format!(
                    "{stderr}\n{}",
                    std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
                ),
            },
            other => other,
        })?;
        self.stopped = false;
        Ok(self)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory of the server binaries (and of the client programs beside them).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A client program of this cluster's version: beside the server binaries, else where
    /// [`PgTools`] finds it.
    pub fn program(&self, name: &str) -> PathBuf {
        let beside = self.bin.join(name);
        if beside.exists() {
            return beside;
        }
        PgTools::default().find(name).unwrap_or(beside)
    }

    fn sh(&self, program: &str, args: &[String], pg: bool) -> Result<()> {
        let exe = if pg {
            self.bin.join(program).display().to_string()
        } else {
            program.to_string()
        };
        let mut cmd = if self.as_postgres && pg {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        cmd.args(args).current_dir(&self.dir);
        let out = crate::child::run_blocking(cmd).map_err(|e| Error::Child {
            program: program.into(),
            doing: "starting".into(),
            status: e.to_string(),
            stderr: String::new(),
        })?;
        if !out.status.success() {
            return Err(Error::Child {
                program: program.into(),
                doing: "setting up the drill cluster".into(),
                status: out.status.to_string(),
                stderr: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(())
    }

    /// How to connect: the socket directory, the port, user postgres, database postgres.
    pub fn conninfo(&self) -> ConnInfo {
        ConnInfo::from_pairs(&[
            ("host", &self.dir.display().to_string()),
            ("port", &self.port.to_string()),
            ("user", "postgres"),
            ("dbname", "postgres"),
        ])
    }

    /// Keep the cluster running after the drill.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        if !self.stopped {
            let data = self.data_dir().display().to_string();
            let _ = self.sh(
                "pg_ctl",
                &[
                    "-D".into(),
                    data,
                    "-m".into(),
                    "immediate".into(),
                    "-w".into(),
                    "stop".into(),
                ],
                true,
            );
            self.stopped = true;
        }
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if !self.keep {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
