//! `truncate-repmgr [database schema]`: empties repmgr's tables after a cluster's restore, as
//! the manual does, so that the restored metadata does not describe the old nodes.
//! Destructive; the verification expects those tables empty.

use serde::{Deserialize, Serialize};

use super::{run_sql, Action, Kind, Resolved, StageContext, Sub};
use crate::error::Result;
use crate::pg::quote_literal;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
}

impl super::Spec for Spec {
    fn resolve(&self, sub: &mut Sub<'_>) -> Resolved {
        let database = self
            .database
            .as_deref()
            .map(|d| sub(d, super::Context::Text))
            .unwrap_or("repmgr_cluster".into());
        let schema = self
            .schema
            .as_deref()
            .map(|d| sub(d, super::Context::Text))
            .unwrap_or("repmgr".into());
        Resolved::new(
            &self.name,
            Action::TruncateRepmgr(TruncateRepmgr { database, schema }),
            true,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TruncateRepmgr {
    pub database: String,
    pub schema: String,
}

impl Kind for TruncateRepmgr {
    const KIND: &'static str = "truncate-repmgr";

    fn sql(&self) -> Option<(Option<String>, String)> {
        Some((
            Some(self.database.clone()),
            format!(
                "DO $a9s$ DECLARE r record; BEGIN\n  FOR r IN (SELECT tablename FROM pg_tables WHERE schemaname = {lit}) LOOP\n    EXECUTE 'TRUNCATE ' || quote_ident({lit}) || '.' || quote_ident(r.tablename) || ' CASCADE';\n  END LOOP;\nEND $a9s$;",
                lit = quote_literal(&self.schema)
            ),
        ))
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        run_sql(self, ctx).await?;
        Ok(String::new())
    }
}
