//! Command-line flags and their conversion into library requests. The only place clap lives.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use std::collections::BTreeMap;

use a9s_recover::crypto::Kdf;
use a9s_recover::pack::{self, PackRequest};
use a9s_recover::pg::cluster::TempCluster;
use a9s_recover::pg::{ConnInfo, PgTools};
use a9s_recover::pipeline::{self, KdfChoice, PreparedBackup, Report, Request, RunOptions};
use a9s_recover::plan::PlanFile;
use a9s_recover::restore::{self, Confirmation, RestoreReport};
use a9s_recover::sink::Output;
use a9s_recover::source::{CloudOptions, Location, Source, StorageKind, Throttled};
use a9s_recover::{format_bytes, parse_size, text, Secret, Shutdown};

const ABOUT: &str = "Recover an openssl-encrypted, gzipped, split PostgreSQL backup as one stream";

const LONG_ABOUT: &str = "\
Recover an a9s-style logical backup (or any `gzip | openssl enc -aes256 | split` backup) as one
streaming pipeline: list the parts, order them naturally, read them with concurrent ranged
reads, decrypt (openssl `Salted__` format, AES-256-CBC), gunzip, and write the dump. No
temporary copy of the backup or the dump is made.

Without a subcommand the dump goes to standard output, exactly what the a9s manual's

    cat $(ls -1v ID-*) | openssl enc -aes256 -md md5 -d -pass pass:SECRET | gunzip -c

prints. Every check that can be made before streaming (missing or empty parts, gaps in the
numbering, a wrong secret, a truncated last part) is made before the first byte is written.";

const EXAMPLES: &str = "\
Examples:
  # Recover to stdout (the secret from the environment keeps it out of `ps`):
  A9S_SECRET=... a9s-recover --bucket s3://my-bucket --backup-id b6f4c071-...-1548967947154 > x.sql

  # Which backups are there? Then take the newest complete one of an instance:
  a9s-recover list --bucket s3://my-bucket --instance-id b6f4c071-ef44-4af2-9608-531b4ce4823f
  a9s-recover -b s3://my-bucket --backup-id latest --instance-id b6f4c071-... > x.sql

  # Azure (account key; or AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_CONNECTION_STRING):
  AZURE_STORAGE_ACCOUNT=acct AZURE_STORAGE_KEY=... a9s-recover -b az://backups --backup-id ID > x.sql
  # Azure with the VM's managed identity, or the az CLI's login:
  a9s-recover -b az://backups --account acct --azure-auth managed-identity --backup-id ID > x.sql
  AZURE_STORAGE_AUTH_MODE=login a9s-recover -b az://backups --account acct --backup-id ID > x.sql

  # An S3-compatible store (Ceph, MinIO): path-style requests to the endpoint:
  a9s-recover -b s3://backups --endpoint https://ceph.example.net --backup-id ID > x.sql

  # Recover to a file, written atomically (FILE.partial, fsync, rename), mode 0600:
  a9s-recover -b file:///var/backups --backup-id ID --secret-file /root/secret -o x.dump

  # Check a backup end to end without writing it; machine-readable report:
  a9s-recover verify -b /var/backups --backup-id ID --secret-file s --json

  # Make a backup the way a9s does (gzip, openssl enc -md md5, 1 GiB parts, metadata):
  pg_dumpall | a9s-recover pack -b /var/backups --instance-id my-instance --secret-file s

Exit status: 0 success (also when stdout is closed early, e.g. `| head`), 1 failure,
2 bad usage, 130 interrupted by Ctrl-C, 143 terminated by SIGTERM.";

