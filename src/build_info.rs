//! What this binary was built with, for `a9s-recover --version`: the cargo features, the
//! inflate engines, the OpenSSL and ISA-L in use and how each is linked. Read at run time
//! where the running process can tell (the OpenSSL version, the loaded libisal, the CPU's
//! AVX2), from the build where only the build knows.

use std::fmt;

#[cfg(all(feature = "isal", feature = "isal-static"))]
compile_error!(
    "features `isal` (the system's libisal) and `isal-static` (ISA-L linked in) exclude each \
     other; the portable build is --no-default-features --features s3,azure,portable"
);
#[cfg(all(
    feature = "isal-engine",
    not(any(feature = "isal", feature = "isal-static"))
))]
compile_error!("feature `isal-engine` needs `isal` (system libisal) or `isal-static`");

/// The isal-sys release this build bundles (when `isal-static`) and the ISA-L release in it:
/// isal-sys names the ISA-L commit, its `configure.ac` the version. A unit test holds this to
/// Cargo.lock, so a dependency update cannot leave it stale.
const BUNDLED_ISAL_SYS: &str = "0.5.3+496255c";
const BUNDLED_ISAL: &str = "2.31.0";

/// The cargo features compiled in, in Cargo.toml's order.
pub fn features() -> Vec<&'static str> {
    let all = [
        ("s3", cfg!(feature = "s3")),
        ("azure", cfg!(feature = "azure")),
        ("isal", cfg!(feature = "isal")),
        ("isal-static", cfg!(feature = "isal-static")),
        ("vendored-openssl", cfg!(feature = "vendored-openssl")),
        ("portable", cfg!(feature = "portable")),
    ];
    all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
}

/// The OpenSSL library in use, as it reports itself, and how it is linked.
pub fn openssl() -> String {
    let linked = if cfg!(feature = "vendored-openssl") {
        "built from source and linked statically"
    } else {
        "the system's, linked dynamically"
    };
    format!("{} ({linked})", openssl::version::version())
}

/// The ISA-L engine: its version and how it is linked, or None when not compiled in.
pub fn isal() -> Option<String> {
    if cfg!(feature = "isal-static") {
        return Some(format!(
            "ISA-L {BUNDLED_ISAL}, linked statically (bundled by isal-sys {BUNDLED_ISAL_SYS})"
        ));
    }
    if !cfg!(feature = "isal") {
        return None;
    }
    // The shared library the dynamic linker chose. Its libtool name carries the release:
    // libisal.so.2.0.30 is ISA-L 2.30.
    let loaded = std::fs::read_to_string("/proc/self/maps")
        .ok()
        .and_then(|maps| {
            maps.lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .find(|p| p.contains("/libisal.so"))
                .map(str::to_owned)
        });
    Some(match loaded {
        Some(path) => {
            let real = std::fs::canonicalize(&path).map_or(path, |p| p.display().to_string());
            match isal_release(&real) {
                Some(v) => format!("ISA-L {v}, linked dynamically ({real})"),
                None => format!("ISA-L, linked dynamically ({real})"),
            }
        }
        None => "ISA-L, the system's libisal, linked dynamically".to_owned(),
    })
}

/// `…/libisal.so.2.0.30` → `2.30`: libtool's `current:revision:age` is ISA-L's
/// `major:minor:0`, and the file is named `.so.(current-age).age.revision`.
fn isal_release(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let rest = name.strip_prefix("libisal.so.")?;
    let v: Vec<u32> = rest
        .split('.')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    match v[..] {
        [major_minus_age, age, minor] => Some(format!("{}.{minor}", major_minus_age + age)),
        _ => None,
    }
}

/// Whether this CPU gives zlib-rs its AVX2 paths (detected at run time).
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The long `--version` text.
#[derive(Debug, Clone, Copy, Default)]
pub struct LongVersion;

impl fmt::Display for LongVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", env!("CARGO_PKG_VERSION"))?;
        let libc = if cfg!(target_env = "gnu") {
            "glibc"
        } else {
            "other libc"
        };
        writeln!(
            f,
            "target:   {}-{} ({libc})",
            std::env::consts::ARCH,
            std::env::consts::OS
        )?;
        let features = features();
        let features = if features.is_empty() {
            "none (local directories only, zlib-rs inflate)".to_owned()
        } else {
            features.join(", ")
        };
        writeln!(f, "features: {features}")?;
        let mut sources = vec!["local directory"];
        if cfg!(feature = "s3") {
            sources.push("S3 (aws-sdk-s3)");
        }
        if cfg!(feature = "azure") {
            sources.push("Azure Blob (object_store)");
        }
        writeln!(f, "sources:  {}", sources.join(", "))?;
        if cfg!(any(feature = "s3", feature = "azure")) {
            writeln!(f, "TLS:      rustls with ring, compiled in")?;
        }
        let avx2 = if avx2() {
            "AVX2 in use"
        } else {
            "no AVX2 on this CPU"
        };
        let zlib = format!("zlib-rs through flate2, CPU features detected at run time ({avx2})");
        match isal() {
            Some(isal) => {
                writeln!(f, "inflate:  isal (the default): {isal}")?;
                writeln!(f, "          zlib: {zlib}")?;
            }
            None => writeln!(f, "inflate:  zlib (the only engine; no ISA-L): {zlib}")?,
        }
        write!(f, "OpenSSL:  {}", openssl())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isal_release_from_the_libtool_name() {
        let p = "/usr/lib/x86_64-linux-gnu/libisal.so.2.0.30";
        assert_eq!(isal_release(p).as_deref(), Some("2.30"));
        assert_eq!(isal_release("/lib/libisal.so.2"), None);
        assert_eq!(isal_release("/lib/libfoo.so.2.0.30"), None);
    }

    /// The bundled ISA-L named in `--version` is the one Cargo.lock builds.
    #[test]
    fn bundled_isal_matches_cargo_lock() {
        let lock = include_str!("../Cargo.lock");
        let entry = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"isal-sys\""))
            .expect("isal-sys in Cargo.lock");
        assert!(
            entry.contains(&format!("version = \"{BUNDLED_ISAL_SYS}\"")),
            "Cargo.lock's isal-sys is not {BUNDLED_ISAL_SYS}: update BUNDLED_ISAL_SYS and \
             BUNDLED_ISAL (the version in its isa-l/configure.ac)\n{entry}"
        );
    }

    #[test]
    fn long_version_names_engines_and_openssl() {
        let text = LongVersion.to_string();
        assert!(text.starts_with(env!("CARGO_PKG_VERSION")), "{text}");
        assert!(text.contains("OpenSSL:  OpenSSL "), "{text}");
        assert!(text.contains("zlib-rs"), "{text}");
        assert_eq!(
            cfg!(feature = "isal-engine"),
            text.contains("ISA-L "),
            "{text}"
        );
    }
}
