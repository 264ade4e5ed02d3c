//! Backup ids, part names, natural order, gaps, and the metadata file.
//!
//! The a9s layout: a backup id is `<instance-id>-<timestamp>` (milliseconds since the epoch);
//! S3 holds the parts `<backup-id>-<N>` plus `<backup-id>.json`; Azure holds one blob named
//! exactly `<backup-id>`. Owns: deciding which listed objects are the parts of a backup and in
//! which order, and reading the metadata. Does not own: listing (see `source`) or fetching.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::source::ObjectMeta;

/// One part of a backup, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Object name relative to the location.
    pub name: String,
    /// `N` of `<backup-id>-<N>`; `None` for the one-blob (Azure) layout.
    pub index: Option<u64>,
    /// Size in bytes.
    pub size: u64,
    /// ETag or equivalent version marker, when the store has one.
    pub etag: Option<String>,
}

/// A backup's parts, in order, and its metadata object if any.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The backup id.
    pub id: String,
    /// Parts in stream order.
    pub parts: Vec<Part>,
    /// The `<backup-id>.json` object, if present.
    pub metadata: Option<ObjectMeta>,
}

impl Backup {
    /// Sum of the part sizes.
    pub fn total_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// The largest `<backup-id>.json` we read: a few hundred bytes a part, so 16 MiB is tens of
/// thousands of parts, more than any real backup has; anything larger is refused unread.
pub const MAX_METADATA: u64 = 16 << 20;

/// Name of the metadata object of a backup.
pub fn metadata_name(backup_id: &str) -> String {
    format!("{backup_id}.json")
}

/// Part index of `name` if it is exactly `<backup_id>-<digits>`.
pub fn part_index(backup_id: &str, name: &str) -> Option<u64> {
    let digits = name.strip_prefix(backup_id)?.strip_prefix('-')?;
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Splits a backup id into instance id and timestamp (ms since the epoch), when it has the
/// a9s shape `<instance-id>-<10 to 16 digits>`.
pub fn split_backup_id(id: &str) -> Option<(&str, u64)> {
    let (inst, ts) = id.rsplit_once('-')?;
    if inst.is_empty() || !(10..=16).contains(&ts.len()) || !ts.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((inst, ts.parse().ok()?))
}

/// Checks that a backup id can name objects: not empty, no path separators or whitespace.
pub fn validate_backup_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.contains('/')
        || id.contains('\\')
        || id.chars().any(char::is_whitespace)
        || id.starts_with('.')
    {
        return Err(Error::Config(format!(
            "{id:?} is not a backup id: expected <instance-id>-<timestamp>, e.g. \
             b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967947154"
        )));
    }
    Ok(())
}

/// Selects and orders the parts of `backup_id` among `objects`.
///
/// Raises, before any byte is read: no such backup (listing the ids that exist), gaps in
/// the numbering, two objects for one index, both a blob and split parts, empty parts.
pub fn select_parts(backup_id: &str, location: &str, objects: &[ObjectMeta]) -> Result<Backup> {
    let mut parts: Vec<Part> = Vec::new();
    let mut blob = None;
    let mut metadata = None;
    let meta_name = metadata_name(backup_id);
    for o in objects {
        if o.name == backup_id {
            blob = Some(o);
        } else if o.name == meta_name {
            metadata = Some(o.clone());
        } else if let Some(index) = part_index(backup_id, &o.name) {
            parts.push(Part {
                name: o.name.clone(),
                index: Some(index),
                size: o.size,
                etag: o.etag.clone(),
            });
        }
    }
    if parts.is_empty() {
        match blob {
            Some(b) => parts.push(Part {
                name: b.name.clone(),
                index: None,
                size: b.size,
                etag: b.etag.clone(),
            }),
            None => {
                return Err(Error::NoSuchBackup {
                    backup_id: backup_id.to_string(),
                    location: location.to_string(),
                    existing: backup_ids(objects),
                })
            }
        }
    } else if let Some(b) = blob {
        return Err(Error::AmbiguousParts {
            backup_id: backup_id.to_string(),
            reason: format!(
                "there is both a single blob {} and {} split parts",
                b.name,
                parts.len()
            ),
        });
    }
    // Natural order of the names, as `ls -1v` would list them.
    parts.sort_by(|a, b| natord::compare(&a.name, &b.name));
    // Numeric order is the truth; this stable sort is a no-op whenever natord agrees.
    parts.sort_by_key(|p| p.index);
    check_numbering(backup_id, &parts)?;
    // A link, a FIFO, a device or a directory is refused by name, before it is opened: a
    // part linked to /etc/shadow must not be read, let alone quoted in an error.
    let named = parts
        .iter()
        .map(|p| p.name.as_str())
        .chain(metadata.as_ref().map(|m| m.name.as_str()));
    for name in named {
        if let Some(what) = objects
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.not_a_file)
        {
            return Err(Error::NotAFile {
                object: name.to_string(),
                what,
            });
        }
    }
    if let Some(p) = parts.iter().find(|p| p.size == 0) {
        return Err(Error::EmptyPart {
            part: p.name.clone(),
        });
    }
    Ok(Backup {
        id: backup_id.to_string(),
        parts,
        metadata,
    })
}