/// Top-level flags.
#[derive(Debug, Parser)]
#[command(
    name = "a9s-recover",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub recover: RecoverArgs,

    /// No progress bar, notices or summary on stderr (errors are still printed).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Say what was detected: parts, key derivation, compression, dump kind, digests.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline into a counting sink and report: parts, sizes, key derivation,
    /// sha256 (checked against the metadata), dump kind and rows per table.
    #[command(
        after_help = "Examples:\n  A9S_SECRET=... a9s-recover verify -b s3://my-bucket --backup-id ID\n  a9s-recover verify -b /var/backups --backup-id latest --instance-id INST --secret-file s --json"
    )]
    Verify(VerifyArgs),
    /// Write a backup from a dump on stdin: gzip, openssl enc (AES-256-CBC), parts, metadata.
    #[command(
        after_help = "Examples:\n  pg_dumpall | a9s-recover pack -b /var/backups --instance-id my-instance --secret-file s\n  pg_dump -Fc shop | a9s-recover pack -b s3://my-bucket --backup-id shop-1732183200000"
    )]
    Pack(PackArgs),
    /// List the backups at a location, newest first: id, time (UTC), parts, size, and
    /// whether each is complete.
    #[command(
        after_help = "Examples:\n  a9s-recover list -b s3://my-bucket --instance-id b6f4c071-ef44-4af2-9608-531b4ce4823f\n  A9S_SECRET=... a9s-recover list -b /var/backups --json   # also checks each backup's end"
    )]
    List(ListArgs),
    /// Restore into PostgreSQL as a plan: preflight, the stages before, the stream into psql
    /// or pg_restore, the stages after, and a row-count verification. See --dry-run.
    #[command(
        after_help = "Examples:\n  # See every stage and its exact SQL first, then run it:\n  a9s-recover restore -b s3://my-bucket --backup-id ID --target dbname=postgres \\\n      --preset a9s-single --var old_db=d_old --var new_db=d_new --dry-run\n  a9s-recover restore ... --journal /root/restore.jsonl --yes"
    )]
    Restore(Box<RestoreArgs>),
    /// The monthly test restore: a throwaway cluster (initdb in a temporary directory),
    /// restore, verify, report, remove.
    #[command(
        after_help = "Examples:\n  A9S_SECRET=... a9s-recover drill -b s3://my-bucket --backup-id latest --instance-id INST\n  a9s-recover drill -b /var/backups --backup-id ID --secret-file s --keep   # look around afterwards"
    )]
    Drill(Box<DrillArgs>),
    /// How fast is a recovery here? Packs a synthetic pg_dumpall-shaped backup of --size (or
    /// takes a given one), runs the manual's shell pipeline and ours alternately, and prints
    /// medians, the speedup, each stage's throughput and peak memory.
    #[command(
        after_help = "Examples:\n  a9s-recover bench --size 1GiB --runs 3\n  A9S_SECRET=... a9s-recover bench -b /var/backups --backup-id ID --json"
    )]
    Bench(BenchArgs),
    /// Predict how long a plain dump's load takes at 1 to 16 connections on C server cores,
    /// from the trace of a real run (`restore --trace FILE`, best with --jobs 1): the
    /// loader's own planner and schedule, replayed. The model is in BENCHMARKS.md.
    #[command(
        after_help = "Examples:\n  a9s-recover restore ... --jobs 1 --trace load.jsonl\n  a9s-recover simulate --trace load.jsonl --cores 8\n  a9s-recover simulate --trace load.jsonl --cores 2 --max-connections 4 --json"
    )]
    Simulate(SimulateArgs),
    /// Print shell completions for bash, zsh or fish, e.g.
    /// `a9s-recover completions bash > /etc/bash_completion.d/a9s-recover`.
    #[command(
        after_help = "Examples:\n  a9s-recover completions bash > /etc/bash_completion.d/a9s-recover\n  a9s-recover completions zsh > ~/.zfunc/_a9s-recover"
    )]
    Completions {
        #[arg(value_enum)]
        shell: ShellArg,
    },
    /// Print the man page (roff), e.g. `a9s-recover man > /usr/share/man/man1/a9s-recover.1`.
    #[command(
        after_help = "Examples:\n  a9s-recover man | man -l -\n  a9s-recover man > /usr/local/share/man/man1/a9s-recover.1"
    )]
    Man,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Where the backups are: s3://BUCKET[/PREFIX], az://CONTAINER[/PREFIX], a directory,
    /// file:///path, or a bare bucket name (S3, unless a directory of that name exists).
    #[arg(short, long, value_name = "LOCATION", required = true)]
    pub bucket: Option<String>,

    /// Force the storage kind instead of guessing it from LOCATION.
    #[arg(long, value_enum, value_name = "KIND")]
    pub storage: Option<StorageArg>,

    /// S3 region [default: from the AWS config, else us-east-1].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// S3-compatible endpoint (path-style; also AWS_ENDPOINT_URL), or the Azure blob
    /// endpoint (Azurite: http://HOST:PORT/ACCOUNT; sovereign clouds).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// AWS profile from the shared config and credentials files.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Azure storage account (also AZURE_STORAGE_ACCOUNT).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,

    /// How to sign in to Azure. auto: a connection string, account key or SAS token when one
    /// is set, else a service principal (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET,
    /// AZURE_TENANT_ID) or a workload identity (AZURE_FEDERATED_TOKEN_FILE) when set, else
    /// with AZURE_STORAGE_AUTH_MODE=login the az CLI's login. managed-identity: the VM's or
    /// App Service's identity (user-assigned: AZURE_CLIENT_ID). SSL_CERT_FILE adds a CA.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        env = "A9S_AZURE_AUTH",
        default_value = "auto"
    )]
    pub azure_auth: AzureAuthArg,

    /// Give up on a cloud request that receives nothing for this many seconds; the range is
    /// then retried (0: never).
    #[arg(long, value_name = "SECS", default_value_t = a9s_recover::source::DEFAULT_READ_TIMEOUT.as_secs())]
    pub read_timeout: u64,

    /// Limit the read rate, e.g. 50MiB (per second), to spare a shared link.
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    pub limit_rate: Option<u64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AzureAuthArg {
    Auto,
    Key,
    ServicePrincipal,
    ManagedIdentity,
    WorkloadIdentity,
    Cli,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StorageArg {
    Local,
    S3,
    Azure,
}

#[derive(Debug, Args)]
pub struct SecretArgs {
    /// The backup secret. Visible to other users in `ps`: prefer A9S_SECRET or --secret-file.
    #[arg(long, value_name = "SECRET", conflicts_with = "secret_file")]
    pub secret: Option<String>,

    /// Read the secret from a file (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KdfArgs {
    /// Digest of the key derivation (`openssl enc -md`). `auto` tries md5 (the a9s manual),
    /// then sha256 (OpenSSL >= 1.1's default), then -pbkdf2, and keeps the one whose first
    /// decrypted block is gzip.
    #[arg(long, value_enum, default_value = "auto", value_name = "DIGEST")]
    pub md: MdArg,

    /// The backup was made with `openssl enc -pbkdf2`.
    #[arg(long)]
    pub pbkdf2: bool,

    /// PBKDF2 iterations (`openssl enc -iter`; implies --pbkdf2).
    #[arg(long, value_name = "N")]
    pub iter: Option<u32>,
}

/// How `pack` derives the key it encrypts with.
#[derive(Debug, Args)]
pub struct PackKdfArgs {
    /// Digest of the key derivation to encrypt with (`openssl enc -md`): `auto` is md5, as
    /// a9s writes its backups; sha256 is OpenSSL >= 1.1's default.
    #[arg(long, value_enum, default_value = "auto", value_name = "DIGEST")]
    pub md: MdArg,

    /// Encrypt as `openssl enc -pbkdf2` (decrypt with `-pbkdf2` too).
    #[arg(long)]
    pub pbkdf2: bool,

    /// PBKDF2 iterations (`openssl enc -iter`; implies --pbkdf2).
    #[arg(long, value_name = "N")]
    pub iter: Option<u32>,
}

impl PackKdfArgs {
    /// The same three flags, as the decrypting commands read them.
    pub fn as_kdf_args(&self) -> KdfArgs {
        KdfArgs {
            md: self.md,
            pbkdf2: self.pbkdf2,
            iter: self.iter,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MdArg {
    Auto,
    Md5,
    Sha256,
    Sha1,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Ranged reads in flight [default: 16 for S3 and Azure, 4 for a local directory].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Bytes per ranged read [default: 8MiB for S3 and Azure, 1MiB for a local directory].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,

    /// Retries of a failed range before giving up.
    #[arg(long, value_name = "N", default_value_t = a9s_recover::fetch::DEFAULT_RETRIES)]
    pub retries: u32,

    /// Inflate engine: isal (ISA-L, the fastest; on corruption the damage is located again
    /// with zlib) or zlib (zlib-rs inside our own gzip framing) [default: isal when built in].
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub inflate: Option<InflateArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InflateArg {
    Isal,
    Zlib,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// The backup: <instance-id>-<timestamp>, e.g. b6f4c071-ef44-4af2-9608-531b4ce4823f-1548967947154,
    /// or `latest` with --instance-id for the newest complete backup.
    #[arg(long, value_name = "ID", required = true)]
    pub backup_id: Option<String>,

    /// With --backup-id latest: the instance whose newest complete backup to take.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,

    #[command(flatten)]
    pub secret: SecretArgs,

    #[command(flatten)]
    pub kdf: KdfArgs,

    #[command(flatten)]
    pub fetch: FetchArgs,

    /// Write the dump to FILE instead of stdout: FILE.partial, fsync, rename once every check
    /// passed; mode 0600.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace an existing --output file.
    #[arg(long, requires = "output")]
    pub force: bool,

    #[command(flatten)]
    pub pick: PickArgs,

    /// Directory of the pg_restore that turns a custom-format archive into the SQL a pick
    /// reads [default: PATH, then the newest /usr/lib/postgresql/*/bin].
    #[arg(long, value_name = "DIR", help_heading = "Picking part of a backup")]
    pub pg_bin: Option<PathBuf>,
}

/// Restore part of a backup: plain dumps (pg_dump and pg_dumpall SQL) and custom archives.
#[derive(Debug, Args, Default)]
pub struct PickArgs {
    /// Only this database of a pg_dumpall (repeatable). With it the output is a plain dump
    /// of just that database, which creates it as pg_dump --create would.
    #[arg(
        long = "database",
        value_name = "NAME",
        help_heading = "Picking part of a backup"
    )]
    pub databases: Vec<String>,

    /// Only the objects of this schema, with their data (repeatable). As in SQL, an unquoted
    /// name folds to lower case: "MySchema" keeps its case.
    #[arg(
        long = "schema",
        value_name = "NAME",
        help_heading = "Picking part of a backup"
    )]
    pub schemas: Vec<String>,

    /// Only this table (or view, sequence), with what belongs to it as pg_dump -t brings it:
    /// its data, indexes, keys, triggers, policies, comments, grants, column defaults, owned
    /// sequences, and a partitioned table's partitions. Not brought: types, functions, its
    /// schema, tables a foreign key references (such a key is left out and reported), and
    /// inheritance children. SCHEMA.TABLE or TABLE (in any schema); repeatable.
    #[arg(
        long = "table",
        value_name = "[SCHEMA.]TABLE",
        help_heading = "Picking part of a backup"
    )]
    pub tables: Vec<String>,

    /// Only the rows (and sequence values) of what is picked, for tables that exist.
    #[arg(
        long,
        conflicts_with = "schema_only",
        help_heading = "Picking part of a backup"
    )]
    pub data_only: bool,

    /// Only the definitions of what is picked, no rows.
    #[arg(long, help_heading = "Picking part of a backup")]
    pub schema_only: bool,

    /// Restore the picked database under this new name: CREATE DATABASE, ALTER DATABASE,
    /// its comment and grants and every \connect name it instead; the old name is never
    /// used.
    #[arg(
        long,
        value_name = "NEWNAME",
        help_heading = "Picking part of a backup"
    )]
    pub into: Option<String>,

    /// With a pick, keep a pg_dumpall's roles and tablespaces too. Not the default: on a live
    /// cluster the dump's ALTER ROLE would set existing roles' passwords and attributes back
    /// to the backup's.
    #[arg(
        long,
        overrides_with = "no_globals",
        help_heading = "Picking part of a backup"
    )]
    pub globals: bool,

    /// With a pick, leave out a pg_dumpall's roles and tablespaces (the default; the last of
    /// --globals and --no-globals wins).
    #[arg(
        long,
        overrides_with = "globals",
        help_heading = "Picking part of a backup"
    )]
    pub no_globals: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub backup: BackupArgs,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("id").required(true).args(["backup_id", "instance_id"])))]
