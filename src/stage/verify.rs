//! `verify`: the rows of each table counted from the dump's COPY blocks against what the
//! restored tables hold, renames and truncations applied. Owns the SQL that counts (`ONLY` for
//! plain and inheritance tables, whole for partitioned ones) and the table the operator reads.
//! Changes nothing; a mismatch fails the stage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Action, Kind, Resolved, StageContext, Sub};

use crate::dump::TableRows;
use crate::error::{Error, Result};
use crate::pg::quote_literal;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
}

impl super::Spec for Spec {
    fn resolve(&self, _: &mut Sub<'_>) -> Resolved {
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
        if ctx.effects.rows_added {
            return rows_added(ctx, t);
        }
        let checks = check_rows(
            ctx.psql,
            t,
            &ctx.target.database(),
            ctx.renames,
            ctx.truncated,
            ctx.verify_limits,
        )
        .await;
        let bad = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Mismatch)
            .count();
        let unchecked = checks
            .iter()
            .filter(|c| c.status == CheckStatus::NotChecked)
            .count();
        let n = checks.len();
        ctx.effects.mismatches = bad;
        let table = render_checks(&checks);
        ctx.effects.verification = Some(checks);
        if bad > 0 {
            return Err(Error::Verification {
                count: bad,
                unchecked,
                table,
            });
        }
        if unchecked > 0 {
            return Err(Error::VerificationIncomplete {
                count: unchecked,
                of: n,
                table,
            });
        }
        Ok(format!("{n} table(s): row counts match the dump"))
    }
}

/// `--data-only`: the tables may have held rows before (and the application may write to
/// them), so their counts prove nothing; what does is that the server took every COPY
/// whole, each of the dump's rows. A COPY refused fails the stage, naming it.
fn rows_added(ctx: &StageContext<'_>, t: &[TableRows]) -> Result<String> {
    let failed = ctx
        .effects
        .stream
        .as_ref()
        .and_then(|r| r.restore.as_ref())
        .map(|c| c.failed_copies.clone())
        .unwrap_or_default();
    let rows: u64 = t.iter().map(|t| t.rows).sum();
    if failed.is_empty() {
        return Ok(format!(
            "{} table(s): every COPY was taken whole, {rows} row(s) added (--data-only: the tables' \
             counts are not compared, they held rows before)",
            t.len()
        ));
    }
    let table = failed
        .iter()
        .map(|f| {
            format!(
                "{}{}: its COPY of {} row(s) was refused, none of them added",
                f.database
                    .as_deref()
                    .map(|d| format!("{d}."))
                    .unwrap_or_default(),
                f.table,
                f.rows
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Err(Error::Verification {
        count: failed.len(),
        unchecked: 0,
        table,
    })
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
    /// `ok`, `mismatch` (other rows, or no such table in the target), or `not_checked` (the
    /// check itself failed: a timeout, a lock it did not get, a lost connection).
    pub status: CheckStatus,
    pub error: Option<String>,
}

/// The outcome of one table's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Mismatch,
    NotChecked,
}

/// How long one table's count may take, and how long it may wait for a lock, on the target:
/// the check must never hold up a production server (a count waiting behind an ALTER TABLE
/// would queue every query of the application behind itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub statement_timeout: std::time::Duration,
    pub lock_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            statement_timeout: std::time::Duration::from_secs(1800),
            lock_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Tables looked up in one statement. The names go to the server in batches of this many
/// (one array), and each table is counted by a statement of its own: what the server holds
/// for the check is bounded by this, and it holds one table's lock at a time, whatever the
/// number of tables (one statement of 5,000 `UNION ALL` branches took a backend to 23 GB).
pub const BATCH: usize = 500;

/// Compares the dump's row counts with the restored tables, per database (renames applied).
pub async fn check_rows(
    psql: &crate::pg::Psql,
    tables: &[TableRows],
    default_db: &str,
    renames: &[(String, String)],
    truncated: &[(String, String)],
    limits: Limits,
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
        let counts = count_tables(psql, &db, &ts, limits).await;
        for (t, counted) in ts.iter().zip(counts) {
            let emptied = truncated.iter().any(|(d, s)| d == &db && *s == t.schema());
            let expected = if emptied { 0 } else { t.rows };
            let (status, restored, error) = match counted {
                Counted::Rows(n) if n == expected => (CheckStatus::Ok, Some(n), None),
                Counted::Rows(n) => (CheckStatus::Mismatch, Some(n), None),
                Counted::Missing => (
                    CheckStatus::Mismatch,
                    None,
                    Some("the table does not exist in the target".into()),
                ),
                // No database, no rows: the restore lost them, the check did not fail.
                Counted::Failed(e)
                    if e.contains("database \"") && e.contains("\" does not exist") =>
                {
                    (
                        CheckStatus::Mismatch,
                        None,
                        Some("the database does not exist in the target".into()),
                    )
                }
                Counted::Failed(e) => (CheckStatus::NotChecked, None, Some(e)),
            };
            checks.push(RowCheck {
                database: db.clone(),
                table: t.table.clone(),
                dump_rows: t.rows,
                expected_rows: expected,
                restored_rows: restored,
                status,
                error,
            });
        }
    }
    checks
}

/// What counting one table gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Counted {
    Rows(u64),
    Missing,
    /// The check did not get an answer; why.
    Failed(String),
}

