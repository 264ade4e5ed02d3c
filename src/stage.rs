//! Stage kinds: what a `[[stage]]` of a plan can be, one file each under `stage/`.
//!
//! Each kind owns its plan-file spec (the TOML keys it accepts), its resolution (variables
//! substituted; whether it is destructive), its dry-run text (the exact SQL or command) and its
//! execution. Adding a kind is one new file and one line in `kinds!`. Does not own: the plan
//! file, presets and variables (`plan`), nor the order of stages, the journal, the
//! confirmation and the whole read before destructive stages (`restore`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dump::{Origin, PgVersion, TableRows};
use crate::error::Result;
use crate::pg::{ConnInfo, Psql};
use crate::pipeline::{PreparedBackup, Report};
use crate::shutdown::Shutdown;
use crate::sink::Output;

mod command;
mod drop_inactive_slots;
mod drop_schema;
mod preflight;
pub(crate) mod rename_database;
pub(crate) mod restore;
mod sql;
mod terminate_sessions;
mod truncate_repmgr;
pub mod verify;

pub use command::Command;
pub use drop_inactive_slots::DropInactiveSlots;
pub use drop_schema::DropSchema;
pub use preflight::Preflight;
pub use rename_database::RenameDatabase;
pub use restore::Restore;
pub use sql::Sql;
pub use terminate_sessions::TerminateSessions;
pub use truncate_repmgr::TruncateRepmgr;
pub use verify::Verify;

/// Database used for statements that must not run inside the databases they change.
pub const MAINTENANCE_DB: &str = "postgres";

/// What a kind's spec resolves to.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The name the plan gave the stage, if any.
    pub name: Option<String>,
    pub action: Action,
    pub destructive: bool,
    /// Skipped when a variable it uses is not set.
    pub optional: bool,
    /// Why it will not run although everything it needs is set.
    pub skip: Option<String>,
}

impl Resolved {
    fn new(name: &Option<String>, action: Action, destructive: bool) -> Resolved {
        Resolved {
            name: name.clone(),
            action,
            destructive,
            optional: false,
            skip: None,
        }
    }
}

/// Where a placeholder's value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Into a stage's text that the stage kind quotes itself (a database or schema name that
    /// becomes an SQL identifier or literal), or the SQL of an `sql` stage.
    Text,
    /// Into a `command` stage's shell command: `{name}` is one shell word whatever the value
    /// holds; `{shell:name}` is the value as shell text, for a variable that is a command.
    Shell,
}

/// How a spec substitutes the plan's variables: the text, and where it goes.
pub(crate) type Sub<'a> = dyn FnMut(&str, Context) -> String + 'a;

/// A stage's spec as written in a plan file.
pub(crate) trait Spec {
    /// Substitutes the variables (`sub`) and says what the stage does.
    fn resolve(&self, sub: &mut Sub<'_>) -> Resolved;
}

/// What every resolved stage kind does.
pub(crate) trait Kind {
    /// The kind's name in plan files, and the stage's name when the plan gives none.
    const KIND: &'static str;

    /// The database and the exact SQL, for kinds that run SQL.
    fn sql(&self) -> Option<(Option<String>, String)> {
        None
    }

    /// The dry-run text: the exact SQL or command.
    fn render(&self, restore_line: &str) -> String {
        let _ = restore_line;
        let (db, sql) = self.sql().expect("a kind without SQL renders itself");
        format!(
            "psql{}:\n{sql}",
            db.map(|d| format!(" (database {d})")).unwrap_or_default()
        )
    }

