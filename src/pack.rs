//! `pack`: the reverse pipeline. A dump on a reader → gzip → `openssl enc -aes-256-cbc` →
//! parts `<backup-id>-1..N` of `part_size` bytes → `<backup-id>.json`.
//!
//! What it writes decrypts with the a9s manual's shell pipeline
//! (`cat $(ls -1v id-*) | openssl enc -aes256 -md md5 -d | gunzip`). The metadata is written
//! last, so a backup with metadata is a complete backup; on failure the parts written so far
//! are deleted. Used for fixtures, drills and benchmarks.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::catalog::{self, Metadata, PartRecord};
use crate::crypto::{Encryptor, Kdf};
use crate::error::{Error, Result};
use crate::pipe::{pipe, PipeTx};
use crate::progress::Progress;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::source::{Source, Upload};
use crate::time::{now_millis, rfc3339_from_millis};

/// Read size from the input.
const READ_CHUNK: usize = 1 << 20;

/// What to pack.
#[derive(Debug, Clone)]
pub struct PackRequest {
    /// The backup id to write.
    pub backup_id: String,
    /// The secret to encrypt with.
    pub secret: Secret,
    /// Key derivation (the a9s manual's `-md md5` by default).
    pub kdf: Kdf,
    /// Bytes per part (the a9s default is 1 GiB).
    pub part_size: u64,
    /// gzip level 0-9 (gzip's default is 6).
    pub level: u32,
}

/// What `pack` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PackReport {
    pub backup_id: String,
    pub location: String,
    pub parts: Vec<PartRecord>,
    pub plaintext_size: u64,
    pub plaintext_sha256: String,
    pub stored_size: u64,
    pub key_derivation: String,
    pub seconds: f64,
}

