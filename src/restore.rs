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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::dump::{self, DumpKind, Origin, PgVersion, TableRows};
use crate::error::{Error, Result};
use crate::pg::{ConnInfo, PgTools};
use crate::pipeline::{self, Report, Request, RunOptions};
use crate::plan::{Action, PlanFile, ResolvedPlan, Stage};

pub mod compat;
mod journal;
pub mod verify;

use crate::shutdown::Shutdown;
use crate::sink::Output;
use crate::source::Source;
use compat::{check_target_version, check_tool};
use journal::{Entry, Event, Journal, StageState};
pub use verify::{check_rows, render_checks, RowCheck};

/// How the dump is fed to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// Plain SQL into psql.
    Sql,
    /// Custom format into pg_restore.
    Custom,
}

/// Everything a restore needs besides the backup request and the plan.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: ConnInfo,
    pub tools: PgTools,
    /// Override the sniffed format.
    pub format: Option<DumpFormat>,
    pub on_error_stop: bool,
    /// Restore a dump of a newer major version than the target runs.
    pub allow_older_target: bool,
    pub pg_restore_args: Vec<String>,
    pub jobs: Option<u32>,
    pub spool_dir: PathBuf,
    pub journal: Option<PathBuf>,
    pub resume: bool,
    pub redo_interrupted: bool,
    pub verify: bool,
    /// Read and check the whole backup before a plan's destructive stages run, when any come
    /// before the stream (`--no-verify-first` turns it off).
    pub verify_first: bool,
    pub yes: bool,
    pub progress: bool,
    pub shutdown: Shutdown,
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
            target_version: None,
            format: self.format,
            stages: Vec::new(),
            stream: None,
            plaintext_sha256: None,
            verification: None,
            mismatches: 0,
            verified_first: None,
            dump_databases: None,
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
        } else if opts.verify_first {
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

/// One stage's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    pub number: usize,
    pub name: String,
    /// `done`, `skipped`, or `already done` (from the journal).
    pub status: String,
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
    /// The target server's version, once a stage asked it.
    pub target_version: Option<PgVersion>,
    pub format: DumpFormat,
    pub stages: Vec<StageOutcome>,
    /// The stream, when this run streamed it (not when resumed past it).
    pub stream: Option<Report>,
    pub plaintext_sha256: Option<String>,
    pub verification: Option<Vec<RowCheck>>,
    pub mismatches: usize,
    /// The whole read before the first destructive stage, when the plan needed one.
    pub verified_first: Option<Report>,
    /// The databases the dump restores into (its `\connect` targets; the target database
    /// for a dump of one database), once known: plain dumps only.
    pub dump_databases: Option<Vec<String>>,
    pub seconds: f64,
}

/// Sniffs the format from the dump's first bytes.
pub fn format_of(kind: DumpKind) -> DumpFormat {
    match kind {
        DumpKind::Custom => DumpFormat::Custom,
        _ => DumpFormat::Sql,
    }
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
    let head = pipeline::peek_dump(&backup, dump::ORIGIN_LEN).await?;
    if opts.target.has_password() {
        // Ours, not the children's: they get it through PGPASSWORD.
        let mut b = backup;
        b.notices.push(
            "warning: the password in --target is visible to other users in `ps` while we run; \
             prefer PGPASSWORD, ~/.pgpass or a service file"
                .into(),
        );
        return prepare_with_head(b, head, plan_name, plan_file, vars, opts);
    }
    prepare_with_head(backup, head, plan_name, plan_file, vars, opts)
}

