//! What the operator reads: the reports of `verify`, `list`, `bench` and `restore` as text.
//! Each is a `Display` type over the library's report, so that nothing the operator reads is
//! Rust's debug formatting.

use std::fmt;

use a9s_recover::bench::BenchReport;
use a9s_recover::catalog::BackupSummary;
use a9s_recover::format_bytes;
use a9s_recover::pipeline::{self, Report};
use a9s_recover::restore::RestoreReport;

/// `verify`'s report.
pub(super) struct VerifyText<'a>(pub &'a Report);

impl fmt::Display for VerifyText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        writeln!(f, "backup       {} ({})", r.backup_id, r.location)?;
        writeln!(
            f,
            "parts        {}, {} stored",
            r.parts,
            format_bytes(r.bytes_stored)
        )?;
        writeln!(
            f,
            "encryption   {}{}",
            r.encryption,
            r.key_derivation
                .as_ref()
                .map(|k| format!(", key derivation {k}"))
                .unwrap_or_default()
        )?;
        writeln!(
            f,
            "compression  {}{}, {}, inflated with {}",
            r.compression.name(),
            r.gzip_members
                .map(|m| format!(", {m} member(s)"))
                .unwrap_or_default(),
            format_bytes(r.bytes_compressed),
            r.inflate_engine
        )?;
        writeln!(
            f,
            "dump         {}, {} ({} bytes)",
            r.dump_kind.describe(),
            format_bytes(r.bytes_dump),
            r.bytes_dump
        )?;
        if let Some(made) = r.origin.describe() {
            let archive = r
                .origin
                .archive
                .map(|a| format!(", archive format {a}"))
                .unwrap_or_default();
            let restrict = if r.origin.restrict {
                ", uses \\restrict (needs psql 13.22/14.19/15.14/16.10/17.6 or later)"
            } else {
                ""
            };
            writeln!(f, "made by      {made}{archive}{restrict}")?;
        }
        writeln!(
            f,
            "sha256       {}",
            r.plaintext_sha256.as_deref().unwrap_or("-")
        )?;
        let meta = match r.metadata {
            pipeline::MetadataCheck::Absent => "absent (nothing to check against)".to_string(),
            pipeline::MetadataCheck::NoDigests => "present, without digests".to_string(),
            pipeline::MetadataCheck::Matched => format!(
                "matched: dump sha256 and {} part digest(s)",
                r.parts_checked
            ),
        };
        writeln!(f, "metadata     {meta}")?;
        if let Some(tables) = &r.tables {
            write_tables(f, tables)?;
        }
        write!(f, "result       OK ({:.1}s)", r.seconds)?;
        Ok(())
    }
}

/// The tables with data, by database and schema, with their rows and bytes in the dump: what
/// `--database`, `--schema` and `--table` can pick (in dump order within each schema).
fn write_tables(
    f: &mut fmt::Formatter<'_>,
    tables: &[a9s_recover::dump::TableRows],
) -> fmt::Result {
    use a9s_recover::text::escape;
    writeln!(
        f,
        "tables       {} with data (rows, bytes in the dump; pick with --database, --schema, --table)",
        tables.len()
    )?;
    // Databases and schemas in order of first appearance.
    let mut groups: Vec<(Option<&str>, String, Vec<&a9s_recover::dump::TableRows>)> = Vec::new();
    for t in tables {
        let (db, schema) = (t.database.as_deref(), t.schema());
        match groups.iter_mut().find(|g| g.0 == db && g.1 == schema) {
            Some(g) => g.2.push(t),
            None => groups.push((db, schema, vec![t])),
        }
    }
    groups.sort_by_key(|g| tables.iter().position(|t| t.database.as_deref() == g.0));
    let mut last_db = None;
    for (db, schema, ts) in &groups {
        if let (Some(d), true) = (db, last_db != Some(*db)) {
            let (rows, bytes) = sums(tables.iter().filter(|t| t.database.as_deref() == Some(d)));
            writeln!(
                f,
                "  database {}: {rows} rows, {}",
                escape(d),
                format_bytes(bytes)
            )?;
        }
        last_db = Some(*db);
        let (rows, bytes) = sums(ts.iter().copied());
        writeln!(
            f,
            "    schema {}: {} table(s), {rows} rows, {}",
            escape(schema),
            ts.len(),
            format_bytes(bytes)
        )?;
        for t in ts {
            writeln!(
                f,
                "      {:>12} {:>10}  {}",
                t.rows,
                format_bytes(t.bytes),
                escape(&t.table)
            )?;
        }
    }
    Ok(())
}

