//! S3 (moto) and Azure (Azurite), each started by the harness on a free loopback port:
//! every command against real servers, retries through injected faults, pagination,
//! `latest`, and the Azure credential kinds.

use std::fs;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::proxy::{Fault, Proxy};
use crate::support::servers::*;
use crate::support::*;

fn s3(port: u16, args: &[&str]) -> Command {
    let mut c = bin();
    s3_env(&mut c);
    c.args(args)
        .args(["--endpoint", &format!("http://127.0.0.1:{port}")])
        .env("A9S_SECRET", SECRET);
    c
}

fn run(mut c: Command) -> Output {
    c.run()
}

fn pack_to(c: Command, data: &[u8]) -> Output {
    output_with_stdin(c, data)
}

/// `pack` into S3 at `loc` as backup `id`, which must succeed.
fn s3_pack(port: u16, loc: &str, id: &str, data: &[u8], extra: &[&str]) {
    let mut args = vec!["pack", "-b", loc, "--backup-id", id];
    args.extend_from_slice(extra);
    let out = pack_to(s3(port, &args), data);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn s3_pack_list_recover_verify_under_a_prefix() {
    let Some(moto) = moto() else { return };
    s3_bucket(moto.port, "backups");
    let small = dump_text(4, 400);
    let big = random_bytes(10 << 20, 21);
    let big_id = "b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967948000";
    let loc = "s3://backups/pg/prod";
    s3_pack(moto.port, loc, ID, &small, &["--part-size", "600"]);
    // 10 MiB of random data in one part: a multipart upload of 8 MiB + the rest.
    s3_pack(
        moto.port,
        loc,
        big_id,
        &big,
        &["--part-size", "64MiB", "--level", "1"],
    );

    let listed = json(&run(s3(moto.port, &["list", "-b", loc, "--json"])));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![big_id, ID], "newest first");
    assert!(listed[1]["parts"].as_u64().unwrap() > 10);
    assert_eq!(listed[1]["complete"], true);
    assert_eq!(listed[1]["time_utc"], "2019-01-31T20:52:27.154Z");

    let out = run(s3(moto.port, &["-b", loc, "--backup-id", ID]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, small);
    let out = run(s3(moto.port, &["-b", loc, "--backup-id", big_id]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sha256(&out.stdout), sha256(&big));

    let r = json(&run(s3(
        moto.port,
        &["verify", "-b", loc, "--backup-id", ID, "--json"],
    )));
    assert_eq!(r["metadata"], "matched");
    assert_eq!(r["tables"][3]["rows"], 400);
}

#[test]
fn s3_parts_made_by_the_real_tools_with_a_bare_bucket_name() {
    let Some(moto) = moto() else { return };
    s3_bucket(moto.port, "a9s-bucket");
    let tmp = tempfile::tempdir().unwrap();
    let plain = dump_text(3, 2000);
    let parts = cli_backup(tmp.path(), ID, &plain, "-md md5", 12, Naming::FromOne);
    for p in &parts {
        let name = p.file_name().unwrap().to_str().unwrap();
        s3_put(moto.port, "a9s-bucket", name, &fs::read(p).unwrap());
    }
    // As the a9s manual writes it: a bare bucket name means S3.
    let out = run(s3(
        moto.port,
        &["--bucket", "a9s-bucket", "--backup-id", ID],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain);
}

fn ranged_get(head: &str) -> bool {
    head.starts_with("GET ") && head.to_ascii_lowercase().contains("\r\nrange: bytes=")
}

#[test]
fn s3_resets_and_5xx_are_retried_and_the_output_is_identical() {
    let Some(moto) = moto() else { return };
    s3_bucket(moto.port, "bkt");
    let plain = random_bytes(3 << 20, 22);
    s3_pack(
        moto.port,
        "s3://bkt",
        ID,
        &plain,
        &["--part-size", "800KiB", "--level", "1"],
    );
    let seen = AtomicUsize::new(0);
    let proxy = Proxy::start(
        moto.port,
        Box::new(move |_, head| {
            if !ranged_get(head) {
                return Fault::Pass;
            }
            match seen.fetch_add(1, Ordering::SeqCst) {
                1 => Fault::Status(503),
                2 => Fault::Status(500),
                3 => Fault::CutAfter(700),
                5 => Fault::Status(503),
                7 => Fault::CutAfter(100_000),
                8 => Fault::Status(429),
                _ => Fault::Pass,
            }
        }),
    );
    let out = run(s3(
        proxy.port,
        &[
            "-b",
            "s3://bkt",
            "--backup-id",
            ID,
            "--chunk-size",
            "256KiB",
            "--concurrency",
            "4",
        ],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sha256(&out.stdout), sha256(&plain));
    assert_eq!(
        proxy.faults.load(Ordering::SeqCst),
        6,
        "every fault was injected"
    );
}

#[test]
fn s3_when_retries_run_out_the_error_names_the_part_and_range() {
    let Some(moto) = moto() else { return };
    s3_bucket(moto.port, "bkt");
    let plain = random_bytes(1 << 20, 23);
    s3_pack(moto.port, "s3://bkt", ID, &plain, &["--level", "1"]);
    // Every range but the first of each object fails.
    let proxy = Proxy::start(
        moto.port,
        Box::new(|_, head| {
            if ranged_get(head) && !head.to_ascii_lowercase().contains("range: bytes=0-") {
                Fault::Status(503)
            } else {
                Fault::Pass
            }
        }),
    );
    let o = tempfile::tempdir().unwrap();
    let target = o.path().join("x.dump");
    let out = run(s3(
        proxy.port,
        &[
            "-b",
            "s3://bkt",
            "--backup-id",
            ID,
            "--chunk-size",
            "256KiB",
            "--retries",
            "2",
            "-o",
            target.to_str().unwrap(),
        ],
    ));
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    // The first read after the header is the padding probe of the last block.
    assert!(e.contains(&format!("{ID}-1 failed (bytes ")), "{e}");
    assert!(
        e.contains("HTTP 503") && e.contains("gave up after retries"),
        "{e}"
    );
    assert_eq!(files_in(o.path()), Vec::<String>::new());
}

#[test]
fn s3_listing_over_a_thousand_objects_and_latest() {
    let Some(moto) = moto() else { return };
    s3_bucket(moto.port, "big");
    // Decoys that sort before the backups, so only pagination finds those.
    for i in 0..1100 {
        s3_put(moto.port, "big", &format!("aaa-decoy-{i:04}"), b"x");
    }
    let plains: Vec<Vec<u8>> = (0..3).map(|k| dump_text(2, 300 + k * 50)).collect();
    let ids = [
        "inst-1700000000000",
        "inst-1700000001000",
        "inst-1700000002000",
    ];
    for (id, plain) in ids.iter().zip(&plains) {
        s3_pack(moto.port, "s3://big", id, plain, &["--part-size", "300"]);
    }
    // The newest loses a part: incomplete.
    s3_delete(moto.port, "big", "inst-1700000002000-5");

    let all = json(&run(s3(moto.port, &["list", "-b", "s3://big", "--json"])));
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0]["backup_id"], ids[2]);
    assert_eq!(all[0]["complete"], false, "{all:#?}");
    assert!(all[0]["problem"]
        .as_str()
        .unwrap()
        .contains("part 5 missing"));
    assert!(all[1]["parts"].as_u64().unwrap() > 10);

    let text = run(s3(
        moto.port,
        &["list", "-b", "s3://big", "--instance-id", "inst"],
    ));
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(
        t.contains("INCOMPLETE") && t.contains("2023-11-14T22:13:21.000Z"),
        "{t}"
    );

    let out = run(s3(
        moto.port,
        &[
            "-b",
            "s3://big",
            "--backup-id",
            "latest",
            "--instance-id",
            "inst",
        ],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plains[1]);
    let e = stderr(&out);
    assert!(
        e.contains("picked the newest complete backup of inst: inst-1700000001000")
            && e.contains("skipped the newer inst-1700000002000 (part 5 missing"),
        "{e}"
    );
}

#[test]
fn s3_object_rewritten_during_the_download_is_an_error() {
    let Some(moto) = moto() else { return };
    s3_bucket(moto.port, "bkt");
    let plain = random_bytes(3 << 20, 24);
    s3_pack(
        moto.port,
        "s3://bkt",
        ID,
        &plain,
        &["--part-size", "1MiB", "--level", "1"],
    );
    let o = tempfile::tempdir().unwrap();
    let target = o.path().join("x.dump");
    let mut c = s3(
        moto.port,
        &[
            "-b",
            "s3://bkt",
            "--backup-id",
            ID,
            "--limit-rate",
            "1MiB",
            "--concurrency",
            "1",
            "-o",
            target.to_str().unwrap(),
        ],
    );
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partial = o.path().join("x.dump.partial");
    let start = Instant::now();
    while fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A new upload of the last part while we are still on the first.
    s3_put(moto.port, "bkt", &format!("{ID}-4"), &random_bytes(100, 1));
    let out = child.finish();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "part {ID}-4 changed while the backup was being read"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_in(o.path()), Vec::<String>::new());
}

#[test]
fn s3_missing_bucket_says_so() {
    let Some(moto) = moto() else { return };
    let out = run(s3(
        moto.port,
        &["-b", "s3://no-such-bucket", "--backup-id", ID],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bucket does not exist"),
        "{}",
        stderr(&out)
    );
}

fn az(endpoint: Option<&str>, args: &[&str]) -> Command {
    let mut c = bin();
    az_env(&mut c);
    c.args(args).env("A9S_SECRET", SECRET);
    if let Some(e) = endpoint {
        c.args(["--endpoint", e]);
    }
    c
}

#[test]
fn azure_account_key_sas_and_connection_string() {
    let Some(azurite) = azurite() else { return };
    let ep = az_endpoint(azurite.port);
    az_setup(&["container", &ep, "backups"]);
    let plain = dump_text(3, 700);
    let loc = "az://backups/pg";
    let mut c = az(
        Some(&ep),
        &["pack", "-b", loc, "--backup-id", ID, "--part-size", "5000"],
    );
    c.env("AZURE_STORAGE_ACCOUNT", AZ_ACCOUNT)
        .env("AZURE_STORAGE_KEY", AZ_KEY);
    let out = pack_to(c, &plain);
    assert!(out.status.success(), "{}", stderr(&out));

    // Account key.
    let mut c = az(
        Some(&ep),
        &["-b", loc, "--backup-id", ID, "--account", AZ_ACCOUNT],
    );
    c.env("AZURE_STORAGE_KEY", AZ_KEY);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain);

    // SAS token (read and list only).
    let sas = az_setup(&["sas", &ep]);
    let mut c = az(
        Some(&ep),
        &["verify", "--json", "-b", loc, "--backup-id", ID],
    );
    c.env("AZURE_STORAGE_ACCOUNT", AZ_ACCOUNT)
        .env("AZURE_STORAGE_SAS_TOKEN", &sas);
    let r = json(&run(c));
    assert_eq!(r["metadata"], "matched");
    assert_eq!(r["plaintext_sha256"], sha256(&plain));

    // Connection string, as the az CLI takes it: no other settings at all.
    let mut c = az(None, &["list", "--json", "-b", "azure://backups/pg"]);
    c.env(
        "AZURE_STORAGE_CONNECTION_STRING",
        format!("DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};BlobEndpoint={ep};"),
    );
    let listed = json(&run(c));
    assert_eq!(listed[0]["backup_id"], ID);
    assert_eq!(listed[0]["complete"], true);
}

#[test]
fn azure_single_blob_made_by_the_real_tools() {
    let Some(azurite) = azurite() else { return };
    let ep = az_endpoint(azurite.port);
    az_setup(&["container", &ep, "cont"]);
    let tmp = tempfile::tempdir().unwrap();
    let plain = dump_text(2, 900);
    let parts = cli_backup(tmp.path(), "x", &plain, "-md md5", 1, Naming::FromOne);
    az_setup(&["upload", &ep, "cont", ID, parts[0].to_str().unwrap()]);
    let mut c = az(Some(&ep), &["-b", "az://cont", "--backup-id", ID]);
    c.env("AZURE_STORAGE_ACCOUNT", AZ_ACCOUNT)
        .env("AZURE_STORAGE_KEY", AZ_KEY);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain);
}

#[test]
fn azure_wrong_key_is_access_denied() {
    let Some(azurite) = azurite() else { return };
    let ep = az_endpoint(azurite.port);
    az_setup(&["container", &ep, "cont"]);
    let mut c = az(Some(&ep), &["-b", "az://cont", "--backup-id", ID]);
    c.env("AZURE_STORAGE_ACCOUNT", AZ_ACCOUNT)
        .env("AZURE_STORAGE_KEY", "d3Jvbmcta2V5LXdyb25nLWtleQ==");
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("Access denied") || e.contains("403"), "{e}");
    assert!(!e.contains("d3Jvbmcta2V5"), "the key leaked: {e}");
}

