//! The dump-kind sniffer, the origin reader (pg_dump comments, custom-format archive headers)
//! and the COPY row counter: never panic, and the counts do not depend on how the stream is
//! chunked.
#![no_main]

use a9s_recover::dump::{self, CopyCounter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dump::sniff(data);
    let _ = dump::origin(data);
    let mut whole = CopyCounter::new();
    whole.feed(data);
    whole.finish();
    let step = data.first().map(|b| *b as usize % 13 + 1).unwrap_or(1);
    let mut chunked = CopyCounter::new();
    for c in data.chunks(step) {
        chunked.feed(c);
    }
    chunked.finish();
    assert_eq!(whole.tables(), chunked.tables());
    assert_eq!(whole.in_copy(), chunked.in_copy());
    assert_eq!(whole.databases(), chunked.databases());
    assert_eq!(whole.into_tables(), chunked.into_tables());
});