fn check_numbering(backup_id: &str, parts: &[Part]) -> Result<()> {
    let indices: Vec<u64> = parts.iter().filter_map(|p| p.index).collect();
    if indices.is_empty() {
        return Ok(());
    }
    for w in parts.windows(2) {
        if w[0].index == w[1].index {
            return Err(Error::AmbiguousParts {
                backup_id: backup_id.to_string(),
                reason: format!("{} and {} are the same part number", w[0].name, w[1].name),
            });
        }
    }
    // Natural order and numeric order agree once duplicates are excluded.
    // Only the first few missing indices are kept: a stray `<id>-99999999999` must not
    // make us allocate a list of a hundred billion numbers.
    const SHOWN: usize = 20;
    let first = indices[0];
    let mut missing: Vec<u64> = Vec::new();
    let mut missing_count: u64 = 0;
    let mut note = |range: std::ops::Range<u64>| {
        missing_count += range.end - range.start;
        let room = SHOWN.saturating_sub(missing.len());
        missing.extend(range.take(room));
    };
    if first > 1 {
        note(1..first);
    }
    for w in indices.windows(2) {
        if w[1] != w[0] + 1 {
            note(w[0] + 1..w[1]);
        }
    }
    if missing_count > 0 {
        return Err(Error::MissingParts {
            backup_id: backup_id.to_string(),
            missing,
            missing_count,
            found: parts.len(),
            last: parts.last().map(|p| p.name.clone()),
        });
    }
    Ok(())
}

/// The backup ids visible in a listing: from metadata files, part names and blobs.
/// Sorted newest first when the ids carry timestamps.
pub fn backup_ids(objects: &[ObjectMeta]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for o in objects {
        let candidate = if let Some(id) = o.name.strip_suffix(".json") {
            Some(id)
        } else if split_backup_id(&o.name).is_some() {
            Some(o.name.as_str())
        } else {
            o.name
                .rsplit_once('-')
                .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .map(|(id, _)| id)
                .filter(|id| split_backup_id(id).is_some())
        };
        if let Some(id) = candidate {
            if !ids.iter().any(|x| x == id) {
                ids.push(id.to_string());
            }
        }
    }
    ids.sort_by(|a, b| {
        let ta = split_backup_id(a).map(|x| x.1).unwrap_or(0);
        let tb = split_backup_id(b).map(|x| x.1).unwrap_or(0);
        tb.cmp(&ta).then_with(|| natord::compare(a, b))
    });
    ids
}

/// One backup as `list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackupSummary {
    pub backup_id: String,
    pub instance_id: Option<String>,
    /// The id's timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<u64>,
    /// The same in UTC, RFC 3339.
    pub time_utc: Option<String>,
    pub parts: usize,
    pub size: u64,
    pub metadata: bool,
    /// Parts contiguous, none empty, and (when there is metadata) matching it.
    pub complete: bool,
    /// Why it is not complete.
    pub problem: Option<String>,
    /// Complete as far as the names and sizes tell, but worth a look: the last part is as
    /// large as the others and no metadata gives the total (a cut at a part boundary?).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Whether `id` belongs to `instance` (`<instance>-<timestamp>`).
pub fn is_of_instance(id: &str, instance: &str) -> bool {
    split_backup_id(id).is_some_and(|(inst, _)| inst == instance)
}