    /// Runs the stage; the text says what it did.
    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String>;
}

/// Runs a kind's SQL (`ON_ERROR_STOP`) and returns its rows.
async fn run_sql(kind: &impl Kind, ctx: &StageContext<'_>) -> Result<Vec<Vec<String>>> {
    let (db, sql) = kind.sql().expect("a kind with SQL");
    ctx.psql.query(db.as_deref(), &sql).await
}

/// What a stage may use and change while it runs.
pub(crate) struct StageContext<'a> {
    pub psql: &'a Psql,
    pub target: &'a ConnInfo,
    pub backup_id: &'a str,
    /// What made the dump.
    pub origin: &'a Origin,
    /// Restore a dump of a newer major version than the target runs.
    pub allow_older_target: bool,
    pub progress: bool,
    /// What the row-count verification may cost the target.
    pub verify_limits: verify::Limits,
    pub shutdown: &'a Shutdown,
    /// The backup, until the restore stage streams it.
    pub backup: &'a mut Option<Arc<PreparedBackup>>,
    /// Where the restore stage streams to.
    pub output: &'a mut Option<Output>,
    /// Databases renamed and schemas emptied by the plan's stages, for the verification.
    pub renames: &'a [(String, String)],
    pub truncated: &'a [(String, String)],
    pub notify: &'a (dyn Fn(&str) + Sync),
    pub effects: &'a mut Effects,
}

/// What stages find out, for the stages after them and for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Effects {
    /// The target server's version, once a stage asked it.
    pub target_version: Option<PgVersion>,
    /// The stream, when this run streamed it (not when resumed past it).
    pub stream: Option<Report>,
    pub plaintext_sha256: Option<String>,
    /// Rows per table counted from the dump while it streamed (plain dumps).
    #[serde(skip)]
    pub tables: Option<Vec<TableRows>>,
    pub verification: Option<Vec<verify::RowCheck>>,
    pub mismatches: usize,
    /// The databases the dump restores into (its `\connect` targets; the target database for
    /// a dump of one database), once known: plain dumps only.
    pub dump_databases: Option<Vec<String>>,
    /// What a pick restored and left out.
    pub pick: Option<crate::pick::PickReport>,
    /// `--data-only`: the rows were added to tables that may have held rows before, so the
    /// verification checks that every COPY was taken whole, not the tables' counts.
    #[serde(skip)]
    pub rows_added: bool,
}

impl StageContext<'_> {
    /// Records the target's version and checks the dump against it.
    fn target_version_is(&mut self, v: PgVersion) -> Result<()> {
        self.effects.target_version = Some(v);
        if let Some(w) =
            crate::pg::compat::check_target_version(self.origin, v, self.allow_older_target)?
        {
            (self.notify)(&w);
        }
        Ok(())
    }
}

/// Declares the stage kinds: the spec and action enums and their dispatch.
macro_rules! kinds {
    ($($variant:ident => $module:ident),* $(,)?) => {
        /// One `[[stage]]` as written: `kind = "..."` and the kind's own keys.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        pub enum StageSpec {
            $($variant($module::Spec),)*
        }

        /// What a stage does, resolved (variables substituted).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        pub enum Action {
            $($variant($variant),)*
        }

        impl StageSpec {
            pub(crate) fn resolve(&self, sub: &mut Sub<'_>) -> Resolved {
                match self {
                    $(StageSpec::$variant(s) => s.resolve(sub),)*
                }
            }
        }

        impl Action {
            /// The database and the exact SQL this stage runs, if it runs SQL.
            pub fn sql(&self) -> Option<(Option<String>, String)> {
                match self {
                    $(Action::$variant(a) => a.sql(),)*
                }
            }

            /// The dry-run text.
            pub fn render(&self, restore_line: &str) -> String {
                match self {
                    $(Action::$variant(a) => a.render(restore_line),)*
                }
            }

            /// The kind's name, the stage's name when the plan gives none.
            pub fn default_name(&self) -> &'static str {
                match self {
                    $(Action::$variant(_) => <$variant as Kind>::KIND,)*
                }
            }

            pub(crate) async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
                match self {
                    $(Action::$variant(a) => a.run(ctx).await,)*
                }
            }
        }
    };
}

kinds! {
    Preflight => preflight,
    DropInactiveSlots => drop_inactive_slots,
    TerminateSessions => terminate_sessions,
    DropSchema => drop_schema,
    TruncateRepmgr => truncate_repmgr,
    RenameDatabase => rename_database,
    Sql => sql,
    Command => command,
    Restore => restore,
    Verify => verify,
}
