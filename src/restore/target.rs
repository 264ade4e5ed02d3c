//! What a pick needs of the target, checked before any stage runs: databases it creates
//! (`--into NEW`, `--database` picked whole) that do not exist yet (or `--clean`), tables and schemas that are not there already (their
//! `CREATE` would fail and the backup's rows be added to the live table), tables that are
//! there for `--data-only`. Each check is one catalog query of a size bounded by the pick
//! (index lookups in `pg_database`, `pg_namespace`, `pg_class`), whatever the size of the
//! database.

use crate::dump::DumpKind;
use crate::error::{Error, Result};
use crate::pg::{quote_literal, ConnInfo, Psql};
use crate::pick::{quote_ident, Content, Pick};

/// What the check found that the restore must act on.
#[derive(Debug, Default)]
pub(super) struct PickTarget {
    /// `--into NEW --clean` where NEW exists: dropped (`WITH (FORCE)`) just before the stream, once the backup is known
    /// whole.
    pub drop: Vec<String>,
    /// What to say.
    pub notice: Option<String>,
}

/// The database the picked objects go to: the one `--database` of a pg_dumpall, or the
/// target's for a dump of one database. None for whole databases.
fn destination(pick: &Pick, kind: DumpKind, target: &ConnInfo) -> Option<String> {
    if pick.whole_databases() || pick.into.is_some() {
        return None;
    }
    match kind {
        DumpKind::PgDumpall => pick.databases.first().cloned(),
        _ => Some(target.database()),
    }
}

/// Checks the target for the pick; `clean` is `--clean`.
pub(super) async fn check(
    psql: &Psql,
    pick: &Pick,
    kind: DumpKind,
    target: &ConnInfo,
    clean: bool,
) -> Result<PickTarget> {
    let mut out = PickTarget::default();
    // The databases the stream creates: `--into NEW`, or whole databases picked.
    let creates: Vec<&String> = match (&pick.into, pick.whole_databases()) {
        (Some(new), _) => vec![new],
        (None, true) if kind == DumpKind::PgDumpall && pick.content != Content::DataOnly => {
            pick.databases.iter().collect()
        }
        (None, _) => Vec::new(),
    };
    if !creates.is_empty() {
        let list: Vec<String> = creates.iter().map(|d| quote_literal(d)).collect();
        let rows = psql
            .query(
                None,
                &format!(
                    "SELECT datname FROM pg_database WHERE datname IN ({}) ORDER BY 1;",
                    list.join(", ")
                ),
            )
            .await?;
        let exist: Vec<String> = rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        if exist.is_empty() {
            return Ok(out);
        }
        let names: Vec<String> = exist.iter().map(|d| quote_ident(d)).collect();
        if pick.into.is_none() {
            // Not ours to drop: a pg_dumpall does not create `postgres` or `template1`, it
            // loads into them, and a live database is what the operator keeps.
            return Err(Error::Pick {
                reason: format!(
                    "--database {}: the database exists on the target; nothing was changed. \
                     Restored there, the dump's objects would collide with the live ones. Add --into \
                     NEW to restore it beside the live one (then compare and copy back), or drop it \
                     yourself first",
                    names.join(", ")
                ),
            });
        }
        if !clean {
            return Err(Error::Pick {
                reason: format!(
                    "--into {}: the database exists on the target; nothing was changed. Choose \
                     another name, or add --clean to drop it and restore it anew (its sessions are ended)",
                    names.join(", "),
                ),
            });
        }
        out.notice = Some(format!(
            "--into {} --clean: the existing database is dropped (WITH (FORCE), its sessions \
             ended) just before the stream, once the backup is known whole",
            names.join(", ")
        ));
        out.drop = exist;
        return Ok(out);
    }
    let Some(db) = destination(pick, kind, target) else {
        return Ok(out);
    };
    let rows = psql
        .query(
            None,
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = {};",
                quote_literal(&db)
            ),
        )
        .await?;
    if rows
        .first()
        .and_then(|r| r.first())
        .is_none_or(|n| n == "0")
    {
        return Err(Error::Pick {
            reason: format!(
                "the picked objects go to database {}, which does not exist on the target; nothing \
                 was changed. Add --into NEW to restore them into a new database, or create it first",
                quote_ident(&db)
            ),
        });
    }
    let found = existing(psql, pick, &db).await?;
    match pick.content {
        Content::DataOnly => {
            let missing: Vec<String> = pick
                .tables
                .iter()
                .filter(|t| {
                    !found
                        .iter()
                        .any(|(s, n)| t.name == *n && t.schema.as_ref().is_none_or(|x| x == s))
                })
                .map(ToString::to_string)
                .collect();
            if !missing.is_empty() {
                return Err(Error::Pick {
                    reason: format!(
                        "--data-only loads rows into tables that exist, and {} not exist in database {}; \
                         nothing was changed. Leave --data-only out to create {}, or --into NEW to restore \
                         beside the live database",
                        if missing.len() == 1 { format!("{} does", missing[0]) } else { format!("{} do", missing.join(", ")) },
                        quote_ident(&db),
                        if missing.len() == 1 { "it" } else { "them" }
                    ),
                });
            }
        }
        Content::All | Content::SchemaOnly if !found.is_empty() => {
            let names: Vec<String> = found
                .iter()
                .take(10)
                .map(|(s, n)| format!("{}.{}", quote_ident(s), quote_ident(n)))
                .collect();
            return Err(Error::Pick {
                reason: format!(
                    "{} already in database {} on the target; nothing was changed. Restored there, \
                     their CREATE would fail and the backup's rows be added to the live ones. Add \
                     --into NEW to restore beside them (then compare and copy back), --data-only to \
                     add the rows on purpose, or drop them first",
                    if found.len() == 1 {
                        format!("{} is", names[0])
                    } else {
                        format!(
                            "{}{} are",
                            names.join(", "),
                            if found.len() > names.len() { ", …" } else { "" }
                        )
                    },
                    quote_ident(&db)
                ),
            });
        }
        Content::All | Content::SchemaOnly => {}
    }
    Ok(out)
}

/// The picked tables, and the relations of the picked schemas, that exist in `db`, as
/// (schema, name); at most 100.
async fn existing(psql: &Psql, pick: &Pick, db: &str) -> Result<Vec<(String, String)>> {
    let mut conds: Vec<String> = pick
        .tables
        .iter()
        .map(|t| match &t.schema {
            Some(s) => format!(
                "(n.nspname = {} AND c.relname = {})",
                quote_literal(s),
                quote_literal(&t.name)
            ),
            None => format!("c.relname = {}", quote_literal(&t.name)),
        })
        .collect();
    if !pick.schemas.is_empty() && pick.content != Content::DataOnly {
        let list: Vec<String> = pick.schemas.iter().map(|s| quote_literal(s)).collect();
        conds.push(format!("n.nspname IN ({})", list.join(", ")));
    }
    if conds.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ({}) ORDER BY 1, 2 LIMIT 100;",
        conds.join(" OR ")
    );
    let rows = psql.query(Some(db), &sql).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [s, n] => Some((s.clone(), n.clone())),
            _ => None,
        })
        .collect())
}
