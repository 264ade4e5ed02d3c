//! Streaming gunzip: RFC 1952 member framing around raw deflate, multi-member, with every
//! member's CRC32 and ISIZE checked, as `gunzip -c` does.
//!
//! Owns: the gzip header and trailer, member boundaries, and turning corruption into an error
//! with the compressed byte offset. Does not own: threads or channels (the pipeline feeds a
//! [`BufRead`] and takes output through a callback) nor mapping offsets to parts.
//!
//! The framing is our own rather than `flate2::MultiGzDecoder` so that every failure knows
//! its exact offset and kind (truncated, bad CRC, trailing garbage), which is what the
//! operator needs to find the broken part.

use std::io::{self, BufRead};

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};

/// Output chunk size handed downstream.
pub const OUT_CHUNK: usize = 256 * 1024;

/// Which inflate implementation runs the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// ISA-L's igzip (SIMD), when built with the `isal` feature: the fastest here. Its errors
    /// carry no exact offset, so on corruption the pipeline locates it again with `ZlibRs`.
    #[cfg_attr(feature = "isal-engine", default)]
    Isal,
    /// Our RFC 1952 framing around zlib-rs: exact offsets for every failure.
    #[cfg_attr(not(feature = "isal-engine"), default)]
    ZlibRs,
}

impl std::fmt::Display for Engine {
    /// As in JSON reports: `isal`, `zlib-rs`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Isal => "isal",
            Engine::ZlibRs => "zlib-rs",
        })
    }
}

impl Engine {
    /// Whether this build has the engine.
    pub fn available(self) -> bool {
        match self {
            Engine::Isal => cfg!(feature = "isal-engine"),
            Engine::ZlibRs => true,
        }
    }
}

/// Decompresses with ISA-L: multi-member gzip, CRC32 and ISIZE checked by ISA-L, trailing
/// data refused. Offsets in errors are approximate (how far ISA-L had read).
#[cfg(feature = "isal-engine")]
pub fn gunzip_isal<R, F>(input: R, mut out: F) -> Result<GunzipStats, GunzipError>
where
    R: BufRead,
    F: FnMut(Bytes) -> crate::Result<()>,
{
    use std::io::Read;
    struct CountingRead<R> {
        inner: R,
        pos: u64,
        failed: Option<io::Error>,
    }
    impl<R: BufRead> Read for CountingRead<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.pos += n as u64;
                    Ok(n)
                }
                Err(e) => {
                    let kind = e.kind();
                    self.failed = Some(e);
                    Err(io::Error::new(kind, "input failed"))
                }
            }
        }
    }
    let mut reader = CountingRead {
        inner: input,
        pos: 0,
        failed: None,
    };
    let mut dec = isal::read::Decoder::new(&mut reader, isal::Codec::Gzip);
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; OUT_CHUNK];
        let mut filled = 0;
        let result = loop {
            match dec.read(&mut buf[filled..]) {
                Ok(0) => break Ok(true),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(false);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        if filled > 0 {
            buf.truncate(filled);
            total += filled as u64;
            out(Bytes::from(buf)).map_err(GunzipError::Output)?;
        }
        match result {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                if let Some(io) = reader.failed.take() {
                    return Err(GunzipError::Input(io));
                }
                return Err(GunzipError::Corrupt {
                    reason: format!("ISA-L: {e}"),
                    offset: reader.pos,
                    truncated: false,
                    member_start: None,
                });
            }
        }
    }
    if total == 0 && reader.pos == 0 {
        return Err(corrupt("the stream is empty".into(), 0, true));
    }
    Ok(GunzipStats {
        bytes_in: reader.pos,
        bytes_out: total,
        members: 0,
    })
}

/// What went wrong in the gzip stream, with the compressed offset where it was noticed.
#[derive(Debug)]
pub enum GunzipError {
    /// Corrupt or truncated data.
    Corrupt {
        reason: String,
        offset: u64,
        truncated: bool,
        /// Where the member that failed its CRC32 started: the damage lies in between.
        member_start: Option<u64>,
    },
    /// Reading the input failed (an upstream stage failed).
    Input(io::Error),
    /// The output callback refused the data.
    Output(crate::Error),
}

/// Totals of a finished stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GunzipStats {
    /// Compressed bytes consumed.
    pub bytes_in: u64,
    /// Decompressed bytes produced.
    pub bytes_out: u64,
    /// Number of gzip members.
    pub members: u64,
}

struct Counted<R> {
    inner: R,
    pos: u64,
}

impl<R: BufRead> Counted<R> {
    fn fill(&mut self) -> Result<&[u8], GunzipError> {
        self.inner.fill_buf().map_err(GunzipError::Input)
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.pos += n as u64;
    }

    fn byte(&mut self, what: &str) -> Result<u8, GunzipError> {
        let pos = self.pos;
        let buf = self.fill()?;
        match buf.first() {
            Some(&b) => {
                self.consume(1);
                Ok(b)
            }
            None => Err(corrupt(format!("stream ends inside the {what}"), pos, true)),
        }
    }

