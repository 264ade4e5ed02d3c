//! `preflight`: connect, read the server's version, refuse a standby and a dump of a newer
//! major version, and warn when the free space of the data directory or of the target
//! database's tablespace looks short. Changes nothing; it runs again on `--resume`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{run_sql, Action, Kind, Resolved, StageContext, Sub};
use crate::dump::PgVersion;
use crate::error::{Error, Result};
use crate::pipeline::PreparedBackup;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
}

impl super::Spec for Spec {
    fn resolve(&self, _: &mut Sub<'_>) -> Resolved {
        Resolved::new(&self.name, Action::Preflight(Preflight {}), false)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preflight {}

impl Kind for Preflight {
    const KIND: &'static str = "preflight";

    fn sql(&self) -> Option<(Option<String>, String)> {
        Some((
            None,
            "SELECT current_setting('server_version'), pg_is_in_recovery(), current_user, \
             current_database(), (SELECT setting FROM pg_settings WHERE name = 'data_directory'), \
             (SELECT pg_tablespace_location(dattablespace) FROM pg_database WHERE datname = current_database());"
                .to_string(),
        ))
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        let rows = run_sql(self, ctx).await?;
        let row = rows.first().cloned().unwrap_or_default();
        let get = |i: usize| row.get(i).cloned().unwrap_or_default();
        if get(1) == "t" {
            return Err(Error::Standby {
                target: ctx.target.describe(),
            });
        }
        if let Some(v) = PgVersion::parse(&get(0)) {
            ctx.target_version_is(v)?;
        }
        if let Some(b) = ctx.backup.as_ref() {
            // The data directory (WAL, and the tables of the default tablespace), and the
            // tablespace of the target database when it has one of its own.
            for dir in [get(4), get(5)] {
                if let Some(warning) = free_space_warning(&dir, b, ctx.shutdown).await {
                    (ctx.notify)(&warning);
                }
            }
        }
        // Which psql runs the stages and the SQL, and its version (issue 21): an older one
        // than the dump needs is refused before, and this says which was found.
        let psql = crate::pg::PgTools::version(&ctx.psql.program)
            .await
            .map(|v| format!("psql {v}"))
            .unwrap_or_else(|| "psql".into());
        Ok(format!(
            "PostgreSQL {} as {}, database {}, a primary; through {psql} ({})",
            get(0),
            get(2),
            get(3),
            ctx.psql.program.display()
        ))
    }
}

/// Warns when the data directory's free space looks short for the dump (and its WAL).
async fn free_space_warning(
    data_dir: &str,
    backup: &PreparedBackup,
    shutdown: &crate::Shutdown,
) -> Option<String> {
    if data_dir.is_empty() || !Path::new(data_dir).exists() {
        return None;
    }
    let mut df = std::process::Command::new("df");
    df.args(["-Pk", data_dir]);
    let (_, text, _) = crate::child::output(df, None, shutdown.children())
        .await
        .ok()?;
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