pub struct PackArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// The backup id to write, <instance-id>-<timestamp>.
    #[arg(long, value_name = "ID")]
    pub backup_id: Option<String>,

    /// Make the backup id from this instance id and the current time in milliseconds.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,

    #[command(flatten)]
    pub secret: SecretArgs,

    #[command(flatten)]
    pub kdf: PackKdfArgs,

    /// Size of each part (a9s uses 1 GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1GiB")]
    pub part_size: u64,

    /// gzip compression level, 1 (fast) to 9 (small).
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub level: u32,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Only the backups of this instance.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,

    /// With a secret (A9S_SECRET, --secret-file or --secret), the end of every backup that
    /// looks complete is checked too (its last block's padding), as `latest` does.
    #[command(flatten)]
    pub secret: SecretArgs,

    #[command(flatten)]
    pub kdf: KdfArgs,

    /// Print the list as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Sql,
    Custom,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// The backup: <instance-id>-<timestamp>, or `latest` with --instance-id.
    #[arg(long, value_name = "ID")]
    pub backup_id: String,

    /// With --backup-id latest: the instance whose newest complete backup to take.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,

    #[command(flatten)]
    pub secret: SecretArgs,

    #[command(flatten)]
    pub kdf: KdfArgs,

    #[command(flatten)]
    pub fetch: FetchArgs,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Feed the dump to psql (plain SQL) or pg_restore (custom format) [default: sniffed
    /// from the dump's first bytes].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,

    /// Stop at the first SQL error (psql ON_ERROR_STOP=1, pg_restore --exit-on-error).
    /// Without it SQL errors are counted and the first few shown (restoring pg_dumpall
    /// output commonly reports "role ... already exists").
    #[arg(long)]
    pub on_error_stop: bool,

    /// pg_restore --no-owner.
    #[arg(long)]
    pub no_owner: bool,

    /// pg_restore --no-privileges.
    #[arg(long)]
    pub no_privileges: bool,

    /// pg_restore --clean (drop objects before recreating them).
    #[arg(long)]
    pub clean: bool,

    /// pg_restore --if-exists (with --clean).
    #[arg(long)]
    pub if_exists: bool,

    /// Restore over N connections. A plain dump (pg_dump, pg_dumpall) is split as it streams:
    /// the schema on one connection, COPY rows in chunks over N, each table's indexes and
    /// constraints over the others as soon as its rows are in (the backup is read twice for
    /// this; see --single-pass), foreign keys once both their tables' are, the rest in order
    /// (no spool). A custom-format archive is the same, its SQL coming from pg_restore
    /// --file=- reading the stream (see --direct-pg-restore). 1 (the default) is one
    /// connection; it still guards each COPY, so a table that fails to load loses its own
    /// rows and nothing else.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,

    /// Hand a custom-format archive to pg_restore connected to the target, as before: one
    /// pg_restore reading the stream, or with --jobs N pg_restore --jobs N from a copy
    /// spooled to a 0600 file in --spool-dir. By default the archive goes through
    /// pg_restore --file=- into the same loader as a plain dump (no spool; rows counted;
    /// SQL errors counted, not fatal, unless --on-error-stop).
    #[arg(long)]
    pub direct_pg_restore: bool,

    /// With --jobs N (N > 1): read the backup once, building every index
    /// after all of a database's data. By default it is read twice: first to learn each
    /// database's post-data and table sizes (the same read as the one before destructive
    /// stages, when the plan has one, so it costs nothing more there), then to load it, each
    /// table's indexes building while later tables load.
    #[arg(long)]
    pub single_pass: bool,

    /// Write one JSON line per unit of work of the load here (what, which table,
    /// bytes, rows, connection, start, end), for `a9s-recover simulate`.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Where --direct-pg-restore --jobs N spools a custom archive [default: the system temp
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Directory of psql, pg_restore, initdb [default: PATH, then the newest
    /// /usr/lib/postgresql/*/bin].
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,

    /// Restore a dump of a newer PostgreSQL major version than the target runs. PostgreSQL
    /// does not support this and such restores usually fail partway; without this flag they
    /// are refused by the preflight stage (in a plan without one, before the stream).
    #[arg(long)]
    pub allow_older_target: bool,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub pick: PickArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub backup: BackupArgs,

    /// Where to restore: a libpq URI or key=value string (postgresql://user@host/db,
    /// "host=... dbname=..."); a password in it reaches children only through PGPASSWORD.
    /// Default: the PG* environment variables.
    #[arg(long, value_name = "DSN")]
    pub target: Option<String>,

    #[command(flatten)]
    pub load: LoadArgs,

    /// A built-in plan: a9s-single, a9s-cluster, flightctl-quadlet, pgdump-custom
    /// [default: preflight, restore, verify].
    #[arg(long, value_name = "NAME", conflicts_with = "plan")]
    pub preset: Option<String>,

    /// A plan file (TOML, the format of the files in plans/).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,

    /// A plan variable, e.g. --var old_db=d1 --var new_db=d2 (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// Print every stage with its exact SQL or command, mark the destructive ones, and stop.
    #[arg(long)]
    pub dry_run: bool,

    /// Run destructive stages without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Record each stage's start and end in this file (JSON lines, mode 0600).
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,

    /// Continue the run recorded in --journal: finished stages are skipped.
    #[arg(long, requires = "journal")]
    pub resume: bool,

    /// With --resume: also run again a stage that was interrupted midway, or a restore
    /// stream that failed partway (clean the target first).
    #[arg(long, requires = "resume")]
    pub redo_interrupted: bool,

    /// With --resume: count a restore that ran to the end with SQL errors as done, once you
    /// have checked that its errors are harmless (such as `role "postgres" already exists`).
    /// Without it, such a restore is refused by --resume (run it again with
    /// --redo-interrupted after cleaning the target).
    #[arg(long, requires = "resume")]
    pub accept_restore_errors: bool,

    /// Skip the row-count verification.
    #[arg(long)]
    pub no_verify: bool,

    /// How long the verification may count one table, in seconds (0: no limit). Each table is
    /// counted by a statement of its own, which waits at most 10 s for its lock; a table
    /// whose count hits either limit is reported as not checked, never as a mismatch.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub verify_timeout: u64,

    /// Do not read the whole backup before the plan's destructive stages. By default, when a
    /// destructive stage comes before the stream (stopping standbys, dropping slots or
    /// schemas...), the backup is read and checked once first, so that nothing is stopped or
    /// dropped for a backup that turns out truncated or corrupt; this costs one more read.
    #[arg(long)]
    pub no_verify_first: bool,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub backup: BackupArgs,

    #[command(flatten)]
    pub load: LoadArgs,

    /// Keep the cluster running afterwards and print how to connect.
    #[arg(long)]
    pub keep: bool,

    /// Where to create the throwaway cluster [default: the system temp directory].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// The server binaries (initdb, pg_ctl, postgres) of the throwaway cluster [default:
    /// --pg-bin when it has them, else of /usr/lib/postgresql/N/bin, /usr/pgsql-N/bin,
    /// /usr/local/pgsql/bin and PATH, the oldest major version that takes the dump].
    #[arg(long, value_name = "DIR")]
    pub server_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The trace of a restore (`restore --trace FILE`).
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,

    /// The target server's cores [default: this machine's].
    #[arg(long, value_name = "C")]
    pub cores: Option<f64>,

    /// Predict for 1 to N connections.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_connections: u32,

    /// The part of a COPY chunk's work spent under its table's extension lock, 0 to 1.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub lock_share: f64,

    /// Print the prediction as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Size of the synthetic dump to generate.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "4GiB")]
    pub size: u64,

    /// Runs of each pipeline; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: usize,

    /// Where to write the synthetic backup [default: the system temp directory].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Benchmark this backup instead of a synthetic one (the reference pipeline needs a
    /// local directory).
    #[arg(short, long, value_name = "LOCATION", requires = "backup_id")]
    pub bucket: Option<String>,

    /// With --bucket: the backup.
    #[arg(long, value_name = "ID")]
    pub backup_id: Option<String>,

    #[command(flatten)]
    pub secret: SecretArgs,

    /// With --bucket: S3 or Azure endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command. Output for the operator goes to stderr; data and JSON to stdout.
pub async fn run(cli: Cli, shutdown: Shutdown) -> anyhow::Result<()> {
    let ui = Ui {
        quiet: cli.quiet,
        verbose: cli.verbose && !cli.quiet,
        progress: !cli.quiet && std::io::stderr().is_terminal(),
    };
    match cli.command {
        None => recover(cli.recover, ui, shutdown).await,
        Some(Command::Verify(v)) => verify(v, ui, shutdown).await,
        Some(Command::Pack(p)) => pack_cmd(p, ui, shutdown).await,
        Some(Command::List(l)) => list_cmd(l, ui).await,
        Some(Command::Restore(r)) => restore_cmd(*r, ui, shutdown).await,
        Some(Command::Drill(d)) => drill_cmd(*d, ui, shutdown).await,
        Some(Command::Bench(b)) => bench_cmd(b, ui, shutdown).await,
        Some(Command::Simulate(s)) => simulate_cmd(&s),
        Some(Command::Completions { shell }) => completions(shell),
        Some(Command::Man) => man_page(),
    }
}

mod config;
mod render;

#[derive(Debug, Clone, Copy)]
struct Ui {
    quiet: bool,
    verbose: bool,
    progress: bool,
}

impl Ui {
    // Names in messages come from the bucket, the dump and the server: control characters
    // are shown escaped, never sent to the terminal (text::escape_message).
    fn notice(&self, msg: &str) {
        if !self.quiet {
            eprintln!("a9s-recover: {}", text::escape_message(msg));
        }
    }
    fn detail(&self, msg: &str) {
        if self.verbose {
            eprintln!("a9s-recover: {}", text::escape_message(msg));
        }
    }
}

async fn open_source(args: &SourceArgs) -> anyhow::Result<Arc<dyn Source>> {
    let (bucket, kind, opts) = config::source(args);
    open_location(bucket, kind, &opts, args.limit_rate).await
}

/// Opens a location; a bare name taken for an S3 bucket without credentials says so.
async fn open_location(
    bucket: &str,
    kind: Option<StorageKind>,
    opts: &CloudOptions,
    limit_rate: Option<u64>,
) -> anyhow::Result<Arc<dyn Source>> {
    let location = Location::parse(bucket, kind)?;
    let source = match location.open(opts).await {
        Err(a9s_recover::Error::NoCredentials { location, .. })
            if !bucket.contains("://") && kind.is_none() =>
        {
            return Err(a9s_recover::Error::NoCredentials {
                location,
                hint: format!(
                    "`{bucket}` is not a local directory, so it was taken for an S3 bucket (for a directory, write ./{bucket}); "
                ),
            }
            .into())
        }
        r => r?,
    };
    Ok(match limit_rate {
        Some(rate) => Arc::new(Throttled::new(source, rate)),
        None => source,
    })
}

/// Finds the secret: --secret, --secret-file, A9S_SECRET, else a prompt on the terminal. An
/// empty secret from any of them is no secret given.
fn resolve_secret(
    args: &SecretArgs,
    ui: Ui,
    prompt: bool,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Secret>> {
    let empty = |from: &str| -> anyhow::Error {
        a9s_recover::Error::Config(format!(
            "no secret given: {from} is empty. Give the backup secret with A9S_SECRET=..., --secret-file PATH or --secret"
        ))
        .into()
    };
    if let Some(s) = &args.secret {
        ui.notice(
            "warning: --secret is visible to other users in `ps`; prefer A9S_SECRET=... or --secret-file",
        );
        if s.is_empty() {
            return Err(empty("--secret"));
        }
        return Ok(Some(Secret::new(s.clone())));
    }
    if let Some(path) = &args.secret_file {
        let mut bytes = std::fs::read(path)
            .with_context(|| format!("reading the secret file {}", path.display()))?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(empty(&format!("the secret file {}", path.display())));
        }
        return Ok(Some(Secret::new(bytes)));
    }
    if let Some(v) = std::env::var_os("A9S_SECRET") {
        use std::os::unix::ffi::OsStringExt;
        if v.is_empty() {
            return Err(empty("A9S_SECRET"));
        }
        return Ok(Some(Secret::new(v.into_vec())));
    }
    if prompt && std::io::stdin().is_terminal() {
        let tty = std::fs::File::open("/dev/tty").ok();
        let saved = tty
            .as_ref()
            .and_then(|t| rustix::termios::tcgetattr(t).ok());
        let read = interruptible(shutdown, || rpassword::prompt_password("Backup secret: "));
        let s = match read {
            // The signal interrupted the read itself before the shutdown was seen.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                eprintln!();
                let signal = (0..40)
                    .find_map(|_| {
                        let r = shutdown.reason();
                        if r.is_none() {
                            std::thread::sleep(std::time::Duration::from_millis(25));
                        }
                        r
                    })
                    .unwrap_or("Ctrl-C");
                return Err(a9s_recover::Error::Interrupted { signal }.into());
            }
            Ok(r) => r.context("reading the secret")?,
            Err(e) => {
                // The reading thread is still blocked with echo off: give the terminal back.
                if let (Some(t), Some(saved)) = (&tty, &saved) {
                    let _ =
                        rustix::termios::tcsetattr(t, rustix::termios::OptionalActions::Now, saved);
                }
                eprintln!();
                return Err(e.into());
            }
        };
        if s.is_empty() {
            return Err(empty("the secret typed at the prompt"));
        }
        return Ok(Some(Secret::new(s)));
    }
    Ok(None)
}

/// Runs a blocking read (a prompt) on its own thread and waits for it, or for Ctrl-C or
/// SIGTERM, whichever comes first: an operator's Ctrl-C at a prompt ends the run at once.
fn interruptible<T: Send + 'static>(
    shutdown: &Shutdown,
    read: impl FnOnce() -> T + Send + 'static,
) -> Result<T, a9s_recover::Error> {
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(read());
    });
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => {
                if let Some(signal) = shutdown.reason() {
                    return Err(a9s_recover::Error::Interrupted { signal });
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(a9s_recover::Error::Interrupted {
                    signal: shutdown.reason().unwrap_or("a failed prompt"),
                })
            }
        }
    }
}

