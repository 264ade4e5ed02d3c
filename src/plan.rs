//! Restore plans: the stages around the stream, as data.
//!
//! A plan is a TOML file (`--plan FILE`) or a built-in preset (the files under `plans/`,
//! compiled in): a list of `[[stage]]` tables with a `kind`, and `[vars]` that stages use as
//! `{name}`. Owns: parsing (unknown keys are errors: a typo in a destructive plan must not be
//! ignored), variable substitution, the exact SQL of each built-in stage, which stages are
//! destructive, and the dry-run rendering. Does not own: running stages (`restore`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pg::{quote_ident, quote_literal};

/// Built-in presets: name, TOML text.
pub const PRESETS: [(&str, &str); 4] = [
    ("a9s-single", include_str!("../plans/a9s-single.toml")),
    ("a9s-cluster", include_str!("../plans/a9s-cluster.toml")),
    (
        "flightctl-quadlet",
        include_str!("../plans/flightctl-quadlet.toml"),
    ),
    ("pgdump-custom", include_str!("../plans/pgdump-custom.toml")),
];

/// The plan used when none is named: check the target, restore, verify.
pub const DEFAULT_PLAN: &str = r#"
description = "restore the dump, then verify the row counts"
[[stage]]
kind = "preflight"
[[stage]]
kind = "restore"
[[stage]]
kind = "verify"
"#;

/// A plan file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(rename = "stage", default)]
    pub stages: Vec<StageSpec>,
}

impl PlanFile {
    /// Parses TOML.
    pub fn parse(name: &str, text: &str) -> Result<PlanFile> {
        let plan: PlanFile =
            toml::from_str(text).map_err(|e| Error::Plan(format!("{name}: {e}")))?;
        if plan.stages.is_empty() {
            return Err(Error::Plan(format!("{name} has no [[stage]]")));
        }
        let restores = plan
            .stages
            .iter()
            .filter(|s| matches!(s, StageSpec::Restore(_)))
            .count();
        if restores != 1 {
            return Err(Error::Plan(format!(
                "{name} must have exactly one stage of kind \"restore\" (it has {restores})"
            )));
        }
        Ok(plan)
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Result<PlanFile> {
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            Error::Plan(format!(
                "no preset {name:?}; the presets are {}",
                names.join(", ")
            ))
        })?;
        Self::parse(name, text)
    }
}

