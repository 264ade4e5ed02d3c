//! Restoring into PostgreSQL: a plan of stages around the one pipeline, a journal, and
//! verification; and `drill`, the same into a throwaway cluster.
//!
//! Order of events: the backup is prepared and checked first (parts, metadata, secret, dump
//! kind), so no stage ever starts when the backup is bad. Then the plan is resolved, shown
//! (`--dry-run` stops there), confirmed when it is destructive, and run stage by stage, each
//! start and end written to the journal. The restore stage streams the backup into psql or
//! pg_restore while counting the rows of each COPY block; the verify stage compares those
//! counts with `SELECT count(*)` in the restored databases.
//!
//! Journal rules for `--resume`: finished stages are skipped; a stage that failed cleanly
//! (a command that exited non-zero, an SQL error) runs again; a stage that was interrupted
//! midway (no end recorded) or a restore stream that failed partway is reported and not
//! redone unless `--redo-interrupted` says so, because the database may hold half of it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::dump::{self, DumpKind, Origin};
use crate::error::{Error, Result, Resume};
use crate::pg::{ConnInfo, PgTools};
use crate::pipeline::{self, Report, Request, RunOptions};
use crate::plan::{PlanFile, ResolvedPlan, Stage};
use crate::stage::Action;

mod journal;
mod target;

pub use crate::dump::DumpFormat;
use crate::pg::compat::check_tool;
use crate::shutdown::Shutdown;
use crate::sink::Output;
use crate::source::Source;
pub use crate::stage::verify::{check_rows, render_checks, RowCheck};
use crate::stage::{Effects, StageContext};
use journal::{Entry, Event, JournalFile, StageState};

/// Everything a restore needs besides the backup request and the plan, by concern.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: ConnInfo,
    /// How the dump is loaded.
    pub load: LoadOptions,
    pub journal: Journal,
    pub checks: Checks,
    /// Run destructive stages without asking.
    pub yes: bool,
    pub progress: bool,
    pub shutdown: Shutdown,
}

/// How the dump is fed to PostgreSQL.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub tools: PgTools,
    /// Override the sniffed format.
    pub format: Option<DumpFormat>,
    pub on_error_stop: bool,
    /// Restore a dump of a newer major version than the target runs.
    pub allow_older_target: bool,
    pub pg_restore_args: Vec<String>,
    pub jobs: Option<u32>,
    /// `--trace FILE`: a line per unit of a plain dump's load.
    pub trace: Option<PathBuf>,
    pub spool_dir: PathBuf,
    /// Say on stderr what each connection of a parallel restore is doing (`-v`).
    pub verbose: bool,
    /// `--single-pass`: read a plain dump once, its post-data after all its data, instead
    /// of twice (`--jobs N`, N > 1).
    pub single_pass: bool,
    /// `--direct-pg-restore`: a custom archive goes to pg_restore connected to the target
    /// (with `--jobs N` spooled to a file for `pg_restore --jobs N`), not through the loader.
    pub direct_pg_restore: bool,
    /// `--database`, `--schema`, `--table`, `--into`, …: restore only this part.
    pub pick: Option<Arc<crate::pick::Pick>>,
}

/// What is checked besides what always is.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// The row-count verification stage.
    pub verify: bool,
    /// Read and check the whole backup before a plan's destructive stages, when any come
    /// before the stream (`--no-verify-first` turns it off).
    pub verify_first: bool,
    /// What each table's count may cost the target (`--verify-timeout`).
    pub verify_limits: crate::stage::verify::Limits,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            verify: true,
            verify_first: true,
            verify_limits: Default::default(),
        }
    }
}

/// The journal of a run: none, a new one, or an earlier run's to continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Journal {
    #[default]
    Off,
    /// Record this run here (the file must not hold an earlier run).
    New(PathBuf),
    /// Continue the run recorded here; `redo_interrupted` also runs again a stage that was
    /// interrupted midway, or a restore stream that failed partway.
    Resume {
        path: PathBuf,
        redo_interrupted: bool,
        /// A restore that ran to the end with SQL errors counts as done (the operator checked
        /// that the errors are harmless, e.g. `role "postgres" already exists`).
        accept_restore_errors: bool,
    },
}

/// A checked backup and a resolved plan, ready to show or run.
#[derive(Debug)]
pub struct PreparedRestore {
    pub backup: Arc<pipeline::PreparedBackup>,
    pub dump_kind: DumpKind,
    /// What made the dump, from its first bytes.
    pub origin: Origin,
    pub format: DumpFormat,
    pub plan: ResolvedPlan,
    /// The restore stage as the dry run shows it.
    pub restore_line: String,
    output: Output,
}

/// The operator's answer to "Type yes to run them".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Confirmed,
    /// Anything but `yes`.
    Declined,
    /// No terminal to ask on (and no `--yes`).
    NoTerminal,
    /// Ctrl-C or SIGTERM at the prompt.
    Interrupted(&'static str),
}

