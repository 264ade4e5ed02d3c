//! Writes a pg_dumpall-shaped plain dump of about SIZE bytes to stdout, for benchmarks and
//! drills: `cargo run --release --example gen_dump -- 1GiB | a9s-recover pack ...`.
//! The data is pgbench-like COPY text with some variety, compressing about 4-5x with gzip -6.

use std::io::{self, BufWriter, Write};

fn main() -> io::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "64MiB".into());
    let size = a9s_recover::parse_size(&arg).map_err(io::Error::other)?;
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let res = write_dump(&mut out, size).and_then(|_| out.flush());
    match res {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

fn write_dump(out: &mut impl Write, size: u64) -> io::Result<()> {
    let written = std::cell::Cell::new(0u64);
    let w = |out: &mut dyn Write, s: &[u8]| -> io::Result<()> {
        written.set(written.get() + s.len() as u64);
        out.write_all(s)
    };
    w(out, b"--\n-- PostgreSQL database cluster dump\n--\n\nSET default_transaction_read_only = off;\n\nCREATE ROLE app;\n\n\\connect bench\n\n")?;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut table = 0;
    let mut line = Vec::with_capacity(256);
    while written.get() < size {
        table += 1;
        w(out, format!("CREATE TABLE public.accounts_{table} (aid integer, bid integer, abalance integer, filler text);\n\nCOPY public.accounts_{table} (aid, bid, abalance, filler) FROM stdin;\n").as_bytes())?;
        for aid in 1..=1_000_000u64 {
            if written.get() >= size {
                break;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.clear();
            writeln!(
                line,
                "{aid}\t{}\t{}\tcustomer {:x} {}",
                aid / 100_000 + 1,
                (x % 20_000) as i64 - 10_000,
                x >> 40,
                ["active", "closed", "pending", "on hold"][(x % 4) as usize]
            )?;
            w(out, &line)?;
        }
        w(out, b"\\.\n\n")?;
    }
    w(
        out,
        b"--\n-- PostgreSQL database cluster dump complete\n--\n\n",
    )?;
    Ok(())
}
