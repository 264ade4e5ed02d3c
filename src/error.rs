//! The crate's error type.
//!
//! Error policy: a recovery tool is used on the worst day, so every error says
//! 1. what failed, in the operator's words (part, backup id, secret, stage, output),
//! 2. where: the part name and the byte offset inside it whenever bytes are involved,
//! 3. what to do next, when there is something sensible to suggest.
//!
//! Errors never contain the secret or derived key material. Library code returns
//! [`Error`]; only `main.rs` turns it into a message and an exit code.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the backup a byte lives: the part's object name and the offset inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOffset {
    /// Object name of the part, e.g. `inst-1548967947154-3`.
    pub part: String,
    /// Byte offset inside that part.
    pub offset: u64,
}

impl std::fmt::Display for PartOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "part {} at byte {}", self.part, self.offset)
    }
}

/// Everything that can go wrong in a recovery, a pack or a verify.
/// Why these programs cannot restore this dump into this server; found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incompatibility {
    #[error(
        "the dump is a custom-format archive of version {archive}{made}, and pg_restore {pg_restore} ({}) reads archives up to {newest}. \
         Install PostgreSQL {major}'s client programs (postgresql-client-{major}) and pass --pg-bin /usr/lib/postgresql/{major}/bin. \
         Nothing was changed.",
        .program.display()
    )]
    ArchiveTooNew {
        archive: crate::dump::ArchiveVersion,
        /// ` made by pg_dump …`, or empty.
        made: String,
        pg_restore: crate::dump::PgVersion,
        program: PathBuf,
        newest: crate::dump::ArchiveVersion,
        /// The major version whose client programs read it.
        major: String,
    },
    #[error(
        "the dump{made} uses psql's \\restrict (pg_dump releases from August 2025 on), which psql {psql} ({}) does not know: it reports `invalid command \\restrict` (and `\\unrestrict`) as errors and goes on, without the protection \\restrict gives against a dump that runs psql commands. \
         Install a newer psql (13.22, 14.19, 15.14, 16.10, 17.6 or later in its major version) or pass --pg-bin DIR. \
         Nothing was changed.",
        .program.display()
    )]
    RestrictUnknown {
        made: String,
        psql: crate::dump::PgVersion,
        program: PathBuf,
    },
    #[error(
        "the dump was made by {made}, and the target runs PostgreSQL {target}: PostgreSQL does not support \
         restoring into an older major version, and it fails partway (settings and syntax the older server \
         does not know). Restore into PostgreSQL {needed} or later, or pass --allow-older-target to try anyway. \
         The restore did not start."
    )]
    TargetTooOld {
        made: String,
        target: crate::dump::PgVersion,
        /// The oldest major version that takes the dump.
        needed: String,
    },
    #[error(
        "the dump was made by pg_dump {pg_dump} from a PostgreSQL {server} server, and the target runs \
         PostgreSQL {target}: the server it came from is not newer than the target, but that pg_dump \
         is. A pg_dump writes SQL for its own major version, and PostgreSQL does not promise that it \
         loads into an older server, even one of the version it was taken from (a 13 server dumped by \
         pg_dump 18 fails in psql at `option \"locale_provider\" not recognized`). Restore into \
         PostgreSQL {} or later; or dump again with the server's own pg_dump (PostgreSQL {}); or pass \
         --allow-older-target to try (its SQL errors are counted and shown). The restore did not start.",
        .pg_dump.major_name(), .server.major_name()
    )]
    NewerPgDump {
        pg_dump: crate::dump::PgVersion,
        server: crate::dump::PgVersion,
        target: crate::dump::PgVersion,
    },
    #[error(
        "the dump{made} needs a PostgreSQL {needed} server or newer for the drill's throwaway cluster, and {found}. \
         Install the server package of that version (it has initdb and postgres: e.g. `apt-get install postgresql-{needed}`; \
         postgresql-client-{needed} alone is not enough), or name its bin directory with --server-bin DIR \
         (--allow-older-target drills on an older server anyway). Nothing was started."
    )]
    NoDrillServer {
        made: String,
        needed: String,
        found: String,
    },
}

/// Whether a failed request may succeed when tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A timeout, a reset connection, 5xx, 429: retried per range.
    Transient,
    /// Access denied, not found, a local I/O error: retrying cannot help.
    Permanent,
}

