//! The shutdown signals: SIGTERM or SIGINT (Ctrl-C) asks for a drain; either one again during
//! the drain asks to stop at once.

/// Completes when the process is asked to stop (SIGTERM, or SIGINT / Ctrl-C).
pub async fn signal() {
    let name = StopSignals::listen().next().await;
    tracing::info!("{name} received, draining");
}

/// The requests to stop the process (SIGTERM and SIGINT), in the order they arrive, from the
/// moment [`listen`](Self::listen) was called: one that arrives while nobody awaits
/// [`next`](Self::next) is kept for the next call, not lost.
#[derive(Debug)]
pub struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

// === impl StopSignals ===

impl StopSignals {
    /// Starts listening. A signal that cannot be listened for is logged and left to its default
    /// action (the process ends at once).
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for {name}: it ends the process at once");
                    None
                }
            };
            Self {
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for the next request to stop, and names its signal (`"SIGTERM"`, `"SIGINT"`).
    pub async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                () = next_of(&mut self.terminate) => "SIGTERM",
                () = next_of(&mut self.interrupt) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// The next delivery of `signal`; never, when it is not listened for.
#[cfg(unix)]
async fn next_of(signal: &mut Option<tokio::signal::unix::Signal>) {
    if let Some(stream) = signal
        && stream.recv().await.is_some()
    {
        return;
    }
    // Not listened for, or the stream ended (only with the runtime): nothing more will arrive.
    std::future::pending().await
}