fn prepare_with_head(
    backup: pipeline::PreparedBackup,
    head: Vec<u8>,
    plan_name: &str,
    plan_file: &PlanFile,
    vars: &BTreeMap<String, String>,
    opts: &RestoreOptions,
) -> Result<PreparedRestore> {
    let dump_kind = dump::sniff(&head);
    let origin = dump::origin(&head);
    let format = opts.format.unwrap_or(format_of(dump_kind));
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
            Action::Restore {
                pg_restore_args,
                on_error_stop,
            } => Some((pg_restore_args.clone(), *on_error_stop)),
            _ => None,
        })
        .expect("a plan has one restore stage");
    let on_error_stop = opts.on_error_stop || restore_stage.1 == Some(true);
    let mut backup = backup;
    if format == DumpFormat::Sql {
        let mut ignored: Vec<String> = opts.pg_restore_args.clone();
        if let Some(j) = opts.jobs {
            ignored.push(format!("--jobs {j}"));
        }
        if !ignored.is_empty() {
            backup.notices.push(format!(
                "{} only apply to pg_restore (custom-format dumps); this dump is {}, restored with psql, so they are ignored",
                ignored.join(" "),
                dump_kind.describe()
            ));
        }
    }
    let what = match origin.describe() {
        Some(o) => format!("{}, {o}", dump_kind.describe()),
        None => dump_kind.describe().to_string(),
    };
    let program = opts.tools.find(match format {
        DumpFormat::Sql => "psql",
        DumpFormat::Custom => "pg_restore",
    })?;
    check_tool(&origin, format, &program, PgTools::version(&program))?;
    let (output, restore_line) = match format {
        DumpFormat::Sql => {
            let line = format!(
                "stream backup {} ({what}) into: psql -X --quiet{} {}",
                backup.backup.id,
                if on_error_stop {
                    " -v ON_ERROR_STOP=1"
                } else {
                    ""
                },
                conn_arg(&opts.target)
            );
            (
                Output::Psql {
                    program,
                    conn: opts.target.clone(),
                    on_error_stop,
                },
                line,
            )
        }
        DumpFormat::Custom => {
            let mut args = restore_stage.0.clone();
            for a in &opts.pg_restore_args {
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
                opts.jobs
                    .map(|j| format!(
                        " --jobs={j} (spooled to a 0600 file in {} first)",
                        opts.spool_dir.display()
                    ))
                    .unwrap_or_default(),
                conn_arg(&conn)
            );
            (
                Output::PgRestore {
                    program,
                    conn,
                    args,
                    jobs: opts.jobs,
                    spool_dir: opts.spool_dir.clone(),
                },
                line,
            )
        }
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

/// Records the target's version and checks the dump against it.
fn target_version_is(
    v: PgVersion,
    report: &mut RestoreReport,
    opts: &RestoreOptions,
    notify: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    report.target_version = Some(v);
    if let Some(w) = check_target_version(&report.origin, v, opts.allow_older_target)? {
        notify(&w);
    }
    Ok(())
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
        ..
    } = prepared;
    let backup_id = backup.backup.id.clone();
    let target_identity = opts.target.identity();
    let mut journal = match &opts.journal {
        Some(p) => Some(Journal::open(
            p,
            &plan.fingerprint(&backup_id, &target_identity),
            &target_identity,
            opts.resume,
        )?),
        None if opts.resume => {
            return Err(Error::Config(
                "--resume needs --journal PATH of the earlier run".into(),
            ))
        }
        None => None,
    };

    let pending: Vec<String> = plan
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
    if !opts.verify_first {
        read_whole_first.clear();
    }
    if !pending.is_empty() && !opts.yes {
        match confirm(&pending) {
            Confirmation::Confirmed => {}
            Confirmation::Declined => return Err(Error::Declined),
            Confirmation::NoTerminal => return Err(Error::NotConfirmed(pending.join(", "))),
            Confirmation::Interrupted(signal) => return Err(Error::Interrupted { signal }),
        }
    }

    let psql = crate::pg::Psql::new(opts.target.clone(), &opts.tools)?;
    let truncated: Vec<(String, String)> = plan
        .stages
        .iter()
        .filter(|s| s.skip.is_none())
        .filter_map(|s| match &s.action {
            Action::TruncateRepmgr { database, schema } => Some((database.clone(), schema.clone())),
            _ => None,
        })
        .collect();
    let renames: Vec<(String, String)> = plan
        .stages
        .iter()
        .filter(|s| s.skip.is_none())
        .filter_map(|s| match &s.action {
            Action::RenameDatabase { from, to } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    let mut backup = Some(backup);
    let mut output = Some(output);
    let mut tables: Option<Vec<TableRows>> = None;
    let total = plan.stages.len();
    for stage in &plan.stages {
        let t0 = Instant::now();
        let label = format!("stage {}/{total} {}", stage.number, stage.name);
        if let Some(why) = &stage.skip {
            notify(&format!("{label}: skipped ({why})"));
            report
                .stages
                .push(outcome(stage, "skipped", why.clone(), t0));
            continue;
        }
        if matches!(stage.action, Action::Verify) && !opts.verify {
            notify(&format!("{label}: skipped (--no-verify)"));
            report
                .stages
                .push(outcome(stage, "skipped", "--no-verify".into(), t0));
            continue;
        }
        if let Some(j) = &journal {
            match j.state(stage.number) {
                StageState::Finished(entry) => {
                    if let Some(t) = &entry.tables {
                        tables = Some(t.clone());
                    }
                    if entry.databases.is_some() {
                        report.dump_databases = entry.databases.clone();
                    }
                    if entry.sha256.is_some() {
                        report.plaintext_sha256 = entry.sha256.clone();
                    }
                    notify(&format!("{label}: already done (journal, {})", entry.at));
                    report
                        .stages
                        .push(outcome(stage, "already done", entry.at.clone(), t0));
                    continue;
                }
                StageState::Interrupted(at) if !opts.redo_interrupted => {
                    return Err(Error::Journal {
                        path: j.path.display().to_string(),
                        reason: format!(
                            "stage {} ({}) started at {at} and never finished: the process was \
                             stopped while it ran. Check its effect by hand, then run again with \
                             --resume --redo-interrupted",
                            stage.number, stage.name
                        ),
                    });
                }
                StageState::Failed(at, err)
                    if matches!(stage.action, Action::Restore { .. }) && !opts.redo_interrupted =>
                {
                    return Err(Error::Journal {
                        path: j.path.display().to_string(),
                        reason: format!(
                            "the restore stream (stage {}) failed partway at {at} ({err}): the \
                             database may hold part of the dump. Clean the target first (drop \
                             the restored databases, or use drop-schema / pg_restore --clean), \
                             then run again with --resume --redo-interrupted",
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
                StageState::NotStarted => {}
            }
        }
        if read_whole_first.contains(&format!("{} {}", stage.number, stage.name)) {
            let before = std::mem::take(&mut read_whole_first);
            read_whole(
                &backup,
                format,
                &plan,
                journal.as_ref(),
                &before,
                opts,
                notify,
                report,
            )
            .await?;
        }
        notify(&format!("{label}: starting"));
        if let Some(j) = &mut journal {
            j.append(Entry::new(Event::Start, stage))?;
        }
        let result = {
            let exec = execute(
                stage,
                &psql,
                opts,
                &backup_id,
                &mut backup,
                &mut output,
                &mut tables,
                &renames,
                &truncated,
                notify,
                report,
            );
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
                    if matches!(stage.action, Action::Restore { .. }) {
                        e.tables = tables.clone();
                        e.sha256 = report.plaintext_sha256.clone();
                        e.databases = report.dump_databases.clone();
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
                report.stages.push(outcome(stage, "done", detail, t0));
            }
            Err(e) => {
                if let Some(j) = &mut journal {
                    let mut entry = Entry::new(Event::Fail, stage);
                    entry.error = Some(e.to_string());
                    j.append(entry)?;
                }
                if matches!(e, Error::Interrupted { .. }) {
                    return Err(e);
                }
                return Err(Error::Stage {
                    number: stage.number,
                    name: stage.name.clone(),
                    journal: journal.is_some(),
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
    plan: &ResolvedPlan,
    journal: Option<&Journal>,
    before: &[String],
    opts: &RestoreOptions,
    notify: &(dyn Fn(&str) + Sync),
    report: &mut RestoreReport,
) -> Result<()> {
    let Some(backup) = backup else {
        return Ok(());
    };
    notify(&format!(
        "reading the whole backup before the destructive stages that come before the stream ({}); --no-verify-first skips this",
        before.join(", ")
    ));
    let r = pipeline::run(
        backup.clone(),
        &Output::Discard,
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
    report.dump_databases = dump_databases(&r, &opts.target);
    check_renames(plan, journal, report.dump_databases.as_deref())?;
    report.verified_first = Some(r);
    Ok(())
}

/// The destructive stages that will run before the stream (not skipped, not finished in the
/// journal), as `N name`; none when the stream itself is already done.
fn destructive_before_stream(plan: &ResolvedPlan, journal: Option<&Journal>) -> Vec<String> {
    let finished = |n: usize| journal.is_some_and(|j| j.finished(n));
    let Some(restore) = plan
        .stages
        .iter()
        .position(|s| matches!(s.action, Action::Restore { .. }))
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

/// The databases a plain dump restores into: its `\connect` targets, or the target's database
/// for a dump of one database. Unknown for a custom-format archive.
fn dump_databases(r: &Report, target: &ConnInfo) -> Option<Vec<String>> {
    let dbs = r.databases.as_ref()?;
    Some(if dbs.is_empty() {
        vec![target.database()]
    } else {
        dbs.clone()
    })
}

/// Every rename-database stage still to run must rename a database the dump restores.
fn check_renames(
    plan: &ResolvedPlan,
    journal: Option<&Journal>,
    dbs: Option<&[String]>,
) -> Result<()> {
    let Some(dbs) = dbs else { return Ok(()) };
    for s in &plan.stages {
        if let (Action::RenameDatabase { from, to }, None) = (&s.action, &s.skip) {
            if !journal.is_some_and(|j| j.finished(s.number)) {
                check_rename(from, to, dbs).map_err(|e| Error::Stage {
                    number: s.number,
                    name: s.name.clone(),
                    journal: false,
                    source: Box::new(e),
                })?;
            }
        }
    }
    Ok(())
}

fn check_rename(from: &str, to: &str, dbs: &[String]) -> Result<()> {
    if dbs.iter().any(|d| d == from) {
        return Ok(());
    }
    Err(Error::RenameSource {
        from: from.to_string(),
        to: to.to_string(),
        restored: dbs.to_vec(),
    })
}

fn outcome(stage: &Stage, status: &str, detail: String, t0: Instant) -> StageOutcome {
    StageOutcome {
        number: stage.number,
        name: stage.name.clone(),
        status: status.into(),
        detail,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    stage: &Stage,
    psql: &crate::pg::Psql,
    opts: &RestoreOptions,
    backup_id: &str,
    backup: &mut Option<Arc<pipeline::PreparedBackup>>,
    output: &mut Option<Output>,
    tables: &mut Option<Vec<TableRows>>,
    renames: &[(String, String)],
    truncated: &[(String, String)],
    notify: &(dyn Fn(&str) + Sync),
    report: &mut RestoreReport,
) -> Result<String> {
    match &stage.action {
        Action::Preflight => {
            let (db, sql) = stage.action.sql().expect("SQL");
            let rows = psql.query(db.as_deref(), &sql).await?;
            let row = rows.first().cloned().unwrap_or_default();
            let get = |i: usize| row.get(i).cloned().unwrap_or_default();
            if get(1) == "t" {
                return Err(Error::Standby {
                    target: opts.target.describe(),
                });
            }
            if let Some(v) = PgVersion::parse(&get(0)) {
                target_version_is(v, report, opts, notify)?;
            }
            if let Some(b) = backup.as_ref() {
                if let Some(warning) = free_space_warning(&get(4), b).await {
                    notify(&warning);
                }
            }
            Ok(format!(
                "PostgreSQL {} as {}, database {}, a primary",
                get(0),
                get(2),
                get(3)
            ))
        }
        Action::DropInactiveSlots => {
            let (db, sql) = stage.action.sql().expect("SQL");
            let rows = psql.query(db.as_deref(), &sql).await?;
            let names: Vec<String> = rows.iter().filter_map(|r| r.first().cloned()).collect();
            Ok(if names.is_empty() {
                "no inactive slots".into()
            } else {
                format!("dropped {} slot(s): {}", names.len(), names.join(", "))
            })
        }
        Action::TerminateSessions { .. } => {
            let (db, sql) = stage.action.sql().expect("SQL");
            let rows = psql.query(db.as_deref(), &sql).await?;
            Ok(format!("terminated {} session(s)", rows.len()))
        }
        Action::RenameDatabase { from, to } => {
            if let Some(dbs) = &report.dump_databases {
                check_rename(from, to, dbs)?;
            }
            let (db, sql) = stage.action.sql().expect("SQL");
            psql.query(db.as_deref(), &sql).await?;
            Ok(format!("{from} is now {to}"))
        }
        Action::DropSchema { .. } | Action::TruncateRepmgr { .. } | Action::Sql { .. } => {
            let (db, sql) = stage.action.sql().expect("SQL");
            psql.query(db.as_deref(), &sql).await?;
            Ok(String::new())
        }
        Action::Command {
            run,
            tolerate_missing_unit,
        } => {
            run_command(
                run,
                *tolerate_missing_unit,
                backup_id,
                &opts.target.database(),
            )
            .await
        }
        Action::Restore { .. } => {
            // A plan without a preflight stage: ask the target here, before the stream.
            if report.target_version.is_none() {
                let rows = psql
                    .query(None, "SELECT current_setting('server_version');")
                    .await?;
                let v = rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(|v| PgVersion::parse(v));
                if let Some(v) = v {
                    target_version_is(v, report, opts, notify)?;
                }
            }
            let plan = backup.take().ok_or_else(|| {
                Error::Plan("the restore stage can run once per invocation".into())
            })?;
            let out = output.take().expect("one restore stage");
            let r = pipeline::run(
                plan,
                &out,
                RunOptions {
                    progress: opts.progress,
                    hash: true,
                    count_rows: true,
                    part_digests: false,
                    shutdown: opts.shutdown.clone(),
                },
            )
            .await?;
            *tables = r.tables.clone();
            report.plaintext_sha256 = r.plaintext_sha256.clone();
            if let Some(d) = dump_databases(&r, &opts.target) {
                report.dump_databases = Some(d);
            }
            let mut detail = format!(
                "{} of {} in {:.1}s",
                crate::format_bytes(r.bytes_dump),
                r.dump_kind.describe(),
                r.seconds
            );
            if let Some(c) = &r.restore {
                if c.sql_errors > 0 {
                    detail.push_str(&format!(
                        "; {} SQL error(s), without --on-error-stop they do not stop the restore; first: {}",
                        c.sql_errors,
                        c.first_errors.join(" | ")
                    ));
                }
            }
            report.stream = Some(r);
            Ok(detail)
        }
        Action::Verify => {
            let Some(t) = tables.as_ref() else {
                return Ok(
                    "row counts are not available for custom-format dumps (pg_restore reported success)"
                        .into(),
                );
            };
            let checks = check_rows(psql, t, &opts.target.database(), renames, truncated).await;
            let bad = checks.iter().filter(|c| !c.ok()).count();
            let n = checks.len();
            report.mismatches = bad;
            let table = render_checks(&checks);
            report.verification = Some(checks);
            if bad > 0 {
                return Err(Error::Verification { count: bad, table });
            }
            Ok(format!("{n} table(s): row counts match the dump"))
        }
    }
}

/// Warns when the data directory's free space looks short for the dump (and its WAL).
async fn free_space_warning(data_dir: &str, backup: &pipeline::PreparedBackup) -> Option<String> {
    if data_dir.is_empty() || !Path::new(data_dir).exists() {
        return None;
    }
    let mut df = std::process::Command::new("df");
    df.args(["-Pk", data_dir]);
    let (_, text, _) = crate::child::output(df, None).await.ok()?;
    let avail_kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    let estimate = backup
        .metadata
        .as_ref()
        .and_then(|m| m.plaintext_size)
        .unwrap_or(backup.total_size() * 5);
    let avail = avail_kib * 1024;
    (avail < estimate.saturating_mul(2)).then(|| {
        format!(
            "warning: {} free on {data_dir}, the dump is about {}; a restore writes the data and as much WAL again",
            crate::format_bytes(avail),
            crate::format_bytes(estimate)
        )
    })
}

const MISSING_UNIT: [&str; 4] = [
    "Unknown unit",
    "not loaded",
    "could not be found",
    "does not exist",
];

async fn run_command(
    run: &str,
    tolerate: bool,
    backup_id: &str,
    target_db: &str,
) -> Result<String> {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(run)
        .env("A9S_BACKUP_ID", backup_id)
        .env("A9S_TARGET_DB", target_db)
        // The backup secret is for us, not for stage commands.
        .env_remove("A9S_SECRET");
    let (status, stdout, stderr) = crate::child::output(cmd, None).await?;
    let said = format!(
        "{}{}",
        stdout.trim(),
        if stderr.trim().is_empty() {
            String::new()
        } else {
            format!("\n{}", stderr.trim())
        }
    );
    if status.success() {
        return Ok(said.lines().last().unwrap_or("").to_string());
    }
    if tolerate && MISSING_UNIT.iter().any(|m| said.contains(m)) {
        return Ok(format!(
            "tolerated a missing unit: {}",
            said.lines().next().unwrap_or("")
        ));
    }
    Err(Error::Child {
        program: "command".into(),
        doing: format!("running `{run}`"),
        status: status.to_string(),
        stderr: said,
    })
}