fn describe_plan(plan: &PreparedBackup, ui: Ui) {
    for n in &plan.notices {
        ui.notice(n);
    }
    if let Some(w) = &plan.tail_warning {
        ui.detail(w);
    }
    ui.detail(&format!(
        "backup {} in {}: {} part(s), {} stored{}",
        plan.backup.id,
        plan.location,
        plan.backup.parts.len(),
        format_bytes(plan.total_size()),
        if plan.metadata.is_some() {
            ", with metadata"
        } else {
            ", no metadata file"
        }
    ));
    match plan.kdf() {
        Some(k) => ui.detail(&format!("encryption: aes-256-cbc, key derivation {k}")),
        None => ui.detail("encryption: none"),
    }
    ui.detail(&format!("compression: {}", plan.compression.name()));
    ui.detail(&format!(
        "fetch: {} ranged reads of {} in flight (at most {} buffered)",
        plan.fetch.concurrency,
        format_bytes(plan.fetch.chunk_size),
        format_bytes(plan.fetch.memory_bound())
    ));
}

async fn recover(args: RecoverArgs, ui: Ui, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut pick = config::pick(&args.pick)?;
    if let Some(p) = &mut pick {
        // A plain dump of tables loads into any database, as pg_dump -t's does.
        p.no_connect = true;
    }
    let source = open_source(&args.source).await?;
    let output = match &args.output {
        Some(path) => Output::file(path.clone(), args.force),
        None => Output::Stdout,
    };
    let to_stdout = output == Output::Stdout;
    let slot = a9s_recover::sink::PickSlot::default();
    let output = match pick {
        Some(p) => {
            ui.notice(&format!("picking: {}", p.describe()));
            // A custom archive is known only from its first bytes: pg_restore is found
            // now (a --pg-bin without one is an error now), used only if one comes.
            let tools = a9s_recover::pg::PgTools {
                bin_dir: args.pg_bin.clone(),
            };
            let program = match &args.pg_bin {
                Some(_) => Some(tools.find_offline("pg_restore")?),
                None => tools.find_offline("pg_restore").ok(),
            };
            let version = match &program {
                Some(p) => a9s_recover::pg::PgTools::version(p).await,
                None => None,
            };
            // A database picked whole comes with its CREATE DATABASE, as pg_dump --create's.
            let create = !p.databases.is_empty();
            Output::Picked {
                pick: std::sync::Arc::new(p),
                inner: Box::new(output),
                report: slot.clone(),
                archive: program.map(|program| a9s_recover::sink::PgRestoreScript {
                    program,
                    version,
                    args: if create {
                        vec!["--create".into()]
                    } else {
                        vec![]
                    },
                }),
            }
        }
        None => output,
    };
    output.preflight()?;
    let backup_id = args
        .backup_id
        .as_deref()
        .expect("clap requires --backup-id");
    let secret = resolve_secret(&args.secret, ui, true, &shutdown)?;
    let req = config::request(
        backup_id,
        args.instance_id.as_deref(),
        secret,
        &args.kdf,
        &args.fetch,
    )?;
    let plan = pipeline::prepare(source, &req).await?;
    describe_plan(&plan, ui);
    let opts = RunOptions {
        progress: ui.progress,
        hash: ui.verbose,
        count_rows: false,
        part_digests: false,
        shutdown,
    };
    let report = match pipeline::run(plan, &output, opts).await {
        Ok(r) => r,
        Err(e) => {
            match (&e, output.is_stream()) {
                (a9s_recover::Error::BrokenPipe, _) => {}
                (_, true) => eprintln!(
                    "a9s-recover: what was written to {} is incomplete: do not use it",
                    match &args.output {
                        Some(p) if !to_stdout => p.display().to_string(),
                        _ => "standard output".into(),
                    }
                ),
                (_, false) => {
                    if let Some(p) = &args.output {
                        ui.notice(&format!(
                            "{} was not written, and nothing partial was left beside it",
                            p.display()
                        ));
                    }
                }
            }
            return Err(e.into());
        }
    };
    describe_report(&report, ui);
    if let Some(r) = slot.get() {
        describe_pick(&r, ui);
    }
    if let Some(path) = &args.output {
        ui.notice(&format!(
            "recovered {} ({}, {}) to {} in {:.1}s",
            report.backup_id,
            report.dump_kind.describe(),
            format_bytes(report.bytes_dump),
            path.display(),
            report.seconds
        ));
    }
    Ok(())
}

