//! `terminate-sessions [database]`: ends the client sessions (of one database, or all) so
//! that nothing writes while the dump is restored. Destructive.

use serde::{Deserialize, Serialize};

use super::{run_sql, Action, Kind, Resolved, StageContext, Sub};
use crate::error::Result;
use crate::pg::quote_literal;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
    /// Only sessions of this database; all client sessions when absent.
    pub database: Option<String>,
}

impl super::Spec for Spec {
    fn resolve(&self, sub: &mut Sub<'_>) -> Resolved {
        let database = self
            .database
            .as_deref()
            .map(|d| sub(d, super::Context::Text));
        Resolved::new(
            &self.name,
            Action::TerminateSessions(TerminateSessions { database }),
            true,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminateSessions {
    pub database: Option<String>,
}

impl Kind for TerminateSessions {
    const KIND: &'static str = "terminate-sessions";

    fn sql(&self) -> Option<(Option<String>, String)> {
        Some((
            None,
            format!(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'{};",
                self.database
                    .as_ref()
                    .map(|d| format!(" AND datname = {}", quote_literal(d)))
                    .unwrap_or_default()
            ),
        ))
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        let rows = run_sql(self, ctx).await?;
        Ok(format!("terminated {} session(s)", rows.len()))
    }
}