impl PreparedRestore {
    /// An empty report for [`run_restore`] to fill in.
    pub fn report(&self, opts: &RestoreOptions) -> RestoreReport {
        RestoreReport {
            backup_id: self.backup.backup.id.clone(),
            target: opts.target.describe(),
            plan: self.plan.name.clone(),
            dump_kind: self.dump_kind,
            origin: self.origin.clone(),
            format: self.format,
            stages: Vec::new(),
            effects: Effects::default(),
            verified_first: None,
            seconds: 0.0,
        }
    }

    /// The dry-run text.
    pub fn render(&self, opts: &RestoreOptions) -> String {
        let mut text = self
            .plan
            .render(&self.restore_line, &opts.target.describe());
        let before = destructive_before_stream(&self.plan, None);
        text.push_str(&if before.is_empty() {
            "\nbefore the first stage: the parts, the metadata, the secret and the last block's padding are checked; \
             no destructive stage comes before the stream, so the backup is read once, as it is restored\n"
                .to_string()
        } else if opts.checks.verify_first {
            format!(
                "\nbefore the first stage: the whole backup is read and checked (decryption, gzip CRC and size{}) \
                 because destructive stages come before the stream ({}); --no-verify-first skips this read\n",
                if self.backup.metadata.is_some() {
                    ", the sha256 and part digests of the metadata"
                } else {
                    ", the dump's sha256 computed"
                },
                before.join(", ")
            )
        } else {
            format!(
                "\nbefore the first stage: only the parts, the metadata, the secret and the last block's padding are checked \
                 (--no-verify-first): destructive stages ({}) run before the backup was read whole\n",
                before.join(", ")
            )
        });
        text
    }
}

/// How a stage ended, in a run that did not fail at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StageStatus {
    #[serde(rename = "done")]
    Done,
    /// An optional stage whose variable is not set, a rename to the same name, `--no-verify`.
    #[serde(rename = "skipped")]
    Skipped,
    /// Finished in the run the journal records.
    #[serde(rename = "already done")]
    AlreadyDone,
}

/// One stage's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    pub number: usize,
    pub name: String,
    pub status: StageStatus,
    pub detail: String,
    pub seconds: f64,
}

/// The outcome of a restore.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub backup_id: String,
    pub target: String,
    pub plan: String,
    pub dump_kind: DumpKind,
    /// What made the dump, from its first bytes.
    pub origin: Origin,
    pub format: DumpFormat,
    pub stages: Vec<StageOutcome>,
    /// What the stages found out: the target's version, the stream, the verification.
    #[serde(flatten)]
    pub effects: Effects,
    /// The whole read before the first destructive stage, when the plan needed one.
    pub verified_first: Option<Report>,
    pub seconds: f64,
}

/// Sniffs the format from the dump's first bytes.
pub fn format_of(kind: DumpKind) -> DumpFormat {
    DumpFormat::of(kind)
}

/// Whether `--trace FILE` can be written, without writing it (a dry run changes nothing): a
/// regular file or nothing at that path, in a directory we may write to.
fn check_trace(path: &std::path::Path) -> Result<()> {
    let refuse = |why: &str| Error::Output {
        what: format!("--trace {}", path.display()),
        source: std::io::Error::other(why.to_string()),
    };
    match std::fs::symlink_metadata(path) {
        Ok(md) if !md.file_type().is_file() => {
            return Err(refuse(
                "is not a regular file (a link, a directory?); give another path",
            ))
        }
        Ok(_) | Err(_) => {}
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|e| Error::Output {
        what: format!("--trace {}", path.display()),
        source: e.into(),
    })
}

/// What the dump's head says of the programs that made it (the pg_dump, the server, a
/// custom archive's version): a listing, the metadata and the first 256 KiB of the stream.
/// `drill` asks it before it chooses the server of its cluster.
pub async fn peek_origin(source: Arc<dyn Source>, req: &Request) -> Result<dump::Origin> {
    let backup = pipeline::prepare(source, req).await?;
    let head = pipeline::peek_dump(&backup, dump::ORIGIN_LEN).await?;
    Ok(dump::origin(&head))
}

