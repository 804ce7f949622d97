//! Builds the parts from a [`Config`], binds the listeners, serves, and drains in order.
//!
//! Tests run exactly what the binary runs: [`App::bind`] (or [`App::bind_with`], to export spans)
//! then [`App::run_until`] with a future of their choosing as the shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::Uri;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::thread::AdminThread;
use crate::admin::{Admin, AdminToken, Readiness};
use crate::cache::loading::{LoadingCache, LoadingSettings};
use crate::config::Config;
use crate::demo::DemoOrigin;
use crate::http::policy::PolicySettings;
use crate::metrics::{self, Registry};
use crate::origin::connector::OriginSlots;
use crate::origin::metrics::OriginMetrics;
use crate::origin::{OriginBuildError, OriginClient, OriginConfig, OriginSettings};
use crate::proxy::loader::OriginLoader;
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::part_store::PartStore;
use crate::proxy::request_counts::RequestCounts;
use crate::proxy::service::Proxy;
use crate::server::{self, ClientMetrics, ClientSettings, ConnectionSlots, Drained};
use crate::stats::Stats;
use crate::store::Store;
use crate::store::{MemoryStore, StoreMetrics};
use crate::telemetry::Tracing;
use crate::writebehind::{self, WriteBehind, WriteBehindMetrics};

/// The least time the final write-behind flush gets at shutdown, even when the connection drain
/// used the whole grace: enough to try the sink once and write the recovery file.
const FINAL_FLUSH_FLOOR: Duration = Duration::from_secs(1);

/// The least time the span exporter gets to send what is queued at shutdown.
const SPAN_FLUSH_FLOOR: Duration = Duration::from_millis(100);

/// A bound, ready-to-serve sidecache.
pub struct App {
    proxy_listener: TcpListener,
    /// Where the admin endpoints listen (on their own thread).
    admin_addr: SocketAddr,
    /// The admin listener's thread and runtime, serving once [`App::run_until`] runs.
    admin: AdminThread,
    /// The embedded demo origin, when no origin was configured.
    demo: Option<TcpListener>,
    proxy: Arc<Proxy>,
    readiness: Readiness,
    /// The write-behind counters: flushed on their interval while serving, finally at the drain.
    writebehind: Arc<WriteBehind>,
    shutdown_grace: Duration,
    /// What clients of every listener may ask.
    client_limits: ClientSettings,
    /// The proxy port's connection slots (their use is the open-connection gauge).
    proxy_slots: ConnectionSlots,
    /// What the proxy port counts about its clients.
    client_metrics: ClientMetrics,
    /// The span pipeline, flushed last when draining.
    tracing: Tracing,
    /// The metrics registry the admin port exposes, for parts built after the app (reloads).
    registry: Registry,
    /// The admin endpoints' token, replaceable while serving.
    admin_token: AdminToken,
}

/// Why the app could not start.
///
/// `Display` says what failed at this layer; the cause is the error's
/// [`source`](std::error::Error::source), for the caller to print as a chain.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not be bound.
    #[error(
        "{option} {addr}: cannot listen there (a port in use, or an address this host does not have); choose a free port on one of this host's addresses"
    )]
    Bind {
        /// The option that names the address (`--listen`, `--admin-listen`), or what the
        /// listener is for.
        option: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The origin URL cannot be used.
    #[error(transparent)]
    Origin(OriginBuildError),
    /// A metric could not be registered (a bug: a name registered twice).
    #[error("cannot register the metrics")]
    Metrics(#[source] prometheus::Error),
    /// The write-behind sink cannot be opened or the recovery file cannot be read.
    #[error(transparent)]
    WriteBehind(writebehind::flusher::OpenError),
    /// The admin listener's thread or runtime could not be started.
    #[error("cannot start the admin thread")]
    AdminThread(#[source] std::io::Error),
}

// === impl AppError ===

impl AppError {
    /// The process exit code for this error: [`EX_USAGE`](crate::config::EX_USAGE) (64) when an
    /// address or a file the configuration names cannot be used (a listener, the write-behind
    /// sink or recovery file), as for any other configuration error; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::WriteBehind(_) => 64,
            Self::Bind { option, .. } if option.starts_with("--") => 64,
            Self::Bind { .. } | Self::Origin(_) | Self::Metrics(_) | Self::AdminThread(_) => 1,
        }
    }
}

// === impl App ===

impl App {
    /// Builds everything from `config` and binds the listeners (and the demo origin, if no origin
    /// is configured), with tracing off. Nothing is served until [`run_until`](Self::run_until).
    ///
    /// # Errors
    /// A port cannot be bound, or the origin URL is unusable.
    pub async fn bind(config: &Config) -> Result<Self, AppError> {
        Self::bind_with(config, Tracing::disabled()).await
    }