/// The script that counts one batch of `tables`, the first having index `first`: one
/// statement finds the tables (`to_regclass`) and writes a count statement per table, which
/// psql's `\gexec` runs one by one, each in a transaction of its own. It counts the rows each
/// table holds itself: `ONLY`, because the dump's COPY block of an inheritance parent holds
/// only the parent's rows; a partitioned table (which holds none itself) counted whole,
/// because `pg_dump --load-via-partition-root` loads its partitions' rows through it. A table
/// that does not exist answers `-`. Names reach the count statements as the server quotes
/// them (`%I`), never as the dump wrote them.
fn count_script(tables: &[&TableRows], first: usize, limits: Limits) -> String {
    let ms = |d: std::time::Duration| d.as_millis().min(i32::MAX as u128);
    let names: Vec<String> = tables.iter().map(|t| quote_literal(&t.table)).collect();
    format!(
        "SET statement_timeout = {};\nSET lock_timeout = {};\n\
         SELECT CASE WHEN c.oid IS NULL THEN pg_catalog.format('SELECT %s, %L', n.i + {offset}, '-') \
         ELSE pg_catalog.format('SELECT %s, pg_catalog.count(*) FROM %s %I.%I', n.i + {offset}, \
         CASE c.relkind WHEN 'p' THEN '' ELSE 'ONLY' END, s.nspname, c.relname) END \
         FROM pg_catalog.unnest(ARRAY[{}]::text[]) WITH ORDINALITY AS n(name, i) \
         LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(n.name) \
         LEFT JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace ORDER BY n.i \\gexec\n",
        ms(limits.statement_timeout),
        ms(limits.lock_timeout),
        names.join(", "),
        offset = first as i64 - 1,
    )
}

/// Counts the rows of `tables` in `db`, one answer per table in order: a connection (one
/// psql) per [`BATCH`] tables, so that what a backend caches of the tables it opened stays
/// bounded too. The check's own failures (a timeout, a lock not granted, a lost
/// connection) are `Failed`, never a count; after a batch that lost its connection, the
/// rest is not tried.
async fn count_tables(
    psql: &crate::pg::Psql,
    db: &str,
    tables: &[&TableRows],
    limits: Limits,
) -> Vec<Counted> {
    let mut out: Vec<Option<Counted>> = vec![None; tables.len()];
    let mut stopped: Option<String> = None;
    for (b, batch) in tables.chunks(BATCH).enumerate() {
        let first = b * BATCH;
        let why = match &stopped {
            Some(why) => why.clone(),
            None => match psql
                .script(Some(db), &count_script(batch, first, limits))
                .await
            {
                Ok(r) => {
                    for row in &r.rows {
                        let (Some(i), Some(v)) = (
                            row.first().and_then(|i| i.parse::<usize>().ok()),
                            row.get(1),
                        ) else {
                            continue;
                        };
                        if let Some(slot) = out.get_mut(i).filter(|_| i >= first) {
                            *slot = Some(match v.parse::<u64>() {
                                Ok(n) => Counted::Rows(n),
                                Err(_) => Counted::Missing,
                            });
                        }
                    }
                    let errors = script_errors(&r.stderr);
                    if r.completed {
                        if errors.is_empty() {
                            "psql gave no answer for it".to_string()
                        } else {
                            errors.join("; ")
                        }
                    } else {
                        let why = format!(
                            "the check stopped: {}",
                            r.stderr
                                .trim()
                                .lines()
                                .last()
                                .unwrap_or("psql failed")
                                .trim()
                        );
                        stopped = Some(why.clone());
                        why
                    }
                }
                Err(e) => {
                    let why = format!(
                        "the check could not run: {}",
                        e.to_string().lines().last().unwrap_or_default().trim()
                    );
                    stopped = Some(why.clone());
                    why
                }
            },
        };
        for slot in &mut out[first..first + batch.len()] {
            if slot.is_none() {
                *slot = Some(Counted::Failed(why.clone()));
            }
        }
    }
    out.into_iter()
        .map(|c| c.unwrap_or_else(|| Counted::Failed("not counted".into())))
        .collect()
}

