//! The pick filter of selective restore (`--table`, `--schema`, `--database`, `--into`):
//! never panics on any bytes, and gives the same output (or the same error) for any
//! chunking of the input.
#![no_main]

use std::sync::Arc;

use a9s_recover::pick::{Pick, Picker};
use libfuzzer_sys::fuzz_target;

fn run(pick: &Arc<Pick>, data: &[u8], step: usize) -> Result<Vec<u8>, String> {
    let mut p = Picker::new(pick.clone());
    let mut out = Vec::new();
    for c in data.chunks(step) {
        p.feed(c).map_err(|e| e.to_string())?;
        out.extend(p.take());
    }
    p.finish().map_err(|e| e.to_string())?;
    out.extend(p.take());
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let mut pick = Pick {
        tables: vec![Pick::parse_table("public.t").unwrap()],
        ..Pick::default()
    };
    if sel & 1 == 1 {
        pick.databases = vec!["db".into()];
    }
    if sel & 2 == 2 {
        pick.into = Some("new".into());
    }
    if sel & 4 == 4 {
        pick.schemas = vec!["s".into()];
    }
    pick.no_connect = sel & 8 == 8;
    let pick = Arc::new(pick);
    let whole = run(&pick, data, data.len().max(1));
    let step = (sel as usize >> 4) + 1;
    assert_eq!(whole, run(&pick, data, step));
});
