//! `drop-schema database [schema]`: `DROP SCHEMA ... CASCADE; CREATE SCHEMA ...`, the
//! pg_dump/pg_restore runbook's clean slate before a custom-format restore. Destructive.

use serde::{Deserialize, Serialize};

use super::{run_sql, Action, Kind, Resolved, StageContext, Sub};
use crate::error::Result;
use crate::pg::quote_ident;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
    pub database: String,
    pub schema: Option<String>,
}

impl super::Spec for Spec {
    fn resolve(&self, sub: &mut Sub<'_>) -> Resolved {
        let database = sub(&self.database, super::Context::Text);
        let schema = self
            .schema
            .as_deref()
            .map(|d| sub(d, super::Context::Text))
            .unwrap_or("public".into());
        Resolved::new(
            &self.name,
            Action::DropSchema(DropSchema { database, schema }),
            true,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropSchema {
    pub database: String,
    pub schema: String,
}

impl Kind for DropSchema {
    const KIND: &'static str = "drop-schema";

    fn sql(&self) -> Option<(Option<String>, String)> {
        Some((
            Some(self.database.clone()),
            format!(
                "DROP SCHEMA IF EXISTS {s} CASCADE;\nCREATE SCHEMA {s};",
                s = quote_ident(&self.schema)
            ),
        ))
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        run_sql(self, ctx).await?;
        Ok(String::new())
    }
}
