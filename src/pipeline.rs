//! The one pipeline every command drives: parts → ordered fetch → decrypt → gunzip → sink.
//!
//! A recovery is two steps, as in rustic's restore: [`prepare`] lists the location, selects
//! and checks the parts, reads the metadata, probes the first block to detect the encryption,
//! the key derivation and the compression, and returns a [`PreparedBackup`]; nothing is written yet, so
//! every error it raises leaves no trace. [`run`] then streams the plan into a sink.
//!
//! Stages are joined by bounded pipes of `Bytes`. Fetching is async I/O on tokio; decrypting,
//! inflating and writing run on their own blocking threads so they overlap on separate
//! cores. Memory is bounded by the fetch window plus a few chunks per pipe, whatever the size
//! of the backup.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::catalog::{self, Backup, Metadata};
use crate::crypto::{self, Decryptor, FinishError, Kdf, KeyIv, BLOCK, HEADER_LEN};
use crate::dump::{self, CopyCounter, DumpKind, TableRows};
use crate::error::{Error, PartOffset, Result, Retry};
use crate::fetch::{self, Chunk, FetchOptions};
use crate::inflate::{self, GunzipError};
use crate::pipe::{pipe, Busy, PipeReader, PipeRx, PipeTx};
use crate::progress::Progress;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::sink::{Output, Sink};
use crate::source::Source;

/// Chunks each pipe holds at most.
const PIPE_DEPTH: usize = 4;

/// Decrypted bytes are handed on in pieces of at most this many bytes.
const DECRYPTED_PIECE: usize = 1 << 20;

/// Which key derivation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KdfChoice {
    /// Try the a9s manual's md5, then sha256, then `-pbkdf2` defaults, by the first block.
    #[default]
    Auto,
    /// Exactly this one.
    Fixed(Kdf),
}

/// The backup id that means "the newest complete backup of `--instance-id`".
pub const LATEST: &str = "latest";

/// What to recover.
#[derive(Debug, Clone)]
pub struct Request {
    /// `<instance-id>-<timestamp>`, or [`LATEST`] with `instance_id`.
    pub backup_id: String,
    /// The instance whose newest complete backup `latest` means.
    pub instance_id: Option<String>,
    /// The backup secret, if the caller has one.
    pub secret: Option<Secret>,
    /// Key derivation.
    pub kdf: KdfChoice,
    /// Ranged reads in flight (default: the backend's).
    pub concurrency: Option<usize>,
    /// Bytes per ranged read (default: the backend's).
    pub chunk_size: Option<u64>,
    /// Retries per range.
    pub retries: Option<u32>,
    /// Inflate engine (default: ISA-L when built in).
    pub inflate: Option<inflate::Engine>,
}

impl Request {
    /// A request with defaults for everything but the id and the secret.
    pub fn new(backup_id: impl Into<String>, secret: Option<Secret>) -> Self {
        Request {
            backup_id: backup_id.into(),
            instance_id: None,
            secret,
            kdf: KdfChoice::Auto,
            concurrency: None,
            chunk_size: None,
            retries: None,
            inflate: None,
        }
    }
}

/// How the stored bytes are encrypted.
#[derive(Debug)]
pub enum Encryption {
    /// Plain gzip (or a raw dump) without `Salted__`.
    None,
    /// `openssl enc -aes-256-cbc` with the detected key derivation.
    Aes {
        /// The key derivation that decrypted the first block.
        kdf: Kdf,
        /// Derived key and IV.
        key: KeyIv,
    },
}

/// Whether the decrypted bytes are gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip, possibly multi-member.
    Gzip,
    /// Passed through unchanged (e.g. a pg_dump custom archive).
    None,
}

impl Compression {
    /// As in JSON reports: `gzip`, `none`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}

/// A checked recovery, ready to stream.
#[derive(Debug)]
pub struct PreparedBackup {
    /// The backup's parts in order.
    pub backup: Backup,
    /// Where it is, for messages.
    pub location: String,
    /// Parsed `<backup-id>.json`, if present.
    pub metadata: Option<Metadata>,
    /// Detected encryption.
    pub encryption: Encryption,
    /// Detected compression.
    pub compression: Compression,
    /// Things the operator should know (unencrypted input, passthrough, ...).
    pub notices: Vec<String>,
    /// The last part is exactly as large as the others and nothing gives the total: what a
    /// cut at a part boundary looks like (the padding probe passed, so 1 in 256 such cuts).
    pub tail_warning: Option<String>,
    /// How the parts will be fetched.
    pub fetch: FetchOptions,
    /// Which inflate engine runs the stream.
    pub inflate: inflate::Engine,
    source: Arc<dyn Source>,
}

impl PreparedBackup {
    /// Total stored bytes.
    pub fn total_size(&self) -> u64 {
        self.backup.total_size()
    }

    /// The detected key derivation, if encrypted.
    pub fn kdf(&self) -> Option<Kdf> {
        match &self.encryption {
            Encryption::Aes { kdf, .. } => Some(*kdf),
            Encryption::None => None,
        }
    }

    fn header_len(&self) -> u64 {
        match self.encryption {
            Encryption::Aes { .. } => HEADER_LEN as u64,
            Encryption::None => 0,
        }
    }