fn describe_pick(r: &a9s_recover::pick::PickReport, ui: Ui) {
    for l in r.lines() {
        ui.notice(&l);
    }
}

fn describe_report(r: &Report, ui: Ui) {
    ui.detail(&format!(
        "dump: {}, {} ({} compressed, inflated with {})",
        r.dump_kind.describe(),
        format_bytes(r.bytes_dump),
        format_bytes(r.bytes_compressed),
        r.inflate_engine
    ));
    if let Some(s) = &r.plaintext_sha256 {
        ui.detail(&format!("dump sha256: {s}"));
    }
}

async fn verify(args: VerifyArgs, ui: Ui, shutdown: Shutdown) -> anyhow::Result<()> {
    let (source, req) = backup_request(&args.backup, ui, &shutdown).await?;
    let result: anyhow::Result<Report> = async {
        let plan = pipeline::prepare(source, &req).await?;
        describe_plan(&plan, ui);
        let opts = RunOptions {
            progress: ui.progress,
            hash: true,
            count_rows: true,
            part_digests: true,
            shutdown,
        };
        Ok(pipeline::run(plan, &Output::Discard, opts).await?)
    }
    .await;
    match result {
        Ok(report) if args.json => {
            let mut v = serde_json::to_value(&report)?;
            let obj = v.as_object_mut().expect("an object");
            obj.insert("ok".into(), true.into());
            obj.insert("result".into(), "ok".into());
            print_stdout(&serde_json::to_string_pretty(&v)?)
        }
        Ok(report) => print_stdout(&render::VerifyText(&report).to_string()),
        Err(e) => {
            let r: anyhow::Result<()> = Err(e);
            let mut v = serde_json::json!({ "result": "failed" });
            if let Some(obj) = v.as_object_mut() {
                obj.insert("backup_id".into(), args.backup.backup_id.clone().into());
            }
            finish_json(args.json, r, Some(&v), ui)
        }
    }
}