/// Checks the backup and resolves the plan. Nothing is changed anywhere.
pub async fn prepare_restore(
    source: Arc<dyn Source>,
    req: &Request,
    plan_name: &str,
    plan_file: &PlanFile,
    vars: &BTreeMap<String, String>,
    opts: &RestoreOptions,
) -> Result<PreparedRestore> {
    let mut backup = pipeline::prepare(source, req).await?;
    // Before a restore this is worth a word even when the end looked whole.
    if let Some(w) = backup.tail_warning.clone() {
        backup.notices.push(w);
    }
    if opts.target.has_password() {
        // Ours, not the children's: they get it through PGPASSWORD.
        backup.notices.push(
            "warning: the password in --target is visible to other users in `ps` while we run; \
             prefer PGPASSWORD, ~/.pgpass or a service file"
                .into(),
        );
    }
    let head = pipeline::peek_dump(&backup, dump::ORIGIN_LEN).await?;
    let dump_kind = dump::sniff(&head);
    let origin = dump::origin(&head);
    let format = opts.load.format.unwrap_or(format_of(dump_kind));
    let mut builtins = BTreeMap::new();
    builtins.insert("backup_id".to_string(), backup.backup.id.clone());
    if let Some((inst, _)) = crate::catalog::split_backup_id(&backup.backup.id) {
        builtins.insert("instance_id".to_string(), inst.to_string());
    }
    builtins.insert("target_db".to_string(), opts.target.database());
    let plan = ResolvedPlan::resolve(plan_name, plan_file, vars, &builtins)?;
    let restore_stage = plan
        .stages
        .iter()
        .find_map(|s| match &s.action {
            Action::Restore(r) => Some((r.pg_restore_args.clone(), r.on_error_stop)),
            _ => None,
        })
        .expect("a plan has one restore stage");
    let on_error_stop = opts.load.on_error_stop || restore_stage.1 == Some(true);
    if format == DumpFormat::Sql {
        let ignored: Vec<String> = opts.load.pg_restore_args.clone();
        if !ignored.is_empty() {
            backup.notices.push(format!(
                "{} only apply to pg_restore (custom-format dumps); this dump is {}, restored with psql, so they are ignored",
                ignored.join(" "),
                dump_kind.describe()
            ));
        }
    }
    if opts.load.direct_pg_restore && format == DumpFormat::Sql {
        backup.notices.push(format!(
            "--direct-pg-restore applies to custom-format archives; this dump is {}, loaded through psql, so it is ignored",
            dump_kind.describe()
        ));
    }
    if opts.load.single_pass && opts.load.jobs.unwrap_or(1) < 2 {
        backup.notices.push(
            "--single-pass matters only with --jobs N (N > 1): one connection always reads the backup once"
                .into(),
        );
    }
    if let Some(t) = &opts.load.trace {
        if format == DumpFormat::Sql || !opts.load.direct_pg_restore {
            // Before any stage runs: a trace that cannot be written would fail the stream
            // after the destructive stages.
            check_trace(t)?;
        } else {
            backup.notices.push(
                "--trace records the load of plain dumps; this one goes to pg_restore, so nothing is traced"
                    .into(),
            );
        }
    }
    let what = match origin.describe() {
        Some(o) => format!("{}, {o}", dump_kind.describe()),
        None => dump_kind.describe().to_string(),
    };
    let program = match format {
        DumpFormat::Sql => opts.load.tools.find("psql")?,
        DumpFormat::Custom if opts.load.direct_pg_restore => opts.load.tools.find("pg_restore")?,
        DumpFormat::Custom => opts.load.tools.find_offline("pg_restore")?,
    };
    let program_version = PgTools::version(&program).await;
    check_tool(&origin, format, &program, program_version)?;
    // Which program reads the dump, and its version, for the dry run and the report.
    let mut with = format!(
        "{} {}({})",
        if format == DumpFormat::Sql {
            "psql"
        } else {
            "pg_restore"
        },
        program_version.map(|v| format!("{v} ")).unwrap_or_default(),
        program.display()
    );
    if format == DumpFormat::Custom && !opts.load.direct_pg_restore {
        let psql = opts.load.tools.find("psql")?;
        with.push_str(&format!(
            " and psql {}({})",
            PgTools::version(&psql)
                .await
                .map(|v| format!("{v} "))
                .unwrap_or_default(),
            psql.display()
        ));
    }
    let stop_flag = if on_error_stop {
        " -v ON_ERROR_STOP=1"
    } else {
        ""
    };
    let (output, restore_line) = match format {
        DumpFormat::Sql if opts.load.jobs.is_some_and(|j| j > 1) => {
            let jobs = opts.load.jobs.unwrap_or(1);
            let two_pass = !opts.load.single_pass;
            let (reads, when) = if two_pass {
                (
                    "read twice: first to learn each database's post-data and the size of each table's data (the read before \
                     destructive stages, when the plan has one), then to load it; ",
                    "each table's indexes and constraints over the other connections as soon as its rows are in, \
                     a foreign key once both its tables' are (largest tables first; where the post-data has INDEX ATTACH or \
                     an item not recognised, after all the data), the rest of them after the data over",
                )
            } else {
                (
                    "read once (--single-pass); ",
                    "then indexes and constraints over",
                )
            };
            let line = format!(
                "stream backup {} ({what}) {reads}into {jobs} psql connections (psql -X --quiet{} {} each), per database: \
                 the schema (pre-data) on connection 1; the COPY rows in chunks of whole rows over all {jobs}, \
                 sequence values and large objects on connection 1; {when} {jobs}, \
                 INDEX ATTACH serially, foreign keys over {jobs}, and the rest (triggers, rules, policies, comments, \
                 ACLs, materialized view refreshes …) serially in dump order; anything not recognised runs alone at its place",
                backup.backup.id,
                stop_flag,
                conn_arg(&opts.target)
            );
            (
                loader_output(opts, program, on_error_stop, jobs, two_pass, None),
                line,
            )
        }
        DumpFormat::Sql => {
            let line = format!(
                "stream backup {} ({what}) into: psql -X --quiet{} {} (each COPY of a table's data guarded: \
                 a table that fails to load loses its own rows, not the statements after them)",
                backup.backup.id,
                stop_flag,
                conn_arg(&opts.target)
            );
            (
                loader_output(opts, program, on_error_stop, 1, false, None),
                line,
            )
        }
        DumpFormat::Custom if !opts.load.direct_pg_restore => custom_through_loader(
            &backup.backup.id,
            &what,
            stop_flag,
            restore_stage.0.clone(),
            opts,
            program,
            on_error_stop,
        )?,
        DumpFormat::Custom => {
            let mut args = restore_stage.0.clone();
            for a in &opts.load.pg_restore_args {
                if !args.contains(a) {
                    args.push(a.clone());
                }
            }
            if on_error_stop && !args.iter().any(|a| a == "--exit-on-error") {
                args.push("--exit-on-error".into());
            }
            // pg_restore without -d writes SQL to stdout instead of restoring.
            let conn = if opts.target.get("dbname").is_some() {
                opts.target.clone()
            } else {
                opts.target.with_db(&opts.target.database())
            };
            let line = format!(
                "stream backup {} ({what}) into: pg_restore {}{} {}",
                backup.backup.id,
                args.join(" "),
                opts.load
                    .jobs
                    .map(|j| format!(
                        " --jobs={j} (spooled to a 0600 file in {} first)",
                        opts.load.spool_dir.display()
                    ))
                    .unwrap_or_default(),
                conn_arg(&conn)
            );
            (
                Output::PgRestore {
                    program,
                    conn,
                    args,
                    jobs: opts.load.jobs,
                    spool_dir: opts.load.spool_dir.clone(),
                },
                line,
            )
        }
    };
    let restore_line = format!("{restore_line}; with {with}");
    let (output, restore_line) = match &opts.load.pick {
        None => (output, restore_line),
        Some(pick) => pick_output(pick, dump_kind, output, restore_line, &opts.target)?,
    };
    Ok(PreparedRestore {
        backup: Arc::new(backup),
        dump_kind,
        origin,
        format,
        plan,
        restore_line,
        output,
    })
}

