//! The `Salted__` header and the decrypt path: header parsing, first-block plausibility,
//! streaming decryption in arbitrary chunks, and the padding check at the end.
#![no_main]

use a9s_recover::crypto::{self, Decryptor, Kdf, BLOCK, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(salt) = crypto::parse_header(data) else {
        return;
    };
    let key = Kdf::A9S.derive(b"fuzz", &salt).unwrap();
    let body = &data[HEADER_LEN..];
    if body.len() >= BLOCK {
        let mut first = [0u8; BLOCK];
        first.copy_from_slice(&body[..BLOCK]);
        let plain = crypto::decrypt_first_block(&key, &first).unwrap();
        let _ = crypto::plausible_plaintext(&plain);
        let _ = crypto::unpad(&plain);
    }
    let step = body.first().map(|b| *b as usize % 37 + 1).unwrap_or(1);
    let mut d = Decryptor::new(&key).unwrap();
    let mut out = Vec::new();
    for c in body.chunks(step) {
        d.update(c, &mut out).unwrap();
    }
    let before = out.len();
    match d.finish(&mut out) {
        Ok(()) => assert!(out.len() - before < BLOCK),
        Err(_) => assert_eq!(out.len(), before),
    }
    assert!(out.len() <= body.len());
});