async fn pack_cmd(args: PackArgs, ui: Ui, shutdown: Shutdown) -> anyhow::Result<()> {
    let source = open_source(&args.source).await?;
    let secret = resolve_secret(&args.secret, ui, true, &shutdown)?.ok_or_else(|| {
        anyhow::anyhow!(
            "pack encrypts the backup and needs a secret: A9S_SECRET=..., --secret-file PATH or --secret"
        )
    })?;
    if secret.is_empty() {
        bail!("the secret is empty");
    }
    let backup_id = match (&args.backup_id, &args.instance_id) {
        (Some(id), _) => id.clone(),
        (None, Some(inst)) => pack::new_backup_id(inst),
        (None, None) => unreachable!("clap requires --backup-id or --instance-id"),
    };
    let kdf = match config::kdf_choice(&args.kdf.as_kdf_args()) {
        KdfChoice::Auto => Kdf::A9S,
        KdfChoice::Fixed(k) => k,
    };
    if std::io::stdin().is_terminal() {
        bail!("pack reads the dump from standard input; pipe it in, e.g. pg_dumpall | a9s-recover pack ...");
    }
    let req = PackRequest {
        backup_id,
        secret,
        kdf,
        part_size: args.part_size,
        level: args.level,
    };
    let report = pack::pack(
        source,
        req,
        Box::new(std::io::stdin()),
        ui.progress,
        shutdown,
    )
    .await?;
    if args.json {
        print_stdout(&serde_json::to_string_pretty(&report)?)?;
    } else {
        ui.notice(&format!(
            "packed {} into {}: {} part(s), {} dump → {} stored ({}) in {:.1}s",
            report.backup_id,
            report.location,
            report.parts.len(),
            format_bytes(report.plaintext_size),
            format_bytes(report.stored_size),
            report.key_derivation,
            report.seconds
        ));
        print_stdout(&report.backup_id)?;
    }
    Ok(())
}

async fn list_cmd(args: ListArgs, ui: Ui) -> anyhow::Result<()> {
    let source = open_source(&args.source).await?;
    let mut backups = pipeline::list_backups(source.clone(), args.instance_id.as_deref()).await?;
    if let Some(secret) = resolve_secret(&args.secret, ui, false, &Shutdown::new())? {
        let mut req = Request::new("", Some(secret));
        req.kdf = config::kdf_choice(&args.kdf);
        pipeline::probe_listed(source.clone(), &mut backups, &req).await;
    }
    if args.json {
        return print_stdout(&serde_json::to_string_pretty(&backups)?);
    }
    if backups.is_empty() {
        eprintln!("a9s-recover: no backups at {}", source.describe());
        return Ok(());
    }
    print_stdout(&render::ListTable(&backups).to_string())
}

async fn backup_request(
    b: &BackupArgs,
    ui: Ui,
    shutdown: &Shutdown,
) -> anyhow::Result<(Arc<dyn Source>, Request)> {
    let source = open_source(&b.source).await?;
    let secret = resolve_secret(&b.secret, ui, true, shutdown)?;
    let req = config::request(
        &b.backup_id,
        b.instance_id.as_deref(),
        secret,
        &b.kdf,
        &b.fetch,
    )?;
    Ok((source, req))
}