impl Retry {
    /// `Transient` when a retry may help.
    pub fn when(transient: bool) -> Retry {
        if transient {
            Retry::Transient
        } else {
            Retry::Permanent
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `--bucket` location could not be understood.
    #[error("cannot use {location:?} as a backup location: {reason}")]
    BadLocation { location: String, reason: String },

    /// The location does not exist (a local directory that is not there).
    #[error("{location} does not exist or is not readable: {source}. Check --bucket.")]
    LocationMissing {
        location: String,
        #[source]
        source: io::Error,
    },

    /// No part and no blob for this backup id.
    #[error("no backup {backup_id:?} at {location}. {}", existing_ids(.existing))]
    NoSuchBackup {
        backup_id: String,
        location: String,
        existing: Vec<String>,
    },

    /// The part numbers have holes.
    #[error(
        "backup {backup_id} is incomplete: part index {} {} missing (found {found} parts{}). \
         Nothing was written; restore the missing parts or pick another backup.",
        list_numbers(.missing, *.missing_count), if *.missing_count == 1 { "is" } else { "are" }, last_found(.last)
    )]
    MissingParts {
        backup_id: String,
        /// The first few missing indices.
        missing: Vec<u64>,
        /// How many are missing in all.
        missing_count: u64,
        found: usize,
        last: Option<String>,
    },

    /// Two objects claim the same part number (`-1` and `-01`), or both a blob and parts exist.
    #[error("backup {backup_id} is ambiguous: {reason}. Remove the stray objects or copy the backup elsewhere.")]
    AmbiguousParts { backup_id: String, reason: String },

