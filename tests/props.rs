//! Property tests for the byte formats: pack then recover round-trips arbitrary bytes and
//! part sizes; what we encrypt the openssl CLI decrypts, and the reverse; gunzip and the
//! COPY counter do not depend on how the stream is chunked; the plain-dump splitter finds
//! every statement and COPY row it was made of.

use std::io::Write;
use std::process::{Command, Stdio};

use a9s_recover::crypto::{self, Decryptor, Digest, Kdf, HEADER_LEN};
use proptest::prelude::*;

use crate::support::*;

fn kdfs() -> impl Strategy<Value = Kdf> {
    prop_oneof![
        Just(Kdf::BytesToKey(Digest::Md5)),
        Just(Kdf::BytesToKey(Digest::Sha256)),
        Just(Kdf::BytesToKey(Digest::Sha1)),
        (1u32..2000).prop_map(|iter| Kdf::Pbkdf2 {
            digest: Digest::Sha256,
            iter
        }),
    ]
}

fn openssl_args(kdf: Kdf) -> Vec<String> {
    match kdf {
        Kdf::BytesToKey(d) => vec!["-md".into(), d.name().into()],
        Kdf::Pbkdf2 { digest, iter } => vec![
            "-pbkdf2".into(),
            "-iter".into(),
            iter.to_string(),
            "-md".into(),
            digest.name().into(),
        ],
    }
}

