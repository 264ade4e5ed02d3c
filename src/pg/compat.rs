//! Can these programs restore this dump into this server? Refusals made before anything runs:
//! a custom archive newer than the local pg_restore reads, `\restrict` with a psql that does
//! not know it, and a dump of a newer major version than the target (unless allowed).

use std::path::Path;

use crate::dump::DumpFormat;
use crate::dump::{ArchiveVersion, Origin, PgVersion};
use crate::error::{Error, Incompatibility, Result};

/// Refuses, before anything runs, a dump that the local psql or pg_restore cannot read.
pub(crate) fn check_tool(
    origin: &Origin,
    format: DumpFormat,
    program: &Path,
    version: Option<PgVersion>,
) -> Result<()> {
    let Some(version) = version else {
        return Ok(());
    };
    let made = origin
        .describe()
        .map(|m| format!(" made by {m}"))
        .unwrap_or_default();
    match format {
        DumpFormat::Custom => {
            let (Some(archive), Some(newest)) =
                (origin.archive, ArchiveVersion::newest_readable_by(version))
            else {
                return Ok(());
            };
            if archive <= newest {
                return Ok(());
            }
            let major = origin
                .pg_dump
                .map(|v| v.major_name())
                .unwrap_or_else(|| "a newer".into());
            Err(Error::Incompatible(Incompatibility::ArchiveTooNew {
                archive,
                made,
                pg_restore: version,
                program: program.to_path_buf(),
                newest,
                major,
            }))
        }
        DumpFormat::Sql => {
            if !origin.restrict || crate::pg::psql_knows_restrict(version) {
                return Ok(());
            }
            Err(Error::Incompatible(Incompatibility::RestrictUnknown {
                made,
                psql: version,
                program: program.to_path_buf(),
            }))
        }
    }
}

/// Refuses a dump of a newer major version than the target runs, unless allowed; allowed, a
/// warning to show.
pub(crate) fn check_target_version(
    origin: &Origin,
    target: PgVersion,
    allow: bool,
) -> Result<Option<String>> {
    let Some(needed) = origin.newest_major() else {
        return Ok(None);
    };
    if needed <= target.major() {
        return Ok(None);
    }
    let made = origin.describe().unwrap_or_default();
    if allow {
        return Ok(Some(format!(
            "warning: restoring a dump made by {made} into PostgreSQL {target} (--allow-older-target): \
             PostgreSQL does not support this; expect errors where the dump uses what PostgreSQL {} lacks",
            target.major_name()
        )));
    }
    // The server the dump came from is not newer than the target, only the pg_dump that
    // wrote it: not a downgrade, and the message says so and what to do.
    if let (Some(by), Some(from)) = (origin.pg_dump, origin.server) {
        if from.major() <= target.major() && by.major() > target.major() {
            return Err(Error::Incompatible(Incompatibility::NewerPgDump {
                pg_dump: by,
                server: from,
                target,
            }));
        }
    }
    Err(Error::Incompatible(Incompatibility::TargetTooOld {
        made,
        target,
        needed: needed.major_name(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(by: u32, from: u32, archive: Option<ArchiveVersion>, restrict: bool) -> Origin {
        Origin {
            pg_dump: Some(PgVersion(by)),
            server: Some(PgVersion(from)),
            archive,
            restrict,
        }
    }

    #[test]
    fn older_targets_are_refused_unless_allowed() {
        let o = origin(170011, 170010, None, true);
        let e = check_target_version(&o, PgVersion(150018), false).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("pg_dump 17.11 from PostgreSQL 17.10"), "{e}");
        assert!(
            e.contains("PostgreSQL 15.18") && e.contains("PostgreSQL 17 or later"),
            "{e}"
        );
        let w = check_target_version(&o, PgVersion(150018), true)
            .unwrap()
            .unwrap();
        assert!(w.starts_with("warning:"), "{w}");
        // Same or newer major: fine, whatever the minor versions.
        assert!(check_target_version(&o, PgVersion(170000), false)
            .unwrap()
            .is_none());
        assert!(check_target_version(&o, PgVersion(180001), false)
            .unwrap()
            .is_none());
        // A pg_dump 17 dump of a 13 server still needs 17: what pg_dump wrote decides too,
        // and the refusal says it is the pg_dump, not the server, that is newer.
        let o = origin(170011, 130023, None, true);
        let e = check_target_version(&o, PgVersion(160004), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pg_dump 17.11 from a PostgreSQL 13.23 server"),
            "{e}"
        );
        assert!(e.contains("not newer than the target"), "{e}");
        assert!(e.contains("server's own pg_dump (PostgreSQL 13)"), "{e}");
        assert!(e.contains("--allow-older-target"), "{e}");
        assert!(!e.contains("restoring into an older major version"), "{e}");
        // 17.10 dumped by pg_dump 18.6 into 17.10: the same.
        let o = origin(180006, 170010, None, true);
        let e = check_target_version(&o, PgVersion(170010), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PostgreSQL 18 or later"), "{e}");
        // Nothing known: nothing to check.
        assert!(
            check_target_version(&Origin::default(), PgVersion(90624), false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn archives_newer_than_pg_restore_reads_are_refused() {
        let p = Path::new("/usr/bin/pg_restore");
        for (archive, pg_restore, ok) in [
            ((1, 14), 150018, true),
            ((1, 15), 150018, false),
            ((1, 16), 160010, false),
            ((1, 16), 170006, true),
            ((1, 15), 160001, true),
            ((1, 16), 180000, true),
        ] {
            let o = origin(
                170011,
                170010,
                Some(ArchiveVersion(archive.0, archive.1, 0)),
                false,
            );
            let r = check_tool(&o, DumpFormat::Custom, p, Some(PgVersion(pg_restore)));
            assert_eq!(r.is_ok(), ok, "{archive:?} with pg_restore {pg_restore}");
        }
        // pg_restore's version unknown: not refused on a guess.
        let o = origin(170011, 170010, Some(ArchiveVersion(1, 16, 0)), false);
        assert!(check_tool(&o, DumpFormat::Custom, p, None).is_ok());
    }

    #[test]
    fn restrict_needs_a_psql_that_knows_it() {
        let p = Path::new("/usr/bin/psql");
        let o = origin(170011, 170010, None, true);
        for (psql, ok) in [
            (150013, false),
            (150014, true),
            (130021, false),
            (130022, true),
            (170005, false),
            (170006, true),
            (120022, false),
            (180000, true),
        ] {
            let r = check_tool(&o, DumpFormat::Sql, p, Some(PgVersion(psql)));
            assert_eq!(r.is_ok(), ok, "psql {psql}");
        }
        let e = check_tool(&o, DumpFormat::Sql, p, Some(PgVersion(150013)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\\restrict") && e.contains("15.14"), "{e}");
        // A dump without \restrict restores with any psql.
        let o = origin(130016, 130023, None, false);
        assert!(check_tool(&o, DumpFormat::Sql, p, Some(PgVersion(120000))).is_ok());
    }
}
