//! The admin listener's own thread and current-thread runtime (as linkerd2-proxy runs its
//! admin): `/metrics`, `/readyz` and `/healthz` answer while the runtime serving the proxy is
//! saturated, and admin work (a scrape, a purge walking the store, a large counters view) never
//! takes a turn from the requests that runtime serves.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::Admin;
use crate::server::{self, ClientMetrics, ClientSettings, ConnectionSlots, Drained};

/// The admin listener's thread: started when the app is bound, serving once
/// [`serve_until`](Self::serve_until) is called.
///
/// # Shutdown
///
/// When the token given to [`serve_until`](Self::serve_until) is cancelled, the thread stops
/// accepting, drains its connections (at most the grace), shuts its runtime down and ends;
/// [`join`](Self::join) waits for that without blocking the caller's runtime. Dropped before it
/// serves, the thread ends at once.
pub struct AdminThread {
    /// Tells the thread to serve, and until what; dropped unsent, it ends the thread.
    serve: Option<oneshot::Sender<CancellationToken>>,
    /// How the drain went, sent as the thread's last act.
    drained: oneshot::Receiver<Drained>,
}

/// What the thread needs to serve.
struct Serving {
    listener: TcpListener,
    admin: Arc<Admin>,
    limits: ClientSettings,
    grace: Duration,
}

// === impl AdminThread ===

impl AdminThread {
    /// Moves `listener` to a new thread named `sidecache-admin` with a runtime of its own, where
    /// `admin` will answer it with `limits` (and connection slots of its own) and drain within
    /// `grace`. The thread logs through the caller's default subscriber.
    ///
    /// # Errors
    ///
    /// The runtime or the thread could not be created, or the listener could not be moved to
    /// the runtime.
    pub fn spawn(
        listener: TcpListener,
        admin: Arc<Admin>,
        limits: ClientSettings,
        grace: Duration,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("sidecache-admin")
            .build()?;
        // Registered with the admin runtime's reactor instead of the caller's.
        let listener = {
            let listener = listener.into_std()?;
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let serving = Serving {
            listener,
            admin,
            limits,
            grace,
        };
        let logs = tracing::dispatcher::get_default(tracing::Dispatch::clone);
        let (serve, start) = oneshot::channel();
        let (done, drained) = oneshot::channel();
        std::thread::Builder::new()
            .name("sidecache-admin".into())
            .spawn(move || {
                let _logs = tracing::dispatcher::set_default(&logs);
                let grace = serving.grace;
                let outcome = runtime.block_on(async move {
                    match start.await {
                        Ok(stop) => serving.run(stop).await,
                        // The app was dropped without serving.
                        Err(_) => Drained::Cleanly,
                    }
                });
                // What is left on the runtime (a sink read on the blocking pool) gets at most
                // the grace too.
                runtime.shutdown_timeout(grace);
                let _ = done.send(outcome);
            })?;
        Ok(Self {
            serve: Some(serve),
            drained,
        })
    }

    /// Starts serving, until `stop` is cancelled.
    pub fn serve_until(&mut self, stop: CancellationToken) {
        if let Some(serve) = self.serve.take() {
            // The thread waits for this; it can only be gone if its runtime failed, and then
            // `join` reports the end.
            let _ = serve.send(stop);
        }
    }

    /// Waits until the thread has drained its connections and ended; says how the drain went.
    pub async fn join(self) -> Drained {
        drop(self.serve);
        // The thread sends as its last act; without an answer it panicked, and whatever it
        // served was dropped, not drained.
        self.drained.await.unwrap_or(Drained::TimedOut)
    }
}

// === impl Serving ===

impl Serving {
    async fn run(self, stop: CancellationToken) -> Drained {
        let slots = ConnectionSlots::new(self.limits.max_connections);
        server::serve(
            self.listener,
            self.admin,
            stop.cancelled_owned(),
            self.grace,
            &self.limits,
            slots,
            ClientMetrics::unexposed(),
        )
        .await
    }
}