fn openssl(kdf: Kdf, decrypt: bool, secret: &str, input: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new("openssl");
    cmd.args(["enc", "-aes-256-cbc"])
        .args(openssl_args(kdf))
        .args(["-pass", "env:S"])
        .env("S", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if decrypt {
        cmd.arg("-d");
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.finish();
    w.join().unwrap().unwrap();
    assert!(out.status.success(), "openssl failed");
    out.stdout
}

fn our_decrypt(kdf: Kdf, secret: &str, ct: &[u8], step: usize) -> Vec<u8> {
    let salt = crypto::parse_header(ct).expect("Salted__");
    let key = kdf.derive(secret.as_bytes(), &salt).unwrap();
    let mut d = Decryptor::new(&key).unwrap();
    let mut out = Vec::new();
    for c in ct[HEADER_LEN..].chunks(step) {
        d.update(c, &mut out).unwrap();
    }
    d.finish(&mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn openssl_decrypts_what_we_encrypt(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        kdf in kdfs(),
        salt in any::<[u8; 8]>(),
        secret in "[ -~]{1,40}",
    ) {
        let ct = crypto::encrypt_all(secret.as_bytes(), kdf, salt, &data).unwrap();
        prop_assert_eq!(openssl(kdf, true, &secret, &ct), data);
    }

    #[test]
    fn we_decrypt_what_openssl_encrypts(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        kdf in kdfs(),
        secret in "[ -~]{1,40}",
        step in 1usize..100,
    ) {
        let ct = openssl(kdf, false, &secret, &data);
        prop_assert_eq!(our_decrypt(kdf, &secret, &ct, step), data);
    }

    #[test]
    fn gunzip_is_independent_of_chunking(
        data in proptest::collection::vec(0u8..4, 0..20_000),
        members in 1usize..4,
        cap in 1usize..5000,
    ) {
        use flate2::write::GzEncoder;
        let mut gz = Vec::new();
        let per = data.len() / members + 1;
        for piece in data.chunks(per).chain(std::iter::once(&[][..]).take(usize::from(data.is_empty()))) {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(piece).unwrap();
            gz.extend(e.finish().unwrap());
        }
        let mut out = Vec::new();
        a9s_recover::inflate::gunzip(std::io::BufReader::with_capacity(cap, &gz[..]), |b| {
            out.extend_from_slice(&b);
            Ok(())
        }).unwrap();
        prop_assert_eq!(out, data);
    }

    #[test]
    fn copy_counter_is_independent_of_chunking(
        rows in proptest::collection::vec("[a-z\\\\.\t]{0,12}", 0..50),
        step in 1usize..64,
    ) {
        let mut dump = String::from("COPY public.t (a) FROM stdin;\n");
        for r in &rows {
            // A data line is never exactly `\.` in COPY text format.
            let r = if r == "\\." { "\\\\." } else { r.as_str() };
            dump.push_str(r);
            dump.push('\n');
        }
        dump.push_str("\\.\n");
        let mut c = a9s_recover::dump::CopyCounter::new();
        for ch in dump.as_bytes().chunks(step) {
            c.feed(ch);
        }
        prop_assert!(!c.in_copy());
        prop_assert_eq!(c.tables()[0].rows, rows.len() as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pack_then_recover_round_trips(
        data in proptest::collection::vec(any::<u8>(), 0..200_000),
        part_size in 1u64..70_000,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let part_size = part_size.max((data.len() as u64 / 60).max(1));
        let out = pack(tmp.path(), ID, &data, &["--part-size", &part_size.to_string()]);
        prop_assert!(out.status.success(), "{}", stderr(&out));
        let rec = recover(tmp.path(), ID, SECRET, &[]);
        prop_assert!(rec.status.success(), "{}", stderr(&rec));
        prop_assert_eq!(sha256(&rec.stdout), sha256(&data));
    }
}

/// A statement with the lexical corners psql's own scanner handles: quotes that hold `;`,
/// dollar quotes, nested comments, escape strings.
fn sql_statement() -> impl Strategy<Value = String> {
    let word = "[a-z]{1,8}";
    prop_oneof![
        word.prop_map(|w| format!("CREATE TABLE {w} (a int);")),
        word.prop_map(|w| format!("INSERT INTO t VALUES ('{w};''{w}', E'\\';{w}', E'\\\\');")),
        word.prop_map(|w| format!(
            "CREATE FUNCTION {w}() RETURNS int AS $f$ SELECT 1; $x$ $f$ LANGUAGE sql;"
        )),
        word.prop_map(|w| format!("/* {w}; /* nested; */ */ SELECT \"{w};\"\"\";")),
        word.prop_map(|w| format!(
            "SELECT '\n-- Name: {w}; Type: TABLE; Schema: s; Owner: o\n\\connect {w}\n';"
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// The splitter behind `restore --jobs N` finds the statements and COPY rows it was made
    /// of, in any chunking.
    #[test]
    fn the_dump_splitter_finds_every_statement_and_row_in_any_chunking(
        statements in proptest::collection::vec(sql_statement(), 1..12),
        rows in proptest::collection::vec("[a-z\\\\.\t]{0,12}", 0..50),
        step in 1usize..97,
    ) {
        use a9s_recover::split::{normalize, split_all, Item};
        let mut dump = String::from("--\n-- Name: t; Type: TABLE; Schema: public; Owner: me\n--\n\n");
        for s in &statements {
            dump.push_str(s);
            dump.push('\n');
        }
        dump.push_str("\\connect other\nCOPY public.t (a) FROM stdin;\n");
        let mut data = String::new();
        for r in &rows {
            // A row that is exactly `\.` would end the block: pg_dump writes it `\\.`.
            let r = if r == "\\." { "\\\\." } else { r.as_str() };
            data.push_str(r);
            data.push('\n');
        }
        dump.push_str(&data);
        dump.push_str("\\.\nSELECT 1;\n");
        let items = normalize(split_all(dump.as_bytes(), step));
        let mut expected = vec![Item::Header(a9s_recover::split::Header {
            data: false,
            name: "t".into(),
            kind: "TABLE".into(),
            schema: "public".into(),
            tail: "; Owner: me".into(),
        })];
        for s in &statements {
            // The comment of the fourth form opens the statement; text keeps it.
            expected.push(Item::Statement { text: format!("{s}\n").into_bytes(), meta: false });
        }
        expected.push(Item::Meta(b"\\connect other".to_vec()));
        expected.push(Item::CopyStart {
            statement: b"COPY public.t (a) FROM stdin;\n".to_vec(),
            table: Some("public.t".into()),
        });
        if !data.is_empty() {
            expected.push(Item::CopyData(data.into_bytes()));
        }
        expected.push(Item::CopyEnd { crlf: false });
        expected.push(Item::Statement { text: b"SELECT 1;\n".to_vec(), meta: false });
        prop_assert_eq!(items, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Long lines lexed as they arrive (so that a one-line statement is held once) give the
    /// same items as lines lexed whole, for any SQL-ish text and chunking.
    #[test]
    fn long_lines_lexed_as_they_arrive_split_the_same(
        parts in proptest::collection::vec(
            prop_oneof![
                sql_statement(),
                Just("'it''s;'".to_string()),
                Just("$q$ ; $ $q$".to_string()),
                Just("-- note;".to_string()),
                Just("/* a; /* b */ */".to_string()),
                Just("E'\\\\';'".to_string()),
                Just("\n".to_string()),
                Just(";".to_string()),
                "[a-z $;'\"\\-/*\\\\\n]{0,8}",
            ],
            1..24,
        ),
        step in 1usize..23,
        long_line in 1usize..11,
    ) {
        use a9s_recover::split::{normalize, split_all, split_all_with};
        let dump = parts.join(" ");
        let whole = normalize(split_all(dump.as_bytes(), dump.len().max(1)));
        let early = normalize(split_all_with(dump.as_bytes(), step, long_line));
        prop_assert_eq!(early, whole);
    }
}