/// Asks on the terminal before destructive stages; never when stdin is not a terminal. The
/// answer is read on its own thread, so that Ctrl-C at the prompt ends the run at once.
fn confirm_on_terminal(stages: &[String], shutdown: &Shutdown) -> Confirmation {
    use std::io::{BufRead, Write};
    if !std::io::stdin().is_terminal() {
        return Confirmation::NoTerminal;
    }
    eprintln!("a9s-recover: these stages change the target:");
    let stages: Vec<String> = stages.iter().map(|s| text::escape(s)).collect();
    for s in stages {
        eprintln!("    {s}");
    }
    eprint!("Type yes to run them: ");
    let _ = std::io::stderr().flush();
    let answer = interruptible(shutdown, || {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    });
    match answer {
        Ok(Ok(line)) if line.trim() == "yes" => Confirmation::Confirmed,
        Ok(_) => Confirmation::Declined,
        Err(_) => {
            eprintln!();
            Confirmation::Interrupted(shutdown.reason().unwrap_or("Ctrl-C"))
        }
    }
}

fn parse_vars(vars: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    vars.iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| {
                    a9s_recover::Error::Config(format!("--var {v:?}: expected NAME=VALUE")).into()
                })
        })
        .collect()
}

async fn restore_cmd(args: RestoreArgs, ui: Ui, shutdown: Shutdown) -> anyhow::Result<()> {
    let json = args.load.json;
    let mut report = None;
    let result = restore_inner(args, ui, shutdown, &mut report).await;
    finish_json(json, result, report.as_ref(), ui)
}

async fn restore_inner(
    args: RestoreArgs,
    ui: Ui,
    shutdown: Shutdown,
    report_out: &mut Option<RestoreReport>,
) -> anyhow::Result<()> {
    let target = ConnInfo::parse(args.target.as_deref().unwrap_or(""))?;
    let (plan_name, plan_file) = match (&args.preset, &args.plan) {
        (Some(p), _) => (p.clone(), PlanFile::preset(p)?),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the plan {}", path.display()))?;
            let name = path.display().to_string();
            let f = PlanFile::parse(&name, &text)?;
            (name, f)
        }
        (None, None) => (
            "default".to_string(),
            PlanFile::parse("default", a9s_recover::plan::DEFAULT_PLAN)?,
        ),
    };
    let vars = parse_vars(&args.vars)?;
    let (source, req) = backup_request(&args.backup, ui, &shutdown).await?;
    let mut opts = config::restore_options(&args, target, ui.progress, shutdown.clone())?;
    opts.load.verbose = ui.verbose;
    let prepared =
        restore::prepare_restore(source, &req, &plan_name, &plan_file, &vars, &opts).await?;
    describe_plan(&prepared.backup, ui);
    if args.dry_run {
        return print_stdout(prepared.render(&opts).trim_end());
    }
    let notify = |m: &str| ui.notice(m);
    let report = report_out.insert(prepared.report(&opts));
    let confirm = |stages: &[String]| confirm_on_terminal(stages, &shutdown);
    restore::run_restore(prepared, report, &opts, &notify, &confirm).await?;
    if !args.load.json {
        restored_notice(report, ui);
    }
    Ok(())
}

/// With `--json`, stdout gets one JSON object whether the run succeeded or not: `ok`, and on
/// failure `error` and its `kind`, with the report of what was done and measured so far.
fn finish_json<T: serde::Serialize>(
    json: bool,
    result: anyhow::Result<()>,
    report: Option<&T>,
    _ui: Ui,
) -> anyhow::Result<()> {
    if !json
        || matches!(&result, Err(e) if e.downcast_ref::<a9s_recover::Error>().is_some_and(|e| matches!(e, a9s_recover::Error::BrokenPipe)))
    {
        return result;
    }
    let mut v = match report {
        Some(r) => serde_json::to_value(r)?,
        None => serde_json::json!({}),
    };
    let obj = v.as_object_mut().expect("reports are JSON objects");
    obj.insert("ok".into(), result.is_ok().into());
    if let Err(e) = &result {
        let (msg, kind) = match e.downcast_ref::<a9s_recover::Error>() {
            Some(lib) => (lib.to_string(), lib.kind()),
            None => (format!("{e:#}"), "other"),
        };
        obj.insert("error".into(), msg.into());
        obj.insert("kind".into(), kind.into());
        // A failed stage: what failed in it, for scripts that tell a mismatch from the rest.
        if let Some(a9s_recover::Error::Stage { source, .. }) =
            e.downcast_ref::<a9s_recover::Error>()
        {
            obj.insert("stage_error_kind".into(), source.kind().into());
        }
    }
    print_stdout(&serde_json::to_string_pretty(&v)?)?;
    result
}

fn restored_notice(report: &RestoreReport, ui: Ui) {
    if let Some(v) = &report.effects.verification {
        if ui.verbose {
            eprintln!("{}", text::escape_message(&restore::render_checks(v)));
        }
    }
    ui.notice(&render::Restored(report).to_string());
}

async fn drill_cmd(args: DrillArgs, ui: Ui, shutdown: Shutdown) -> anyhow::Result<()> {
    let json = args.load.json;
    let mut report = None;
    let result = drill_inner(args, ui, shutdown, &mut report).await;
    finish_json(json, result, report.as_ref(), ui)
}

async fn drill_inner(
    args: DrillArgs,
    ui: Ui,
    shutdown: Shutdown,
    report_out: &mut Option<RestoreReport>,
) -> anyhow::Result<()> {
    // A pick that cannot be is said before a cluster is made for it.
    config::pick(&args.load.pick)?;
    let (source, req) = backup_request(&args.backup, ui, &shutdown).await?;
    // The server is the one that takes this dump: its head says what made it.
    let origin = restore::peek_origin(source.clone(), &req).await?;
    let server = a9s_recover::pg::cluster::choose_server(
        args.server_bin.as_deref(),
        args.load.pg_bin.as_deref(),
        &origin,
        args.load.allow_older_target,
    )
    .await?;
    let tools = PgTools {
        bin_dir: Some(server.bin.clone()),
    };
    ui.notice(&format!(
        "starting a throwaway PostgreSQL {} cluster ({}, {}){}",
        server.version,
        server.bin.display(),
        server.why,
        origin
            .describe()
            .map(|m| format!(" for a dump made by {m}"))
            .unwrap_or_default()
    ));
    // initdb and pg_ctl take seconds: off the async runtime.
    let work_dir = args.work_dir.clone();
    let start_tools = tools.clone();
    let mut cluster =
        tokio::task::spawn_blocking(move || TempCluster::start(&start_tools, work_dir.as_deref()))
            .await
            .map_err(|e| anyhow::anyhow!("starting the drill cluster: {e}"))??;
    let mut opts = config::drill_options(&args.load, cluster.conninfo(), ui.progress, shutdown)?;
    opts.load.verbose = ui.verbose;
    if args.load.pg_bin.is_none() && server.bin.join("psql").is_file() {
        // The client beside the server, of its version, unless --pg-bin names one.
        opts.load.tools.bin_dir = Some(server.bin.clone());
    }
    // Whatever happens from here on, the cluster is stopped (or kept) below, off the runtime.
    let result: anyhow::Result<()> = async {
        let plan = PlanFile::parse("drill", a9s_recover::plan::DEFAULT_PLAN)?;
        let prepared =
            restore::prepare_restore(source, &req, "drill", &plan, &BTreeMap::new(), &opts).await?;
        describe_plan(&prepared.backup, ui);
        drill_pick_database(&prepared, &opts).await?;
        let notify = |m: &str| ui.notice(m);
        let report = report_out.insert(prepared.report(&opts));
        restore::run_restore(prepared, report, &opts, &notify, &|_| {
            Confirmation::Confirmed
        })
        .await?;
        Ok(())
    }
    .await;
    if args.keep {
        cluster.keep();
        ui.notice(&format!(
            "the drill cluster keeps running: psql -h {} -p {} -U postgres  (stop it with: pg_ctl -D {}/data stop; then remove {})",
            cluster.dir.display(),
            cluster.port,
            cluster.dir.display(),
            cluster.dir.display()
        ));
    } else {
        let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    }
    result?;
    let report = report_out.as_ref().expect("made before the run");
    if !args.load.json {
        restored_notice(report, ui);
        if !args.keep {
            ui.notice("drill passed; the throwaway cluster was removed");
        }
    }
    Ok(())
}