    /// Maps an offset in the concatenated stored stream to the part holding it.
    pub fn locate(&self, stream_offset: u64) -> Option<PartOffset> {
        locate(&self.backup, stream_offset)
    }
}

fn locate(backup: &Backup, stream_offset: u64) -> Option<PartOffset> {
    let mut start = 0;
    for p in &backup.parts {
        if stream_offset < start + p.size {
            return Some(PartOffset {
                part: p.name.clone(),
                offset: stream_offset - start,
            });
        }
        start += p.size;
    }
    // One past the end: the end of the last part.
    backup.parts.last().map(|p| PartOffset {
        part: p.name.clone(),
        offset: p.size,
    })
}

/// The backups at a location (of one instance, if given), newest first. Backups with a
/// metadata file are checked against it (part names and sizes).
pub async fn list_backups(
    source: Arc<dyn Source>,
    instance: Option<&str>,
) -> Result<Vec<catalog::BackupSummary>> {
    let prefix = instance.map(|i| format!("{i}-")).unwrap_or_default();
    let opts = FetchOptions::for_source(&*source, None, None);
    let objects = fetch::retrying(&opts, || source.list(&prefix)).await?;
    let mut summaries = catalog::summarize(&objects, instance);
    let location = source.describe();
    let mut checks = tokio::task::JoinSet::new();
    type Check = std::result::Result<(usize, Option<Error>), tokio::task::JoinError>;
    let note = |summaries: &mut Vec<catalog::BackupSummary>, r: Check| {
        if let Ok((i, Some(e))) = r {
            summaries[i].complete = false;
            summaries[i].problem = Some(catalog::listing_reason(&e));
        }
    };
    for i in 0..summaries.len() {
        if !(summaries[i].complete && summaries[i].metadata) {
            continue;
        }
        let source = source.clone();
        let backup = catalog::select_parts(&summaries[i].backup_id, &location, &objects)?;
        let opts = opts.clone();
        checks.spawn(async move { (i, read_metadata(&*source, &backup, &opts).await.err()) });
        // Bounded concurrency: the metadata files are small, but there may be many.
        while checks.len() >= 16 {
            if let Some(r) = checks.join_next().await {
                note(&mut summaries, r);
            }
        }
    }
    while let Some(r) = checks.join_next().await {
        note(&mut summaries, r);
    }
    catalog::mark_implausible(&mut summaries, crate::time::now_millis());
    Ok(summaries)
}

/// With the secret at hand, checks the end of every backup that looks complete (the padding
/// of its last block): what an upload cut at a part boundary cannot pass.
pub async fn probe_listed(
    source: Arc<dyn Source>,
    summaries: &mut [catalog::BackupSummary],
    req: &Request,
) {
    for s in summaries.iter_mut().filter(|s| s.complete) {
        if let Err(e @ Error::TruncatedTail { .. }) =
            prepare_id(source.clone(), req, &s.backup_id).await
        {
            s.complete = false;
            s.problem = Some(catalog::listing_reason(&e));
        }
    }
}

async fn read_metadata(
    source: &dyn Source,
    backup: &Backup,
    opts: &FetchOptions,
) -> Result<Option<Metadata>> {
    let Some(m) = &backup.metadata else {
        return Ok(None);
    };
    if m.size == 0 {
        return Err(Error::BadMetadata {
            name: m.name.clone(),
            reason: "the file is empty".into(),
        });
    }
    if m.size > catalog::MAX_METADATA {
        return Err(Error::BadMetadata {
            name: m.name.clone(),
            reason: format!(
                "it is {}, and a backup's metadata is a few KiB (16 MiB at most, for tens of \
                 thousands of parts): refused without reading it. Check what wrote this file, or \
                 move it away to recover without metadata",
                crate::format_bytes(m.size)
            ),
        });
    }
    let got = fetch::retrying(opts, || source.get_range(&m.name, 0..m.size)).await?;
    let md = Metadata::parse(&m.name, &got.bytes)?;
    md.check_parts(backup, &m.name)?;
    Ok(Some(md))
}

/// The backups `latest` may mean, newest first: those of the request's instance that look
/// complete. Each is then prepared in turn, and one whose end fails the padding check is
/// skipped (an upload cut at a part boundary).
async fn latest_candidates(
    source: &Arc<dyn Source>,
    req: &Request,
) -> Result<Vec<catalog::BackupSummary>> {
    let Some(instance) = req.instance_id.as_deref() else {
        return Err(latest_without_instance(source).await);
    };
    let all = list_backups(source.clone(), Some(instance)).await?;
    if !all.iter().any(|s| s.complete) {
        return Err(no_complete_backup(source, instance, &all, &[]).await?);
    }
    Ok(all)
}

/// `latest` without `--instance-id`: a usage error that names the instances the location
/// holds (from the names alone), so that the operator can pick one.
async fn latest_without_instance(source: &Arc<dyn Source>) -> Error {
    let mut instances: Vec<(String, usize, String)> = Vec::new();
    if let Ok(objects) = source.list("").await {
        for b in catalog::summarize(&objects, None) {
            let Some(inst) = b.instance_id.clone() else {
                continue;
            };
            match instances.iter_mut().find(|(i, ..)| *i == inst) {
                Some((_, n, _)) => *n += 1,
                None => instances.push((inst, 1, b.time_utc.clone().unwrap_or_default())),
            }
        }
    }
    let seen = match instances.as_slice() {
        [] => format!("; {} holds no backups", source.describe()),
        [(only, ..)] => format!(
            "; the one instance at {} is {only}: --instance-id {only}",
            source.describe()
        ),
        many => {
            let shown: Vec<String> = many
                .iter()
                .take(10)
                .map(|(i, n, newest)| format!("{i} ({n} backup(s), newest {newest})"))
                .collect();
            format!(
                "; the instances at {} are {}{}",
                source.describe(),
                shown.join(", "),
                if many.len() > 10 {
                    format!(" and {} more", many.len() - 10)
                } else {
                    String::new()
                }
            )
        }
    };
    Error::Config(format!(
        "--backup-id latest needs --instance-id ID (which instance's newest backup){}",
        crate::text::escape(&seen)
    ))
}

async fn no_complete_backup(
    source: &Arc<dyn Source>,
    instance: &str,
    all: &[catalog::BackupSummary],
    truncated: &[String],
) -> Result<Error> {
    // None of this instance is complete: name what it has, or else what the location has.
    let existing = if all.is_empty() {
        list_backups(source.clone(), None)
            .await?
            .into_iter()
            .map(|s| s.backup_id)
            .collect()
    } else {
        all.iter()
            .map(|s| {
                let problem = if truncated.contains(&s.backup_id) {
                    "last block invalid: truncated?"
                } else {
                    s.problem.as_deref().unwrap_or("complete")
                };
                format!("{} ({problem})", s.backup_id)
            })
            .collect()
    };
    Ok(Error::NoSuchBackup {
        backup_id: format!("latest of instance {instance}"),
        location: source.describe(),
        existing,
    })
}

/// Lists, selects and checks the backup's parts and detects its format. Writes nothing.
pub async fn prepare(source: Arc<dyn Source>, req: &Request) -> Result<PreparedBackup> {
    if req.backup_id != LATEST {
        if let (Some(inst), Some((id_inst, _))) = (
            req.instance_id.as_deref(),
            catalog::split_backup_id(&req.backup_id),
        ) {
            if inst != id_inst {
                return Err(Error::Config(format!(
                    "--instance-id {inst} disagrees with --backup-id {}, whose instance is {id_inst}; \
                     give one of them (--instance-id only goes with --backup-id latest)",
                    req.backup_id
                )));
            }
        }
        return prepare_id(source, req, &req.backup_id).await;
    }
    let all = latest_candidates(&source, req).await?;
    let instance = req.instance_id.as_deref().unwrap_or_default();
    let mut truncated = Vec::new();
    for (i, s) in all.iter().enumerate().filter(|(_, s)| s.complete) {
        match prepare_id(source.clone(), req, &s.backup_id).await {
            Err(Error::TruncatedTail { .. }) => truncated.push(s.backup_id.clone()),
            Err(e) => return Err(e),
            Ok(mut plan) => {
                let skipped: Vec<String> = all[..i]
                    .iter()
                    .map(|n| {
                        let why = if truncated.contains(&n.backup_id) {
                            "last block invalid: truncated?"
                        } else {
                            n.problem.as_deref().unwrap_or("incomplete")
                        };
                        format!("{} ({why})", n.backup_id)
                    })
                    .collect();
                plan.notices.insert(
                    0,
                    format!(
                        "picked the newest complete backup of {instance}: {} from {}{}",
                        s.backup_id,
                        s.time_utc.as_deref().unwrap_or("an unknown time"),
                        if skipped.is_empty() {
                            String::new()
                        } else {
                            format!("; skipped the newer {}", skipped.join(", "))
                        }
                    ),
                );
                return Ok(plan);
            }
        }
    }
    Err(no_complete_backup(&source, instance, &all, &truncated).await?)
}

/// [`prepare`] for one named backup.
async fn prepare_id(
    source: Arc<dyn Source>,
    req: &Request,
    backup_id: &str,
) -> Result<PreparedBackup> {
    let mut notices = Vec::new();
    let mut fetch = FetchOptions::for_source(&*source, req.concurrency, req.chunk_size);
    if let Some(r) = req.retries {
        fetch.retries = r;
    }
    let backup_id = backup_id.to_string();
    catalog::validate_backup_id(&backup_id)?;
    let location = source.describe();
    if let Some(why) = catalog::misnamed_backup_id(&backup_id, &[]) {
        return Err(Error::Config(why));
    }
    // `ID-N` where ID itself has the shape of a backup id: look at ID's objects.
    if let Some((base, _)) = backup_id
        .rsplit_once('-')
        .filter(|(b, _)| catalog::split_backup_id(b).is_some())
    {
        let around = fetch::retrying(&fetch, || source.list(base)).await?;
        if let Some(why) = catalog::misnamed_backup_id(&backup_id, &around) {
            return Err(Error::Config(why));
        }
    }
    let mut objects = fetch::retrying(&fetch, || source.list(&backup_id)).await?;
    if !objects
        .iter()
        .any(|o| o.name == backup_id || catalog::part_index(&backup_id, &o.name).is_some())
    {
        // List everything so the error can name the backups that do exist.
        objects = fetch::retrying(&fetch, || source.list("")).await?;
    }
    let backup = catalog::select_parts(&backup_id, &location, &objects)?;

    let metadata = read_metadata(&*source, &backup, &fetch).await?;
    let tail_warning = same_size_tail_notice(&backup, metadata.as_ref());

    let total = backup.total_size();
    let head = read_stream_head(&*source, &backup, 2 * BLOCK as u64, &fetch).await?;
    let first = &backup.parts[0].name;
    let (encryption, compression) = if let Some(salt) = crypto::parse_header(&head) {
        let body = total - HEADER_LEN as u64;
        if body == 0 || !body.is_multiple_of(BLOCK as u64) {
            let last = backup.parts.last().expect("at least one part");
            return Err(Error::NotBlockAligned {
                len: total,
                part: last.name.clone(),
                part_end: last.size,
            });
        }
        let secret = req.secret.as_ref().ok_or_else(|| {
            Error::Config(format!(
                "backup {} is encrypted (it starts with `Salted__`): give the secret with \
                 A9S_SECRET=..., --secret-file PATH, or --secret (visible in `ps`)",
                backup_id
            ))
        })?;
        let candidates: Vec<Kdf> = match req.kdf {
            KdfChoice::Auto => Kdf::AUTO_CANDIDATES.to_vec(),
            KdfChoice::Fixed(k) => vec![k],
        };
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(&head[HEADER_LEN..HEADER_LEN + BLOCK]);
        let single_block = body == BLOCK as u64;
        let mut found = None;
        for kdf in &candidates {
            let key = kdf.derive(secret.expose(), &salt)?;
            let plain = crypto::decrypt_first_block(&key, &block)?;
            let content: &[u8] = if single_block {
                match crypto::unpad(&plain) {
                    Some(n) => &plain[..n],
                    None => continue,
                }
            } else {
                &plain
            };
            if crypto::plausible_plaintext(content) {
                let compression = if content.starts_with(&crypto::GZIP_MAGIC) {
                    Compression::Gzip
                } else {
                    Compression::None
                };
                found = Some((*kdf, key, compression));
                break;
            }
        }
        let Some((kdf, key, compression)) = found else {
            let tried: Vec<String> = candidates.iter().map(Kdf::to_string).collect();
            return Err(Error::WrongSecret {
                part: first.clone(),
                tried: tried.join(", "),
                hint: match req.kdf {
                    KdfChoice::Auto => {
                        ", or name the derivation: --md sha1, or --pbkdf2 --iter N for other iteration counts"
                    }
                    KdfChoice::Fixed(_) => ", or leave out --md/--pbkdf2 to try the usual derivations",
                },
            });
        };
        if !single_block {
            probe_last_block(&*source, &backup, &key, &fetch).await?;
        }
        (Encryption::Aes { kdf, key }, compression)
    } else if head.starts_with(&crypto::GZIP_MAGIC) {
        notices.push(format!(
            "backup {} is not encrypted (no `Salted__` header); treating it as plain gzip{}",
            backup_id,
            if req.secret.is_some() {
                ", the secret is not needed"
            } else {
                ""
            }
        ));
        (Encryption::None, Compression::Gzip)
    } else if head.starts_with(crypto::PGDMP_MAGIC) {
        notices.push(format!(
            "backup {} is an unencrypted pg_dump custom archive; passing it through",
            backup_id
        ));
        (Encryption::None, Compression::None)
    } else {
        return Err(Error::UnknownFormat {
            part: first.clone(),
            start: describe_start(&head),
        });
    };
    if compression == Compression::None && matches!(encryption, Encryption::Aes { .. }) {
        notices.push(
            "the decrypted stream is not gzip; passing it through unchanged (a pg_dump custom \
             archive or an uncompressed dump)"
                .to_string(),
        );
    }
    // ISA-L's speed only matters for large backups, and it rejects some tiny streams (the
    // gzip of an empty dump) that are valid: small backups use our own decoder.
    let inflate = req.inflate.unwrap_or(if total < (1 << 20) {
        inflate::Engine::ZlibRs
    } else {
        inflate::Engine::default()
    });
    if !inflate.available() {
        return Err(Error::Config(format!(
            "this build has no {inflate} inflate engine (built without the isal feature); use --inflate zlib"
        )));
    }
    Ok(PreparedBackup {
        backup,
        location,
        tail_warning,
        metadata,
        encryption,
        compression,
        notices,
        fetch,
        inflate,
        source,
    })
}

/// `split` makes every part but the last one full: a last part exactly as large as the others
/// is what a backup cut at a part boundary looks like, unless the metadata gives the total.
fn same_size_tail_notice(backup: &Backup, metadata: Option<&Metadata>) -> Option<String> {
    if metadata.is_some_and(|m| m.parts.is_some() || m.plaintext_size.is_some()) {
        return None;
    }
    let [first, .., last] = backup.parts.as_slice() else {
        return None;
    };
    (backup.parts.iter().all(|p| p.size == first.size)).then(|| {
        format!(
            "warning: the last part {} is exactly as large as the others ({} bytes) and there is \
             no metadata giving the total: a backup cut at a part boundary (an upload still \
             running?) looks like this",
            last.name, last.size
        )
    })
}

fn describe_start(head: &[u8]) -> String {
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    hex.join(" ")
}

/// Reads the first `n` bytes of the concatenated parts (parts may be tiny).
async fn read_stream_head(
    source: &dyn Source,
    backup: &Backup,
    n: u64,
    opts: &FetchOptions,
) -> Result<Vec<u8>> {
    read_stream_range(source, backup, 0..n.min(backup.total_size()), opts).await
}

/// Reads `range` of the concatenated parts, across part boundaries.
async fn read_stream_range(
    source: &dyn Source,
    backup: &Backup,
    range: std::ops::Range<u64>,
    opts: &FetchOptions,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for p in &backup.parts {
        let end = start + p.size;
        let (a, b) = (range.start.max(start), range.end.min(end));
        if a < b {
            let r = a - start..b - start;
            let got = fetch::retrying(opts, || source.get_range(&p.name, r.clone())).await?;
            out.extend_from_slice(&got.bytes);
        }
        start = end;
        if start >= range.end {
            break;
        }
    }
    Ok(out)
}

/// Checks the PKCS#7 padding of the last cipher block before anything runs: one ranged read
/// of the last two blocks (the one before is the last block's IV). An upload cut at a part
/// boundary is always block-aligned, so only this catches it before the stream's end; a cut
/// leaves random bytes where the padding should be, and 255 in 256 of them are invalid.
async fn probe_last_block(
    source: &dyn Source,
    backup: &Backup,
    key: &KeyIv,
    opts: &FetchOptions,
) -> Result<()> {
    let total = backup.total_size();
    let tail_len = 2 * BLOCK as u64;
    if total < HEADER_LEN as u64 + tail_len {
        return Ok(());
    }
    let tail = read_stream_range(source, backup, total - tail_len..total, opts).await?;
    if tail.len() as u64 != tail_len {
        return Err(Error::storage(
            "read",
            backup.parts.last().map(|p| p.name.as_str()).unwrap_or(""),
            Some(total - tail_len..total),
            Retry::Permanent,
            format!("got {} of {tail_len} bytes", tail.len()),
        ));
    }
    let mut iv = [0u8; BLOCK];
    iv.copy_from_slice(&tail[..BLOCK]);
    let mut block = [0u8; BLOCK];
    block.copy_from_slice(&tail[BLOCK..]);
    let plain = crypto::decrypt_block_with_iv(key, &iv, &block)?;
    if crypto::unpad(&plain).is_none() {
        return Err(Error::TruncatedTail {
            backup_id: backup.id.clone(),
            at: locate(backup, total - BLOCK as u64).expect("a part"),
        });
    }
    Ok(())
}

/// The first `want` bytes of the dump, decrypted and decompressed, read before streaming so
/// that the dump kind (plain SQL or custom format) is known before any stage runs.
/// Lists the backup again and checks that its parts are the ones read before (names, sizes,
/// ETags): between the two reads of a two-pass restore, so that a backup rewritten in between
/// fails before the second read sends anything (every ranged read checks its part's ETag
/// too, so a change during a read is caught there).
pub async fn recheck(plan: &PreparedBackup) -> Result<()> {
    let id = &plan.backup.id;
    let objects = fetch::retrying(&plan.fetch, || plan.source.list(id)).await?;
    let now = catalog::select_parts(id, &plan.location, &objects)?;
    let describe = |p: Option<&catalog::Part>| match p {
        Some(p) => format!(
            "{} bytes, {}",
            p.size,
            p.etag.as_deref().unwrap_or("no ETag")
        ),
        None => "absent".into(),
    };
    let n = plan.backup.parts.len().max(now.parts.len());
    for i in 0..n {
        let (a, b) = (plan.backup.parts.get(i), now.parts.get(i));
        let same = match (a, b) {
            (Some(a), Some(b)) => a.name == b.name && a.size == b.size && a.etag == b.etag,
            _ => false,
        };
        if !same {
            return Err(Error::ObjectChanged {
                part: a.or(b).map(|p| p.name.clone()).unwrap_or_default(),
                expected: describe(a),
                found: describe(b),
            });
        }
    }
    Ok(())
}

pub async fn peek_dump(plan: &PreparedBackup, want: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let stored = read_stream_head(
        &*plan.source,
        &plan.backup,
        plan.total_size().min(256 * 1024),
        &plan.fetch,
    )
    .await?;
    let body = match &plan.encryption {
        Encryption::Aes { key, .. } => {
            let mut d = Decryptor::new(key)?;
            let mut out = Vec::new();
            d.update(&stored[HEADER_LEN.min(stored.len())..], &mut out)?;
            out
        }
        Encryption::None => stored,
    };
    Ok(match plan.compression {
        Compression::None => body[..want.min(body.len())].to_vec(),
        Compression::Gzip => {
            let mut dec = flate2::read::MultiGzDecoder::new(&body[..]);
            let mut out = vec![0u8; want];
            let mut n = 0;
            // A prefix of a gzip stream ends in an error once the input runs out.
            while n < want {
                match dec.read(&mut out[n..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
            }
            out.truncate(n);
            out
        }
    })
}

/// What to compute while streaming.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Compute the plaintext sha256 even without metadata to check it against.
    pub hash: bool,
    /// Count COPY rows of plain dumps.
    pub count_rows: bool,
    /// Check every part's sha256 from the metadata while streaming (`verify`). Otherwise the
    /// dump's own sha256 guards the stream, and part digests are only computed to locate a
    /// failure.
    pub part_digests: bool,
    /// Stops the stream and removes partial output when fired.
    pub shutdown: Shutdown,
}

/// Whether the metadata's digests were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataCheck {
    /// No `<backup-id>.json`.
    Absent,
    /// Present, but without digests.
    NoDigests,
    /// Every recorded digest matched.
    Matched,
}

/// The outcome of a finished stream.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub backup_id: String,
    /// `local`, `s3` or `azure`.
    pub storage: &'static str,
    pub location: String,
    pub parts: usize,
    /// Stored (encrypted) bytes read.
    pub bytes_stored: u64,
    /// Bytes after decryption (the gzip stream).
    pub bytes_compressed: u64,
    /// Bytes of the dump.
    pub bytes_dump: u64,
    pub encryption: &'static str,
    pub key_derivation: Option<String>,
    pub compression: Compression,
    /// Members of the gzip stream (not counted by the ISA-L engine).
    pub gzip_members: Option<u64>,
    pub inflate_engine: inflate::Engine,
    pub plaintext_sha256: Option<String>,
    pub metadata: MetadataCheck,
    /// Parts whose sha256 was checked against the metadata.
    pub parts_checked: usize,
    pub dump_kind: DumpKind,
    /// What made the dump (pg_dump and server versions, archive version), from its first bytes.
    pub origin: dump::Origin,
    /// Rows per table from the COPY blocks (plain dumps, when counted).
    pub tables: Option<Vec<TableRows>>,
    /// The databases the dump connects to (`\connect`), when counted; empty for a dump of
    /// one database restored into the target's.
    pub databases: Option<Vec<String>>,
    /// What psql or pg_restore reported, when restoring.
    pub restore: Option<crate::sink::ChildSummary>,
    /// The first of two reads: what it learnt for the load.
    #[serde(skip)]
    pub layout: Option<Arc<crate::load::Layout>>,
    /// Seconds each stage spent working (not waiting on its neighbours).
    pub stage_seconds: StageSeconds,
    pub seconds: f64,
}

