//! Real servers for the tests, each on a free loopback port, stopped on drop: moto's S3
//! server and Azurite. Under `CI=true` a server that cannot start fails the test; elsewhere
//! the test is skipped with a message saying how to get the server (`.ci/run` installs both).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::RunExt;

/// Azurite's public development account and key.
pub const AZ_ACCOUNT: &str = "devstoreaccount1";
pub const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running server process.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-tools")
}

/// `env_var`, else the repo's `.test-tools/REL`, else `exe` on PATH.
fn find_tool(env_var: &str, rel: &str, exe: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    let local = tools_dir().join(rel);
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(exe))
            .find(|p| p.exists())
    })
}

/// For the other harness modules.
pub fn unavailable_pub<T>(what: &str) -> Option<T> {
    unavailable(what)
}

fn unavailable<T>(what: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "{what}; under CI=true a server that cannot start fails the test (.ci/run installs it)"
        );
    }
    eprintln!("SKIPPED: {what} (run .ci/run once, or see the README's Tests section)");
    None
}

fn wait_for_port(child: &mut Child, port: u16, what: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(st)) = child.try_wait() {
            eprintln!("{what} exited early: {st}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn start(what: &str, mut cmd: Command, port: u16, dir: tempfile::TempDir) -> Option<Server> {
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return unavailable(&format!("{what} could not be started: {e}")),
    };
    if !wait_for_port(&mut child, port, what) {
        let _ = child.kill();
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        return unavailable(&format!("{what} did not listen on port {port}: {log}"));
    }
    Some(Server {
        child,
        port,
        _dir: dir,
    })
}

/// moto's S3-compatible server.
pub fn moto() -> Option<Server> {
    moto_with(&[])
}

/// moto over HTTPS with `cert` and `key` (the AWS SDK's TLS, rustls on ring, end to end).
pub fn moto_tls(cert: &Path, key: &Path) -> Option<Server> {
    let Some(exe) = find_tool("MOTO_SERVER", "venv/bin/moto_server", "moto_server") else {
        return unavailable("moto_server is not installed (pip install 'moto[server]')");
    };
    let port = free_port();
    let mut cmd = Command::new(exe);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string(), "-c"])
        .arg(cert)
        .arg("-k")
        .arg(key);
    start("moto_server", cmd, port, tempfile::tempdir().unwrap())
}

/// Creates an S3 bucket on a moto that speaks HTTPS, trusting `ca`.
pub fn s3_bucket_tls(port: u16, bucket: &str, ca: &Path) {
    let mut c = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    c.set_ca_file(ca).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut s = c.build().connect("127.0.0.1", tcp).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let head = String::from_utf8_lossy(&resp[..resp.len().min(64)]).into_owned();
    assert!(head.contains(" 200 "), "creating the bucket: {head:?}");
}

/// moto with extra environment, e.g. `INITIAL_NO_AUTH_ACTION_COUNT=0` to check credentials.
pub fn moto_with(env: &[(&str, &str)]) -> Option<Server> {
    let Some(exe) = find_tool("MOTO_SERVER", "venv/bin/moto_server", "moto_server") else {
        return unavailable("moto_server is not installed (pip install 'moto[server]')");
    };
    let port = free_port();
    let mut cmd = Command::new(exe);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    start("moto_server", cmd, port, tempfile::tempdir().unwrap())
}

/// Azurite's blob service.
pub fn azurite() -> Option<Server> {
    azurite_with(&[])
}

/// Azurite's blob service over HTTPS with `cert` and `key`, accepting OAuth bearer tokens
/// (`--oauth basic`: issuer, audience and lifetime are checked, signatures are not).
pub fn azurite_oauth(cert: &Path, key: &Path) -> Option<Server> {
    azurite_with(&[
        "--oauth".as_ref(),
        "basic".as_ref(),
        "--cert".as_ref(),
        cert.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ])
}

fn azurite_with(extra: &[&std::ffi::OsStr]) -> Option<Server> {
    let Some(exe) = find_tool(
        "AZURITE_BLOB",
        "node/node_modules/.bin/azurite-blob",
        "azurite-blob",
    ) else {
        return unavailable("azurite-blob is not installed (npm install azurite@3.35)");
    };
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        &port.to_string(),
        "--location",
    ])
    .arg(dir.path())
    .args([
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--silent",
    ])
    .args(extra);
    start("azurite-blob", cmd, port, dir)
}

/// A raw HTTP/1.1 request to moto: returns the status code. moto does not verify
/// signatures but refuses to overwrite or delete without an `Authorization` header, so a
/// dummy one is sent.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head = String::from_utf8_lossy(&resp[..resp.len().min(64)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {head:?}"))
}

/// Creates an S3 bucket on moto.
pub fn s3_bucket(port: u16, bucket: &str) {
    assert_eq!(http(port, "PUT", &format!("/{bucket}"), b""), 200);
}

/// Puts an object on moto.
pub fn s3_put(port: u16, bucket: &str, key: &str, data: &[u8]) {
    assert_eq!(http(port, "PUT", &format!("/{bucket}/{key}"), data), 200);
}

/// Deletes an object on moto.
pub fn s3_delete(port: u16, bucket: &str, key: &str) {
    assert_eq!(http(port, "DELETE", &format!("/{bucket}/{key}"), b""), 204);
}

/// The environment the binary needs to reach moto, and nothing from the host's AWS setup.
pub fn s3_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
}

/// Runs the Azure SDK helper (`tests/support/azure_setup.js`).
pub fn az_setup(args: &[&str]) -> String {
    az_setup_env(args, &[])
}

/// The same with more environment (`NODE_EXTRA_CA_CERTS` for an HTTPS Azurite).
pub fn az_setup_env(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/azure_setup.js");
    let node_path = std::env::var_os("AZURE_SDK_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("node/node_modules"));
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .env("NODE_PATH", node_path)
        .envs(envs.iter().copied())
        .run();
    assert!(
        out.status.success(),
        "azure_setup.js {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The blob endpoint of an Azurite server.
pub fn az_endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}/{AZ_ACCOUNT}")
}

/// Clears the host's Azure settings.
pub fn az_env(cmd: &mut Command) -> &mut Command {
    for v in [
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_AUTH_MODE",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_AUTHORITY_HOST",
        "AZURE_MSI_ENDPOINT",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
        "A9S_AZURE_AUTH",
        "SSL_CERT_FILE",
    ] {
        cmd.env_remove(v);
    }
    cmd
}
