//! a9s-recover: turn an `openssl enc`-encrypted, gzipped, split logical backup in object
//! storage back into a PostgreSQL dump, as one streaming pipeline with no temporary copy.
//!
//! ```text
//! Source::list ─▶ catalog (parts, natural order, gaps, metadata)
//!     └─▶ pipeline::prepare ─▶ PreparedBackup (checked; encryption, key derivation, gzip detected)
//!             └─▶ pipeline::run: fetch ══▶ decrypt ══▶ gunzip ══▶ sink (stdout, file, discard)
//!                               (tokio)   (thread)    (thread)   (thread)
//! ```
//! `══▶` are bounded pipes of `Bytes`, so memory does not grow with the backup.
//!
//! Modules, below the CLI (`main.rs`, `cli.rs`, `cli/config.rs` turning flags into the
//! options here, `cli/render.rs` turning reports into text):
//! - [`source`]: the [`source::Source`] trait and its backends (`local`, `s3`, `azure`,
//!   `memory`) and wrappers (`Throttled`).
//! - [`catalog`]: backup ids, part names, ordering, gaps, completeness, `<backup-id>.json`.
//! - [`fetch`]: concurrent ranged reads reassembled in order, with retries.
//! - [`crypto`]: the `Salted__` format, EVP_BytesToKey / PBKDF2, streaming AES-256-CBC.
//! - [`inflate`]: streaming multi-member gunzip with CRC32/ISIZE checks (ISA-L, zlib-rs).
//! - [`dump`]: what the dump is (kind, origin versions) and COPY row counting.
//! - [`split`]: a plain dump cut into statements, COPY rows and meta-commands as psql reads
//!   them, and pg_dump's object kinds.
//! - [`load`]: the loader of plain dumps over N psql connections (`restore --jobs N`, 1 by
//!   default): `load::plan` (the planner: items in, operations out), `load::schedule` (the
//!   post-data's lock rule), `load::pool` (the connections and their events), `load::trace`
//!   and [`load::simulate`] (a run's trace, replayed at other connection counts).
//! - [`sink`]: where the dump goes: stdout, atomic files and FIFOs (`sink/file.rs`), the fed
//!   psql or pg_restore and the spool (`sink/child.rs`), the loader.
//! - [`pipeline`]: `prepare` (a checked [`pipeline::PreparedBackup`]) then `run`: the one
//!   pipeline every command drives.
//! - [`plan`]: plan files, presets, variables; a [`plan::ResolvedPlan`] of stages.
//! - [`stage`]: one file per stage kind: its spec, SQL or command, dry-run text, execution.
//! - [`restore`]: running a plan: confirmation, the whole read before destructive stages,
//!   the journal (`restore/journal.rs`), the report.
//! - [`pg`]: libpq connection strings, psql queries, tool lookup; `pg::compat` (which
//!   programs can restore which dump into which server), `pg::cluster` (throwaway clusters
//!   for `drill` and the tests).
//! - [`pack`]: the reverse pipeline, for fixtures, drills and benchmarks.
//! - [`bench`]: the benchmark against the manual's shell pipeline.
//! - `child` (private): the one place that starts processes, each in a group of its own;
//!   the fed child (psql, pg_restore, each loader connection) and its stderr summary
//!   ([`sink::ChildSummary`]).
//! - `pipe` (private): bounded pipes of `Bytes` between the stages.
//! - [`progress`], [`shutdown`], [`secret`], [`time`]: the progress bar, Ctrl-C and SIGTERM,
//!   zeroed secrets, timestamps and unique names; [`text`]: control characters in names and
//!   messages escaped before they reach a terminal.
//! - [`error`]: the error type and the error policy.
//! - [`build_info`]: what the binary was built with, for `--version`.
//!
//! - [`phases`]: the report of a load, which the restoring child's summary carries, and the
//!   clock and `-v` lines that fill it in.
//!
//! No module imports one that imports it back, directly or through others: `time` and
//! `error` import nothing of ours that imports them, `stage` imports neither `restore` nor
//! `plan` (the placeholder contexts are `stage`'s), `catalog` does not import `pack`, the
//! loader (`load`) imports `child`, `pg`, `split`, `dump` and `phases`, not `sink`; inside it, the
//! pool and the planner import nothing of the file that drives them. `.ci/run` checks it,
//! and that only `child` starts processes, with `scripts/check-modules.py`.

pub mod bench;
pub mod build_info;
pub mod catalog;
mod child;
pub mod crypto;
pub mod dump;
pub mod error;
pub mod fetch;
pub mod inflate;
pub mod load;
pub mod pack;
pub mod pg;
pub mod phases;
pub mod pick;
mod pipe;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod restore;
pub mod secret;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod split;
pub mod stage;
pub mod text;
pub mod time;

pub use error::{Error, Result};
pub use secret::Secret;
pub use shutdown::Shutdown;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// `1.5 GiB`-style sizes for messages.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses `1GiB`, `512MiB`, `8M`, `64k`, `1000` (binary units; `B` optional).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; use e.g. 1GiB, 512MiB, 8M or 4096"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit; use KiB, MiB, GiB or TiB")),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is not a usable size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }
}