/// The distinct `ERROR:` messages in psql's stderr (at most three), without psql's
/// `psql:<stdin>:N:` prefix.
fn script_errors(stderr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if let Some(k) = line.find("ERROR:") {
            let msg = line[k..].split_whitespace().collect::<Vec<_>>().join(" ");
            if !out.contains(&msg) && out.len() < 3 {
                out.push(msg);
            }
        }
    }
    out
}

/// A table of row checks, mismatches first, then the tables not checked.
pub fn render_checks(checks: &[RowCheck]) -> String {
    let mut rows: Vec<&RowCheck> = checks.iter().collect();
    rows.sort_by_key(|c| match c.status {
        CheckStatus::Mismatch => 0,
        CheckStatus::NotChecked => 1,
        CheckStatus::Ok => 2,
    });
    // Names as the dump writes them, control characters escaped.
    let name = |c: &RowCheck| crate::text::escape(&format!("{}.{}", c.database, c.table));
    let w = rows
        .iter()
        .map(|c| name(c).chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut s = format!("{:<w$}  {:>12}  {:>12}", "TABLE", "DUMP ROWS", "RESTORED");
    for c in rows {
        let error = c
            .error
            .as_ref()
            .map(|e| format!(": {}", crate::text::escape(e)))
            .unwrap_or_default();
        s.push_str(&format!(
            "\n{:<w$}  {:>12}  {:>12}  {}",
            name(c),
            c.dump_rows,
            c.restored_rows.map(|r| r.to_string()).unwrap_or("-".into()),
            match c.status {
                CheckStatus::Ok if c.expected_rows != c.dump_rows =>
                    "ok (emptied by truncate-repmgr)".to_string(),
                CheckStatus::Ok => "ok".to_string(),
                CheckStatus::Mismatch => format!("MISMATCH{error}"),
                CheckStatus::NotChecked => format!("NOT CHECKED{error}"),
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(table: &str) -> TableRows {
        TableRows {
            database: None,
            table: table.into(),
            rows: 1,
            bytes: 2,
        }
    }

    #[test]
    fn the_count_script_finds_tables_by_literal_and_quotes_them_as_the_server_does() {
        let names: Vec<TableRows> = (0..3).map(|i| rows(&format!("public.t{i}"))).collect();
        let refs: Vec<&TableRows> = names.iter().collect();
        let sql = count_script(&refs, 1000, Limits::default());
        assert!(sql.starts_with("SET statement_timeout = 1800000;\nSET lock_timeout = 10000;\n"));
        assert_eq!(sql.matches("\\gexec").count(), 1);
        assert!(!sql.contains("UNION"));
        assert!(
            sql.contains("n.i + 999"),
            "the batch's first table is 1000: {sql}"
        );
        // A hostile name is a literal to to_regclass, never SQL of its own.
        let hostile = rows("public.\"x'); DROP TABLE y; --\"");
        let sql = count_script(&[&hostile], 0, Limits::default());
        assert!(sql.contains("'public.\"x''); DROP TABLE y; --\"'"), "{sql}");
        assert!(sql.contains("n.i + -1"));
    }

    #[test]
    fn psql_errors_are_collected_without_their_prefix() {
        let e = script_errors(
            "psql:<stdin>:3: ERROR:  canceling statement due to lock timeout\n\
             psql:<stdin>:3: ERROR:  canceling statement due to lock timeout\n\
             psql:<stdin>:4: ERROR:  canceling statement due to statement timeout\n",
        );
        assert_eq!(
            e,
            [
                "ERROR: canceling statement due to lock timeout",
                "ERROR: canceling statement due to statement timeout"
            ]
        );
    }

    #[test]
    fn schema_of_copy_table_names() {
        let schema_of = |t: &str| rows(t).schema();
        assert_eq!(schema_of("repmgr.nodes"), "repmgr");
        assert_eq!(schema_of("\"Odd \"\"Schema\".\"t.x\""), "Odd \"Schema");
        assert_eq!(schema_of("nodot"), "nodot");
    }
}
