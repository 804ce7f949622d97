//! Every future the public API returns is `Send`, so that a caller can hand it to
//! `tokio::spawn` on a multi-threaded runtime. Checked when this crate compiles: the functions
//! below are type-checked, never called (nothing binds, loads or serves). The generic ones hold
//! for every type the API accepts, not only for the ones sidecache itself uses.
//!
//! The futures the public traits return (`Loader`, `Handler`, `Sink`) are `Send` by their
//! signatures and need no check here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use sidecache::admin::thread::AdminThread;
use sidecache::app::App;
use sidecache::body::Body;
use sidecache::cache::flight::Follower;
use sidecache::cache::loading::{Loader, LoadingCache, Miss};
use sidecache::config::Config;
use sidecache::http::host_match::HostMatch;
use sidecache::origin::OriginClient;
use sidecache::proxy::service::Proxy;
use sidecache::server::{self, ClientMetrics, ClientSettings, ConnectionSlots, Handler};
use sidecache::stats::Stats;
use sidecache::store::{MemoryStore, Store, Weighed, WeighedKey};
use sidecache::telemetry::Tracing;
use sidecache::writebehind::WriteBehind;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn assert_send<T: Send>(_: T) {}

#[test]
fn public_futures_are_send() {
    // Only the signatures matter; the values are never made.
    let _ = |config: &Config, tracing: Tracing, app: App| {
        assert_send(App::bind(config));
        assert_send(App::bind_with(config, tracing));
        assert_send(app.run_until(std::future::pending()));
    };
    let _ = |proxy: &Proxy| {
        assert_send(
            proxy
                .purger()
                .purge_url(&HostMatch::AnyPort("host".into()), "/path"),
        );
        assert_send(proxy.purger().purge_prefix(&HostMatch::Any, "/prefix"));
    };
    let _ = |origin: &OriginClient, request: http::Request<Body>, body: Incoming| {
        assert_send(origin.send(request));
        assert_send(origin.buffer_body(body, 1024, 0));
    };
    let _ = |writebehind: Arc<WriteBehind>, stop: CancellationToken| {
        assert_send(writebehind.value("views"));
        assert_send(writebehind.flush());
        assert_send(writebehind.close(Duration::from_secs(1)));
        assert_send(writebehind.run(stop));
    };
    let _ = |stats: &Stats, stop: CancellationToken| {
        assert_send(stats.rotate_every_window(stop));
    };
    let _ = |admin: AdminThread| assert_send(admin.join());
    let _ = |tracing: &Tracing| assert_send(tracing.shutdown(Duration::from_secs(1)));
    assert_send(sidecache::shutdown::signal());
}

/// The loading cache's futures, for any loader.
#[expect(
    dead_code,
    reason = "type-checked, never called: that is the assertion"
)]
fn loading_cache_futures_are_send<L: Loader>(
    cache: &LoadingCache<L>,
    key: &L::Key,
    request: &L::Request,
    miss: Miss<L::Value>,
) {
    assert_send(cache.get(key, request));
    assert_send(cache.load(key, request, miss));
    assert_send(cache.load_uncached(key, request));
    assert_send(cache.invalidate_matching(|_| true));
    assert_send(cache.drain());
}

/// A single-flight follower's wait, for any value, error and context that can cross threads.
#[expect(
    dead_code,
    reason = "type-checked, never called: that is the assertion"
)]
fn follower_wait_is_send<V, E, C>(follower: &mut Follower<V, E, C>)
where
    V: Clone + Send + Sync,
    E: Send + Sync,
    C: Send + Sync,
{
    assert_send(follower.wait(Duration::from_secs(1)));
}

/// The store's walks, for any key and value it accepts.
#[expect(
    dead_code,
    reason = "type-checked, never called: that is the assertion"
)]
fn store_walk_is_send<K, V>(store: &MemoryStore<K, V>)
where
    K: std::hash::Hash + Eq + Clone + WeighedKey + Send + Sync + 'static,
    V: Weighed + Clone + Send + Sync + 'static,
{
    assert_send(store.remove_matching(|_| true));
    assert_send(store.list_matching(|_| true, 10));
}

/// The server, for any handler and any shutdown signal that can cross threads.
#[expect(
    dead_code,
    reason = "type-checked, never called: that is the assertion"
)]
fn serve_is_send<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send,
    limits: &ClientSettings,
    slots: ConnectionSlots,
    metrics: ClientMetrics,
) {
    assert_send(server::serve(
        listener,
        handler,
        shutdown,
        Duration::from_secs(1),
        limits,
        slots,
        metrics,
    ));
}