/// Packs `input` into a backup at `source`.
pub async fn pack(
    source: Arc<dyn Source>,
    req: PackRequest,
    input: Box<dyn Read + Send>,
    show_progress: bool,
    shutdown: Shutdown,
) -> Result<PackReport> {
    let started = std::time::Instant::now();
    catalog::validate_backup_id(&req.backup_id)?;
    if req.part_size == 0 {
        return Err(Error::Config("--part-size must be at least 1 byte".into()));
    }
    let existing = match source.list(&req.backup_id).await {
        // A directory that does not exist yet is created by the first upload.
        Err(Error::LocationMissing { .. }) => Vec::new(),
        r => r?,
    };
    if existing.iter().any(|o| {
        o.name == req.backup_id
            || o.name == catalog::metadata_name(&req.backup_id)
            || catalog::part_index(&req.backup_id, &o.name).is_some()
    }) {
        return Err(Error::BackupExists {
            backup_id: req.backup_id.clone(),
            location: source.describe(),
        });
    }

    let progress = Progress::spinner(show_progress);
    let (tx, mut rx) = pipe::<Bytes>(4);
    let enc = Encryptor::new(req.secret.expose(), req.kdf)?;
    let level = req.level.min(9);
    let prog = progress.clone();
    let producer =
        tokio::task::spawn_blocking(move || compress_encrypt(input, enc, level, tx, prog));

    let mut written: Vec<PartRecord> = Vec::new();
    let upload = async {
        let mut current: Option<(String, Box<dyn Upload>, Sha256, u64)> = None;
        while let Some(mut data) = rx.recv().await? {
            while !data.is_empty() {
                if current.is_none() {
                    let name = format!("{}-{}", req.backup_id, written.len() + 1);
                    let up = source.create(&name).await?;
                    current = Some((name, up, Sha256::new(), 0));
                }
                let (_, up, h, n) = current.as_mut().expect("just set");
                let room = (req.part_size - *n) as usize;
                let piece = data.split_to(room.min(data.len()));
                h.update(&piece);
                *n += piece.len() as u64;
                up.write(piece).await?;
                if *n == req.part_size {
                    let (name, up, h, n) = current.take().expect("open part");
                    up.finish().await?;
                    written.push(PartRecord {
                        name,
                        size: n,
                        sha256: Some(crate::hex(&h.finalize())),
                    });
                }
            }
        }
        if let Some((name, up, h, n)) = current.take() {
            up.finish().await?;
            written.push(PartRecord {
                name,
                size: n,
                sha256: Some(crate::hex(&h.finalize())),
            });
        }
        Ok::<(), Error>(())
    };
    let uploaded = tokio::select! {
        r = upload => r,
        reason = shutdown.wait() => Err(Error::Interrupted { signal: reason }),
    };
    progress.finish();
    // The producer's error is the cause when the upload only saw the pipe close.
    let produced = producer
        .await
        .map_err(Error::internal("the compressor"))
        .and_then(|r| r);
    let result = match (uploaded, produced) {
        (Ok(()), Ok(p)) => Ok(p),
        (Err(Error::Aborted), Err(e)) | (Err(e), _) | (Ok(()), Err(e)) => Err(e),
    };
    let (plaintext_size, plaintext_sha256) = match result {
        Ok(p) => p,
        Err(e) => {
            for p in &written {
                let _ = source.delete(&p.name).await;
            }
            return Err(e);
        }
    };

    let (instance_id, created_at) = match catalog::split_backup_id(&req.backup_id) {
        Some((inst, ts)) => (Some(inst.to_string()), rfc3339_from_millis(ts)),
        None => (None, rfc3339_from_millis(now_millis())),
    };
    let meta = Metadata {
        backup_id: Some(req.backup_id.clone()),
        instance_id,
        created_at: Some(created_at),
        tool: Some(format!("a9s-recover {}", env!("CARGO_PKG_VERSION"))),
        encryption: Some("aes-256-cbc".into()),
        key_derivation: Some(req.kdf.to_string()),
        compression: Some("gzip".into()),
        parts: Some(written.clone()),
        plaintext_size: Some(plaintext_size),
        plaintext_sha256: Some(plaintext_sha256.clone()),
    };
    let json = serde_json::to_vec_pretty(&meta).expect("metadata serializes");
    let mut up = source
        .create(&catalog::metadata_name(&req.backup_id))
        .await?;
    up.write(Bytes::from(json)).await?;
    up.finish().await?;

    Ok(PackReport {
        backup_id: req.backup_id,
        location: source.describe(),
        stored_size: written.iter().map(|p| p.size).sum(),
        parts: written,
        plaintext_size,
        plaintext_sha256,
        key_derivation: req.kdf.to_string(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Reads, hashes, gzips and encrypts on one blocking thread; sends ciphertext downstream.
fn compress_encrypt(
    mut input: Box<dyn Read + Send>,
    mut enc: Encryptor,
    level: u32,
    tx: PipeTx<Bytes>,
    progress: Progress,
) -> Result<(u64, String)> {
    let mut sha = Sha256::new();
    let mut total = 0u64;
    let mut gz = GzEncoder::new(
        Vec::with_capacity(READ_CHUNK),
        flate2::Compression::new(level),
    );
    let mut buf = vec![0u8; READ_CHUNK];
    let send_compressed = |gz: &mut GzEncoder<Vec<u8>>, enc: &mut Encryptor| -> Result<()> {
        let compressed = gz.get_mut();
        if compressed.len() >= READ_CHUNK / 2 {
            let mut out = Vec::with_capacity(compressed.len() + 32);
            enc.update(compressed, &mut out)?;
            compressed.clear();
            tx.blocking_send(Bytes::from(out))?;
        }
        Ok(())
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Input(e)),
        };
        sha.update(&buf[..n]);
        total += n as u64;
        progress.inc(n as u64);
        gz.write_all(&buf[..n]).map_err(Error::Input)?;
        send_compressed(&mut gz, &mut enc)?;
    }
    let rest = gz.finish().map_err(Error::Input)?;
    let mut out = Vec::with_capacity(rest.len() + 32);
    enc.update(&rest, &mut out)?;
    enc.finish(&mut out)?;
    tx.blocking_send(Bytes::from(out))?;
    tx.blocking_finish()?;
    Ok((total, crate::hex(&sha.finalize())))
}

/// A new backup id for an instance: `<instance-id>-<now in ms>`.
pub fn new_backup_id(instance_id: &str) -> String {
    format!("{instance_id}-{}", now_millis())
}
