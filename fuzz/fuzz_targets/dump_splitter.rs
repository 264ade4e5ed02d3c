//! The plain-dump splitter behind `restore --jobs N`: never panics, gives the same items for
//! any chunking of the input (and when long lines are lexed as they arrive), and loses no
//! COPY row.
#![no_main]

use a9s_recover::split::{normalize, split_all, split_all_with, Item};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = normalize(split_all(data, data.len().max(1)));
    let step = data.first().map(|b| *b as usize % 17 + 1).unwrap_or(1);
    let chunked = normalize(split_all(data, step));
    assert_eq!(whole, chunked);
    // Long lines lexed as they arrive give the same items as lines lexed whole.
    let long_line = data.get(1).map(|b| *b as usize % 9 + 1).unwrap_or(1);
    let early = normalize(split_all_with(data, step, long_line));
    assert_eq!(whole, early);
    // Every COPY block ends, and its rows are whole lines.
    let mut open = false;
    for (i, item) in whole.iter().enumerate() {
        match item {
            Item::CopyStart { .. } => {
                assert!(!open);
                open = true;
            }
            Item::CopyData(rows) => {
                assert!(open && !rows.is_empty());
                // Only the input's end may cut a row.
                if !rows.ends_with(b"\n") {
                    assert_eq!(i + 2, whole.len());
                }
            }
            Item::CopyEnd { .. } => {
                assert!(open);
                open = false;
            }
            _ => assert!(!open),
        }
    }
    assert!(!open);
});