    /// Like [`bind`](Self::bind), with `tracing` as the span pipeline: when it is enabled every
    /// request opens a server span, and the drain flushes the pipeline last.
    ///
    /// # Errors
    /// A port cannot be bound, or the origin URL is unusable.
    pub async fn bind_with(config: &Config, tracing: Tracing) -> Result<Self, AppError> {
        let proxy_listener = bind("--listen", config.proxy.listen).await?;
        let admin_listener = bind("--admin-listen", config.admin.listen).await?;
        let (demo, origin_url) = match &config.origin.url {
            Some(url) => (None, url.clone()),
            None => {
                let listener =
                    bind("the demo origin", SocketAddr::from(([127, 0, 0, 1], 0))).await?;
                let url = demo_url(&listener);
                (Some(listener), url)
            }
        };
        let registry = metrics::new_registry().map_err(AppError::Metrics)?;
        tracing
            .span_counts()
            .register(&registry)
            .map_err(AppError::Metrics)?;
        let store_metrics = StoreMetrics::register(&registry).map_err(AppError::Metrics)?;
        let store = MemoryStore::new(config.cache.capacity_bytes, move |event| {
            store_metrics.record(event);
        });
        let origin = OriginClient::new(
            OriginSettings {
                url: origin_url,
                connect_timeout: config.origin.connect_timeout,
                first_byte_timeout: config.origin.first_byte_timeout,
                body_timeout: config.origin.body_timeout,
                read_timeout: config.origin.read_timeout,
                pool_idle_timeout: config.origin.pool_idle_timeout,
                host_header: config.proxy.host_header,
                max_connections: config.origin.max_connections,
            },
            OriginMetrics::register(&registry).map_err(AppError::Metrics)?,
        )
        .map_err(AppError::Origin)?;
        register_origin_gauges(&registry, origin.slots()).map_err(AppError::Metrics)?;
        let policy = PolicySettings {
            max_heuristic_freshness: config.cache.max_heuristic_freshness,
            default_ttl: config.cache.default_ttl,
            grace: config.cache.grace,
            ..PolicySettings::default()
        };
        let proxy_metrics = ProxyMetrics::register(&registry).map_err(AppError::Metrics)?;
        let parts = PartStore::new(config.part_settings());
        let loader = OriginLoader::new(
            origin,
            policy,
            config.cache.ttl_overrides.clone(),
            config.cache.max_object_bytes,
            proxy_metrics.clone(),
            parts.clone(),
        );
        let cache = LoadingCache::new(
            loader,
            store,
            LoadingSettings {
                coalesce_timeout: config.cache.coalesce_timeout,
                load_timeout: longest_load(&config.origin),
                hit_for_miss_ttl: config.cache.hit_for_miss_ttl,
                // Markers live for seconds: a sixteenth of the cache's room holds far more keys
                // than a burst of uncacheable URLs needs.
                hit_for_miss_capacity_bytes: (config.cache.capacity_bytes / 16).max(1 << 20),
                max_waiters_per_key: config.cache.max_waiters_per_key,
            },
        );
        let stats = Arc::new(Stats::new(config.telemetry.stats_window, SystemTime::now()));
        let writebehind = Arc::new(
            WriteBehind::open(
                &config.writebehind,
                WriteBehindMetrics::register(&registry).map_err(AppError::Metrics)?,
            )
            .map_err(AppError::WriteBehind)?,
        );
        writebehind
            .register_pending_keys(&registry)
            .map_err(AppError::Metrics)?;
        let mut proxy = Proxy::new(
            cache,
            parts,
            proxy_metrics,
            Arc::clone(&stats),
            config.request_settings(),
        )
        .with_tracing(tracing.request_sampler())
        .access_log(config.proxy.access_log);
        if config.writebehind.count_requests {
            proxy = proxy.count_requests(RequestCounts::new(
                Arc::clone(&writebehind),
                config.writebehind.count_query,
            ));
        }
        let proxy = Arc::new(proxy);
        register_state_gauges(&registry, &proxy).map_err(AppError::Metrics)?;
        let client_limits = ClientSettings::from(&config.client);
        let proxy_slots = ConnectionSlots::new(client_limits.max_connections);
        register_connection_gauges(&registry, &proxy_slots).map_err(AppError::Metrics)?;
        let client_metrics = ClientMetrics::register(&registry).map_err(AppError::Metrics)?;
        let readiness = Readiness::new();
        let admin = Arc::new(
            Admin::new(
                proxy.cache().clone(),
                Arc::clone(&stats),
                proxy.purger().clone(),
                registry.clone(),
                config.admin.token.clone(),
                readiness.clone(),
            )
            .with_counters(Arc::clone(&writebehind)),
        );
        let admin_addr = local_addr(&admin_listener);
        let admin_token = admin.token().clone();
        // The admin port has the proxy's client limits, and connection slots of its own.
        let admin = AdminThread::spawn(
            admin_listener,
            admin,
            client_limits.clone(),
            config.shutdown_grace,
        )
        .map_err(AppError::AdminThread)?;
        // Startup is complete: both listeners are bound and the write-behind recovery file, if
        // an earlier run left one, is read and its batches queued ahead of any new increment.
        // Readiness does not wait for the sink to confirm them: counters are off the request
        // path, and a sink that is down must not keep the cache out of service.
        readiness.open();
        Ok(Self {
            proxy_listener,
            admin_addr,
            admin,
            demo,
            proxy,
            readiness,
            writebehind,
            shutdown_grace: config.shutdown_grace,
            client_limits,
            proxy_slots,
            client_metrics,
            tracing,
            registry,
            admin_token,
        })
    }

