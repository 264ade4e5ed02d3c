//! Throughput of each CPU stage on COPY-like dump text: decrypt, gunzip, COPY counting and
//! sha256. The end-to-end comparison with the shell pipeline is `scripts/bench-e2e.sh`.

use std::hint::black_box;
use std::io::Write;

use a9s_recover::crypto::{self, Decryptor, Kdf, HEADER_LEN};
use a9s_recover::dump::CopyCounter;
use a9s_recover::inflate;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: usize = 32 << 20;

/// pg_dump COPY-shaped text that compresses about like real table data (roughly 4-5x).
fn dump_text(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(b"--\n-- PostgreSQL database dump\n--\nCOPY public.pgbench_accounts (aid, bid, abalance, filler) FROM stdin;\n");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut i = 0u64;
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(
            out,
            "{i}\t{}\t{}\tname-{:x} {}",
            i / 100_000 + 1,
            (x % 20_000) as i64 - 10_000,
            x >> 40,
            ["active", "closed", "pending"][(x % 3) as usize]
        )
        .unwrap();
        i += 1;
    }
    out.extend_from_slice(b"\\.\n");
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn stages(c: &mut Criterion) {
    let text = dump_text(SIZE);
    let gz = gzip(&text);
    let ct = crypto::encrypt_all(b"secret", Kdf::A9S, *b"saltsalt", &gz).unwrap();

    let mut g = c.benchmark_group("stages");
    g.sample_size(10);

    g.throughput(Throughput::Bytes(ct.len() as u64));
    g.bench_function("decrypt aes-256-cbc (4 MiB chunks)", |b| {
        let key = Kdf::A9S
            .derive(b"secret", &crypto::parse_header(&ct).unwrap())
            .unwrap();
        b.iter(|| {
            let mut d = Decryptor::new(&key).unwrap();
            let mut n = 0;
            for chunk in ct[HEADER_LEN..].chunks(4 << 20) {
                let mut out = Vec::with_capacity(chunk.len() + 32);
                d.update(chunk, &mut out).unwrap();
                n += out.len();
            }
            let mut out = Vec::new();
            d.finish(&mut out).unwrap();
            black_box(n + out.len())
        })
    });

    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("gunzip (output bytes)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            inflate::gunzip(&gz[..], |chunk| {
                n += chunk.len();
                Ok(())
            })
            .unwrap();
            black_box(n)
        })
    });

    #[cfg(feature = "isal-engine")]
    g.bench_function("gunzip with ISA-L (output bytes)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            inflate::gunzip_isal(&gz[..], |chunk| {
                n += chunk.len();
                Ok(())
            })
            .unwrap();
            black_box(n)
        })
    });

    g.bench_function("copy row counter", |b| {
        b.iter(|| {
            let mut c = CopyCounter::new();
            for chunk in text.chunks(256 << 10) {
                c.feed(chunk);
            }
            c.finish();
            black_box(c.tables().len())
        })
    });

    // restore --jobs N: the dump cut into statements and chunks of COPY rows.
    g.bench_function("plain-dump splitter (restore --jobs)", |b| {
        b.iter(|| {
            let mut s = a9s_recover::split::Splitter::new();
            let mut rows = 0usize;
            let mut count = |i: a9s_recover::split::Item| {
                if let a9s_recover::split::Item::CopyData(d) = i {
                    rows += d.len();
                }
            };
            for chunk in text.chunks(256 << 10) {
                s.feed(chunk, &mut count);
            }
            s.finish(&mut count);
            black_box(rows)
        })
    });

    g.bench_function("sha256 (sha2 crate)", |b| {
        use sha2::Digest;
        b.iter(|| black_box(sha2::Sha256::digest(&text)))
    });

    // The alternative we measured before keeping sha2.
    g.bench_function("sha256 (openssl)", |b| {
        b.iter(|| black_box(openssl::sha::sha256(&text)))
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
