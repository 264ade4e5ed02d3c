//! Writes a pg_dumpall-shaped plain dump of about SIZE bytes to stdout, for benchmarks and
//! drills: `cargo run --release --example gen_dump -- 1GiB | gzip | openssl enc ...`.
//! The same generator `a9s-recover bench` uses (pgbench-like COPY rows, about 3.6x with gzip -6).

use std::io::{self, Write};

fn main() -> io::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "64MiB".into());
    let size = a9s_recover::parse_size(&arg).map_err(io::Error::other)?;
    let mut dump = a9s_recover::bench::SyntheticDump::new(size);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match io::copy(&mut dump, &mut out).and_then(|_| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map(|_| ()),
    }
}