/// Busy time per stage: bytes / busy seconds is what a stage can do on its own.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageSeconds {
    /// Fetching (ranged reads, reassembly), stored bytes.
    pub read: f64,
    /// AES-256-CBC (and part digests), stored bytes.
    pub decrypt: f64,
    /// gunzip, output bytes.
    pub inflate: f64,
    /// Writing (and dump sha256, COPY counting), output bytes.
    pub sink: f64,
}

/// Streams `plan` into `output`. The output is committed (a file renamed into place) only
/// when every check passed; on any error or interruption partial output is removed.
///
/// When the fast inflate engine (ISA-L) reports corruption, which it does without an exact
/// offset, the backup is read once more into a counting sink with our own decoder to say
/// exactly which part and byte are damaged. Only the failure case pays for that.
pub async fn run(
    plan: impl Into<Arc<PreparedBackup>>,
    output: &Output,
    opts: RunOptions,
) -> Result<Report> {
    let plan: Arc<PreparedBackup> = plan.into();
    let engine = plan.inflate;
    let result = run_once(plan.clone(), output, opts.clone(), engine).await;
    // A signal stops the children at once, so a stage may fail on its own first: the cause is
    // still the signal. An interrupted run is never diagnosed.
    if let (Err(_), Some(signal)) = (&result, opts.shutdown.reason()) {
        return Err(Error::Interrupted { signal });
    }
    let has_part_digests = plan
        .metadata
        .as_ref()
        .and_then(|m| m.parts.as_ref())
        .is_some_and(|p| p.iter().any(|r| r.sha256.is_some()));
    let diagnose = RunOptions {
        progress: false,
        hash: false,
        count_rows: false,
        part_digests: true,
        shutdown: opts.shutdown.clone(),
    };
    match result {
        // The dump's digest (or its gzip CRC) failed and the parts have digests we did not
        // check while streaming: read again to say which part is damaged.
        Err(e @ (Error::ChecksumMismatch { .. } | Error::Gzip { .. }))
            if has_part_digests && !opts.part_digests =>
        {
            match run_once(plan, &Output::Discard, diagnose, inflate::Engine::ZlibRs).await {
                Err(part @ Error::ChecksumMismatch { .. }) => Err(part),
                Err(precise @ Error::Gzip { .. }) if matches!(e, Error::Gzip { .. }) => {
                    Err(precise)
                }
                _ => Err(e),
            }
        }
        Err(Error::Gzip {
            reason,
            offset,
            at,
            span,
            ..
        }) if engine == inflate::Engine::Isal => {
            match run_once(plan, &Output::Discard, diagnose, inflate::Engine::ZlibRs).await {
                Err(precise @ Error::Gzip { .. }) => Err(precise),
                // The second read failed for another reason: report what ISA-L saw.
                Err(_) => Err(Error::Gzip {
                    reason: format!("{reason} (near this offset; locating it exactly failed)"),
                    offset,
                    at,
                    span,
                    advice: "A part is corrupt: download it again, or compare it with its sha256 in the metadata.",
                }),
                Ok(_) => Err(Error::Gzip {
                    reason: format!("{reason}, but our own decoder reads the stream without error"),
                    offset,
                    at,
                    span,
                    advice: "Run again with --inflate zlib, and report the backup's shape to the a9s-recover developers.",
                }),
            }
        }
        r => r,
    }
}

