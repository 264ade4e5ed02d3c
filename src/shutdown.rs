//! A small shutdown handle, raced with the work in `tokio::select!` (the mini-redis habit).
//! The CLI triggers it on Ctrl-C or SIGTERM; the pipeline then stops every stage, removes
//! partial output, and returns [`crate::Error::Interrupted`].

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Clonable; every clone sees the same trigger.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    reason: Arc<OnceLock<&'static str>>,
    /// The children running now, stopped when this fires.
    children: crate::child::Children,
}

impl Shutdown {
    /// A handle that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires, recording why (`"Ctrl-C"`, `"SIGTERM"`); later calls keep the first reason.
    /// Every child process group still running is stopped at once: a psql busy with a long
    /// statement would otherwise hold its stage, and outlive us.
    pub fn trigger(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.token.cancel();
        self.children.stop_all();
    }

    /// The registry of running children that [`Shutdown::trigger`] stops.
    pub(crate) fn children(&self) -> &crate::child::Children {
        &self.children
    }

    /// The reason, once fired.
    pub fn reason(&self) -> Option<&'static str> {
        self.reason.get().copied()
    }

    /// Resolves when fired, with the reason.
    pub async fn wait(&self) -> &'static str {
        self.token.cancelled().await;
        self.reason().unwrap_or("a signal")
    }
}