/// Summaries of the backups in a listing, newest first, from the part names alone.
/// `pipeline::list_backups` adds the metadata checks.
pub fn summarize(objects: &[ObjectMeta], instance: Option<&str>) -> Vec<BackupSummary> {
    backup_ids(objects)
        .into_iter()
        .filter(|id| instance.is_none_or(|i| is_of_instance(id, i)))
        .map(|id| {
            let ts = split_backup_id(&id);
            let has_meta = objects.iter().any(|o| o.name == metadata_name(&id));
            let mut warning = None;
            let (parts, size, problem) = match select_parts(&id, "", objects) {
                Ok(b) => {
                    if !has_meta
                        && b.parts.len() > 1
                        && b.parts.iter().all(|p| p.size == b.parts[0].size)
                    {
                        warning = Some(
                            "last part as large as the others: cut at a part boundary?".into(),
                        );
                    }
                    (b.parts.len(), b.total_size(), None)
                }
                Err(Error::NoSuchBackup { .. }) => (0, 0, Some("no parts".to_string())),
                Err(e) => {
                    let n: Vec<&ObjectMeta> = objects
                        .iter()
                        .filter(|o| part_index(&id, &o.name).is_some())
                        .collect();
                    (
                        n.len(),
                        n.iter().map(|o| o.size).sum(),
                        Some(listing_reason(&e)),
                    )
                }
            };
            BackupSummary {
                instance_id: ts.map(|t| t.0.to_string()),
                timestamp_ms: ts.map(|t| t.1),
                time_utc: ts.map(|t| crate::time::rfc3339_from_millis(t.1)),
                parts,
                size,
                metadata: has_meta,
                complete: problem.is_none(),
                problem,
                warning,
                backup_id: id,
            }
        })
        .collect()
}

/// Why a backup is not complete, in the words of a listing (not of a failed recovery).
pub fn listing_reason(e: &Error) -> String {
    match e {
        Error::MissingParts {
            missing,
            missing_count,
            found,
            ..
        } => {
            let shown: Vec<String> = missing.iter().take(5).map(u64::to_string).collect();
            let more = if *missing_count > shown.len() as u64 {
                format!(" and {} more", missing_count - shown.len() as u64)
            } else {
                String::new()
            };
            format!(
                "part {}{more} missing ({found} found): upload in progress, or parts lost?",
                shown.join(", ")
            )
        }
        Error::EmptyPart { part } => format!("part {part} is empty: upload interrupted?"),
        Error::NotAFile { object, what } => format!("{object} is {what}, not a regular file"),
        Error::AmbiguousParts { reason, .. } => format!("ambiguous: {reason}"),
        Error::MetadataMismatch { reason, .. } => format!("disagrees with its metadata: {reason}"),
        Error::BadMetadata { reason, .. } => format!("metadata unreadable: {reason}"),
        Error::TruncatedTail { .. } => "last block invalid: truncated?".to_string(),
        other => other.to_string(),
    }
}

/// A backup the clock says cannot exist yet: more than a day ahead of now.
const FUTURE_SLACK_MS: u64 = 24 * 3600 * 1000;

/// The smallest whole encrypted backup: the `Salted__` header and one cipher block.
pub const MIN_BACKUP_SIZE: u64 = 32;

