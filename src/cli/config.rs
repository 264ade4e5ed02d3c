//! The checked configuration between clap and the library (ripgrep's low-level arguments
//! turned into high-level ones): every flag is read here once, into the library's request and
//! option types, each default in one place (the library's own, where it has one), and nothing
//! is changed after it was built.

use a9s_recover::crypto::{Digest, Kdf, DEFAULT_PBKDF2_ITER};
use a9s_recover::pg::{ConnInfo, PgTools};
use a9s_recover::pipeline::{KdfChoice, Request};
use a9s_recover::restore::{Checks, DumpFormat, Journal, LoadOptions, RestoreOptions};
use a9s_recover::source::{AzureAuth, CloudOptions, StorageKind};
use a9s_recover::{Secret, Shutdown};

use super::{
    AzureAuthArg, FetchArgs, FormatArg, InflateArg, KdfArgs, LoadArgs, MdArg, PickArgs,
    RestoreArgs, SourceArgs, StorageArg,
};

/// The pick of `--database`, `--schema`, `--table`, …; None for the whole backup.
pub(super) fn pick(args: &PickArgs) -> anyhow::Result<Option<a9s_recover::pick::Pick>> {
    use a9s_recover::pick::{Content, Pick};
    let pick = Pick {
        databases: args.databases.clone(),
        schemas: args
            .schemas
            .iter()
            .map(|s| Pick::parse_schema(s))
            .collect::<Result<_, _>>()?,
        tables: args
            .tables
            .iter()
            .map(|t| Pick::parse_table(t))
            .collect::<Result<_, _>>()?,
        content: match (args.data_only, args.schema_only) {
            (true, _) => Content::DataOnly,
            (_, true) => Content::SchemaOnly,
            _ => Content::All,
        },
        into: args.into.clone(),
        globals: args.globals,
        no_connect: false,
        fresh: false,
    };
    pick.check()?;
    if pick.is_everything() {
        if args.globals {
            return Err(a9s_recover::Error::Config(
                "--globals is for a pick (--database, --schema, --table): without one the whole backup comes, roles and all".into(),
            )
            .into());
        }
        return Ok(None);
    }
    Ok(Some(pick))
}

pub(super) fn request(
    backup_id: &str,
    instance_id: Option<&str>,
    secret: Option<Secret>,
    kdf: &KdfArgs,
    fetch: &FetchArgs,
) -> anyhow::Result<Request> {
    if fetch.concurrency == Some(0) {
        return Err(a9s_recover::Error::Config("--concurrency must be at least 1".into()).into());
    }
    Ok(Request {
        backup_id: backup_id.to_string(),
        instance_id: instance_id.map(str::to_string),
        secret,
        kdf: kdf_choice(kdf),
        concurrency: fetch.concurrency,
        chunk_size: fetch.chunk_size,
        retries: Some(fetch.retries),
        inflate: fetch.inflate.map(|e| match e {
            InflateArg::Isal => a9s_recover::inflate::Engine::Isal,
            InflateArg::Zlib => a9s_recover::inflate::Engine::ZlibRs,
        }),
    })
}

pub(super) fn kdf_choice(args: &KdfArgs) -> KdfChoice {
    let digest = match args.md {
        MdArg::Auto => None,
        MdArg::Md5 => Some(Digest::Md5),
        MdArg::Sha256 => Some(Digest::Sha256),
        MdArg::Sha1 => Some(Digest::Sha1),
    };
    if args.pbkdf2 || args.iter.is_some() {
        KdfChoice::Fixed(Kdf::Pbkdf2 {
            digest: digest.unwrap_or(Digest::Sha256),
            iter: args.iter.unwrap_or(DEFAULT_PBKDF2_ITER),
        })
    } else {
        match digest {
            None => KdfChoice::Auto,
            Some(d) => KdfChoice::Fixed(Kdf::BytesToKey(d)),
        }
    }
}