    /// Where the proxy listens.
    pub fn proxy_addr(&self) -> SocketAddr {
        local_addr(&self.proxy_listener)
    }

    /// Where the admin endpoints listen.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Where the embedded demo origin listens, if it runs.
    pub fn demo_addr(&self) -> Option<SocketAddr> {
        self.demo.as_ref().map(local_addr)
    }

    /// The proxy (for tests that look inside the cache).
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// The metrics registry the admin port exposes.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The token the admin endpoints ask for, replaceable while serving.
    pub fn admin_token(&self) -> &AdminToken {
        &self.admin_token
    }

    /// The write-behind counters (for tests that flush or inspect them).
    pub fn writebehind(&self) -> &Arc<WriteBehind> {
        &self.writebehind
    }

    /// Serves until `shutdown` completes, then drains in order: report not-ready, stop accepting,
    /// let in-flight requests finish (at most the shutdown grace), wait for background loads,
    /// final write-behind flush (refusing increments from then on; at most the shutdown grace,
    /// then the recovery file), stop the admin listener and the demo origin, and export the spans
    /// still queued (within what is left of the grace).
    ///
    /// The admin endpoints are served on a thread of their own (see [`AdminThread`]); if this
    /// future is dropped before it completes, that thread stops too.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Drained {
        let stop_others = CancellationToken::new();
        // Stops the admin thread even if this future is dropped half-way.
        let _stop_on_drop = stop_others.clone().drop_guard();
        self.admin.serve_until(stop_others.clone());
        // The demo origin has the proxy's limits, and slots of its own.
        let limits = self.client_limits;
        let demo = self.demo.map(|listener| {
            let (limits, slots) = (limits.clone(), ConnectionSlots::new(limits.max_connections));
            let stop = stop_others.clone().cancelled_owned();
            let grace = self.shutdown_grace;
            tokio::spawn(async move {
                let demo = Arc::new(DemoOrigin::default());
                let metrics = ClientMetrics::unexposed();
                server::serve(listener, demo, stop, grace, &limits, slots, metrics).await
            })
        });
        let stop_flusher = CancellationToken::new();
        let flusher = tokio::spawn(Arc::clone(&self.writebehind).run(stop_flusher.clone()));
        let rotation = tokio::spawn({
            let (proxy, stop) = (Arc::clone(&self.proxy), stop_others.clone());
            async move { proxy.stats().rotate_every_window(stop).await }
        });
        let readiness = self.readiness.clone();
        let (draining_tx, draining) = tokio::sync::oneshot::channel::<Instant>();
        let drained = server::serve(
            self.proxy_listener,
            Arc::clone(&self.proxy),
            async move {
                shutdown.await;
                let _ = draining_tx.send(Instant::now());
                readiness.set_draining();
            },
            self.shutdown_grace,
            &limits,
            self.proxy_slots,
            self.client_metrics,
        )
        .await;
        // One deadline bounds the whole drain: each later step gets what is left of the grace,
        // with a short floor for the steps that must at least try (the final flush, the spans).
        let started = draining.await.unwrap_or_else(|_| Instant::now());
        let left = |floor: Duration| {
            self.shutdown_grace
                .saturating_sub(started.elapsed())
                .max(floor)
        };
        let loads = tokio::time::timeout(left(Duration::ZERO), self.proxy.cache().drain()).await;
        if loads.is_err() {
            tracing::warn!("background loads still running at the end of the grace period");
        }
        stop_flusher.cancel();
        join_logged(flusher, "write-behind flusher").await;
        // Logs its outcome, including where a recovery file was written.
        self.writebehind.close(left(FINAL_FLUSH_FLOOR)).await;
        stop_others.cancel();
        if self.admin.join().await == Drained::TimedOut {
            tracing::warn!(
                "admin connections still open at the end of the grace period were dropped"
            );
        }
        join_logged(rotation, "stats rotation").await;
        if let Some(demo) = demo {
            join_logged(demo, "demo origin").await;
        }
        if drained == Drained::TimedOut {
            tracing::warn!("connections still open at the end of the grace period were dropped");
        }
        // Last, so the spans of the final requests and loads are among those exported.
        self.tracing.shutdown(left(SPAN_FLUSH_FLOOR)).await;
        drained
    }
}