/// Marks what only looks complete: dated in the future, too small to hold a header and a
/// block, or without metadata while other backups of the same instance have it (an upload in
/// progress writes its metadata last). `now_ms`: milliseconds since the epoch.
pub fn mark_implausible(summaries: &mut [BackupSummary], now_ms: u64) {
    let with_meta: Vec<String> = summaries
        .iter()
        .filter(|s| s.metadata)
        .filter_map(|s| s.instance_id.clone())
        .collect();
    for s in summaries.iter_mut().filter(|s| s.complete) {
        let problem = if s.timestamp_ms.is_some_and(|t| t > now_ms + FUTURE_SLACK_MS) {
            Some("dated in the future: not a backup of this instance?".to_string())
        } else if s.size < MIN_BACKUP_SIZE {
            Some(format!(
                "{} bytes, too small to hold a backup: a stray file?",
                s.size
            ))
        } else if !s.metadata
            && s.instance_id
                .as_ref()
                .is_some_and(|i| with_meta.contains(i))
        {
            Some("no metadata while the others have it: upload in progress?".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            s.complete = false;
            s.problem = Some(p);
        }
    }
}

/// A part name or a metadata name given where a backup id belongs: `ID-1`, `ID.json`.
/// `objects` is a listing with the prefix the returned id would have. Says which backup to
/// name instead.
pub fn misnamed_backup_id(id: &str, objects: &[ObjectMeta]) -> Option<String> {
    if let Some(base) = id.strip_suffix(".json") {
        return Some(format!(
            "`{id}` is the metadata file of backup `{base}`, not a backup id; use --backup-id {base}"
        ));
    }
    let (base, _) = id.rsplit_once('-')?;
    let index = part_index(base, id)?;
    split_backup_id(base)?;
    let siblings = objects.iter().any(|o| {
        o.name != id && (o.name == metadata_name(base) || part_index(base, &o.name).is_some())
    });
    siblings.then(|| {
        format!(
            "`{id}` is part {index} of backup `{base}`, not a backup id; use --backup-id {base}"
        )
    })
}

/// What we write into, and read from, `<backup-id>.json`. Every field is optional when
/// reading, so metadata written by the a9s Backup Manager or by older versions still loads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `aes-256-cbc` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// e.g. `-md md5`, `-pbkdf2 -iter 10000 -md sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_derivation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_sha256: Option<String>,
}