async fn run_once(
    plan: Arc<PreparedBackup>,
    output: &Output,
    opts: RunOptions,
    engine: inflate::Engine,
) -> Result<Report> {
    let started = Instant::now();
    let sink = output.open(opts.shutdown.children())?;
    let progress = Progress::bytes(plan.total_size(), opts.progress);

    // The fetch holds its ranges in flight, in order: one more in the pipe is all the
    // decryption needs to find one ready (fetch::FetchOptions::memory_bound).
    let (fetch_tx, fetch_rx) = pipe::<Chunk>(1);
    let (dec_tx, dec_rx) = pipe::<Bytes>(PIPE_DEPTH);
    let (inf_tx, inf_rx) = pipe::<Bytes>(PIPE_DEPTH);

    let fetch_task = tokio::spawn(fetch::fetch_ordered(
        plan.source.clone(),
        plan.backup.parts.clone(),
        plan.fetch.clone(),
        progress.clone(),
        fetch_tx,
    ));
    let p = plan.clone();
    let part_digests = opts.part_digests;
    let decrypt_task =
        tokio::task::spawn_blocking(move || decrypt_stage(&p, part_digests, fetch_rx, dec_tx));
    let p = plan.clone();
    let inflate_task =
        tokio::task::spawn_blocking(move || inflate_stage(&p, engine, dec_rx, inf_tx));
    let p = plan.clone();
    let hash = opts.hash
        || plan
            .metadata
            .as_ref()
            .is_some_and(|m| m.plaintext_sha256.is_some());
    let count_rows = opts.count_rows;
    let sink_task =
        tokio::task::spawn_blocking(move || sink_stage(&p, inf_rx, sink, hash, count_rows));

    let fetch_abort = fetch_task.abort_handle();
    let joined = async move {
        (
            fetch_task.await,
            decrypt_task.await,
            inflate_task.await,
            sink_task.await,
        )
    };
    tokio::pin!(joined);
    let (f, d, i, s) = tokio::select! {
        r = &mut joined => r,
        reason = opts.shutdown.wait() => {
            // Stopping the fetch closes the first pipe; every blocking stage then returns,
            // and the sink removes partial output. Wait for that before reporting.
            fetch_abort.abort();
            progress.finish();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut joined).await;
            return Err(Error::Interrupted { signal: reason });
        }
    };
    progress.finish();
    let joined_err = Error::internal("a pipeline stage");
    let f = f.map_err(joined_err).and_then(|r| r);
    let d = d.map_err(joined_err).and_then(|r| r);
    let i = i.map_err(joined_err).and_then(|r| r);
    let s = s.map_err(joined_err).and_then(|r| r);
    // The first real error in pipeline order; `Aborted` is only ever a consequence.
    if f.is_err() || d.is_err() || i.is_err() || s.is_err() {
        return Err(first_error(f, d, i, s));
    }
    let sink_out = s?;
    let read_seconds = f?;
    let dec = d?;
    let inf = i?;
    let metadata = match &plan.metadata {
        None => MetadataCheck::Absent,
        Some(m) if m.plaintext_sha256.is_some() || dec.parts_checked > 0 => MetadataCheck::Matched,
        Some(_) => MetadataCheck::NoDigests,
    };
    Ok(Report {
        backup_id: plan.backup.id.clone(),
        storage: plan.source.kind(),
        location: plan.location.clone(),
        parts: plan.backup.parts.len(),
        bytes_stored: plan.total_size(),
        bytes_compressed: dec.bytes_out,
        bytes_dump: sink_out.bytes,
        encryption: match plan.encryption {
            Encryption::Aes { .. } => "aes-256-cbc",
            Encryption::None => "none",
        },
        key_derivation: plan.kdf().map(|k| k.to_string()),
        compression: plan.compression,
        gzip_members: (plan.inflate == inflate::Engine::ZlibRs
            && plan.compression == Compression::Gzip)
            .then_some(inf.0.members),
        inflate_engine: plan.inflate,
        plaintext_sha256: sink_out.sha256,
        metadata,
        parts_checked: dec.parts_checked,
        dump_kind: sink_out.kind,
        origin: sink_out.origin,
        tables: sink_out.tables,
        databases: sink_out.databases,
        restore: sink_out.child,
        layout: sink_out.layout,
        stage_seconds: StageSeconds {
            read: read_seconds,
            decrypt: dec.busy,
            inflate: inf.1,
            sink: sink_out.busy,
        },
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn first_error<A, B, C, D>(f: Result<A>, d: Result<B>, i: Result<C>, s: Result<D>) -> Error {
    let errs = [f.err(), d.err(), i.err(), s.err()];
    let mut aborted = None;
    for e in errs.into_iter().flatten() {
        if matches!(e, Error::Aborted) {
            aborted = Some(e);
        } else {
            return e;
        }
    }
    aborted.unwrap_or(Error::Aborted)
}

struct DecryptOut {
    bytes_out: u64,
    parts_checked: usize,
    busy: f64,
}

/// Checks each part's sha256 against the metadata as its bytes stream past.
struct PartHasher<'a> {
    enabled: bool,
    plan: &'a PreparedBackup,
    current: Option<(usize, Sha256)>,
    checked: usize,
}

impl PartHasher<'_> {
    fn expected(&self, part: usize) -> Option<&str> {
        let name = &self.plan.backup.parts[part].name;
        self.plan
            .metadata
            .as_ref()?
            .parts
            .as_ref()?
            .iter()
            .find(|r| &r.name == name)?
            .sha256
            .as_deref()
    }

    fn feed(&mut self, chunk: &Chunk) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.current.as_ref().map(|c| c.0) != Some(chunk.part) {
            self.close()?;
            if self.expected(chunk.part).is_some() {
                self.current = Some((chunk.part, Sha256::new()));
            }
        }
        if let Some((_, h)) = &mut self.current {
            h.update(&chunk.bytes);
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((part, h)) = self.current.take() {
            let actual = crate::hex(&h.finalize());
            let expected = self.expected(part).unwrap_or_default();
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(Error::ChecksumMismatch {
                    what: format!("part {}", self.plan.backup.parts[part].name),
                    expected: expected.to_string(),
                    actual,
                });
            }
            self.checked += 1;
        }
        Ok(())
    }
}

