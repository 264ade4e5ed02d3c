//! `rename-database from to`: the a9s manual's last step, `DROP DATABASE to; ALTER DATABASE
//! from RENAME TO to`. Destructive, so it never drops `to` unless `from` exists: `from` must
//! be one of the databases the dump restores, when that is known, and the SQL itself checks
//! that `from` exists before its DROP. A rename of a database to its own name is skipped.

use serde::{Deserialize, Serialize};

use super::{run_sql, Action, Kind, Resolved, StageContext, Sub, MAINTENANCE_DB};
use crate::error::{Error, Result};
use crate::pg::{quote_ident, quote_literal};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
    pub from: String,
    pub to: String,
}

impl super::Spec for Spec {
    fn resolve(&self, sub: &mut Sub<'_>) -> Resolved {
        let from = sub(&self.from, super::Context::Text);
        let to = sub(&self.to, super::Context::Text);
        let same = from == to;
        let mut r = Resolved::new(
            &self.name,
            Action::RenameDatabase(RenameDatabase { from, to }),
            true,
        );
        if same {
            if let Action::RenameDatabase(a) = &r.action {
                r.skip = Some(format!("the database is already named {}", a.to));
            }
        }
        r
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenameDatabase {
    pub from: String,
    pub to: String,
}

impl Kind for RenameDatabase {
    const KIND: &'static str = "rename-database";

    fn sql(&self) -> Option<(Option<String>, String)> {
        let (from, to) = (&self.from, &self.to);
        // The source must exist before the target is dropped: a typo in FROM must fail
        // here, not after `to` (the live database, often) is gone. psql stops at the raised
        // error (ON_ERROR_STOP), before the DROP.
        let guard = format!(
            "BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = {f}) THEN \
             RAISE EXCEPTION 'database % does not exist: nothing was dropped or renamed', {f}; \
             END IF; END",
            f = quote_literal(from)
        );
        Some((
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
        ))
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        if let Some(dbs) = &ctx.effects.dump_databases {
            self.check(dbs)?;
        }
        run_sql(self, ctx).await?;
        Ok(format!("{} is now {}", self.from, self.to))
    }
}

impl RenameDatabase {
    /// Refuses a FROM that is not one of the databases the dump restores.
    pub(crate) fn check(&self, dbs: &[String]) -> Result<()> {
        if dbs.iter().any(|d| d == &self.from) {
            return Ok(());
        }
        Err(Error::RenameSource {
            from: self.from.clone(),
            to: self.to.clone(),
            restored: dbs.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_is_quoted() {
        let a = RenameDatabase {
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
        // The existence check of FROM comes before the DROP of TO.
        assert!(sql.find("does not exist").unwrap() < sql.find("DROP DATABASE").unwrap());
    }

    #[test]
    fn from_must_be_a_database_of_the_dump() {
        let a = RenameDatabase {
            from: "typo_db".into(),
            to: "live".into(),
        };
        let e = a.check(&["postgres".into(), "shop".into()]).unwrap_err();
        assert!(e
            .to_string()
            .contains("typo_db is not one the dump restores (postgres, shop)"));
        assert!(a.check(&["typo_db".into()]).is_ok());
    }
}