/// One part as recorded in the metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartRecord {
    pub name: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Metadata {
    /// Parses the metadata file. Fields we do not know, or whose shape is not ours (metadata
    /// written by the a9s Backup Manager), are ignored; a file that is not a JSON object is an
    /// error, because a corrupt metadata file means the backup cannot be trusted.
    pub fn parse(name: &str, data: &[u8]) -> Result<Metadata> {
        use serde_json::Value;
        let bad = |reason: String| Error::BadMetadata {
            name: name.to_string(),
            reason,
        };
        let v: Value = serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("it is not a JSON object".into()))?;
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let parts = obj.get("parts").and_then(Value::as_array).and_then(|arr| {
            arr.iter()
                .map(|p| {
                    Some(PartRecord {
                        name: p.get("name")?.as_str()?.to_string(),
                        size: p.get("size")?.as_u64()?,
                        sha256: p.get("sha256").and_then(Value::as_str).map(str::to_string),
                    })
                })
                .collect::<Option<Vec<_>>>()
        });
        Ok(Metadata {
            backup_id: s("backup_id"),
            instance_id: s("instance_id"),
            created_at: s("created_at"),
            tool: s("tool"),
            encryption: s("encryption"),
            key_derivation: s("key_derivation"),
            compression: s("compression"),
            parts,
            plaintext_size: obj.get("plaintext_size").and_then(Value::as_u64),
            plaintext_sha256: s("plaintext_sha256"),
        })
    }

    /// Checks the listed parts against the recorded ones: count, names and sizes.
    pub fn check_parts(&self, backup: &Backup, meta_name: &str) -> Result<()> {
        let Some(recorded) = &self.parts else {
            return Ok(());
        };
        let mismatch = |reason: String| Error::MetadataMismatch {
            backup_id: backup.id.clone(),
            metadata: meta_name.to_string(),
            reason,
        };
        for r in recorded {
            match backup.parts.iter().find(|p| p.name == r.name) {
                None => return Err(mismatch(format!("part {} is missing", r.name))),
                Some(p) if p.size != r.size => {
                    return Err(mismatch(format!(
                        "part {} is {} bytes, the metadata says {} (truncated or replaced)",
                        p.name, p.size, r.size
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = backup
            .parts
            .iter()
            .find(|p| !recorded.iter().any(|r| r.name == p.name))
        {
            return Err(mismatch(format!(
                "part {} is not in the metadata (an extra object)",
                extra.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            size,
            etag: None,
            not_a_file: None,
        }
    }

    const ID: &str = "b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967947154";

    #[test]
    fn part_names_are_exact() {
        assert_eq!(part_index(ID, &format!("{ID}-1")), Some(1));
        assert_eq!(part_index(ID, &format!("{ID}-007")), Some(7));
        assert_eq!(part_index(ID, &format!("{ID}.json")), None);
        assert_eq!(part_index(ID, &format!("{ID}0-1")), None);
        assert_eq!(part_index(ID, &format!("{ID}x-1")), None);
        assert_eq!(part_index(ID, &format!("{ID}-")), None);
        assert_eq!(part_index(ID, &format!("{ID}-1a")), None);
        assert_eq!(part_index(ID, ID), None);
    }

    #[test]
    fn natural_order_and_decoys() {
        let mut objs: Vec<ObjectMeta> = (1..=12).map(|i| obj(&format!("{ID}-{i}"), 10)).collect();
        objs.reverse();
        objs.push(obj(&format!("{ID}.json"), 5));
        objs.push(obj(&format!("{ID}0-1"), 5));
        objs.push(obj(&format!("{ID}x-1"), 5));
        let b = select_parts(ID, "here", &objs).unwrap();
        let idx: Vec<u64> = b.parts.iter().map(|p| p.index.unwrap()).collect();
        assert_eq!(idx, (1..=12).collect::<Vec<_>>());
        assert!(b.metadata.is_some());
    }

    #[test]
    fn zero_based_and_padded() {
        let objs: Vec<ObjectMeta> = (0..11).map(|i| obj(&format!("{ID}-{i:03}"), 1)).collect();
        let b = select_parts(ID, "here", &objs).unwrap();
        assert_eq!(b.parts.len(), 11);
        assert_eq!(b.parts[0].index, Some(0));
    }

    #[test]
    fn gaps_are_named() {
        let objs: Vec<ObjectMeta> = (1..=14)
            .filter(|i| *i != 7)
            .map(|i| obj(&format!("{ID}-{i}"), 1))
            .collect();
        match select_parts(ID, "here", &objs) {
            Err(Error::MissingParts { missing, .. }) => assert_eq!(missing, vec![7]),
            other => panic!("{other:?}"),
        }
        let late: Vec<ObjectMeta> = (3..=4).map(|i| obj(&format!("{ID}-{i}"), 1)).collect();
        match select_parts(ID, "here", &late) {
            Err(Error::MissingParts { missing, .. }) => assert_eq!(missing, vec![1, 2]),
            other => panic!("{other:?}"),
        }
    }

    /// Found by the part_names fuzz target: a huge part index allocated every missing index.
    #[test]
    fn regression_huge_gap_does_not_allocate_it() {
        let objs = [
            obj(&format!("{ID}-1"), 1),
            obj(&format!("{ID}-99999999999999"), 1),
        ];
        match select_parts(ID, "x", &objs) {
            Err(Error::MissingParts {
                missing,
                missing_count,
                ..
            }) => {
                assert_eq!(missing.len(), 20);
                assert_eq!(missing_count, 99_999_999_999_997);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicates_blob_empty_and_absent() {
        let dup = [obj(&format!("{ID}-1"), 1), obj(&format!("{ID}-01"), 1)];
        assert!(matches!(
            select_parts(ID, "x", &dup),
            Err(Error::AmbiguousParts { .. })
        ));
        let blob = [obj(ID, 64)];
        let b = select_parts(ID, "x", &blob).unwrap();
        assert_eq!(b.parts[0].index, None);
        let empty = [obj(&format!("{ID}-1"), 1), obj(&format!("{ID}-2"), 0)];
        assert!(matches!(
            select_parts(ID, "x", &empty),
            Err(Error::EmptyPart { .. })
        ));
        let other = [
            obj("inst-1600000000000-1", 3),
            obj("inst-1700000000000.json", 3),
        ];
        match select_parts(ID, "x", &other) {
            Err(Error::NoSuchBackup { existing, .. }) => {
                assert_eq!(existing, vec!["inst-1700000000000", "inst-1600000000000"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn summaries_newest_first_with_problems() {
        let objs = [
            obj("inst-1600000000000-1", 10),
            obj("inst-1600000000000-2", 10),
            obj("inst-1700000000000-1", 10),
            obj("inst-1700000000000-3", 10),
            obj("inst-1700000000000.json", 5),
            obj("other-1800000000000-1", 10),
        ];
        let s = summarize(&objs, Some("inst"));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].backup_id, "inst-1700000000000");
        assert!(!s[0].complete);
        let problem = s[0].problem.as_deref().unwrap();
        assert!(problem.contains("part 2 missing"), "{problem}");
        // Listing words, not the recovery error's.
        assert!(!problem.contains("Nothing was written"), "{problem}");
        assert!(s[0].metadata);
        assert_eq!(s[1].backup_id, "inst-1600000000000");
        assert!(s[1].complete);
        assert_eq!(s[1].size, 20);
        assert_eq!(s[1].time_utc.as_deref(), Some("2020-09-13T12:26:40.000Z"));
        assert_eq!(summarize(&objs, None).len(), 3);
    }

    /// Issue 10: `latest` took a stray file dated in the year 5138, then an upload still in
    /// progress (no metadata while the complete backups have it).
    #[test]
    fn implausible_backups_are_not_complete() {
        let mut objs: Vec<ObjectMeta> = (1..=20)
            .map(|i| obj(&format!("inst-1700000000000-{i}"), 4096))
            .collect();
        objs.push(obj("inst-1700000000000.json", 500));
        objs.extend((1..=3).map(|i| obj(&format!("inst-1700000500000-{i}"), 4096)));
        objs.push(obj("inst-99999999999999-1", 5));
        objs.push(obj("inst-1700000400000-1", 20));
        let mut s = summarize(&objs, Some("inst"));
        let now = 1_700_000_600_000;
        mark_implausible(&mut s, now);
        let state = |id: &str| {
            let b = s.iter().find(|b| b.backup_id == id).unwrap();
            (b.complete, b.problem.clone().unwrap_or_default())
        };
        let (ok, why) = state("inst-99999999999999");
        assert!(!ok && why.contains("dated in the future"), "{why}");
        let (ok, why) = state("inst-1700000500000");
        assert!(
            !ok && why.contains("no metadata while the others have it"),
            "{why}"
        );
        let (ok, why) = state("inst-1700000400000");
        assert!(!ok && why.contains("too small"), "{why}");
        assert_eq!(state("inst-1700000000000"), (true, String::new()));
        // Without metadata anywhere, a backup without it is fine.
        let mut alone = summarize(&objs[..20], Some("inst"));
        mark_implausible(&mut alone, now);
        assert!(alone[0].complete);
    }

    #[test]
    fn part_and_metadata_names_are_not_backup_ids() {
        let objs: Vec<ObjectMeta> = (1..=14)
            .map(|i| obj(&format!("{ID}-{i}"), 10))
            .chain([obj(&format!("{ID}.json"), 5)])
            .collect();
        let why = misnamed_backup_id(&format!("{ID}-1"), &objs).unwrap();
        assert!(
            why.contains(&format!("is part 1 of backup `{ID}`")),
            "{why}"
        );
        assert!(why.contains(&format!("--backup-id {ID}")), "{why}");
        let why = misnamed_backup_id(&format!("{ID}-14"), &objs).unwrap();
        assert!(why.contains("part 14"), "{why}");
        let why = misnamed_backup_id(&format!("{ID}.json"), &[]).unwrap();
        assert!(why.contains("metadata file"), "{why}");
        assert_eq!(misnamed_backup_id(ID, &objs), None);
        // One-blob backups of an instance are each their own backup.
        let blobs = [obj("inst-1700000000000", 64), obj("inst-1700000000001", 64)];
        assert_eq!(misnamed_backup_id("inst-1700000000000", &blobs), None);
    }

    #[test]
    fn backup_id_shape() {
        assert_eq!(split_backup_id(ID).unwrap().1, 1548967947154);
        assert!(split_backup_id("abc-12").is_none());
        assert!(validate_backup_id("a/b").is_err());
        assert!(validate_backup_id(ID).is_ok());
    }

    #[test]
    fn metadata_tolerates_unknown_fields_and_rejects_garbage() {
        let m = Metadata::parse("m.json", br#"{"backup_id":"x","whatever":[1,2]}"#).unwrap();
        assert_eq!(m.backup_id.as_deref(), Some("x"));
        assert!(Metadata::parse("m.json", b"{not json").is_err());
        assert!(Metadata::parse("m.json", b"[1]").is_err());
        // Someone else's shape of `parts` is ignored rather than misread.
        let other =
            Metadata::parse("m.json", br#"{"parts":["a","b"],"plaintext_size":"3"}"#).unwrap();
        assert_eq!(other.parts, None);
        assert_eq!(other.plaintext_size, None);
    }
}