#[test]
fn s3_a_stalled_server_hits_the_read_timeout_and_is_reported() {
    let Some(moto) = moto() else { return };
    s3_bucket(moto.port, "bkt");
    let plain = random_bytes(300_000, 25);
    s3_pack(moto.port, "s3://bkt", ID, &plain, &[]);
    let proxy = Proxy::start(
        moto.port,
        Box::new(|_, head| {
            if ranged_get(head) {
                Fault::Stall
            } else {
                Fault::Pass
            }
        }),
    );
    let t0 = Instant::now();
    let out = run(s3(
        proxy.port,
        &[
            "-b",
            "s3://bkt",
            "--backup-id",
            ID,
            "--read-timeout",
            "1",
            "--retries",
            "1",
        ],
    ));
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    // The first ranged read (the metadata's) stalls: named, with its byte range.
    assert!(
        e.contains(ID)
            && e.contains("(bytes 0..")
            && e.contains("read timeout")
            && e.contains("gave up after retries"),
        "{e}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "the timeout was honoured"
    );
}

#[test]
fn s3_forbidden_says_access_denied() {
    // With credential checks on, moto refuses keys it does not know: 403.
    let Some(moto) = moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]) else {
        return;
    };
    let out = run(s3(moto.port, &["-b", "s3://bkt", "--backup-id", ID]));
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("403") && e.contains("Access denied"), "{e}");
    assert!(!e.contains("AWS_SECRET") && !e.contains("test:test"), "{e}");
}