/// Gauges read from the components at scrape time: utilisation (entries, bytes, capacity) and
/// saturation (loads and requests in flight).
fn register_state_gauges(registry: &Registry, proxy: &Arc<Proxy>) -> metrics::Result<()> {
    let store = proxy.cache().store().clone();
    let capacity = store.capacity_bytes() as f64;
    metrics::state_gauge(
        registry,
        "sidecache_capacity_bytes",
        "The cache's byte bound.",
        move || capacity,
    )?;
    let entries = store.clone();
    metrics::state_gauge(
        registry,
        "sidecache_entries",
        "Stored URLs (each holding one or more Vary variants).",
        move || entries.entry_count() as f64,
    )?;
    metrics::state_gauge(
        registry,
        "sidecache_size_bytes",
        "Bytes stored, as weighed against the capacity (bodies, header fields, bookkeeping).",
        move || store.size_bytes() as f64,
    )?;
    let cache = proxy.cache().clone();
    metrics::state_gauge(
        registry,
        "sidecache_inflight_loads",
        "Origin loads under way (one per key being loaded).",
        move || cache.in_flight() as f64,
    )?;
    let cache = proxy.cache().clone();
    metrics::state_gauge(
        registry,
        "sidecache_coalesce_waiting",
        "Requests waiting right now for another request's origin load.",
        move || cache.waiting() as f64,
    )?;
    let proxy = Arc::clone(proxy);
    metrics::state_gauge(
        registry,
        "sidecache_inflight_requests",
        "Proxied requests received and not yet answered.",
        move || proxy.in_flight_requests() as f64,
    )
}

/// The proxy port's connections: how many are open, and the limit.
fn register_connection_gauges(registry: &Registry, slots: &ConnectionSlots) -> metrics::Result<()> {
    let max = slots.max() as f64;
    metrics::state_gauge(
        registry,
        "sidecache_client_connections_max",
        "Most client connections the proxy port holds open at once (--max-connections); beyond it, new ones wait in the listen backlog.",
        move || max,
    )?;
    let slots = slots.clone();
    metrics::state_gauge(
        registry,
        "sidecache_client_connections",
        "Client connections open on the proxy port.",
        move || slots.open() as f64,
    )
}

/// The origin's connections: how many are open, and the limit.
fn register_origin_gauges(registry: &Registry, slots: &OriginSlots) -> metrics::Result<()> {
    let max = slots.max() as f64;
    metrics::state_gauge(
        registry,
        "sidecache_origin_connections_max",
        "Most connections open to the origin at once (--origin-max-connections).",
        move || max,
    )?;
    let slots = slots.clone();
    metrics::state_gauge(
        registry,
        "sidecache_origin_connections",
        "Connections open to the origin, busy or idle in the pool.",
        move || slots.open() as f64,
    )
}

async fn bind(option: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind {
            option,
            addr,
            source,
        })
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound TCP listener has a local address")
}

fn demo_url(listener: &TcpListener) -> Uri {
    format!("http://{}", local_addr(listener))
        .parse()
        .expect("http:// and a socket address make a URL")
}

/// Waits for a background task to end. One that panicked or was cancelled is logged: the drain
/// goes on without it, but an operator must hear that part of the shutdown did not run.
async fn join_logged<T>(task: JoinHandle<T>, name: &str) {
    if let Err(error) = task.await {
        tracing::error!(task = name, %error, "a background task failed during shutdown");
    }
}

/// The longest an origin load can take under `origin`'s timeouts: waiting for a connection slot
/// and connecting, the response head, and the body, twice over for the head (a revalidation
/// answered by a 304 that does not fit is asked again).
fn longest_load(origin: &OriginConfig) -> Duration {
    (origin.connect_timeout * 2 + origin.first_byte_timeout) * 2 + origin.body_timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::CapturedLog;

    #[tokio::test]
    async fn a_task_that_failed_at_shutdown_is_logged_with_its_name() {
        let captured = CapturedLog::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        join_logged(tokio::spawn(async {}), "quiet task").await;
        let failing = tokio::spawn(async { panic!("the task broke") });
        join_logged(failing, "failing task").await;

        let text = captured.text();
        assert!(!text.contains("quiet task"), "{text}");
        let line = text
            .lines()
            .find(|line| line.contains("a background task failed during shutdown"))
            .unwrap_or_else(|| panic!("no line for the failed task: {text}"));
        assert!(line.contains("task=\"failing task\""), "{line}");
        assert!(line.contains("panicked"), "{line}");
    }
}
