//! Progress on stderr: bytes, rate, ETA, part N of M. Hidden unless the caller asks for it
//! (the CLI does when stderr is a terminal and `--quiet` is not given).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Every bar of the process draws through one set, so that the stream's bar and the load's
/// status line share stderr without overwriting each other.
fn bars() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A cheap, clonable progress handle; a hidden one does nothing.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress display that shows nothing.
    pub fn hidden() -> Self {
        Progress { bar: None }
    }

    /// A byte progress bar of `total` bytes on stderr, if `show`.
    pub fn bytes(total: u64, show: bool) -> Self {
        if !show {
            return Self::hidden();
        }
        let bar = bars().add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("static template"),
        );
        Progress { bar: Some(bar) }
    }

    /// A spinner counting bytes of unknown total (pack reads stdin).
    pub fn spinner(show: bool) -> Self {
        if !show {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bytes} {binary_bytes_per_sec} {msg}",
            )
            .expect("static template"),
        );
        Progress { bar: Some(bar) }
    }

    /// A status line of its own (the load's phase and what runs), under the other bars,
    /// redrawn by itself, if `show`.
    pub fn status(show: bool) -> Self {
        if !show {
            return Self::hidden();
        }
        let bar = bars().add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_msg}")
                .expect("static template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        Progress { bar: Some(bar) }
    }

    /// Adds `n` bytes.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Sets the trailing message (e.g. `part 3 of 12`).
    pub fn set_message(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