    /// A part or metadata name in a local directory that is not a regular file.
    #[error(
        "{object} is {what}, not a regular file: refused without opening it. A backup's parts and \
         metadata must be regular files in the directory (copy them there, e.g. with cp -L, \
         after checking where the link points). Nothing was read or written."
    )]
    NotAFile { object: String, what: &'static str },

    /// A part with no bytes.
    #[error("part {part} is empty (0 bytes): the upload was interrupted or the object was truncated. Nothing was written.")]
    EmptyPart { part: String },

    /// The backup disagrees with its own metadata file.
    #[error(
        "backup {backup_id} does not match its metadata {metadata}: {reason}. Nothing was written."
    )]
    MetadataMismatch {
        backup_id: String,
        metadata: String,
        reason: String,
    },

    /// The metadata file could not be parsed.
    #[error("metadata {name} is not valid JSON: {reason}")]
    BadMetadata { name: String, reason: String },

    /// The first bytes are neither `Salted__` nor gzip.
    #[error(
        "part {part} does not start with the openssl header `Salted__` nor with the gzip magic \
         (it starts with {start}): this is not an openssl-enc backup, or it was encrypted with -nosalt, which is not supported"
    )]
    UnknownFormat { part: String, start: String },

    /// The secret (or key derivation) does not decrypt the first block into anything plausible.
    #[error(
        "decryption failed at the first block of part {part}: the secret is wrong, or the backup was \
         made with another key derivation (tried {tried}). Check the secret{hint}"
    )]
    WrongSecret {
        part: String,
        tried: String,
        hint: &'static str,
    },

    /// Ciphertext length is not a whole number of AES blocks.
    #[error(
        "the encrypted stream is {len} bytes, not a whole number of 16-byte blocks: \
         the last part {part} ends at its byte {part_end}, in the middle of a block; it is truncated \
         (or a part is missing or extra). Nothing usable can be written."
    )]
    NotBlockAligned {
        len: u64,
        part: String,
        part_end: u64,
    },

    /// PKCS#7 padding of the last block is wrong.
    #[error(
        "the padding of the last block is invalid ({at}): the last part is truncated or corrupt, \
         or the secret is wrong"
    )]
    BadPadding { at: PartOffset },

    /// openssl itself failed.
    #[error(
        "backup {backup_id} is truncated: its last cipher block ({at}) does not end in valid padding, \
         so the stream was cut short (an upload still running or interrupted, or a part missing at the end) \
         or the last part is corrupt. Found before anything was written or changed; pick another backup \
         (`list`) or restore the missing end"
    )]
    TruncatedTail { backup_id: String, at: PartOffset },

    #[error("openssl failed while {doing}: {source}")]
    Openssl {
        doing: &'static str,
        #[source]
        source: openssl::error::ErrorStack,
    },

    /// The gzip stream is corrupt or truncated.
    #[error("the gzip stream is corrupt: {reason} (compressed byte {offset}{}){}. {advice}", at_part(.at), span_text(.span))]
    Gzip {
        reason: String,
        offset: u64,
        at: Option<PartOffset>,
        /// For a CRC mismatch: the damage lies between these two places.
        span: Option<Box<(PartOffset, PartOffset)>>,
        advice: &'static str,
    },

    /// A digest recorded in the metadata does not match the bytes.
    #[error("{what} does not match its recorded sha256 (expected {expected}, got {actual}): the backup is corrupt")]
    ChecksumMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    /// The object changed while we were reading it.
    #[error("part {part} changed while the backup was being read (it was {expected}, it is now {found}): a backup is being written there; try again when it is done")]
    ObjectChanged {
        part: String,
        expected: String,
        found: String,
    },

    /// The two reads of a two-pass restore saw different post-data.
    #[error("the post-data of {database} is not what the first read of the backup saw ({difference}): the backup changed between the two reads (an upload still running?) and the restore stopped there, its data loaded and some of its indexes perhaps built. Clean the target and restore again once the backup is complete")]
    PostDataChanged {
        database: String,
        difference: String,
    },

    /// A storage operation failed.
    #[error("{op} {object} failed{}: {source}{}", range_text(.range), if *.retry == Retry::Transient { " (gave up after retries)" } else { "" })]
    Storage {
        op: &'static str,
        object: String,
        range: Option<(u64, u64)>,
        retry: Retry,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The output file exists and `--force` was not given.
    #[error(
        "{hint}no AWS credentials were found for {location} (looked in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
         AWS_PROFILE and ~/.aws, SSO, web identity and instance metadata): set them, or pass --profile NAME"
    )]
    NoCredentials { location: String, hint: String },

    #[error("{} already exists; pass --force to replace it", .path.display())]
    OutputExists { path: PathBuf },

    /// Writing the output failed.
    #[error("the output {} {why}", .path.display())]
    OutputRefused { path: PathBuf, why: &'static str },

    #[error("writing {what} failed: {source}")]
    Output {
        what: String,
        #[source]
        source: io::Error,
    },

    /// Standard output was closed by the reader (`| head`). Not a failure for the CLI.
    #[error("standard output was closed")]
    BrokenPipe,

    /// Reading standard input (for `pack`) failed.
    #[error("reading the dump from standard input failed: {0}")]
    Input(#[source] io::Error),

    /// A backup with this id already exists where `pack` would write.
    #[error("{location} already holds objects of backup {backup_id}; choose another --backup-id or pass --force")]
    BackupExists { backup_id: String, location: String },

    /// A PostgreSQL program is not installed.
    #[error("{tool} is not installed or not found: {hint}")]
    ToolMissing { tool: String, hint: String },

    /// The dump cannot be restored with these programs or into this server; nothing was changed.
    #[error("{0}")]
    Incompatible(Incompatibility),

    /// A child process (psql, pg_restore, a command stage) failed. Its stderr is quoted.
    #[error("{program} failed while {doing} ({status}){}", quote_stderr(.stderr))]
    Child {
        program: String,
        doing: String,
        status: String,
        stderr: String,
    },

    /// The target is a standby.
    #[error(
        "the target {target} is a standby (pg_is_in_recovery() is true): restore into the primary"
    )]
    Standby { target: String },

    /// A stage of the restore plan failed.
    #[error("stage {number} ({name}) failed: {source}{resume}")]
    Stage {
        number: usize,
        name: String,
        resume: Resume,
        #[source]
        source: Box<Error>,
    },

    /// Restored row counts differ from the dump's.
    #[error(
        "database {from} is not one the dump restores ({}): renaming it to {to} would drop {to} \
         and then fail. Nothing was dropped or renamed; check the rename's FROM (--var old_db?)",
        .restored.join(", ")
    )]
    RenameSource {
        from: String,
        to: String,
        restored: Vec<String>,
    },

    #[error(
        "verification failed: {count} table(s) have other row counts than the dump{}:\n{table}",
        if *.unchecked > 0 { format!(" ({} more could not be checked)", .unchecked) } else { String::new() }
    )]
    Verification {
        count: usize,
        unchecked: usize,
        table: String,
    },

    /// The check itself failed for some tables (a timeout, a lock, a lost connection): no
    /// mismatch was found, and these tables were not checked.
    #[error(
        "verification incomplete: {count} of {of} table(s) could not be checked (no mismatch was \
         found in the others); the restore itself is not known to be wrong. Check the target, \
         then run the verification again (--resume reruns it; --verify-timeout gives each \
         table's count longer):\n{table}"
    )]
    VerificationIncomplete {
        count: usize,
        of: usize,
        table: String,
    },

    /// A destructive stage needs consent.
    #[error("the plan has destructive stages ({0}); pass --yes, or run it on a terminal to confirm (see them first with --dry-run)")]
    NotConfirmed(String),

    /// The journal cannot be used.
    #[error("aborted by the operator: nothing was changed")]
    Declined,

    #[error("journal {}: {reason}", .path.display())]
    Journal { path: PathBuf, reason: String },

    #[error("internal error: {what} stopped unexpectedly ({reason}); nothing is wrong with the backup as far as we know. Please report this")]
    Internal { what: &'static str, reason: String },

    /// A plan file or preset is wrong.
    #[error("plan: {0}")]
    Plan(String),

    /// Ctrl-C or SIGTERM.
    #[error("interrupted by {signal}")]
    Interrupted { signal: &'static str },

    /// An invalid option combination or value that clap cannot see.
    #[error("{0}")]
    Config(String),

    /// A pick (`--database`, `--schema`, `--table`, `--into`) this dump cannot serve.
    #[error("{reason}{} Nothing that was not picked was sent.", if reason.ends_with(['?', '.', '!']) { "" } else { "." })]
    Pick { reason: String },

    /// A stage stopped because another stage failed; never shown when the real error is known.
    #[error("stopped because another stage failed")]
    Aborted,
}

impl Error {
    /// The error's kind, for scripts (`--json`): a stable snake_case name of the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::BadLocation { .. } => "bad_location",
            Error::Pick { .. } => "pick",
            Error::LocationMissing { .. } => "location_missing",
            Error::NoSuchBackup { .. } => "no_such_backup",
            Error::MissingParts { .. } => "missing_parts",
            Error::AmbiguousParts { .. } => "ambiguous_parts",
            Error::EmptyPart { .. } => "empty_part",
            Error::NotAFile { .. } => "not_a_file",
            Error::MetadataMismatch { .. } => "metadata_mismatch",
            Error::BadMetadata { .. } => "bad_metadata",
            Error::UnknownFormat { .. } => "unknown_format",
            Error::WrongSecret { .. } => "wrong_secret",
            Error::NotBlockAligned { .. } => "not_block_aligned",
            Error::BadPadding { .. } => "bad_padding",
            Error::TruncatedTail { .. } => "truncated_tail",
            Error::Openssl { .. } => "openssl",
            Error::Gzip { .. } => "gzip",
            Error::ChecksumMismatch { .. } => "checksum_mismatch",
            Error::ObjectChanged { .. } | Error::PostDataChanged { .. } => "object_changed",
            Error::Storage { .. } => "storage",
            Error::NoCredentials { .. } => "no_credentials",
            Error::OutputExists { .. } => "output_exists",
            Error::OutputRefused { .. } => "output_refused",
            Error::Output { .. } => "output",
            Error::BrokenPipe => "broken_pipe",
            Error::Input { .. } => "input",
            Error::BackupExists { .. } => "backup_exists",
            Error::ToolMissing { .. } => "tool_missing",
            Error::Incompatible { .. } => "incompatible",
            Error::Child { .. } => "child",
            Error::Standby { .. } => "standby",
            // A refused version pairing is one kind wherever it is found (issue 21): in the
            // preflight stage as before the stream.
            Error::Stage { source, .. } if matches!(**source, Error::Incompatible(_)) => {
                "incompatible"
            }
            Error::Stage { .. } => "stage",
            Error::RenameSource { .. } => "rename_source",
            Error::Verification { .. } => "verification",
            Error::VerificationIncomplete { .. } => "verification_incomplete",
            Error::NotConfirmed { .. } => "not_confirmed",
            Error::Declined => "declined",
            Error::Journal { .. } => "journal",
            Error::Internal { .. } => "internal",
            Error::Plan { .. } => "plan",
            Error::Interrupted { .. } => "interrupted",
            Error::Config { .. } => "config",
            Error::Aborted => "aborted",
        }
    }
    /// Whether retrying the same request may succeed (network resets, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Storage {
                retry: Retry::Transient,
                ..
            }
        )
    }

    /// A task that panicked or was cancelled: our bug, not the backup's.
    pub(crate) fn internal(what: &'static str) -> impl Fn(tokio::task::JoinError) -> Self + Copy {
        move |e| Error::Internal {
            what,
            reason: e.to_string(),
        }
    }

    /// Builds a storage error.
    pub fn storage(
        op: &'static str,
        object: impl Into<String>,
        range: Option<std::ops::Range<u64>>,
        retry: Retry,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Storage {
            op,
            object: object.into(),
            range: range.map(|r| (r.start, r.end)),
            retry,
            source: source.into(),
        }
    }

    pub(crate) fn openssl(doing: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> Self {
        move |source| Error::Openssl { doing, source }
    }
}