/// `--clean` with a pick that creates a database that exists: dropped, its sessions ended,
/// just before the stream that creates it again.
async fn drop_database(
    psql: &crate::pg::Psql,
    db: &str,
    server: Option<crate::dump::PgVersion>,
    notify: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    // WITH (FORCE) ends its sessions; PostgreSQL 13 has it.
    let force = server.is_none_or(|v| v.0 >= 130_000);
    let sql = format!(
        "DROP DATABASE IF EXISTS {}{};",
        crate::pick::quote_ident(db),
        if force { " WITH (FORCE)" } else { "" }
    );
    notify(&format!("--clean: {sql}"));
    psql.query(None, &sql).await.map(|_| ())
}

/// What a journal is the journal of: the backup, and the pick when there is one (a journal of
/// one pick does not resume another, nor the whole backup).
fn journal_key(backup_id: &str, pick: Option<&crate::pick::Pick>) -> String {
    match pick {
        None => backup_id.to_string(),
        Some(p) => format!(
            "{backup_id}\0pick {}",
            serde_json::to_string(p).unwrap_or_default()
        ),
    }
}

/// A pick in front of the loader: the output and the restore line that say so. Refused for
/// what the pick cannot read (`--direct-pg-restore` hands the archive to pg_restore), and
/// for a pick of tables or schemas of a pg_dumpall that does not name its database.
fn pick_output(
    pick: &Arc<crate::pick::Pick>,
    kind: DumpKind,
    output: Output,
    line: String,
    target: &ConnInfo,
) -> Result<(Output, String)> {
    if matches!(output, Output::PgRestore { .. }) {
        return Err(Error::Pick {
            reason: "--database, --schema, --table and --into read the SQL of the archive, and --direct-pg-restore hands the archive to pg_restore: leave --direct-pg-restore out (the archive then goes through pg_restore --file=- and the pick into the loader)".into(),
        });
    }
    if kind == DumpKind::PgDumpall && !pick.whole_databases() && pick.databases.len() != 1 {
        return Err(Error::Pick {
            reason: format!(
                "{} of a pg_dumpall: name the one database they come from with --database NAME                  (`a9s-recover verify` lists each database's schemas and tables)",
                if pick.tables.is_empty() { "--schema picks schemas" } else { "--table picks tables" }
            ),
        });
    }
    // describe() says an --into.
    let whither = match (&pick.into, kind) {
        (Some(_), _) => String::new(),
        (None, DumpKind::PgDumpall) => " (each into the database of its name)".into(),
        (None, _) => format!(" (into {})", crate::text::escape(&target.database())),
    };
    let mut pick = pick.clone();
    if kind != DumpKind::PgDumpall && pick.into.is_none() && !pick.whole_databases() {
        // Tables of a dump of one database go where the target says, as pg_restore -t -d
        // sends them, whatever database a `pg_dump --create` named.
        Arc::make_mut(&mut pick).no_connect = true;
    }
    let line = format!(
        "{line}; only what is picked: {}{whither}, the rest read and dropped",
        pick.describe()
    );
    let output = Output::Picked {
        pick,
        inner: Box::new(output),
        report: crate::sink::PickSlot::default(),
        // A custom archive is known before the output is built: split_script has it.
        archive: None,
    };
    Ok((output, line))
}

