//! The `a9s-recover` binary: parse flags, run, map errors to exit codes.

use std::process::ExitCode;
use std::time::Duration;

use a9s_recover::text::escape_message;
use a9s_recover::{Error, Shutdown};

mod cli;

fn main() -> ExitCode {
    // No arguments at all: the help, not an error about a missing --bucket.
    if std::env::args_os().len() == 1 {
        use clap::CommandFactory;
        let _ = cli::Cli::command().print_long_help();
        return ExitCode::SUCCESS;
    }
    let args = {
        use clap::{CommandFactory, FromArgMatches};
        // `--version` (long) names the features, engines and libraries; `-V` the version.
        // Worked out only when asked: it reads /proc/self/maps.
        let mut command = cli::Cli::command();
        if std::env::args_os().any(|a| a == "--version") {
            let text = a9s_recover::build_info::LongVersion.to_string();
            command = command.long_version(&*Box::leak(text.into_boxed_str()));
        }
        let matches = command.get_matches();
        cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("a9s-recover: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A file size limit (`ulimit -f`) must fail the write, not kill us by SIGXFSZ before the
    // partial output file is removed: with a handler installed, write() returns EFBIG.
    // Ctrl-C and SIGTERM are ours before anything is printed: registered here, not in the
    // task that waits for them, which may first run after the secret prompt is on screen (a
    // Ctrl-C at it then killed us by the default action, under load).
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        const SIGXFSZ: i32 = 25;
        let _ = signal(SignalKind::from_raw(SIGXFSZ));
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    });
    let shutdown = Shutdown::new();
    if let (Ok(int), Ok(term)) = signals {
        runtime.spawn(watch_signals(shutdown.clone(), int, term));
    }
    let result = runtime.block_on(cli::run(args, shutdown));
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit_for(e),
    }
}

fn exit_for(e: anyhow::Error) -> ExitCode {
    match e.downcast_ref::<Error>() {
        // `a9s-recover ... | head`: the reader has what it wanted.
        Some(Error::BrokenPipe) => ExitCode::SUCCESS,
        Some(Error::Interrupted { signal }) => {
            eprintln!("a9s-recover: {}", escape_message(&e.to_string()));
            ExitCode::from(if *signal == "SIGTERM" { 143 } else { 130 })
        }
        Some(Error::Config(_) | Error::BadLocation { .. } | Error::Plan(_)) => {
            eprintln!("a9s-recover: error: {}", escape_message(&e.to_string()));
            ExitCode::from(2)
        }
        // Library errors already quote their cause; anyhow's chain would repeat it.
        Some(lib) => {
            eprintln!("a9s-recover: error: {}", escape_message(&lib.to_string()));
            ExitCode::FAILURE
        }
        None => {
            eprintln!("a9s-recover: error: {}", escape_message(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn watch_signals(
    shutdown: Shutdown,
    mut int: tokio::signal::unix::Signal,
    mut term: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = int.recv() => shutdown.trigger("Ctrl-C"),
        _ = term.recv() => shutdown.trigger("SIGTERM"),
    }
}
