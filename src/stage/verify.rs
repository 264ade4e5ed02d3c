//! `verify`: the rows of each table counted from the dump's COPY blocks against what the
//! restored tables hold, renames and truncations applied. Owns the SQL that counts (`ONLY` for
//! plain and inheritance tables, whole for partitioned ones) and the table the operator reads.
//! Changes nothing; a mismatch fails the stage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Action, Kind, Resolved, StageContext};

use crate::dump::TableRows;
use crate::error::{Error, Result};
use crate::pg::quote_literal;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
}

impl super::Spec for Spec {
    fn resolve(&self, _: &mut dyn FnMut(&str) -> String) -> Resolved {
        Resolved::new(&self.name, Action::Verify(Verify {}), false)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verify {}

impl Kind for Verify {
    const KIND: &'static str = "verify";

    fn render(&self, _: &str) -> String {
        "compare the rows of every table in the dump's COPY blocks with SELECT count(*)".into()
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        let Some(t) = ctx.effects.tables.as_ref() else {
            let plain = ctx
                .effects
                .stream
                .as_ref()
                .is_some_and(|r| r.dump_kind != crate::dump::DumpKind::Custom);
            return Ok(if plain {
                "no row counts: the dump is not one pg_dump or pg_dumpall wrote (psql reported success)"
            } else {
                "row counts are not available for custom-format dumps (pg_restore reported success)"
            }
            .into());
        };
        let checks = check_rows(
            ctx.psql,
            t,
            &ctx.target.database(),
            ctx.renames,
            ctx.truncated,
        )
        .await;
        let bad = checks.iter().filter(|c| !c.ok()).count();
        let n = checks.len();
        ctx.effects.mismatches = bad;
        let table = render_checks(&checks);
        ctx.effects.verification = Some(checks);
        if bad > 0 {
            return Err(Error::Verification { count: bad, table });
        }
        Ok(format!("{n} table(s): row counts match the dump"))
    }
}

/// One table's verification.
#[derive(Debug, Clone, Serialize)]
pub struct RowCheck {
    pub database: String,
    pub table: String,
    pub dump_rows: u64,
    /// What the table should hold now: the dump's rows, or 0 when a stage of the plan
    /// emptied it on purpose (truncate-repmgr).
    pub expected_rows: u64,
    pub restored_rows: Option<u64>,
    pub error: Option<String>,
}

impl RowCheck {
    pub(crate) fn ok(&self) -> bool {
        self.restored_rows == Some(self.expected_rows)
    }
}

/// The schema of `schema.table` as COPY writes it (either part may be double-quoted).
fn schema_of(table: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = table.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                out.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => return out,
            c => out.push(c),
        }
    }
    out
}

/// Compares the dump's row counts with the restored tables, per database (renames applied).
pub async fn check_rows(
    psql: &crate::pg::Psql,
    tables: &[TableRows],
    default_db: &str,
    renames: &[(String, String)],
    truncated: &[(String, String)],
) -> Vec<RowCheck> {
    let mut by_db: BTreeMap<String, Vec<&TableRows>> = BTreeMap::new();
    for t in tables {
        let mut db = t.database.clone().unwrap_or_else(|| default_db.to_string());
        for (from, to) in renames {
            if &db == from {
                db = to.clone();
            }
        }
        by_db.entry(db).or_default().push(t);
    }
    let mut checks = Vec::new();
    for (db, ts) in by_db {
        let (counts, error) = count_tables(psql, &db, &ts).await;
        for (i, t) in ts.iter().enumerate() {
            let emptied = truncated
                .iter()
                .any(|(d, s)| d == &db && *s == schema_of(&t.table));
            let restored = counts.get(&i).copied();
            checks.push(RowCheck {
                database: db.clone(),
                table: t.table.clone(),
                dump_rows: t.rows,
                expected_rows: if emptied { 0 } else { t.rows },
                restored_rows: restored.flatten(),
                error: match restored {
                    Some(Some(_)) => None,
                    Some(None) => Some("the table does not exist in the target".into()),
                    None => error.clone(),
                },
            });
        }
    }
    checks
}

/// Counts the rows each table holds itself: `ONLY`, because the dump's COPY block of an
/// inheritance parent holds only the parent's rows; a partitioned table (which holds none
/// itself) counted whole, because `pg_dump --load-via-partition-root` loads its partitions'
/// rows through it. `Some(None)`: the table does not exist.
async fn count_tables(
    psql: &crate::pg::Psql,
    db: &str,
    tables: &[&TableRows],
) -> (BTreeMap<usize, Option<u64>>, Option<String>) {
    let last_line = |e: Error| {
        e.to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let kinds_sql: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "SELECT {i}, coalesce((SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass({})), '-')",
                quote_literal(&t.table)
            )
        })
        .collect();
    let kinds = match psql
        .query(Some(db), &format!("{};", kinds_sql.join(" UNION ALL ")))
        .await
    {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|r| Some((r.first()?.parse::<usize>().ok()?, r.get(1)?.clone())))
            .collect::<BTreeMap<usize, String>>(),
        Err(e) => return (BTreeMap::new(), Some(last_line(e))),
    };
    let mut out: BTreeMap<usize, Option<u64>> = BTreeMap::new();
    let mut count_sql = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        match kinds.get(&i).map(String::as_str) {
            Some("-") | None => {
                out.insert(i, None);
            }
            Some("p") => count_sql.push(format!("SELECT {i}, count(*) FROM {}", t.table)),
            Some(_) => count_sql.push(format!("SELECT {i}, count(*) FROM ONLY {}", t.table)),
        }
    }
    if count_sql.is_empty() {
        return (out, None);
    }
    match psql
        .query(Some(db), &format!("{};", count_sql.join(" UNION ALL ")))
        .await
    {
        Ok(rows) => {
            for r in rows {
                if let (Some(i), Some(n)) = (
                    r.first().and_then(|v| v.parse::<usize>().ok()),
                    r.get(1).and_then(|v| v.parse::<u64>().ok()),
                ) {
                    out.insert(i, Some(n));
                }
            }
            (out, None)
        }
        Err(e) => (out, Some(last_line(e))),
    }
}

/// A table of row checks, mismatches first.
pub fn render_checks(checks: &[RowCheck]) -> String {
    let mut rows: Vec<&RowCheck> = checks.iter().collect();
    rows.sort_by_key(|c| c.ok());
    // Names as the dump writes them, a newline inside a quoted name shown as \n.
    let name = |c: &RowCheck| format!("{}.{}", c.database, c.table).replace('\n', "\\n");
    let w = rows
        .iter()
        .map(|c| name(c).chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut s = format!("{:<w$}  {:>12}  {:>12}", "TABLE", "DUMP ROWS", "RESTORED");
    for c in rows {
        s.push_str(&format!(
            "\n{:<w$}  {:>12}  {:>12}  {}",
            name(c),
            c.dump_rows,
            c.restored_rows.map(|r| r.to_string()).unwrap_or("-".into()),
            if c.ok() && c.expected_rows != c.dump_rows {
                "ok (emptied by truncate-repmgr)".to_string()
            } else if c.ok() {
                "ok".to_string()
            } else {
                format!(
                    "MISMATCH{}",
                    c.error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_of_copy_table_names() {
        assert_eq!(schema_of("repmgr.nodes"), "repmgr");
        assert_eq!(schema_of("\"Odd \"\"Schema\".\"t.x\""), "Odd \"Schema");
        assert_eq!(schema_of("nodot"), "nodot");
    }
}