/// The connection arguments as [`ConnInfo::apply`] gives them to the child.
fn conn_arg(c: &ConnInfo) -> String {
    if c.describe().starts_with("the PG*") {
        "-w (the PG* environment defaults)".into()
    } else {
        format!("-w -d \"{}\"", c.to_conninfo())
    }
}

/// Runs a prepared restore. `notify` receives progress lines for the operator; `confirm` is
/// asked before destructive stages when `--yes` was not given.
///
/// `report` is filled in as stages run, so that a failed run still says what it did and
/// measured (`--json` prints it either way); make it with [`PreparedRestore::report`].
pub async fn run_restore(
    prepared: PreparedRestore,
    report: &mut RestoreReport,
    opts: &RestoreOptions,
    notify: &(dyn Fn(&str) + Sync),
    confirm: &(dyn Fn(&[String]) -> Confirmation + Sync),
) -> Result<()> {
    let started = Instant::now();
    let result = run_plan(prepared, report, opts, notify, confirm).await;
    report.seconds = started.elapsed().as_secs_f64();
    result
}

async fn run_plan(
    prepared: PreparedRestore,
    report: &mut RestoreReport,
    opts: &RestoreOptions,
    notify: &(dyn Fn(&str) + Sync),
    confirm: &(dyn Fn(&[String]) -> Confirmation + Sync),
) -> Result<()> {
    let PreparedRestore {
        backup,
        format,
        plan,
        output,
        dump_kind,
        ..
    } = prepared;
    let backup_id = backup.backup.id.clone();
    let target_identity = opts.target.identity();
    let mut journal = match &opts.journal {
        Journal::Off => None,
        Journal::New(path) | Journal::Resume { path, .. } => Some(JournalFile::open(
            path,
            &plan.fingerprint(&journal_key(&backup_id, output.pick()), &target_identity),
            &target_identity,
            matches!(opts.journal, Journal::Resume { .. }),
        )?),
    };
    if let (
        Some(j),
        Journal::Resume {
            accept_restore_errors: true,
            ..
        },
    ) = (&mut journal, &opts.journal)
    {
        j.accept_restore_errors = true;
    }
    let redo_interrupted = matches!(
        opts.journal,
        Journal::Resume {
            redo_interrupted: true,
            ..
        }
    );

    let psql = crate::pg::Psql::new(opts.target.clone(), &opts.load.tools, &opts.shutdown)?;
    let restore_stage = plan
        .stages
        .iter()
        .find(|s| matches!(s.action, Action::Restore(_)))
        .expect("a plan has one restore stage");
    let restore_label = format!("{} {}", restore_stage.number, restore_stage.name);
    let mut drop_first = Vec::new();
    if let Some(pick) = output.pick() {
        if !journal
            .as_ref()
            .is_some_and(|j| j.finished(restore_stage.number))
        {
            let clean = opts.load.pg_restore_args.iter().any(|a| a == "--clean");
            let t = target::check(&psql, pick, dump_kind, &opts.target, clean).await?;
            if let Some(n) = &t.notice {
                notify(n);
            }
            drop_first = t.drop;
        }
    }
    let mut pending: Vec<String> = plan
        .stages
        .iter()
        .filter(|s| s.destructive && s.skip.is_none())
        .filter(|s| {
            journal
                .as_ref()
                .map(|j| !j.finished(s.number))
                .unwrap_or(true)
        })
        .map(|s| format!("{} {}", s.number, s.name))
        .collect();
    // The manual's two steps had the whole dump on disk before anything was stopped; the
    // stream gets the same guarantee by reading the backup once before the first such stage
    // (after the cheap checks of the stages before it, such as preflight).
    let mut read_whole_first = destructive_before_stream(&plan, journal.as_ref());
    if !opts.checks.verify_first {
        read_whole_first.clear();
    }
    if !drop_first.is_empty() {
        let names: Vec<String> = drop_first
            .iter()
            .map(|d| crate::pick::quote_ident(d))
            .collect();
        pending.push(format!(
            "drop the database {} (--clean), before stage {restore_label}",
            names.join(", ")
        ));
        // Dropped only for a backup known whole: always read first.
        if !read_whole_first.contains(&restore_label) {
            read_whole_first.push(restore_label.clone());
        }
    }
    if !pending.is_empty() && !opts.yes {
        match confirm(&pending) {
            Confirmation::Confirmed => {}
            Confirmation::Declined => return Err(Error::Declined),
            Confirmation::NoTerminal => return Err(Error::NotConfirmed(pending.join(", "))),
            Confirmation::Interrupted(signal) => return Err(Error::Interrupted { signal }),
        }
    }

    let truncated: Vec<(String, String)> = plan
        .stages
        .iter()
        .filter(|s| s.skip.is_none())
        .filter_map(|s| match &s.action {
            Action::TruncateRepmgr(t) => Some((t.database.clone(), t.schema.clone())),
            _ => None,
        })
        .collect();
    let renames: Vec<(String, String)> = plan
        .stages
        .iter()
        .filter(|s| s.skip.is_none())
        .filter_map(|s| match &s.action {
            Action::RenameDatabase(r) => Some((r.from.clone(), r.to.clone())),
            _ => None,
        })
        .collect();
    let mut backup = Some(backup);
    let mut output = Some(output);
    let total = plan.stages.len();
    for stage in &plan.stages {
        let t0 = Instant::now();
        let label = format!("stage {}/{total} {}", stage.number, stage.name);
        if let Some(why) = &stage.skip {
            notify(&format!("{label}: skipped ({why})"));
            report
                .stages
                .push(outcome(stage, StageStatus::Skipped, why.clone(), t0));
            continue;
        }
        if matches!(stage.action, Action::Verify(_)) && !opts.checks.verify {
            notify(&format!("{label}: skipped (--no-verify)"));
            report.stages.push(outcome(
                stage,
                StageStatus::Skipped,
                "--no-verify".into(),
                t0,
            ));
            continue;
        }
        if let Some(j) = &journal {
            let state = match j.state(stage.number) {
                // Checks change nothing and say what holds now (the free space after a
                // failed restore): they run again.
                StageState::Finished(_) if matches!(stage.action, Action::Preflight(_)) => {
                    notify(&format!("{label}: running again (checks always run)"));
                    StageState::NotStarted
                }
                StageState::FinishedWithErrors(entry) if !redo_interrupted => {
                    return Err(Error::Journal {
                        path: j.path.clone(),
                        reason: format!(
                            "the restore (stage {}) ran to the end of the stream at {} with {} SQL \
                             error(s) (first: {}): the target may not hold the whole dump. Clean the \
                             target (drop the restored databases, or use drop-schema / pg_restore \
                             --clean), then run again with --resume --redo-interrupted; or, when you \
                             have checked that these errors are harmless (such as `role ... already \
                             exists`), with --resume --accept-restore-errors",
                            stage.number,
                            entry.at,
                            entry.sql_errors.unwrap_or(0),
                            entry.error.as_deref().unwrap_or("-")
                        ),
                    });
                }
                StageState::FinishedWithErrors(_) => {
                    notify(&format!(
                        "{label}: running again (--redo-interrupted: it ended with SQL errors last time)"
                    ));
                    StageState::NotStarted
                }
                state => state,
            };
            match state {
                StageState::Finished(entry) => {
                    if let Some(t) = &entry.tables {
                        report.effects.tables = Some(t.clone());
                    }
                    if entry.databases.is_some() {
                        report.effects.dump_databases = entry.databases.clone();
                    }
                    if entry.sha256.is_some() {
                        report.effects.plaintext_sha256 = entry.sha256.clone();
                    }
                    notify(&format!("{label}: already done (journal, {})", entry.at));
                    report.stages.push(outcome(
                        stage,
                        StageStatus::AlreadyDone,
                        entry.at.clone(),
                        t0,
                    ));
                    continue;
                }
                StageState::Interrupted(at) if !redo_interrupted => {
                    return Err(Error::Journal {
                        path: j.path.clone(),
                        reason: format!(
                            "stage {} ({}) started at {at} and never finished: the process was \
                             stopped while it ran. Check its effect by hand, then run again with \
                             --resume --redo-interrupted",
                            stage.number, stage.name
                        ),
                    });
                }
                StageState::Failed(at, err)
                    if matches!(stage.action, Action::Restore(_)) && !redo_interrupted =>
                {
                    return Err(Error::Journal {
                        path: j.path.clone(),
                        reason: format!(
                            "the restore (stage {}) failed partway at {at} ({err}): the database may hold \
                             part of the dump. Clean the target first (drop the restored \
                             databases, or use drop-schema / pg_restore --clean), then run again \
                             with --resume --redo-interrupted",
                            stage.number
                        ),
                    });
                }
                StageState::Failed(_, err) => {
                    notify(&format!(
                        "{label}: running again (it failed last time: {err})"
                    ));
                }
                StageState::Interrupted(_) => {
                    notify(&format!("{label}: running again (--redo-interrupted)"));
                }
                StageState::FinishedWithErrors(_) | StageState::NotStarted => {}
            }
        }
        if read_whole_first.contains(&format!("{} {}", stage.number, stage.name)) {
            let before = std::mem::take(&mut read_whole_first);
            let layout = read_whole(
                &backup,
                format,
                output.as_ref().and_then(Output::first_read),
                &plan,
                journal.as_ref(),
                &before,
                opts,
                notify,
                report,
            )
            .await?;
            if let (Some(l), Some(o)) = (layout, output.as_mut()) {
                o.set_layout(l);
            }
        }
        if matches!(stage.action, Action::Restore(_)) {
            for db in std::mem::take(&mut drop_first) {
                drop_database(&psql, &db, report.effects.target_version, notify).await?;
            }
        }
        notify(&format!("{label}: starting"));
        if let Some(j) = &mut journal {
            j.append(Entry::new(Event::Start, stage))?;
        }
        let result = {
            let mut ctx = StageContext {
                psql: &psql,
                target: &opts.target,
                backup_id: &backup_id,
                origin: &report.origin,
                allow_older_target: opts.load.allow_older_target,
                progress: opts.progress,
                verify_limits: opts.checks.verify_limits,
                shutdown: &opts.shutdown,
                backup: &mut backup,
                output: &mut output,
                renames: &renames,
                truncated: &truncated,
                notify,
                effects: &mut report.effects,
            };
            let exec = stage.action.run(&mut ctx);
            let r = tokio::select! {
                r = exec => r,
                reason = opts.shutdown.wait() => Err(Error::Interrupted { signal: reason }),
            };
            // A signal stops the children at once, so the stage may fail on its own first:
            // the cause is still the signal.
            match (r, opts.shutdown.reason()) {
                (Err(_), Some(signal)) => Err(Error::Interrupted { signal }),
                (r, _) => r,
            }
        };
        match result {
            Ok(detail) => {
                if let Some(j) = &mut journal {
                    let mut e = Entry::new(Event::Finish, stage);
                    if matches!(stage.action, Action::Restore(_)) {
                        e.tables = report.effects.tables.clone();
                        e.sha256 = report.effects.plaintext_sha256.clone();
                        e.databases = report.effects.dump_databases.clone();
                        if let Some(c) = report
                            .effects
                            .stream
                            .as_ref()
                            .and_then(|r| r.restore.as_ref())
                        {
                            if c.sql_errors > 0 {
                                e.sql_errors = Some(c.sql_errors);
                                e.error = Some(c.first_errors.join(" | "));
                            }
                        }
                    }
                    j.append(e)?;
                }
                notify(&format!(
                    "{label}: done{}",
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({detail})")
                    }
                ));
                report
                    .stages
                    .push(outcome(stage, StageStatus::Done, detail, t0));
            }
            Err(e) => {
                let restore_stage = plan
                    .stages
                    .iter()
                    .find(|s| matches!(s.action, Action::Restore(_)));
                if let Some(j) = &mut journal {
                    let mut entry = Entry::new(Event::Fail, stage);
                    // The first lines: a verification's table of 10,000 rows is not for the
                    // journal, nor for the resume's "it failed last time".
                    entry.error = Some(head_of(&e.to_string(), 4, 1000));
                    j.append(entry)?;
                    // Rows are missing: the restore is not done, whatever its own end said.
                    if let (Error::Verification { count, .. }, Some(r)) = (&e, restore_stage) {
                        let mut entry = Entry::new(Event::Fail, r);
                        entry.error = Some(format!(
                            "its verification found {count} table(s) with other row counts than the dump"
                        ));
                        j.append(entry)?;
                    }
                }
                if matches!(e, Error::Interrupted { .. }) {
                    return Err(e);
                }
                let resume = match (&journal, &stage.action, &e) {
                    (None, ..) => Resume::None,
                    (Some(_), Action::Restore(_), _) | (Some(_), _, Error::Verification { .. }) => {
                        Resume::RedoRestore
                    }
                    (Some(_), ..) => Resume::Continue,
                };
                return Err(Error::Stage {
                    number: stage.number,
                    name: stage.name.clone(),
                    resume,
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(())
}

/// Reads and checks the whole backup into a counting sink (decryption, gzip CRC and size,
/// the metadata's digests, the dump's databases), and checks the plan's renames against
/// those databases: all before the first destructive stage that comes before the stream.
#[allow(clippy::too_many_arguments)]
async fn read_whole(
    backup: &Option<Arc<pipeline::PreparedBackup>>,
    format: DumpFormat,
    first_read: Option<Output>,
    plan: &ResolvedPlan,
    journal: Option<&JournalFile>,
    before: &[String],
    opts: &RestoreOptions,
    notify: &(dyn Fn(&str) + Sync),
    report: &mut RestoreReport,
) -> Result<Option<Arc<crate::load::Layout>>> {
    let Some(backup) = backup else {
        return Ok(None);
    };
    notify(&format!(
        "reading the whole backup before the destructive stages that come before the stream ({}); --no-verify-first skips this",
        before.join(", ")
    ));
    let r = pipeline::run(
        backup.clone(),
        first_read.as_ref().unwrap_or(&Output::Discard),
        RunOptions {
            progress: opts.progress,
            hash: true,
            count_rows: format == DumpFormat::Sql,
            part_digests: true,
            shutdown: opts.shutdown.clone(),
        },
    )
    .await?;
    notify(&format!(
        "the backup is whole: {} of {} read and checked in {:.1}s{}",
        crate::format_bytes(r.bytes_dump),
        r.dump_kind.describe(),
        r.seconds,
        match r.metadata {
            pipeline::MetadataCheck::Matched => ", sha256 as in the metadata",
            _ => "",
        }
    ));
    report.effects.dump_databases = crate::stage::restore::dump_databases(&r, &opts.target);
    check_renames(plan, journal, report.effects.dump_databases.as_deref())?;
    let layout = r.layout.clone();
    if layout.is_some() {
        notify("the load's plan is made from this read (it is the first of two)");
    }
    report.verified_first = Some(r);
    Ok(layout)
}

/// The destructive stages that will run before the stream (not skipped, not finished in the
/// journal), as `N name`; none when the stream itself is already done.
fn destructive_before_stream(plan: &ResolvedPlan, journal: Option<&JournalFile>) -> Vec<String> {
    let finished = |n: usize| journal.is_some_and(|j| j.finished(n));
    let Some(restore) = plan
        .stages
        .iter()
        .position(|s| matches!(s.action, Action::Restore(_)))
    else {
        return Vec::new();
    };
    if finished(plan.stages[restore].number) {
        return Vec::new();
    }
    plan.stages[..restore]
        .iter()
        .filter(|s| s.destructive && s.skip.is_none() && !finished(s.number))
        .map(|s| format!("{} {}", s.number, s.name))
        .collect()
}

/// Every rename-database stage still to run must rename a database the dump restores.
fn check_renames(
    plan: &ResolvedPlan,
    journal: Option<&JournalFile>,
    dbs: Option<&[String]>,
) -> Result<()> {
    let Some(dbs) = dbs else { return Ok(()) };
    for s in &plan.stages {
        if let (Action::RenameDatabase(rename), None) = (&s.action, &s.skip) {
            if !journal.is_some_and(|j| j.finished(s.number)) {
                rename.check(dbs).map_err(|e| Error::Stage {
                    number: s.number,
                    name: s.name.clone(),
                    resume: Resume::None,
                    source: Box::new(e),
                })?;
            }
        }
    }
    Ok(())
}

/// The first `lines` lines of `text`, at most `max` characters, `…` where it was cut.
fn head_of(text: &str, lines: usize, max: usize) -> String {
    let mut out: String = text.lines().take(lines).collect::<Vec<_>>().join("\n");
    if let Some((i, _)) = out.char_indices().nth(max) {
        out.truncate(i);
        out.push('…');
    } else if text.lines().nth(lines).is_some() {
        out.push_str("\n…");
    }
    out
}

fn outcome(stage: &Stage, status: StageStatus, detail: String, t0: Instant) -> StageOutcome {
    StageOutcome {
        number: stage.number,
        name: stage.name.clone(),
        status,
        detail,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// A custom archive through `pg_restore --file=-` into the loader: the output and the
/// restore line.
fn custom_through_loader(
    backup_id: &str,
    what: &str,
    stop_flag: &str,
    mut args: Vec<String>,
    opts: &RestoreOptions,
    program: PathBuf,
    on_error_stop: bool,
) -> Result<(Output, String)> {
    for a in &opts.load.pg_restore_args {
        if !args.contains(a) {
            args.push(a.clone());
        }
    }
    // What the loader decides (ON_ERROR_STOP), or what needs a seek or a connection.
    args.retain(|a| {
        !matches!(a.as_str(), "--exit-on-error" | "-e")
            && !a.starts_with("--jobs")
            && !a.starts_with("-j")
            && !a.starts_with("--dbname")
            && !a.starts_with("-d")
    });
    let psql = opts.load.tools.find("psql")?;
    let jobs = opts.load.jobs.unwrap_or(1);
    let two_pass = jobs > 1 && !opts.load.single_pass;
    let line = format!(
        "stream backup {backup_id} ({what}) through pg_restore {}--file=- (the archive read forward, no spool) into {jobs} \
         psql connection(s) (psql -X --quiet{stop_flag} {} each), as a plain dump{}: the schema on connection 1, \
         the COPY rows in chunks of whole rows over all {jobs}, {}, the rest serially in dump order",
        args.iter().map(|a| format!("{a} ")).collect::<String>(),
        conn_arg(&opts.target),
        if two_pass {
            ", read twice (first to learn each database's post-data and table sizes)"
        } else if jobs > 1 {
            ", read once (--single-pass)"
        } else {
            ""
        },
        if two_pass {
            "each table's indexes and constraints as soon as its rows are in, foreign keys once both tables' are"
        } else {
            "then indexes, constraints and foreign keys"
        },
    );
    let output = loader_output(
        opts,
        psql,
        on_error_stop,
        jobs,
        two_pass,
        Some(crate::sink::PgRestoreScript {
            // Checked against the archive before any stage (prepare_restore).
            version: None,
            program,
            args,
        }),
    );
    Ok((output, line))
}

/// The loader's output: `jobs` psql connections to the target, with `-v` and `--trace` as
/// asked; a custom archive's SQL from `script`.
fn loader_output(
    opts: &RestoreOptions,
    program: PathBuf,
    on_error_stop: bool,
    jobs: u32,
    two_pass: bool,
    script: Option<crate::sink::PgRestoreScript>,
) -> Output {
    Output::PsqlParallel {
        program,
        conn: opts.target.clone(),
        on_error_stop,
        jobs,
        verbose: opts.load.verbose,
        status: opts.progress,
        trace: opts.load.trace.clone(),
        two_pass,
        layout: None,
        script,
    }
}
