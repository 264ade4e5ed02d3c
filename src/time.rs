//! Time as the tool needs it: milliseconds since the epoch (backup ids carry them), RFC 3339
//! timestamps for listings, metadata and the journal, and unique name suffixes for the files
//! and directories a run creates. Owns no clock of its own beyond `SystemTime`; depends on
//! no other module of the crate, so that every module may use it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    rfc3339_from_millis(now_millis())
}

/// `2019-01-31T20:52:27.154Z` from milliseconds since the epoch (UTC, proleptic Gregorian).
pub fn rfc3339_from_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// `PID-NANOS`: a name part no other run of ours, concurrent or earlier, has used.
pub fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_from_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_from_millis(1_548_967_947_154),
            "2019-01-31T20:52:27.154Z"
        );
        assert_eq!(
            rfc3339_from_millis(1_709_210_096_001),
            "2024-02-29T12:34:56.001Z"
        );
    }
}
