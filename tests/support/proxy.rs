//! A fault-injecting TCP proxy between the binary and a test server: one request per
//! connection (it forces `Connection: close`), and for each request a [`Fault`] chosen by
//! the test from the request number and head: pass it on, answer with an HTTP error status,
//! or cut the response after N bytes. Loopback only; stops when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Answer with this HTTP status and no body.
    Status(u16),
    /// Forward, but close the connection after this many response bytes.
    CutAfter(usize),
    /// Read the request and never answer (the connection stays open for a while).
    Stall,
}

pub type Policy = dyn Fn(usize, &str) -> Fault + Send + Sync;

#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    /// Requests that got a fault other than `Pass`.
    pub faults: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Proxy {
    pub fn start(upstream: u16, policy: Box<Policy>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(AtomicUsize::new(0));
        let policy: Arc<Policy> = Arc::from(policy);
        let (s, f) = (stop.clone(), faults.clone());
        std::thread::spawn(move || {
            let counter = AtomicUsize::new(0);
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let policy = policy.clone();
                let f = f.clone();
                std::thread::spawn(move || handle(client, upstream, n, &*policy, &f));
            }
        });
        Proxy { port, faults, stop }
    }
}

fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Some((buf, rest));
        }
        let n = client.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 16 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn handle(mut client: TcpStream, upstream: u16, n: usize, policy: &Policy, faults: &AtomicUsize) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((head, body_start)) = read_head(&mut client) else {
        return;
    };
    let head_text = String::from_utf8_lossy(&head).into_owned();
    let fault = policy(n, &head_text);
    if fault != Fault::Pass {
        faults.fetch_add(1, Ordering::SeqCst);
    }
    if fault == Fault::Stall {
        std::thread::sleep(Duration::from_secs(20));
        return;
    }
    if let Fault::Status(code) = fault {
        let _ = write!(
            client,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    // One request per connection, so that faults are per request.
    let mut new_head = String::new();
    for line in head_text.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("connection:") || line.is_empty() {
            continue;
        }
        new_head.push_str(line);
        new_head.push_str("\r\n");
    }
    new_head.push_str("Connection: close\r\n\r\n");
    if up.write_all(new_head.as_bytes()).is_err() || up.write_all(&body_start).is_err() {
        return;
    }
    let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
    });
    let limit = match fault {
        Fault::CutAfter(k) => k,
        _ => usize::MAX,
    };
    let mut sent = 0usize;
    let mut buf = [0u8; 16 * 1024];
    while let Ok(k) = up.read(&mut buf) {
        if k == 0 {
            break;
        }
        let k2 = k.min(limit - sent);
        if client.write_all(&buf[..k2]).is_err() {
            break;
        }
        sent += k2;
        if sent >= limit {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
}
