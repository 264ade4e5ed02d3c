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

pub use crate::stage::Context;

/// The variables every plan has; they come from the backup and the target (a database name
/// is data, not the operator's words), so they are never shell text.
pub const BUILTINS: [&str; 3] = ["backup_id", "instance_id", "target_db"];

/// What [`substitute`] made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Substituted {
    pub text: String,
    /// Variables that are not set.
    pub missing: Vec<String>,
    /// Placeholders that cannot be used where they are.
    pub problems: Vec<String>,
}

/// `value` as one POSIX shell word: as it is when it is made only of characters no shell
/// treats specially, else in single quotes (a `'` inside as `'\''`).
pub fn shell_word(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// Replaces `{name}` with `vars[name]` (in a shell command, quoted as one word) and, in a
/// shell command, `{shell:name}` with the value as it is. A `{name}` inside the command's own
/// quotes is refused: a quoted word inside quotes would be unquoted again.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>, ctx: Context) -> Substituted {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut out = Substituted::default();
    // A command that is one placeholder and nothing else is a variable meant as a command
    // (the presets' shape before `{shell:…}`): quoted as one word it would run a program
    // named by the whole value, so say how to write it instead.
    let whole = text.trim();
    if ctx == Context::Shell
        && whole.len() > 2
        && whole.starts_with('{')
        && whole.ends_with('}')
        && whole[1..whole.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        let name = &whole[1..whole.len() - 1];
        out.problems.push(format!(
            "the whole command is {whole}, which would run a program named by the whole value: if {name} \
             holds a command, write {{shell:{name}}}"
        ));
    }
    let mut quote = Quote::None;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            let after = &rest[1..];
            let close = after.find('}');
            let inner = close.map(|k| &after[..k]).unwrap_or("");
            let (raw, key) = match inner.strip_prefix("shell:") {
                Some(k) => (true, k),
                None => (false, inner),
            };
            if let Some(close) = close.filter(|_| {
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }) {
                let placeholder = &rest[..close + 2];
                match (ctx, raw) {
                    (Context::Text, true) => out.problems.push(format!(
                        "{placeholder} is only for a command stage's run"
                    )),
                    (Context::Shell, true) if BUILTINS.contains(&key) => out.problems.push(format!(
                        "{placeholder}: {key} comes from the backup or the target, so it is never shell text; write {{{key}}}"
                    )),
                    (Context::Shell, false) if quote != Quote::None => out.problems.push(format!(
                        "{placeholder} is inside quotes in the command; close the quotes around it (\"ALTER DATABASE \"{placeholder}\" OWNER TO app\"): it reaches the shell as one word, quoted, whatever it holds"
                    )),
                    _ => {}
                }
                match vars.get(key) {
                    Some(v) if ctx == Context::Shell && !raw => out.text.push_str(&shell_word(v)),
                    Some(v) => out.text.push_str(v),
                    None => {
                        out.missing.push(key.to_string());
                        out.text.push_str(placeholder);
                    }
                }
                rest = &after[close + 1..];
                escaped = false;
                continue;
            }
        }
        if ctx == Context::Shell {
            match (&quote, c) {
                _ if escaped => escaped = false,
                (Quote::None | Quote::Double, '\\') => escaped = true,
                (Quote::None, '\'') => quote = Quote::Single,
                (Quote::Single, '\'') => quote = Quote::None,
                (Quote::None, '"') => quote = Quote::Double,
                (Quote::Double, '"') => quote = Quote::None,
                _ => {}
            }
        }
        out.text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
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
            let mut misused = Vec::new();
            let mut sub = |s: &str, ctx: Context| {
                let r = substitute(s, &vars, ctx);
                missing.extend(r.missing);
                misused.extend(r.problems);
                r.text
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
            for m in misused {
                problems.push(format!("stage {} ({name}): {m}", i + 1));
            }
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
        let r = substitute("x{a}y{b}{ c }", &v, Context::Text);
        assert_eq!(
            (r.text.as_str(), r.missing),
            ("x1y{b}{ c }", vec!["b".to_string()])
        );
        assert_eq!(substitute("{{a}}", &v, Context::Text).text, "{1}");
    }

    #[test]
    fn a_value_reaches_the_shell_as_one_word() {
        let v = vars(&[
            ("note", "$(touch ./pwned2)`touch ./pwned3`;touch ./pwned4"),
            ("quote", "it's"),
            ("plain", "db_1.x"),
            ("cmd", "monit stop repmgr"),
            ("target_db", "x$(touch ./pwned5)"),
        ]);
        let r = substitute("echo got {note} {quote} {plain}", &v, Context::Shell);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(
            r.text,
            "echo got '$(touch ./pwned2)`touch ./pwned3`;touch ./pwned4' 'it'\\''s' db_1.x"
        );
        assert_eq!(
            substitute("echo restored into {target_db}", &v, Context::Shell).text,
            "echo restored into 'x$(touch ./pwned5)'"
        );
        // A variable that is a command says so, and only a command stage may say it.
        assert_eq!(
            substitute("{shell:cmd}", &v, Context::Shell).text,
            "monit stop repmgr"
        );
        assert!(!substitute("{shell:cmd}", &v, Context::Text)
            .problems
            .is_empty());
        // The builtins come from the backup and the target: never shell text.
        let r = substitute("{shell:target_db}", &v, Context::Shell);
        assert!(
            r.problems[0].contains("never shell text"),
            "{:?}",
            r.problems
        );
        // Inside the command's own quotes a quoted word would be unquoted again.
        for quoted in ["echo '{note}'", "echo \"{note}\"", "echo \"a $({note})\""] {
            let r = substitute(quoted, &v, Context::Shell);
            assert!(
                r.problems[0].contains("inside quotes"),
                "{quoted}: {:?}",
                r.problems
            );
        }
        // Quotes that are escaped or closed do not count.
        assert!(
            substitute("echo \\' {note} 'x' \"y\" {plain}", &v, Context::Shell)
                .problems
                .is_empty()
        );
        let r = substitute(" {cmd} ", &v, Context::Shell);
        assert!(
            r.problems[0].contains("write {shell:cmd}"),
            "{:?}",
            r.problems
        );
        let missing = substitute("{shell:nope} {nope2}", &v, Context::Shell).missing;
        assert_eq!(missing, ["nope", "nope2"]);
    }

    #[test]
    fn every_preset_marks_its_command_variables() {
        let v = vars(&[
            ("old_db", "a"),
            ("new_db", "b"),
            ("stop_repmgr_cmd", "monit stop repmgr"),
            ("post_restore_cmd", "echo configured"),
            ("scale_down_cmd", "kubectl scale deploy/app --replicas=0"),
            ("target_db", "app"),
        ]);
        for (name, _) in PRESETS {
            let f = PlanFile::preset(name).unwrap();
            let p = ResolvedPlan::resolve(name, &f, &v, &BTreeMap::new()).unwrap();
            for s in &p.stages {
                if let Action::Command(c) = &s.action {
                    assert!(!c.run.contains("'monit"), "{name}: {}", c.run);
                    assert!(!c.run.contains("'echo"), "{name}: {}", c.run);
                    assert!(!c.run.contains("'kubectl"), "{name}: {}", c.run);
                }
            }
        }
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
