//! `sql`: any SQL of the plan's, on the target (or one of its databases), with `ON_ERROR_STOP`.
//! Destructive unless the plan says `destructive = false`.

use serde::{Deserialize, Serialize};

use super::{run_sql, Action, Kind, Resolved, StageContext, Sub};
use crate::error::Result;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
    pub database: Option<String>,
    pub sql: String,
    pub destructive: Option<bool>,
}

impl super::Spec for Spec {
    fn resolve(&self, sub: &mut Sub<'_>) -> Resolved {
        let database = self
            .database
            .as_deref()
            .map(|d| sub(d, super::Context::Text));
        let sql = sub(&self.sql, super::Context::Text);
        Resolved::new(
            &self.name,
            Action::Sql(Sql { database, sql }),
            self.destructive.unwrap_or(true),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sql {
    pub database: Option<String>,
    pub sql: String,
}

impl Kind for Sql {
    const KIND: &'static str = "sql";

    fn sql(&self) -> Option<(Option<String>, String)> {
        Some((self.database.clone(), self.sql.clone()))
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        run_sql(self, ctx).await?;
        Ok(String::new())
    }
}