fn decrypt_stage(
    plan: &PreparedBackup,
    part_digests: bool,
    mut rx: PipeRx<Chunk>,
    tx: PipeTx<Bytes>,
) -> Result<DecryptOut> {
    let mut busy = Busy::start();
    let mut hasher = PartHasher {
        enabled: part_digests,
        plan,
        current: None,
        checked: 0,
    };
    let mut bytes_out = 0u64;
    match &plan.encryption {
        Encryption::None => {
            while let Some(chunk) = busy.wait(|| rx.blocking_recv())? {
                hasher.feed(&chunk)?;
                bytes_out += chunk.bytes.len() as u64;
                busy.wait(|| tx.blocking_send(chunk.bytes))?;
            }
        }
        Encryption::Aes { key, .. } => {
            let mut dec = Decryptor::new(key)?;
            let mut header_left = HEADER_LEN;
            while let Some(chunk) = busy.wait(|| rx.blocking_recv())? {
                hasher.feed(&chunk)?;
                let mut data: &[u8] = &chunk.bytes;
                let skip = header_left.min(data.len());
                data = &data[skip..];
                header_left -= skip;
                // Handed on in pieces, so that the pipe after us holds a few MiB whatever the
                // size of a ranged read.
                for piece in data.chunks(DECRYPTED_PIECE) {
                    let mut out = Vec::with_capacity(piece.len() + 2 * BLOCK);
                    dec.update(piece, &mut out)?;
                    if !out.is_empty() {
                        bytes_out += out.len() as u64;
                        busy.wait(|| tx.blocking_send(Bytes::from(out)))?;
                    }
                }
            }
            let consumed = dec.consumed();
            let mut out = Vec::with_capacity(BLOCK);
            dec.finish(&mut out).map_err(|e| match e {
                FinishError::NotAligned => {
                    let last = plan.backup.parts.last().expect("parts");
                    Error::NotBlockAligned {
                        len: consumed + HEADER_LEN as u64,
                        part: last.name.clone(),
                        part_end: last.size,
                    }
                }
                FinishError::BadPadding => Error::BadPadding {
                    at: plan
                        .locate(HEADER_LEN as u64 + consumed - BLOCK as u64)
                        .expect("parts"),
                },
            })?;
            bytes_out += out.len() as u64;
            if !out.is_empty() {
                tx.blocking_send(Bytes::from(out))?;
            }
        }
    }
    hasher.close()?;
    busy.wait(|| tx.blocking_finish())?;
    Ok(DecryptOut {
        bytes_out,
        parts_checked: hasher.checked,
        busy: busy.seconds(),
    })
}