/// Azure sign-in as operators have it (issue 13 §7), against Azurite's OAuth mode over HTTPS
/// (a self-signed certificate, trusted through SSL_CERT_FILE) and a local token endpoint: a
/// service principal, a workload identity, a user-assigned managed identity, and the az
/// CLI's login (a stand-in `az` on PATH); a token Azurite refuses says access denied.
#[test]
fn azure_sign_in_service_principal_workload_managed_identity_and_cli() {
    use crate::support::token::TokenServer;
    let tmp = tempfile::tempdir().unwrap();
    // A private CA, as an operator behind one has it: SSL_CERT_FILE names it.
    let (ca, cert, key) = test_ca(tmp.path());
    let Some(azurite) = azurite_oauth(&cert, &key) else {
        return;
    };
    let ep = format!("https://127.0.0.1:{}/{AZ_ACCOUNT}", azurite.port);
    az_setup_env(
        &["container", &ep, "backups"],
        &[("NODE_EXTRA_CA_CERTS", ca.as_os_str())],
    );
    let plain = dump_text(2, 400);
    let loc = "az://backups";
    let mut c = az(Some(&ep), &["pack", "-b", loc, "--backup-id", ID]);
    c.env("AZURE_STORAGE_ACCOUNT", AZ_ACCOUNT)
        .env("AZURE_STORAGE_KEY", AZ_KEY)
        .env("SSL_CERT_FILE", &ca);
    let out = pack_to(c, &plain);
    assert!(out.status.success(), "{}", stderr(&out));

    let entra = TokenServer::start(Some((&cert, &key)));
    let imds = TokenServer::start(None);
    let recover = |mode: Option<&str>, envs: &[(&str, &std::ffi::OsStr)]| {
        let mut c = az(
            Some(&ep),
            &["-b", loc, "--backup-id", ID, "--account", AZ_ACCOUNT],
        );
        if let Some(m) = mode {
            c.args(["--azure-auth", m]);
        }
        c.env("SSL_CERT_FILE", &ca)
            .env(
                "AZURE_AUTHORITY_HOST",
                format!("https://127.0.0.1:{}", entra.port),
            )
            .envs(envs.iter().copied());
        run(c)
    };
    let check = |what: &str, out: Output| {
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert_eq!(out.stdout, plain, "{what}");
    };

    // A service principal, found by `auto` from the SDKs' variables.
    check(
        "service principal",
        recover(
            None,
            &[
                ("AZURE_CLIENT_ID", "app-id".as_ref()),
                ("AZURE_CLIENT_SECRET", "app-secret".as_ref()),
                ("AZURE_TENANT_ID", "tenant-1".as_ref()),
            ],
        ),
    );
    let asked = entra.seen();
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("POST /tenant-1/oauth2/v2.0/token")
                && r.contains("grant_type=client_credentials")
                && r.contains("client_secret=app-secret")),
        "{asked:?}"
    );

    // A workload identity: the federated token file is the client assertion.
    let federated = tmp.path().join("federated-token");
    std::fs::write(&federated, "federated-assertion").unwrap();
    check(
        "workload identity",
        recover(
            Some("workload-identity"),
            &[
                ("AZURE_CLIENT_ID", "app-id".as_ref()),
                ("AZURE_TENANT_ID", "tenant-2".as_ref()),
                ("AZURE_FEDERATED_TOKEN_FILE", federated.as_os_str()),
            ],
        ),
    );
    let asked = entra.seen();
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("POST /tenant-2/oauth2/v2.0/token")
                && r.contains("client_assertion=federated-assertion")),
        "{asked:?}"
    );

    // A user-assigned managed identity at its endpoint.
    let msi = format!(
        "http://127.0.0.1:{}/metadata/identity/oauth2/token",
        imds.port
    );
    check(
        "managed identity",
        recover(
            Some("managed-identity"),
            &[
                ("AZURE_MSI_ENDPOINT", msi.as_ref()),
                ("AZURE_CLIENT_ID", "uami-client".as_ref()),
            ],
        ),
    );
    let asked = imds.seen();
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("GET /metadata/identity/oauth2/token?")
                && r.contains("client_id=uami-client")
                && r.contains("resource=https")),
        "{asked:?}"
    );
    // The system-assigned one: no identity named in the request.
    check(
        "system-assigned managed identity",
        recover(
            Some("managed-identity"),
            &[("IDENTITY_ENDPOINT", msi.as_ref())],
        ),
    );
    let asked = imds.seen();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(!asked[1].contains("client_id="), "{asked:?}");

    // The az CLI's login, chosen by AZURE_STORAGE_AUTH_MODE=login as the az CLI reads it.
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let fake_az = bin_dir.join("az");
    std::fs::write(
        &fake_az,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nprintf '%s' '{{\"accessToken\":\"{}\",\"expiresOn\":\"2099-01-01 00:00:00.000000\",\"tokenType\":\"Bearer\"}}'\n",
            tmp.path().join("az-args").display(),
            crate::support::token::jwt("https://storage.azure.com")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake_az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    check(
        "az login",
        recover(
            None,
            &[
                ("AZURE_STORAGE_AUTH_MODE", "login".as_ref()),
                ("PATH", path.as_ref()),
            ],
        ),
    );
    let az_args = std::fs::read_to_string(tmp.path().join("az-args")).unwrap();
    assert!(az_args.contains("account get-access-token"), "{az_args}");

    // A token for another audience: Azurite refuses it, and we say so.
    let t0 = Instant::now();
    let out = recover(
        Some("service-principal"),
        &[
            ("AZURE_CLIENT_ID", "app-id".as_ref()),
            ("AZURE_CLIENT_SECRET", "app-secret".as_ref()),
            ("AZURE_TENANT_ID", "wrong-audience".as_ref()),
        ],
    );
    assert!(!out.status.success());
    // Refused is final: not retried for half a minute.
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let e = stderr(&out);
    assert!(e.contains("Access denied") || e.contains("403"), "{e}");
    assert!(!e.contains("app-secret"), "the client secret leaked: {e}");

    // A mode whose variables are missing says which.
    let out = recover(Some("workload-identity"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("AZURE_CLIENT_ID"), "{}", stderr(&out));
}

/// S3 over HTTPS (issue 13 §6: the AWS SDK's client is rustls on ring now, not aws-lc): moto
/// with a certificate from a private CA that SSL_CERT_FILE names; pack, then recover.
#[test]
fn s3_over_https_with_a_private_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(tmp.path());
    let Some(moto) = moto_tls(&cert, &key) else {
        return;
    };
    s3_bucket_tls(moto.port, "tls", &ca);
    let ep = format!("https://127.0.0.1:{}", moto.port);
    let https = |args: &[&str]| {
        let mut c = bin();
        s3_env(&mut c);
        c.args(args)
            .args(["--endpoint", &ep])
            .env("A9S_SECRET", SECRET);
        c
    };
    let plain = dump_text(2, 300);
    let mut c = https(&["pack", "-b", "s3://tls", "--backup-id", ID]);
    c.env("SSL_CERT_FILE", &ca);
    let out = pack_to(c, &plain);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut c = https(&["-b", "s3://tls", "--backup-id", ID]);
    c.env("SSL_CERT_FILE", &ca);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, plain);
    // Without the CA the server's certificate is refused, at once and saying so.
    let t0 = Instant::now();
    let out = run(https(&["-b", "s3://tls", "--backup-id", ID]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("SSL_CERT_FILE"), "{}", stderr(&out));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

/// Issue 18 §8: a container that does not exist is one line in the operator's words: the
/// service's code and message, not its XML, and no "gave up after retries" for a request
/// that was never retried.
#[test]
fn azure_missing_container_is_said_plainly_and_not_retried() {
    let Some(azurite) = azurite() else { return };
    let ep = az_endpoint(azurite.port);
    let mut c = az(
        Some(&ep),
        &["-b", "az://nosuchcontainer", "--backup-id", ID],
    );
    c.env("AZURE_STORAGE_ACCOUNT", AZ_ACCOUNT)
        .env("AZURE_STORAGE_KEY", AZ_KEY);
    let out = run(c);
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(e.contains("ContainerNotFound"), "{e}");
    assert!(e.contains("container does not exist"), "{e}");
    assert!(!e.contains("<?xml") && !e.contains("<Error>"), "{e}");
    assert!(!e.contains("gave up after retries"), "{e}");
}