    fn skip(&mut self, mut n: usize, what: &str) -> Result<(), GunzipError> {
        while n > 0 {
            let pos = self.pos;
            let avail = self.fill()?.len();
            if avail == 0 {
                return Err(corrupt(format!("stream ends inside the {what}"), pos, true));
            }
            let k = avail.min(n);
            self.consume(k);
            n -= k;
        }
        Ok(())
    }

    fn skip_zero_terminated(&mut self, what: &str) -> Result<(), GunzipError> {
        while self.byte(what)? != 0 {}
        Ok(())
    }

    fn u32_le(&mut self, what: &str) -> Result<u32, GunzipError> {
        let mut b = [0u8; 4];
        for x in &mut b {
            *x = self.byte(what)?;
        }
        Ok(u32::from_le_bytes(b))
    }
}

fn corrupt(reason: String, offset: u64, truncated: bool) -> GunzipError {
    GunzipError::Corrupt {
        reason,
        offset,
        truncated,
        member_start: None,
    }
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

/// Decompresses every gzip member in `input`, handing output to `out` in chunks of at most
/// [`OUT_CHUNK`] bytes. Trailing zero bytes (tape or block padding) are accepted; any other
/// trailing data is an error, since it means the backup holds more than one stream.
pub fn gunzip<R, F>(input: R, mut out: F) -> Result<GunzipStats, GunzipError>
where
    R: BufRead,
    F: FnMut(Bytes) -> crate::Result<()>,
{
    let mut r = Counted {
        inner: input,
        pos: 0,
    };
    let mut stats = GunzipStats::default();
    let mut inflater = Decompress::new(false);
    let mut buf: Vec<u8> = Vec::with_capacity(OUT_CHUNK);

    loop {
        // Between members: end of stream, padding, or the next header.
        let at = r.pos;
        let head = r.fill()?;
        if head.is_empty() {
            if stats.members == 0 {
                return Err(corrupt("the stream is empty".into(), at, true));
            }
            break;
        }
        if stats.members > 0 && head[0] == 0 {
            // Trailing zeros: accept only if everything left is zero.
            loop {
                let pos = r.pos;
                let chunk = r.fill()?;
                if chunk.is_empty() {
                    break;
                }
                if let Some(i) = chunk.iter().position(|&b| b != 0) {
                    return Err(corrupt(
                        "non-zero data after the trailing zero padding".into(),
                        pos + i as u64,
                        false,
                    ));
                }
                let n = chunk.len();
                r.consume(n);
            }
            break;
        }
        let member_start = r.pos;
        read_header(&mut r, stats.members)?;
        stats.members += 1;

        inflater.reset(false);
        let mut crc = crc32fast::Hasher::new();
        let mut member_out: u64 = 0;
        loop {
            let pos = r.pos;
            let input = r.fill()?;
            let eof = input.is_empty();
            let before_in = inflater.total_in();
            let before_out = inflater.total_out();
            if buf.capacity() == buf.len() {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(OUT_CHUNK));
                out(Bytes::from(full)).map_err(GunzipError::Output)?;
            }
            let status = inflater
                .decompress_vec(input, &mut buf, FlushDecompress::None)
                .map_err(|e| {
                    corrupt(
                        format!("invalid deflate data in member {}: {e}", stats.members),
                        pos,
                        false,
                    )
                })?;
            let used = (inflater.total_in() - before_in) as usize;
            let made = (inflater.total_out() - before_out) as usize;
            crc.update(&buf[buf.len() - made..]);
            member_out += made as u64;
            r.consume(used);
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {
                    if eof && made == 0 {
                        return Err(corrupt(
                            format!(
                                "the stream ends in the middle of member {} (truncated)",
                                stats.members
                            ),
                            r.pos,
                            true,
                        ));
                    }
                    if used == 0 && made == 0 && buf.len() < buf.capacity() {
                        return Err(corrupt(
                            "the deflate decoder made no progress".into(),
                            r.pos,
                            false,
                        ));
                    }
                }
            }
        }
        let trailer_at = r.pos;
        let want_crc = r.u32_le("gzip trailer")?;
        let want_size = r.u32_le("gzip trailer")?;
        let got_crc = crc.finalize();
        if want_crc != got_crc {
            return Err(GunzipError::Corrupt {
                reason: format!(
                    "CRC32 mismatch at the end of member {} (stored {want_crc:08x}, computed {got_crc:08x})",
                    stats.members
                ),
                offset: trailer_at,
                truncated: false,
                member_start: Some(member_start),
            });
        }
        if want_size != member_out as u32 {
            return Err(corrupt(
                format!(
                    "length mismatch at the end of member {} (stored {want_size}, got {})",
                    stats.members, member_out as u32
                ),
                trailer_at + 4,
                false,
            ));
        }
        stats.bytes_out += member_out;
    }
    if !buf.is_empty() {
        out(Bytes::from(buf)).map_err(GunzipError::Output)?;
    }
    stats.bytes_in = r.pos;
    Ok(stats)
}