/// One `[[stage]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StageSpec {
    Preflight(Named),
    DropInactiveSlots(Named),
    TerminateSessions(TerminateSpec),
    DropSchema(DropSchemaSpec),
    TruncateRepmgr(RepmgrSpec),
    RenameDatabase(RenameSpec),
    Sql(SqlSpec),
    Command(CommandSpec),
    Restore(RestoreSpec),
    Verify(Named),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminateSpec {
    pub name: Option<String>,
    /// Only sessions of this database; all client sessions when absent.
    pub database: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropSchemaSpec {
    pub name: Option<String>,
    pub database: String,
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepmgrSpec {
    pub name: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameSpec {
    pub name: Option<String>,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSpec {
    pub name: Option<String>,
    pub database: Option<String>,
    pub sql: String,
    pub destructive: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub name: Option<String>,
    pub run: String,
    /// Skip the stage when a variable it uses is not set.
    #[serde(default)]
    pub optional: bool,
    /// A failure whose output says the unit does not exist ("Unknown unit") is a warning.
    #[serde(default)]
    pub tolerate_missing_unit: bool,
    pub destructive: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreSpec {
    pub name: Option<String>,
    /// Flags for pg_restore (custom-format dumps), e.g. `["--no-owner", "--no-privileges"]`.
    #[serde(default)]
    pub pg_restore_args: Vec<String>,
    /// Stop at the first SQL error (psql `ON_ERROR_STOP=1`).
    pub on_error_stop: Option<bool>,
}

/// What a stage does, resolved (variables substituted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    Preflight,
    DropInactiveSlots,
    TerminateSessions {
        database: Option<String>,
    },
    DropSchema {
        database: String,
        schema: String,
    },
    TruncateRepmgr {
        database: String,
        schema: String,
    },
    RenameDatabase {
        from: String,
        to: String,
    },
    Sql {
        database: Option<String>,
        sql: String,
    },
    Command {
        run: String,
        tolerate_missing_unit: bool,
    },
    Restore {
        pg_restore_args: Vec<String>,
        on_error_stop: Option<bool>,
    },
    Verify,
}

/// Database used for statements that must not run inside the databases they change.
pub const MAINTENANCE_DB: &str = "postgres";

impl Action {
    /// The database and the exact SQL this stage runs, if it runs SQL.
    pub fn sql(&self) -> Option<(Option<String>, String)> {
        Some(match self {
            Action::Preflight => (
                None,
                "SELECT current_setting('server_version'), pg_is_in_recovery(), current_user, \
                 current_database(), (SELECT setting FROM pg_settings WHERE name = 'data_directory');"
                    .to_string(),
            ),
            Action::DropInactiveSlots => (
                None,
                "SELECT slot_name, pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE NOT active;"
                    .to_string(),
            ),
            Action::TerminateSessions { database } => (
                None,
                format!(
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'{};",
                    database
                        .as_ref()
                        .map(|d| format!(" AND datname = {}", quote_literal(d)))
                        .unwrap_or_default()
                ),
            ),
            Action::DropSchema { database, schema } => (
                Some(database.clone()),
                format!(
                    "DROP SCHEMA IF EXISTS {s} CASCADE;\nCREATE SCHEMA {s};",
                    s = quote_ident(schema)
                ),
            ),
            Action::TruncateRepmgr { database, schema } => (
                Some(database.clone()),
                format!(
                    "DO $a9s$ DECLARE r record; BEGIN\n  FOR r IN (SELECT tablename FROM pg_tables WHERE schemaname = {lit}) LOOP\n    EXECUTE 'TRUNCATE ' || quote_ident({lit}) || '.' || quote_ident(r.tablename) || ' CASCADE';\n  END LOOP;\nEND $a9s$;",
                    lit = quote_literal(schema)
                ),
            ),
            Action::RenameDatabase { from, to } => {
                // The source must exist before the target is dropped: a typo in FROM must
                // fail here, not after `to` (the live database, often) is gone. psql stops at
                // the raised error (ON_ERROR_STOP), before the DROP.
                let guard = format!(
                    "BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = {f}) THEN \
                     RAISE EXCEPTION 'database % does not exist: nothing was dropped or renamed', {f}; \
                     END IF; END",
                    f = quote_literal(from)
                );
                (
                    Some(MAINTENANCE_DB.to_string()),
                    format!(
                        "DO {};\nSELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN ({}, {}) AND pid <> pg_backend_pid();\nDROP DATABASE IF EXISTS {};\nALTER DATABASE {} RENAME TO {};",
                        quote_literal(&guard),
                        quote_literal(from),
                        quote_literal(to),
                        quote_ident(to),
                        quote_ident(from),
                        quote_ident(to)
                    ),
                )
            }
            Action::Sql { database, sql } => (database.clone(), sql.clone()),
            Action::Command { .. } | Action::Restore { .. } | Action::Verify => return None,
        })
    }

    fn default_name(&self) -> String {
        match self {
            Action::Preflight => "preflight".into(),
            Action::DropInactiveSlots => "drop-inactive-slots".into(),
            Action::TerminateSessions { .. } => "terminate-sessions".into(),
            Action::DropSchema { .. } => "drop-schema".into(),
            Action::TruncateRepmgr { .. } => "truncate-repmgr".into(),
            Action::RenameDatabase { .. } => "rename-database".into(),
            Action::Sql { .. } => "sql".into(),
            Action::Command { .. } => "command".into(),
            Action::Restore { .. } => "restore".into(),
            Action::Verify => "verify".into(),
        }
    }
}

/// A resolved stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub number: usize,
    pub name: String,
    pub action: Action,
    pub destructive: bool,
    /// Why the stage will not run (an optional command whose variable is not set).
    pub skip: Option<String>,
}

/// A plan ready to run.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedPlan {
    pub name: String,
    pub description: Option<String>,
    pub stages: Vec<Stage>,
}

/// Replaces `{name}` with `vars[name]`; returns the names it could not find.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if close > 0
                    && after[..close]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                let key = &after[..close];
                match vars.get(key) {
                    Some(v) => out.push_str(v),
                    None => {
                        missing.push(key.to_string());
                        out.push_str(&rest[open..open + close + 2]);
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, missing)
}

impl ResolvedPlan {
    /// Resolves a plan file with variables (the file's `[vars]`, overridden by `overrides`,
    /// plus `backup_id`, `instance_id` and `target_db`).
    pub fn resolve(
        name: &str,
        file: &PlanFile,
        overrides: &BTreeMap<String, String>,
        builtins: &BTreeMap<String, String>,
    ) -> Result<ResolvedPlan> {
        let mut vars = builtins.clone();
        vars.extend(file.vars.clone());
        vars.extend(overrides.clone());
        // An empty value counts as not set.
        vars.retain(|_, v| !v.is_empty());
        let mut stages = Vec::new();
        let mut problems = Vec::new();
        for (i, spec) in file.stages.iter().enumerate() {
            let mut missing = Vec::new();
            let mut sub = |s: &str| {
                let (v, m) = substitute(s, &vars);
                missing.extend(m);
                v
            };
            let (given_name, action, destructive, optional) = match spec {
                StageSpec::Preflight(n) => (n.name.clone(), Action::Preflight, false, false),
                StageSpec::DropInactiveSlots(n) => {
                    (n.name.clone(), Action::DropInactiveSlots, true, false)
                }
                StageSpec::TerminateSessions(t) => (
                    t.name.clone(),
                    Action::TerminateSessions {
                        database: t.database.as_deref().map(&mut sub),
                    },
                    true,
                    false,
                ),
                StageSpec::DropSchema(d) => (
                    d.name.clone(),
                    Action::DropSchema {
                        database: sub(&d.database),
                        schema: d.schema.as_deref().map(&mut sub).unwrap_or("public".into()),
                    },
                    true,
                    false,
                ),
                StageSpec::TruncateRepmgr(r) => (
                    r.name.clone(),
                    Action::TruncateRepmgr {
                        database: r
                            .database
                            .as_deref()
                            .map(&mut sub)
                            .unwrap_or("repmgr_cluster".into()),
                        schema: r.schema.as_deref().map(&mut sub).unwrap_or("repmgr".into()),
                    },
                    true,
                    false,
                ),
                StageSpec::RenameDatabase(r) => (
                    r.name.clone(),
                    Action::RenameDatabase {
                        from: sub(&r.from),
                        to: sub(&r.to),
                    },
                    true,
                    false,
                ),
                StageSpec::Sql(s) => (
                    s.name.clone(),
                    Action::Sql {
                        database: s.database.as_deref().map(&mut sub),
                        sql: sub(&s.sql),
                    },
                    s.destructive.unwrap_or(true),
                    false,
                ),
                StageSpec::Command(c) => (
                    c.name.clone(),
                    Action::Command {
                        run: sub(&c.run),
                        tolerate_missing_unit: c.tolerate_missing_unit,
                    },
                    c.destructive.unwrap_or(true),
                    c.optional,
                ),
                StageSpec::Restore(r) => (
                    r.name.clone(),
                    Action::Restore {
                        pg_restore_args: r.pg_restore_args.clone(),
                        on_error_stop: r.on_error_stop,
                    },
                    true,
                    false,
                ),
                StageSpec::Verify(n) => (n.name.clone(), Action::Verify, false, false),
            };
            missing.sort();
            missing.dedup();
            let name = given_name.unwrap_or_else(|| action.default_name());
            let skip = if missing.is_empty() {
                None
            } else if optional {
                Some(format!("variable {} not set", missing.join(", ")))
            } else {
                problems.push(format!(
                    "stage {} ({name}) needs {}",
                    i + 1,
                    missing
                        .iter()
                        .map(|m| format!("--var {m}=VALUE"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
                None
            };
            if let Action::RenameDatabase { from, to } = &action {
                if missing.is_empty() && from == to {
                    stages.push(Stage {
                        number: i + 1,
                        name,
                        action: action.clone(),
                        destructive,
                        skip: Some(format!("the database is already named {to}")),
                    });
                    continue;
                }
            }
            stages.push(Stage {
                number: i + 1,
                name,
                action,
                destructive,
                skip,
            });
        }
        if !problems.is_empty() {
            return Err(Error::Plan(format!("{name}: {}", problems.join("; "))));
        }
        Ok(ResolvedPlan {
            name: name.to_string(),
            description: file.description.clone(),
            stages,
        })
    }

    /// A digest of what the plan does, so that `--resume` refuses a journal of another plan.
    pub fn fingerprint(&self, backup_id: &str, target: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(backup_id.as_bytes());
        h.update(b"\0");
        h.update(target.as_bytes());
        for s in &self.stages {
            h.update(serde_json::to_vec(s).unwrap_or_default());
        }
        crate::hex(&h.finalize())[..16].to_string()
    }

    /// Names of the destructive stages that will run.
    pub fn destructive(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|s| s.destructive && s.skip.is_none())
            .map(|s| format!("{} {}", s.number, s.name))
            .collect()
    }

    /// The dry-run text: every stage with its exact SQL or command.
    pub fn render(&self, restore_line: &str, target: &str) -> String {
        let mut out = format!(
            "plan {} into {target}{}\n(* = destructive)\n",
            self.name,
            self.description
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        for s in &self.stages {
            let mark = if s.destructive { '*' } else { ' ' };
            out.push_str(&format!("\n{:>2} {mark} {}", s.number, s.name));
            if let Some(why) = &s.skip {
                out.push_str(&format!("  [skipped: {why}]"));
            }
            out.push('\n');
            let body = match &s.action {
                Action::Command {
                    run,
                    tolerate_missing_unit,
                } => format!(
                    "$ {run}{}",
                    if *tolerate_missing_unit {
                        "\n(a missing unit is tolerated)"
                    } else {
                        ""
                    }
                ),
                Action::Restore { .. } => restore_line.to_string(),
                Action::Verify => {
                    "compare the rows of every table in the dump's COPY blocks with SELECT count(*)"
                        .to_string()
                }
                a => {
                    let (db, sql) = a.sql().expect("SQL stage");
                    format!(
                        "psql{}:\n{sql}",
                        db.map(|d| format!(" (database {d})")).unwrap_or_default()
                    )
                }
            };
            for line in body.lines() {
                out.push_str("       ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_preset_parses_and_resolves() {
        let v = vars(&[
            ("old_db", "d_old"),
            ("new_db", "d_new"),
            ("target_db", "app"),
        ]);
        for (name, _) in PRESETS {
            let f = PlanFile::preset(name).unwrap();
            let p = ResolvedPlan::resolve(name, &f, &v, &BTreeMap::new()).unwrap();
            assert!(p
                .stages
                .iter()
                .any(|s| matches!(s.action, Action::Restore { .. })));
            assert!(
                !p.render("psql < stream", "db").contains("{old_db}"),
                "{name}"
            );
        }
    }

    #[test]
    fn required_and_optional_variables() {
        let f = PlanFile::preset("a9s-cluster").unwrap();
        let e = ResolvedPlan::resolve("a9s-cluster", &f, &BTreeMap::new(), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--var new_db=VALUE --var old_db=VALUE"), "{e}");
        let p = ResolvedPlan::resolve(
            "a9s-cluster",
            &f,
            &vars(&[
                ("old_db", "a"),
                ("new_db", "b"),
                ("stop_repmgr_cmd", "monit stop repmgr"),
            ]),
            &BTreeMap::new(),
        )
        .unwrap();
        let repmgr = p
            .stages
            .iter()
            .find(|s| s.name.contains("stop repmgr"))
            .unwrap();
        assert_eq!(repmgr.skip, None);
        let standbys = p
            .stages
            .iter()
            .find(|s| s.name.contains("stop the standby"))
            .unwrap();
        assert_eq!(
            standbys.skip.as_deref(),
            Some("variable stop_standbys_cmd not set")
        );
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        assert!(PlanFile::parse("p", "[[stage]]\nkind = \"restore\"\nnmae = \"x\"\n").is_err());
        assert!(PlanFile::parse("p", "[[stage]]\nkind = \"reboot\"\n").is_err());
        assert!(
            PlanFile::parse("p", "[[stage]]\nkind = \"verify\"\n").is_err(),
            "no restore"
        );
        assert!(
            PlanFile::parse("p", "descripton = \"x\"\n[[stage]]\nkind = \"restore\"\n").is_err()
        );
    }

    #[test]
    fn substitution() {
        let v = vars(&[("a", "1")]);
        assert_eq!(
            substitute("x{a}y{b}{ c }", &v),
            ("x1y{b}{ c }".into(), vec!["b".into()])
        );
        assert_eq!(substitute("{{a}}", &v).0, "{1}");
    }

    #[test]
    fn sql_is_quoted() {
        let a = Action::RenameDatabase {
            from: "old\"db".into(),
            to: "new'db".into(),
        };
        let (db, sql) = a.sql().unwrap();
        assert_eq!(db.as_deref(), Some("postgres"));
        assert!(
            sql.contains("ALTER DATABASE \"old\"\"db\" RENAME TO \"new'db\";"),
            "{sql}"
        );
        assert!(sql.contains("'new''db'"), "{sql}");
    }

    #[test]
    fn same_name_rename_is_skipped() {
        let f = PlanFile::preset("a9s-single").unwrap();
        let p = ResolvedPlan::resolve(
            "a9s-single",
            &f,
            &vars(&[("old_db", "x"), ("new_db", "x")]),
            &BTreeMap::new(),
        )
        .unwrap();
        let r = p
            .stages
            .iter()
            .find(|s| s.name == "rename-database")
            .unwrap();
        assert!(r.skip.is_some());
    }
}