fn inflate_stage(
    plan: &PreparedBackup,
    engine: inflate::Engine,
    rx: PipeRx<Bytes>,
    tx: PipeTx<Bytes>,
) -> Result<(inflate::GunzipStats, f64)> {
    let mut busy = Busy::start();
    match plan.compression {
        Compression::None => {
            let mut rx = rx;
            let mut n = 0;
            while let Some(b) = busy.wait(|| rx.blocking_recv())? {
                n += b.len() as u64;
                busy.wait(|| tx.blocking_send(b))?;
            }
            busy.wait(|| tx.blocking_finish())?;
            Ok((
                inflate::GunzipStats {
                    bytes_in: n,
                    bytes_out: n,
                    members: 0,
                },
                busy.seconds(),
            ))
        }
        Compression::Gzip => {
            let mut reader = PipeReader::new(rx);
            let send = |b| busy.wait(|| tx.blocking_send(b));
            let result = match engine {
                #[cfg(feature = "isal-engine")]
                inflate::Engine::Isal => inflate::gunzip_isal(&mut reader, send),
                _ => inflate::gunzip(&mut reader, send),
            };
            busy.add_wait(reader.waited);
            match result {
                Ok(stats) => {
                    busy.wait(|| tx.blocking_finish())?;
                    Ok((stats, busy.seconds()))
                }
                Err(_) if reader.aborted => Err(Error::Aborted),
                Err(GunzipError::Input(_)) => Err(Error::Aborted),
                Err(GunzipError::Output(e)) => Err(e),
                Err(GunzipError::Corrupt {
                    reason,
                    offset,
                    truncated,
                    member_start,
                }) => Err(Error::Gzip {
                    reason,
                    offset,
                    at: plan.locate(plan.header_len() + offset),
                    span: member_start.and_then(|start| {
                        Some(Box::new((
                            plan.locate(plan.header_len() + start)?,
                            plan.locate(plan.header_len() + offset)?,
                        )))
                    }),
                    advice: if truncated {
                        "The backup ends too early: the last part is truncated or missing. \
                         Check the part list and sizes against the bucket."
                    } else if member_start.is_some() {
                        "A part is corrupt. Compare the parts with their sha256 in the metadata \
                         (`verify` does, and names the part), or download them again."
                    } else {
                        "That part is corrupt: download it again, or compare it with its sha256 in the metadata."
                    },
                }),
            }
        }
    }
}

