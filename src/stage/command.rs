//! `command`: a local shell command of the plan's (`sh -c`), with `{placeholders}`
//! substituted and `A9S_BACKUP_ID` and `A9S_TARGET_DB` in its environment (never the backup
//! secret). A `{name}` reaches the shell as one word, quoted, whatever the value holds (a
//! database name is data); only `{shell:name}` inserts a value as shell text, for a variable
//! that is a whole command, and never for `backup_id`, `instance_id` or `target_db`. The dry
//! run shows the command exactly as `sh -c` gets it. Host-level steps are commands: stopping units, `bosh ssh` wrappers. Destructive
//! unless the plan says `destructive = false`; `optional` ones are skipped when a variable
//! they use is not set; `tolerate_missing_unit` makes "Unknown unit" a note, not a failure.

use serde::{Deserialize, Serialize};

use super::{Action, Kind, Resolved, StageContext, Sub};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
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

impl super::Spec for Spec {
    fn resolve(&self, sub: &mut Sub<'_>) -> Resolved {
        let mut r = Resolved::new(
            &self.name,
            Action::Command(Command {
                run: sub(&self.run, super::Context::Shell),
                tolerate_missing_unit: self.tolerate_missing_unit,
            }),
            self.destructive.unwrap_or(true),
        );
        r.optional = self.optional;
        r
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    pub run: String,
    pub tolerate_missing_unit: bool,
}

/// What systemctl, service and monit say of a unit that does not exist.
const MISSING_UNIT: [&str; 4] = [
    "Unknown unit",
    "not loaded",
    "could not be found",
    "does not exist",
];

impl Kind for Command {
    const KIND: &'static str = "command";

    fn render(&self, _: &str) -> String {
        format!(
            "$ {}{}",
            self.run,
            if self.tolerate_missing_unit {
                "\n(a missing unit is tolerated)"
            } else {
                ""
            }
        )
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&self.run)
            .env("A9S_BACKUP_ID", ctx.backup_id)
            .env("A9S_TARGET_DB", ctx.target.database())
            // The backup secret is for us, not for stage commands.
            .env_remove("A9S_SECRET");
        let (status, stdout, stderr) =
            crate::child::output(cmd, None, ctx.shutdown.children()).await?;
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
        if self.tolerate_missing_unit && MISSING_UNIT.iter().any(|m| said.contains(m)) {
            return Ok(format!(
                "tolerated a missing unit: {}",
                said.lines().next().unwrap_or("")
            ));
        }
        Err(Error::Child {
            program: "command".into(),
            doing: format!("running `{}`", self.run),
            status: status.to_string(),
            stderr: said,
        })
    }
}