/// A drill of tables or schemas of one database of a pg_dumpall: the throwaway cluster gets
/// that database, empty, for them to go into (a live target must have it already).
async fn drill_pick_database(
    prepared: &restore::PreparedRestore,
    opts: &a9s_recover::restore::RestoreOptions,
) -> anyhow::Result<()> {
    let Some(pick) = &opts.load.pick else {
        return Ok(());
    };
    let [db] = pick.databases.as_slice() else {
        return Ok(());
    };
    if pick.whole_databases()
        || pick.into.is_some()
        || prepared.dump_kind != a9s_recover::dump::DumpKind::PgDumpall
    {
        return Ok(());
    }
    let psql = a9s_recover::pg::Psql::new(opts.target.clone(), &opts.load.tools, &opts.shutdown)?;
    psql.query(
        None,
        &format!("CREATE DATABASE {};", a9s_recover::pick::quote_ident(db)),
    )
    .await?;
    Ok(())
}

async fn bench_cmd(args: BenchArgs, ui: Ui, shutdown: Shutdown) -> anyhow::Result<()> {
    use a9s_recover::bench::{self, BenchOptions};
    let opts = BenchOptions {
        size: args.size,
        runs: args.runs.max(1),
        work_dir: args.work_dir.clone(),
        show_progress: ui.progress,
    };
    let notify = |m: &str| ui.notice(m);
    let mut _synthetic = None;
    let (source, req, local) = match (&args.bucket, &args.backup_id) {
        (Some(bucket), Some(id)) => {
            let opts = CloudOptions {
                endpoint: args.endpoint.clone(),
                ..CloudOptions::default()
            };
            let source = open_location(bucket, None, &opts, None).await?;
            let secret = resolve_secret(&args.secret, ui, true, &shutdown)?;
            let local = match Location::parse(bucket, None)? {
                Location::Local(p) => Some(p),
                _ => None,
            };
            (source, Request::new(id.clone(), secret), local)
        }
        _ => {
            ui.notice(&format!(
                "generating a {} synthetic pg_dumpall-shaped backup",
                format_bytes(args.size)
            ));
            let b = bench::make_synthetic_backup(&opts, shutdown.clone()).await?;
            let source: Arc<dyn Source> =
                Arc::new(a9s_recover::source::LocalSource::new(b.dir.clone()));
            let req = Request::new(b.backup_id.clone(), Some(b.secret.clone()));
            let local = Some(b.dir.clone());
            _synthetic = Some(b);
            (source, req, local)
        }
    };
    let report = bench::run(source, &req, local.as_deref(), &opts, shutdown, &notify).await?;
    if args.json {
        return print_stdout(&serde_json::to_string_pretty(&report)?);
    }
    print_stdout(render::BenchText(&report).to_string().trim_end())
}

fn simulate_cmd(args: &SimulateArgs) -> anyhow::Result<()> {
    use a9s_recover::load::{simulate, trace};
    if !(0.0..=1.0).contains(&args.lock_share) {
        anyhow::bail!(a9s_recover::Error::Config(
            "--lock-share is a fraction of a chunk's work: 0 to 1".into()
        ));
    }
    let lines = trace::read(&args.trace)?;
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64));
    if cores.is_nan() || cores < 1.0 {
        anyhow::bail!(a9s_recover::Error::Config("--cores is at least 1".into()));
    }
    let summary = simulate::Summary::of(&lines);
    let rows: Vec<(u32, f64)> = (1..=args.max_connections)
        .map(|n| {
            let model = simulate::Model {
                connections: n as usize,
                cores,
                lock_share: args.lock_share,
            };
            (n, simulate::wall_time(&lines, model))
        })
        .collect();
    if args.json {
        let out = serde_json::json!({
            "trace": args.trace,
            "units": summary.units,
            "connections_in_trace": summary.connections,
            "measured_seconds": summary.wall,
            "cores": cores,
            "lock_share": args.lock_share,
            "predicted": rows.iter().map(|(n, t)| serde_json::json!({"connections": n, "seconds": t})).collect::<Vec<_>>(),
        });
        return print_stdout(&serde_json::to_string_pretty(&out)?);
    }
    let mut text = format!(
        "trace {}: {} units over {} connection(s), {:.1}s measured; predicted on {cores} cores (lock share {}):\n",
        text::escape(&args.trace.display().to_string()),
        summary.units,
        summary.connections,
        summary.wall,
        args.lock_share
    );
    text.push_str(&format!(
        "{:>12}  {:>10}  {:>8}\n",
        "connections", "seconds", "speedup"
    ));
    let base = rows.first().map_or(1.0, |r| r.1);
    for (n, t) in &rows {
        text.push_str(&format!(
            "{n:>12}  {t:>10.2}  {:>7.2}x\n",
            base / t.max(1e-9)
        ));
    }
    print_stdout(text.trim_end())
}

fn completions(shell: ShellArg) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let shell = match shell {
        ShellArg::Bash => clap_complete::Shell::Bash,
        ShellArg::Zsh => clap_complete::Shell::Zsh,
        ShellArg::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "a9s-recover", &mut out);
    print_stdout(String::from_utf8_lossy(&out).trim_end())
}

fn man_page() -> anyhow::Result<()> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    print_stdout(String::from_utf8_lossy(&out).trim_end())
}

/// Prints a line on stdout; a closed stdout is not an error worth a message.
fn print_stdout(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", text::escape_message(s)).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Err(a9s_recover::Error::BrokenPipe.into())
        }
        r => Ok(r?),
    }
}
