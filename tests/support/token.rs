//! A local stand-in for Microsoft Entra ID's token endpoint and for the managed-identity
//! endpoint (IMDS), for Azure sign-in tests against Azurite's OAuth mode. It answers every
//! request with a token Azurite's basic OAuth check accepts (a JWT whose issuer, audience and
//! lifetime are right; Azurite does not check signatures in that mode), and records what it
//! was asked: method, path and query, and body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A running token endpoint (HTTPS with the given certificate, or plain HTTP).
pub struct TokenServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A token for `audience`, valid for an hour.
pub fn jwt(audience: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = b64url(
        format!(
            r#"{{"aud":"{audience}","iss":"https://sts.windows.net/a9s-test-tenant/","iat":{},"nbf":{},"exp":{}}}"#,
            now - 60,
            now - 60,
            now + 3600
        )
        .as_bytes(),
    );
    format!("{header}.{claims}.{}", b64url(b"not-signed"))
}

impl TokenServer {
    /// Starts the server; `tls` is (certificate, key) in PEM files.
    pub fn start(tls: Option<(&Path, &Path)>) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tls.map(|(cert, key)| {
            let mut a =
                openssl::ssl::SslAcceptor::mozilla_intermediate(openssl::ssl::SslMethod::tls())
                    .unwrap();
            a.set_certificate_chain_file(cert).unwrap();
            a.set_private_key_file(key, openssl::ssl::SslFiletype::PEM)
                .unwrap();
            Arc::new(a.build())
        });
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                let acceptor = acceptor.clone();
                std::thread::spawn(move || match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(stream) {
                            serve(s, &seen);
                        }
                    }
                    None => serve(stream, &seen),
                });
            }
        });
        TokenServer { port, requests }
    }

    /// What was asked so far, one `METHOD PATH?QUERY BODY` line per request.
    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: impl Read + Write, seen: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(stream);
    let mut first = String::new();
    if r.read_line(&mut first).is_err() {
        return;
    }
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    seen.lock().unwrap().push(format!(
        "{method} {target} {}",
        String::from_utf8_lossy(&body)
    ));
    // A tenant named `wrong-audience` gets a token Azurite refuses.
    let audience = if target.contains("wrong-audience") {
        "https://example.com"
    } else {
        "https://storage.azure.com"
    };
    let token = jwt(audience);
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let json = format!(
        r#"{{"access_token":"{token}","expires_in":3600,"expires_on":"{expires_on}","token_type":"Bearer","resource":"https://storage.azure.com"}}"#
    );
    let mut s = r.into_inner();
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    let _ = s.flush();
}
