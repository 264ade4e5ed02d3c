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
//! Modules:
//! - [`source`]: the [`source::Source`] trait and its backends (local directory; wrappers).
//! - [`catalog`]: backup ids, part names, ordering, gaps, `<backup-id>.json` metadata.
//! - [`fetch`]: concurrent ranged reads reassembled in order, with retries.
//! - [`crypto`]: the `Salted__` format, EVP_BytesToKey / PBKDF2, streaming AES-256-CBC.
//! - [`inflate`]: streaming multi-member gunzip with CRC32/ISIZE checks.
//! - [`dump`]: dump kind sniffing and COPY row counting.
//! - [`sink`]: where the dump goes; atomic files.
//! - [`pipeline`]: `prepare` then `run`: the one pipeline every command drives.
//! - [`pack`]: the reverse pipeline, for fixtures, drills and benchmarks.
//! - [`error`]: the error type and the error policy.

pub mod bench;
pub mod catalog;
mod child;
pub mod crypto;
pub mod dump;
pub mod error;
pub mod fetch;
pub mod inflate;
pub mod pack;
pub mod pg;
mod pipe;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod restore;
pub mod secret;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod stage;
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