/// How the dump is loaded, from `restore`'s and `drill`'s shared flags.
pub(super) fn load_options(load: &LoadArgs) -> anyhow::Result<LoadOptions> {
    let pg_restore_args = [
        (load.no_owner, "--no-owner"),
        (load.no_privileges, "--no-privileges"),
        (load.clean, "--clean"),
        (load.if_exists, "--if-exists"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, flag)| flag.to_string())
    .collect();
    Ok(LoadOptions {
        tools: PgTools {
            bin_dir: load.pg_bin.clone(),
        },
        format: load.format.map(|f| match f {
            FormatArg::Sql => DumpFormat::Sql,
            FormatArg::Custom => DumpFormat::Custom,
        }),
        on_error_stop: load.on_error_stop,
        allow_older_target: load.allow_older_target,
        pg_restore_args,
        jobs: load.jobs,
        trace: load.trace.clone(),
        verbose: false,
        single_pass: load.single_pass,
        direct_pg_restore: load.direct_pg_restore,
        spool_dir: load.spool_dir.clone().unwrap_or_else(std::env::temp_dir),
        pick: pick(&load.pick)?.map(std::sync::Arc::new),
    })
}

/// `restore`'s options.
pub(super) fn restore_options(
    args: &RestoreArgs,
    target: ConnInfo,
    progress: bool,
    shutdown: Shutdown,
) -> anyhow::Result<RestoreOptions> {
    // clap makes --resume require --journal and --redo-interrupted require --resume.
    let journal = match (&args.journal, args.resume) {
        (None, _) => Journal::Off,
        (Some(path), false) => Journal::New(path.clone()),
        (Some(path), true) => Journal::Resume {
            path: path.clone(),
            redo_interrupted: args.redo_interrupted,
            accept_restore_errors: args.accept_restore_errors,
        },
    };
    Ok(RestoreOptions {
        target,
        load: load_options(&args.load)?,
        journal,
        checks: Checks {
            verify: !args.no_verify,
            verify_first: !args.no_verify_first,
            verify_limits: a9s_recover::stage::verify::Limits {
                statement_timeout: std::time::Duration::from_secs(args.verify_timeout),
                ..Default::default()
            },
        },
        yes: args.yes,
        progress,
        shutdown,
    })
}

/// `drill`'s options: the default plan into the throwaway cluster, nothing to confirm.
pub(super) fn drill_options(
    load: &LoadArgs,
    target: ConnInfo,
    progress: bool,
    shutdown: Shutdown,
) -> anyhow::Result<RestoreOptions> {
    let no_globals = load.pick.no_globals;
    let mut load = load_options(load)?;
    if let Some(p) = &mut load.pick {
        let p = std::sync::Arc::make_mut(p);
        // The throwaway cluster has none of the schemas picked tables are in, and none of
        // the roles that own them: there is no live role to set back, so the globals come
        // unless --no-globals.
        p.fresh = true;
        p.globals |= !no_globals;
    }
    Ok(RestoreOptions {
        target,
        load,
        journal: Journal::Off,
        checks: Checks::default(),
        yes: true,
        progress,
        shutdown,
    })
}

/// Where the backups are and how to reach them.
pub(super) fn source(args: &SourceArgs) -> (&str, Option<StorageKind>, CloudOptions) {
    let bucket = args.bucket.as_deref().expect("clap requires --bucket");
    let kind = args.storage.map(|s| match s {
        StorageArg::Local => StorageKind::Local,
        StorageArg::S3 => StorageKind::S3,
        StorageArg::Azure => StorageKind::Azure,
    });
    let opts = CloudOptions {
        region: args.region.clone(),
        endpoint: args.endpoint.clone(),
        profile: args.profile.clone(),
        account: args.account.clone(),
        azure_auth: match args.azure_auth {
            AzureAuthArg::Auto => AzureAuth::Auto,
            AzureAuthArg::Key => AzureAuth::Key,
            AzureAuthArg::ServicePrincipal => AzureAuth::ServicePrincipal,
            AzureAuthArg::ManagedIdentity => AzureAuth::ManagedIdentity,
            AzureAuthArg::WorkloadIdentity => AzureAuth::WorkloadIdentity,
            AzureAuthArg::Cli => AzureAuth::Cli,
        },
        read_timeout: (args.read_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.read_timeout)),
    };
    (bucket, kind, opts)
}