struct SinkOut {
    busy: f64,
    child: Option<crate::sink::ChildSummary>,
    layout: Option<Arc<crate::load::Layout>>,
    bytes: u64,
    sha256: Option<String>,
    kind: DumpKind,
    origin: dump::Origin,
    tables: Option<Vec<TableRows>>,
    databases: Option<Vec<String>>,
}

fn sink_stage(
    plan: &PreparedBackup,
    mut rx: PipeRx<Bytes>,
    mut sink: Sink,
    hash: bool,
    count_rows: bool,
) -> Result<SinkOut> {
    let mut busy = Busy::start();
    let mut sha = hash.then(Sha256::new);
    // The first ORIGIN_LEN bytes: the kind is decided on the first SNIFF_LEN, the origin read
    // from all of them at the end.
    let mut head: Vec<u8> = Vec::new();
    let mut kind: Option<DumpKind> = None;
    let mut counter: Option<CopyCounter> = None;
    let mut bytes = 0u64;
    // The loader counts the rows of the items it loads: one reader of the dump, not two.
    let want_rows = count_rows;
    let count_rows = count_rows && !sink.counts_rows();
    let transcodes = sink.transcodes();
    let decide = |head: &[u8]| {
        let k = dump::sniff(head);
        let c = (count_rows && k.is_plain()).then(|| {
            let mut c = CopyCounter::new();
            c.feed(head);
            c
        });
        (k, c)
    };
    while let Some(b) = busy.wait(|| rx.blocking_recv())? {
        bytes += b.len() as u64;
        if let Some(h) = &mut sha {
            h.update(&b);
        }
        let before = head.len();
        if before < dump::ORIGIN_LEN {
            head.extend_from_slice(&b[..(dump::ORIGIN_LEN - before).min(b.len())]);
        }
        match kind {
            None if head.len() >= dump::SNIFF_LEN => {
                let (k, mut c) = decide(&head[..dump::SNIFF_LEN]);
                if let Some(c) = &mut c {
                    // The counter has seen the first SNIFF_LEN bytes; this chunk goes on.
                    c.feed(&b[dump::SNIFF_LEN - before..]);
                }
                kind = Some(k);
                counter = c;
            }
            None => {}
            Some(_) => {
                if let Some(c) = &mut counter {
                    c.feed(&b);
                }
            }
        }
        sink.write(&b)?;
    }
    let kind = match kind {
        Some(k) => k,
        None => {
            let (k, c) = decide(&head);
            counter = c;
            k
        }
    };
    if let Some(c) = &mut counter {
        c.finish();
    }
    let sha256 = sha.map(|h| crate::hex(&h.finalize()));
    if let (Some(actual), Some(expected)) = (
        &sha256,
        plan.metadata
            .as_ref()
            .and_then(|m| m.plaintext_sha256.as_ref()),
    ) {
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::ChecksumMismatch {
                what: format!("the dump of backup {}", plan.backup.id),
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    let (mut child, layout) = sink.commit()?;
    let counted = child
        .as_mut()
        .map(|c| (c.databases.take(), c.tables.take()));
    // Counted only for what pg_dump or pg_dumpall wrote, as the counter above.
    let (loader_dbs, loader_tables) = counted
        .filter(|_| want_rows && (kind.is_plain() || transcodes))
        .unwrap_or_default();
    Ok(SinkOut {
        busy: busy.seconds(),
        child,
        layout,
        bytes,
        sha256,
        kind,
        origin: dump::origin(&head),
        databases: counter
            .as_ref()
            .map(|c| c.databases().to_vec())
            .or(loader_dbs),
        tables: counter.map(CopyCounter::into_tables).or(loader_tables),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Part;

    fn backup(sizes: &[u64]) -> Backup {
        Backup {
            id: "inst-1700000000000".into(),
            parts: sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| Part {
                    name: format!("inst-1700000000000-{}", i + 1),
                    index: Some(i as u64 + 1),
                    size,
                    etag: None,
                })
                .collect(),
            metadata: None,
        }
    }

    /// Issue 10: a last part exactly as large as the others is what a cut at a part
    /// boundary looks like; with metadata giving the total, it is no cause for alarm.
    #[test]
    fn a_last_part_as_large_as_the_others_is_flagged() {
        let n = same_size_tail_notice(&backup(&[4096, 4096, 4096]), None).unwrap();
        assert!(
            n.contains("-3 is exactly as large as the others (4096 bytes)"),
            "{n}"
        );
        assert_eq!(
            same_size_tail_notice(&backup(&[4096, 4096, 100]), None),
            None
        );
        assert_eq!(same_size_tail_notice(&backup(&[4096]), None), None);
        let meta = Metadata {
            plaintext_size: Some(1),
            ..Metadata::default()
        };
        assert_eq!(same_size_tail_notice(&backup(&[16, 16]), Some(&meta)), None);
    }
}
