//! Shared helpers: run the binary, make backups with the real CLI tools, hash, corrupt.

#![allow(dead_code)]

pub mod pg;
pub mod proxy;
pub mod servers;
pub mod token;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

pub const ID: &str = "b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967947154";
pub const SECRET: &str = "NYHD8MVmA55HEqoaYHpQaxfwEMcQ1wkI";

/// The executable under test: the one cargo built, or `A9S_TEST_BIN` (CI runs the byte-exact,
/// bad-input, pack and cloud tests once more against the portable binary this way).
pub fn exe() -> PathBuf {
    match std::env::var_os("A9S_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_a9s-recover")),
    }
}

/// The binary under test, with a clean environment for secrets.
pub fn bin() -> Command {
    let mut c = Command::new(exe());
    c.env_remove("A9S_SECRET").stdin(Stdio::null());
    c
}

/// Runs `a9s-recover --bucket DIR --backup-id ID` with the secret in the environment.
pub fn recover(dir: &Path, id: &str, secret: &str, extra: &[&str]) -> Output {
    bin()
        .arg("--bucket")
        .arg(dir)
        .args(["--backup-id", id])
        .args(extra)
        .env("A9S_SECRET", secret)
        .run()
}

/// The secrets the suite uses: the backup secret and the database passwords of the restore
/// tests. None may appear in anything a test captures.
pub const SECRETS: [&str; 3] = [SECRET, "Pw-in-dsn-42", "Db-Pass-Xyz-77"];

/// Fails the test if a secret appears on the stdout or stderr of `o`.
pub fn assert_no_secret(o: &Output) {
    for secret in SECRETS {
        for (name, stream) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            assert!(
                memchr::memmem::find(stream, secret.as_bytes()).is_none(),
                "a secret appeared on {name}:\n{}",
                String::from_utf8_lossy(&stream[..stream.len().min(4000)])
            );
        }
    }
}

/// How the suite runs every program whose output it captures: both streams are checked for
/// [`SECRETS`], so the dumps, JSON reports and messages of the whole suite are.
pub trait RunExt {
    /// `output()`, checked.
    fn run(&mut self) -> Output;
}

impl RunExt for Command {
    fn run(&mut self) -> Output {
        let out = self.output().expect("run a program");
        assert_no_secret(&out);
        out
    }
}

/// The same for a spawned child.
pub trait FinishExt {
    /// `wait_with_output()`, checked.
    fn finish(self) -> Output;
}

impl FinishExt for std::process::Child {
    fn finish(self) -> Output {
        let out = self.wait_with_output().expect("wait for a program");
        assert_no_secret(&out);
        out
    }
}

