//! `restore`: the stream itself, into psql (plain SQL) or pg_restore (custom format), counting
//! the rows of each COPY block as it passes. Exactly one per plan; destructive.

use serde::{Deserialize, Serialize};

use super::{Action, Kind, Resolved, StageContext, Sub};
use crate::dump::PgVersion;
use crate::error::{Error, Result};
use crate::pg::ConnInfo;
use crate::pipeline::{self, Report, RunOptions};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
    /// Flags for pg_restore (custom-format dumps), e.g. `["--no-owner", "--no-privileges"]`.
    #[serde(default)]
    pub pg_restore_args: Vec<String>,
    /// Stop at the first SQL error (psql `ON_ERROR_STOP=1`).
    pub on_error_stop: Option<bool>,
}

impl super::Spec for Spec {
    fn resolve(&self, _: &mut Sub<'_>) -> Resolved {
        Resolved::new(
            &self.name,
            Action::Restore(Restore {
                pg_restore_args: self.pg_restore_args.clone(),
                on_error_stop: self.on_error_stop,
            }),
            true,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restore {
    pub pg_restore_args: Vec<String>,
    pub on_error_stop: Option<bool>,
}

impl Kind for Restore {
    const KIND: &'static str = "restore";

    fn render(&self, restore_line: &str) -> String {
        restore_line.to_string()
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        // A plan without a preflight stage: ask the target here, before the stream.
        if ctx.effects.target_version.is_none() {
            let rows = ctx
                .psql
                .query(None, "SELECT current_setting('server_version');")
                .await?;
            let v = rows
                .first()
                .and_then(|r| r.first())
                .and_then(|v| PgVersion::parse(v));
            if let Some(v) = v {
                ctx.target_version_is(v)?;
            }
        }
        let plan = ctx
            .backup
            .take()
            .ok_or_else(|| Error::Plan("the restore stage can run once per invocation".into()))?;
        let mut out = ctx.output.take().expect("one restore stage");
        let (first, first_sha256) = first_read(&plan, &mut out, ctx).await?;
        let slot = out.pick_slot();
        ctx.effects.rows_added = out
            .pick()
            .is_some_and(|p| p.content == crate::pick::Content::DataOnly);
        let r = pipeline::run(
            plan,
            &out,
            RunOptions {
                progress: ctx.progress,
                // The first read took the dump's digest (while the server was idle); this one
                // still checks the metadata's, when there is one.
                hash: first_sha256.is_none(),
                count_rows: true,
                part_digests: false,
                shutdown: ctx.shutdown.clone(),
            },
        )
        .await?;
        ctx.effects.tables = r.tables.clone();
        ctx.effects.plaintext_sha256 = r.plaintext_sha256.clone().or(first_sha256);
        if let Some(d) = dump_databases(&r, ctx.target) {
            ctx.effects.dump_databases = Some(d);
        }
        let mut detail = format!(
            "{} of {} in {:.1}s",
            crate::format_bytes(r.bytes_dump),
            r.dump_kind.describe(),
            r.seconds
        );
        if let Some(f) = first {
            detail.push_str(&format!(" (after {f})"));
        }
        if let Some(p) = slot.and_then(|s| s.get()) {
            detail.push_str(&format!("; {}", p.lines().join("; ")));
            ctx.effects.pick = Some(p);
        }
        if let Some(c) = &r.restore {
            if let Some(p) = c.phases.as_ref().filter(|p| p.connections > 1) {
                detail.push_str(&format!(
                    "; over {} connections: schema {:.1}s, data {:.1}s ({} rows, {} in {} chunks), \
                     indexes and constraints {:.1}s{}, foreign keys {:.1}s, the rest {:.1}s",
                    p.connections,
                    p.schema_seconds,
                    p.data_seconds,
                    p.data_rows,
                    crate::format_bytes(p.data_bytes),
                    p.copy_chunks,
                    p.index_seconds,
                    if p.early_items > 0 {
                        format!(" after the data ({} of {} items during it)", p.early_items, p.parallel_items)
                    } else {
                        String::new()
                    },
                    p.fk_seconds,
                    p.rest_seconds
                ));
                if let Some(f) = &p.fallback {
                    detail.push_str(&format!("; {f}"));
                } else if p.copy_chunks == 0 && p.parallel_items == 0 {
                    detail.push_str(
                        "; nothing ran in parallel: the dump has no pg_dump data or index items \
                         (no `-- Data for Name:` or `-- Name: …; Type: INDEX` headers)",
                    );
                }
            }
            for f in &c.failed_copies {
                detail.push_str(&format!(
                    "; the COPY of {}{} failed: its {} rows ({}) were not loaded, and only they",
                    crate::text::escape(&f.table),
                    f.database
                        .as_deref()
                        .map(|d| format!(" in database {}", crate::text::escape(d)))
                        .unwrap_or_default(),
                    f.rows,
                    crate::format_bytes(f.bytes)
                ));
            }
            if c.sql_errors > 0 {
                detail.push_str(&format!(
                    "; {} SQL error(s), without --on-error-stop they do not stop the restore; first: {}",
                    c.sql_errors,
                    c.first_errors.join(" | ")
                ));
            }
        }
        ctx.effects.stream = Some(r);
        Ok(detail)
    }
}

/// The databases a plain dump restores into: its `\connect` targets, or the target's database
/// for a dump of one database. Unknown for a custom-format archive.
pub(crate) fn dump_databases(r: &Report, target: &ConnInfo) -> Option<Vec<String>> {
    let dbs = r.databases.as_ref()?;
    Some(if dbs.is_empty() {
        vec![target.database()]
    } else {
        dbs.clone()
    })
}

/// The first of two reads, when the load takes two and the plan did not already make it
/// (as the read before destructive stages); then the listing checked again, so that a backup
/// rewritten since fails before the second read sends anything. Returns what to say of it,
/// and the dump's sha256 it took.
async fn first_read(
    plan: &std::sync::Arc<pipeline::PreparedBackup>,
    out: &mut crate::sink::Output,
    ctx: &StageContext<'_>,
) -> Result<(Option<String>, Option<String>)> {
    let mut said = None;
    let mut sha256 = None;
    if let Some(first) = out.first_read() {
        (ctx.notify)(
            "reading the backup to plan the load (the first of two reads; --single-pass reads once)",
        );
        let r = pipeline::run(
            plan.clone(),
            &first,
            RunOptions {
                progress: ctx.progress,
                hash: true,
                count_rows: true,
                part_digests: false,
                shutdown: ctx.shutdown.clone(),
            },
        )
        .await?;
        sha256 = r.plaintext_sha256.clone();
        if let Some(l) = r.layout.clone() {
            let (early, all) = l.early_databases();
            said = Some(format!(
                "a first read of {:.1}s: {early} of {all} databases with post-data build it during their data",
                r.seconds
            ));
            out.set_layout(l);
        }
    }
    if out.has_layout() {
        pipeline::recheck(plan).await?;
    } else {
        // Nothing checked that the second read reads the same bytes: it takes its own digest.
        sha256 = None;
    }
    Ok((said, sha256))
}
