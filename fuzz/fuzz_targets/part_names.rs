//! Part-name parsing and ordering: any listing yields either an ordered, gap-free part list
//! or an error, never a panic; metadata JSON parsing never panics.
#![no_main]

use a9s_recover::catalog::{self, Metadata};
use a9s_recover::source::ObjectMeta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Metadata::parse("m.json", data);
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let id = lines.next().unwrap_or("");
    let objects: Vec<ObjectMeta> = lines
        .enumerate()
        .map(|(i, l)| ObjectMeta {
            name: l.to_string(),
            size: (i % 3) as u64,
            etag: None,
            // Every fifth name is not a regular file (a link in a local bucket).
            not_a_file: (i % 5 == 4).then_some("a symbolic link"),
        })
        .collect();
    let _ = catalog::backup_ids(&objects);
    let _ = catalog::split_backup_id(id);
    if catalog::validate_backup_id(id).is_err() {
        return;
    }
    if let Ok(b) = catalog::select_parts(id, "fuzz", &objects) {
        let idx: Vec<Option<u64>> = b.parts.iter().map(|p| p.index).collect();
        if idx.len() > 1 {
            for w in idx.windows(2) {
                assert_eq!(w[0].unwrap() + 1, w[1].unwrap(), "ordered without gaps");
            }
        }
        assert!(b.parts.iter().all(|p| p.size > 0));
    }
});