fn existing_ids(ids: &[String]) -> String {
    if ids.is_empty() {
        "There are no backups there at all; check --bucket and the prefix.".to_string()
    } else {
        let shown: Vec<&str> = ids.iter().take(20).map(String::as_str).collect();
        let more = if ids.len() > 20 {
            format!(" and {} more", ids.len() - 20)
        } else {
            String::new()
        };
        format!("Backups there: {}{more}", shown.join(", "))
    }
}

fn list_numbers(n: &[u64], total: u64) -> String {
    let shown: Vec<String> = n.iter().take(10).map(u64::to_string).collect();
    let mut s = shown.join(", ");
    if total > shown.len() as u64 {
        s.push_str(&format!(" and {} more", total - shown.len() as u64));
    }
    s
}

fn last_found(last: &Option<String>) -> String {
    last.as_ref()
        .map(|l| format!(", the last is {l}"))
        .unwrap_or_default()
}

fn at_part(at: &Option<PartOffset>) -> String {
    at.as_ref().map(|p| format!(", in {p}")).unwrap_or_default()
}

fn quote_stderr(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = stderr.trim().lines().collect();
    let shown = if lines.len() > 12 {
        let mut v = lines[..4].to_vec();
        v.push("...");
        v.extend_from_slice(&lines[lines.len() - 7..]);
        v
    } else {
        lines
    };
    let hint = if stderr.contains("no password supplied")
        || stderr.contains("password authentication failed")
    {
        "\nGive the password in --target (password=... or postgresql://user:PASS@host/db), \
         in PGPASSWORD or in ~/.pgpass; psql and pg_restore run with -w and never prompt."
    } else {
        ""
    };
    format!(":\n    {}{hint}", shown.join("\n    "))
}

/// How a failed run with a journal goes on: the hint a failed stage ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// No journal: nothing to resume.
    None,
    /// `--resume` runs the failed stage again and goes on.
    Continue,
    /// The restore is not done (it failed, or its rows are not all there): `--resume` alone
    /// refuses it; clean the target and add `--redo-interrupted`.
    RedoRestore,
}

impl std::fmt::Display for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resume::None => Ok(()),
            Resume::Continue => f.write_str(
                "\nFix the cause, then run the same command with --resume to continue from this stage.",
            ),
            Resume::RedoRestore => f.write_str(
                "\nThe restore is not complete, and --resume alone will not run it again: fix the \
                 cause, clean the target (drop the restored databases, or use drop-schema / \
                 pg_restore --clean), then run the same command with --resume --redo-interrupted.",
            ),
        }
    }
}

fn span_text(span: &Option<Box<(PartOffset, PartOffset)>>) -> String {
    span.as_deref()
        .map(|(a, b)| format!("; the damaged bytes lie between {a} and {b}"))
        .unwrap_or_default()
}

fn range_text(r: &Option<(u64, u64)>) -> String {
    r.map(|(a, b)| format!(" (bytes {a}..{b})"))
        .unwrap_or_default()
}