fn sums<'a>(tables: impl Iterator<Item = &'a a9s_recover::dump::TableRows>) -> (u64, u64) {
    tables.fold((0, 0), |(r, b), t| (r + t.rows, b + t.bytes))
}

/// `list`'s table, newest first.
pub(super) struct ListTable<'a>(pub &'a [BackupSummary]);

impl fmt::Display for ListTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backups = self.0;
        // An id is a name from the bucket: shown escaped (a newline in it must not make a row).
        let id = |b: &BackupSummary| a9s_recover::text::escape(&b.backup_id);
        let width = backups
            .iter()
            .map(|b| id(b).chars().count())
            .max()
            .unwrap_or(9)
            .max(9);
        write!(
            f,
            "{:<width$}  {:<24}  {:>5}  {:>10}  STATE",
            "BACKUP ID", "TIME (UTC)", "PARTS", "SIZE"
        )?;
        for b in backups {
            let state = match (&b.problem, b.metadata) {
                (None, true) => "complete".to_string(),
                (None, false) => match &b.warning {
                    Some(w) => format!("complete (no metadata; {w})"),
                    None => "complete (no metadata)".to_string(),
                },
                (Some(p), _) => format!("INCOMPLETE: {p}"),
            };
            write!(
                f,
                "\n{:<width$}  {:<24}  {:>5}  {:>10}  {state}",
                id(b),
                b.time_utc.as_deref().unwrap_or("-"),
                b.parts,
                format_bytes(b.size),
            )?;
        }
        Ok(())
    }
}

/// `bench`'s report.
pub(super) struct BenchText<'a>(pub &'a BenchReport);

impl fmt::Display for BenchText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.0;
        let runs = |v: &[f64]| {
            v.iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let rss = |r: Option<f64>| r.map(|m| format!("{m:.0} MiB")).unwrap_or("n/a".into());
        writeln!(
            f,
            "machine      {}\nbackup       {} ({}): {} dump, {} stored in {} part(s)",
            report.machine,
            report.backup_id,
            report.location,
            format_bytes(report.dump_bytes),
            format_bytes(report.stored_bytes),
            report.parts
        )?;
        if let (Some(cmd), Some(r)) = (&report.reference_command, &report.reference) {
            writeln!(
                f,
                "reference    {cmd}\n             median {:.2} s  {:.0} MB/s  peak {}  (runs {})",
                r.median_seconds,
                r.dump_mb_s,
                rss(r.peak_rss_mib),
                runs(&r.seconds)
            )?;
        }
        let o = &report.ours;
        writeln!(
            f,
            "a9s-recover  median {:.2} s  {:.0} MB/s  peak {}  (runs {})",
            o.median_seconds,
            o.dump_mb_s,
            rss(o.peak_rss_mib),
            runs(&o.seconds)
        )?;
        if let Some(x) = report.speedup {
            writeln!(f, "speedup      {x:.2}x the reference")?;
        }
        f.write_str("stage        MB/s when not waiting   vs reference end to end\n")?;
        for s in &report.stages {
            writeln!(
                f,
                "  {:<9}  {:>10.0}               {}",
                s.stage,
                s.mb_s,
                s.ratio_to_reference
                    .map(|r| format!("{r:.1}x"))
                    .unwrap_or("-".into())
            )?;
        }
        Ok(())
    }
}

/// The closing line of a restore or a drill.
pub(super) struct Restored<'a>(pub &'a RestoreReport);

impl fmt::Display for Restored<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "restored {}{} ({}) into {} in {:.1}s{}{}",
            r.effects
                .pick
                .as_ref()
                .map(|p| format!(
                    "what was picked ({} of {} items) of ",
                    p.items_kept,
                    p.items_kept + p.items_dropped
                ))
                .unwrap_or_default(),
            r.backup_id,
            r.dump_kind.describe(),
            r.target,
            r.seconds,
            r.effects
                .verification
                .as_ref()
                .map(|v| format!("; {} table(s) verified", v.len()))
                .unwrap_or_default(),
            r.effects
                .plaintext_sha256
                .as_ref()
                .map(|s| format!("; dump sha256 {s}"))
                .unwrap_or_default()
        )
    }
}