fn read_header<R: BufRead>(r: &mut Counted<R>, member: u64) -> Result<(), GunzipError> {
    let at = r.pos;
    let what = "gzip header";
    let id1 = r.byte(what)?;
    let id2 = r.byte(what)?;
    if (id1, id2) != (0x1f, 0x8b) {
        let reason = if member == 0 {
            "the data does not start with the gzip magic 1f 8b".to_string()
        } else {
            format!("data after gzip member {member} is not another gzip member (trailing garbage)")
        };
        return Err(corrupt(reason, at, false));
    }
    let cm = r.byte(what)?;
    if cm != 8 {
        return Err(corrupt(
            format!("unknown compression method {cm} (only deflate, 8, exists)"),
            at + 2,
            false,
        ));
    }
    let flags = r.byte(what)?;
    if flags & FRESERVED != 0 {
        return Err(corrupt(
            format!("reserved header flags set ({flags:#04x})"),
            at + 3,
            false,
        ));
    }
    r.skip(6, what)?; // MTIME, XFL, OS
    if flags & FEXTRA != 0 {
        let lo = r.byte(what)? as usize;
        let hi = r.byte(what)? as usize;
        r.skip(lo | (hi << 8), what)?;
    }
    if flags & FNAME != 0 {
        r.skip_zero_terminated(what)?;
    }
    if flags & FCOMMENT != 0 {
        r.skip_zero_terminated(what)?;
    }
    if flags & FHCRC != 0 {
        r.skip(2, what)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run(input: &[u8]) -> Result<(Vec<u8>, GunzipStats), GunzipError> {
        let mut out = Vec::new();
        // A tiny BufReader makes every header field straddle reads.
        let r = io::BufReader::with_capacity(3, input);
        let st = gunzip(r, |b| {
            out.extend_from_slice(&b);
            Ok(())
        })?;
        Ok((out, st))
    }

    #[test]
    fn single_and_multi_member() {
        let a = gz(b"hello ");
        let b = gz(b"world");
        let mut both = a.clone();
        both.extend_from_slice(&b);
        assert_eq!(run(&a).unwrap().0, b"hello ");
        let (out, st) = run(&both).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(st.members, 2);
        assert_eq!(st.bytes_in, both.len() as u64);
    }

    #[test]
    fn large_output_crosses_chunks() {
        let data: Vec<u8> = (0..3 * OUT_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        assert_eq!(run(&gz(&data)).unwrap().0, data);
    }

    #[test]
    fn header_with_name_extra_comment() {
        let mut e = flate2::GzBuilder::new()
            .filename("x.dump")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::fast());
        e.write_all(b"data").unwrap();
        assert_eq!(run(&e.finish().unwrap()).unwrap().0, b"data");
    }

    #[test]
    fn truncated_is_reported() {
        let g = gz(&[b'x'; 1000]);
        for cut in [1, 5, 12, g.len() - 4, g.len() - 1] {
            match run(&g[..cut]) {
                Err(GunzipError::Corrupt { truncated, .. }) => assert!(truncated, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn crc_mismatch_names_the_trailer() {
        let mut g = gz(b"some text that compresses");
        let n = g.len();
        g[n - 8] ^= 1;
        match run(&g) {
            Err(GunzipError::Corrupt { reason, offset, .. }) => {
                assert!(reason.contains("CRC32"), "{reason}");
                assert_eq!(offset, (n - 8) as u64);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailing_zeros_ok_garbage_not() {
        let mut g = gz(b"abc");
        g.extend_from_slice(&[0; 10]);
        assert_eq!(run(&g).unwrap().0, b"abc");
        g.push(7);
        assert!(run(&g).is_err());
        let mut h = gz(b"abc");
        h.extend_from_slice(b"garbage");
        assert!(matches!(run(&h), Err(GunzipError::Corrupt { .. })));
    }

    #[cfg(feature = "isal-engine")]
    #[test]
    fn isal_engine_multi_member_and_checks() {
        let run_isal = |input: &[u8]| {
            let mut out = Vec::new();
            gunzip_isal(io::BufReader::with_capacity(1000, input), |b| {
                out.extend_from_slice(&b);
                Ok(())
            })
            .map(|_| out)
        };
        let data: Vec<u8> = (0..2 * OUT_CHUNK + 5).map(|i| (i % 7) as u8).collect();
        let mut two = gz(&data);
        two.extend(gz(b"tail"));
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(run_isal(&two).unwrap(), want);
        let mut bad = gz(&data);
        let n = bad.len();
        bad[n - 8] ^= 1;
        assert!(matches!(run_isal(&bad), Err(GunzipError::Corrupt { .. })));
        assert!(run_isal(&gz(&data)[..n - 10]).is_err());
    }

    #[test]
    fn empty_and_not_gzip() {
        assert!(run(b"").is_err());
        assert!(run(b"PGDMP").is_err());
    }
}
