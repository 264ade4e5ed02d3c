//! The gzip framing (header, members, trailer) around deflate: arbitrary bytes give output or
//! an error with an offset inside the input, never a panic.
#![no_main]

use a9s_recover::inflate::{self, GunzipError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut produced = 0u64;
    let r = std::io::BufReader::with_capacity(7, data);
    match inflate::gunzip(r, |b| {
        produced += b.len() as u64;
        Ok(())
    }) {
        Ok(stats) => {
            assert_eq!(stats.bytes_out, produced);
            assert!(stats.bytes_in <= data.len() as u64);
        }
        Err(GunzipError::Corrupt { offset, .. }) => assert!(offset <= data.len() as u64),
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
});
