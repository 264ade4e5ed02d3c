//! Restore plans: the stages around the stream, as data.
//!
//! A plan is a TOML file (`--plan FILE`) or a built-in preset (the files under `plans/`,
//! compiled in): a list of `[[stage]]` tables with a `kind`, and `[vars]` that stages use as
//! `{name}`. Owns: parsing (unknown keys are errors: a typo in a destructive plan must not be
//! ignored), variable substitution, and the dry-run rendering of the whole plan. Each stage
//! kind (its keys, SQL, destructiveness and execution) is in `stage`; running a plan is
//! `restore`'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::stage::{Action, StageSpec};

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
            let crate::stage::Resolved {
                name: given_name,
                action,
                destructive,
                optional,
                skip: nothing_to_do,
            } = spec.resolve(&mut sub);
            missing.sort();
            missing.dedup();
            let name = given_name.unwrap_or_else(|| action.default_name().to_string());
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
            // Nothing to do although everything is set (a rename to the same name).
            let skip = match (skip, nothing_to_do) {
                (None, Some(why)) if missing.is_empty() => Some(why),
                (skip, _) => skip,
            };
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
            let body = s.action.render(restore_line);
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
                .any(|s| matches!(s.action, Action::Restore(_))));
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