/// Whether process `pid` runs. Gone, or a zombie waiting to be reaped by whoever inherited it,
/// is not running.
pub fn is_running(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| st.rsplit(')').next().and_then(|r| r.trim().chars().next()))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Sends `signal` (`-TERM`, `-INT`) to process `pid`.
pub fn send_signal(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// What the binary said on stderr (already checked for [`SECRETS`] by `run()`/`finish()`).
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn sha256(data: &[u8]) -> String {
    a9s_recover::hex(&Sha256::digest(data))
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// pg_dumpall-shaped text: compresses like a real dump, with COPY blocks to count.
pub fn dump_text(tables: usize, rows: usize) -> Vec<u8> {
    let mut s = String::from(
        "--\n-- PostgreSQL database cluster dump\n--\n\nSET default_transaction_read_only = off;\n\n\\connect shop\n\n",
    );
    for t in 0..tables {
        s.push_str(&format!(
            "CREATE TABLE public.t{t} (id integer, name text, note text);\n\nCOPY public.t{t} (id, name, note) FROM stdin;\n"
        ));
        for r in 0..rows {
            s.push_str(&format!(
                "{r}\tname-{r}-{t}\tsome note with\\ttab and \\\\ backslash {}\n",
                r * 7919 % 1000
            ));
        }
        s.push_str("\\.\n\n");
    }
    s.push_str("--\n-- PostgreSQL database cluster dump complete\n--\n");
    s.into_bytes()
}

/// How the parts are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `ID-1`, `ID-2`, … `ID-10`: the a9s layout, where natural order matters.
    FromOne,
    /// `ID-0`, `ID-1`, …
    FromZero,
    /// `ID-001`, `ID-002`, … as `split --numeric-suffixes=1 -a 3` writes them.
    Padded,
}

/// Runs a shell pipeline with `S` holding the secret (so it is not in argv).
pub fn sh(script: &str, secret: &str) {
    let st = Command::new("sh")
        .args(["-euc", script])
        .env("S", secret)
        .stderr(Stdio::piped())
        .run();
    assert!(
        st.status.success(),
        "shell pipeline failed: {script}\n{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// Makes a backup with the real tools: `gzip -c | openssl enc -aes256 ENC -pass env:S`,
/// then `split` into about `parts` parts named per `naming`. Returns the part paths in order.
pub fn cli_backup(
    dir: &Path,
    id: &str,
    plaintext: &[u8],
    enc_args: &str,
    parts: usize,
    naming: Naming,
) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    let work = tempfile::tempdir().unwrap();
    let plain = work.path().join("plain");
    fs::write(&plain, plaintext).unwrap();
    let ct = work.path().join("ct");
    sh(
        &format!(
            "gzip -c < '{}' | openssl enc -aes256 {enc_args} -pass env:S 2>/dev/null > '{}'",
            plain.display(),
            ct.display()
        ),
        SECRET,
    );
    split_file(&ct, dir, id, parts, naming)
}

/// Splits `file` with the real `split` into about `parts` parts.
pub fn split_file(file: &Path, dir: &Path, id: &str, parts: usize, naming: Naming) -> Vec<PathBuf> {
    let len = fs::metadata(file).unwrap().len() as usize;
    let size = len.div_ceil(parts.max(1)).max(1);
    let start = if naming == Naming::FromZero { 0 } else { 1 };
    sh(
        &format!(
            "split -b {size} --numeric-suffixes={start} -a 4 '{}' '{}/{id}-'",
            file.display(),
            dir.display()
        ),
        "",
    );
    let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let n = p.file_name()?.to_str()?.to_string();
            let digits = n.strip_prefix(&format!("{id}-"))?;
            Some((digits.parse().ok()?, p))
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|(i, p)| {
            let new = match naming {
                Naming::Padded => dir.join(format!("{id}-{i:03}")),
                Naming::FromOne | Naming::FromZero => dir.join(format!("{id}-{i}")),
            };
            fs::rename(&p, &new).unwrap();
            new
        })
        .collect()
}

/// The a9s manual's decryption, run by the real tools over a directory of parts.
pub fn manual_pipeline(dir: &Path, id: &str, dec_args: &str, secret: &str) -> Vec<u8> {
    let out = Command::new("sh")
        .args([
            "-euc",
            &format!(
                "cd '{}' && cat $(ls -1v {id}-*) | openssl enc -aes256 {dec_args} -d -pass env:S 2>/dev/null | gunzip -c",
                dir.display()
            ),
        ])
        .env("S", secret)
        .run();
    assert!(
        out.status.success(),
        "manual pipeline failed: {}",
        stderr(&out)
    );
    out.stdout
}

/// Runs `cmd` with `data` on its stdin (written from another thread, so a large input
/// cannot deadlock against the child's output) and collects its output.
pub fn output_with_stdin(mut cmd: Command, data: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.finish();
    writer.join().unwrap();
    out
}

/// A private CA and a server certificate for 127.0.0.1 it signed, made by the `openssl` CLI
/// (rustls refuses a CA certificate as the server's own): (ca, cert, key) in `dir`.
pub fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir.display();
    sh(
        &format!(
            "cd '{d}' && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=a9s-test-ca \
               -keyout ca-key.pem -out ca.pem 2>/dev/null && \
             openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out cert.csr 2>/dev/null && \
             printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext && \
             openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 \
               -extfile ext -out cert.pem 2>/dev/null"
        ),
        SECRET,
    );
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// Packs `data` with the binary.
pub fn pack(dir: &Path, id: &str, data: &[u8], extra: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.args(["pack", "--bucket"])
        .arg(dir)
        .args(["--backup-id", id])
        .args(extra)
        .env("A9S_SECRET", SECRET);
    output_with_stdin(cmd, data)
}

/// Flips one byte of a file.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut b = fs::read(path).unwrap();
    b[offset] ^= 0x5a;
    fs::write(path, b).unwrap();
}

/// Cuts the last `n` bytes off `path`; returns its new length.
pub fn cut_tail(path: &Path, n: u64) -> u64 {
    let len = fs::metadata(path).unwrap().len() - n;
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
    len
}

/// Files left in a directory (to check nothing half-written remains).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The parts `<id>-<N>` in `dir`, in numeric order.
pub fn parts_in(dir: &Path, id: &str) -> Vec<PathBuf> {
    let mut parts: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let n = p
                .file_name()?
                .to_str()?
                .strip_prefix(&format!("{id}-"))?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|x| x.1).collect()
}

/// The head of a pg_dump 15 of `public.NAME (id integer, COL TYPE)` and `public.small (id
/// integer)`, up to and including `COPY public.NAME (id, COL) FROM stdin;` and its newline;
/// the small table's data is [`SMALL_TABLE_DATA`].
pub fn one_table_dump_head(name: &str, col: &str, ty: &str) -> String {
    format!(
        "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18\n\
         -- Dumped by pg_dump version 15.18\n\nSET client_encoding = 'UTF8';\n\n\
         --\n-- Name: {name}; Type: TABLE; Schema: public; Owner: postgres\n--\n\n\
         CREATE TABLE public.{name} (\n    id integer,\n    {col} {ty}\n);\n\n\
         --\n-- Name: small; Type: TABLE; Schema: public; Owner: postgres\n--\n\n\
         CREATE TABLE public.small (\n    id integer\n);\n\n\
         --\n-- Data for Name: {name}; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
         COPY public.{name} (id, {col}) FROM stdin;\n"
    )
}

/// The data item of the small table of [`one_table_dump_head`].
pub const SMALL_TABLE_DATA: &str =
    "--\n-- Data for Name: small; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n\
                                    COPY public.small (id) FROM stdin;\n1\n2\n3\n\\.\n\n";

/// `restore --bucket BUCKET --backup-id ID --target DSN --yes` with the secret set.
pub fn restore_to(bucket: &Path, dsn: &str) -> Command {
    let mut c = bin();
    c.args(["restore", "--bucket"])
        .arg(bucket)
        .args(["--backup-id", ID, "--target", dsn, "--yes"])
        .env("A9S_SECRET", SECRET);
    c
}
