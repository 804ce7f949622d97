//! The proxy's request path, as one list of phases (see the [module docs](super)):
//! classify → lookup → load → respond → record, each in a module of its own.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use http::{Request, Response, Version};
use tracing::Instrument;

use super::HttpCache;
use super::access_log::{AccessLogFormat, AccessRequest};
use super::classify::{self, Classified};
use super::forward;
use super::load;
use super::lookup::{self, Looked};
use super::metrics::ProxyMetrics;
use super::part_store::PartStore;
use super::partial;
use super::purge::Purger;
use super::record::{ACCESS_LOG, Recorder, RequestCtx};
use super::request::{CarriedFields, RequestHead};
use super::request_counts::RequestCounts;
use super::respond::{self, Answered};
use super::settings::RequestSettings;
use super::trace::RequestTrace;
use crate::body::{Body, RequestBody};
use crate::cache::loading::Miss;
use crate::http::key::CacheKey;
use crate::http::stored::object::CachedObject;
use crate::server::{Client, Handled, Handler};
use crate::stats::Stats;
use crate::telemetry::sampling::RequestSampler;

/// The caching proxy: the cache and the origin behind it.
pub struct Proxy {
    cache: HttpCache,
    /// The parts of representations whose whole response is not stored.
    parts: PartStore,
    /// Removes stored URLs (purges, and after unsafe requests).
    purger: Purger,
    /// Requests received and not yet answered (a saturation gauge).
    in_flight: AtomicUsize,
    /// Where every request is recorded when it is answered.
    recorder: Recorder,
    /// With tracing on, the sampler each request applies before opening its server span.
    traced: Option<RequestSampler>,
    /// What one request may carry.
    limits: RequestSettings,
}

/// How far the phases that need no waiting got.
enum Routed {
    /// Answered: a hit, or one of sidecache's own answers.
    Now(Answered),
    /// The rest needs the origin or another caller's load.
    Later(Deferred),
}

/// The rest of a request that cannot be answered without waiting; it owns all it needs, so the
/// future that answers it owns it too.
enum Deferred {
    /// The store could not serve a cacheable request: load it (or wait for the load under way).
    Load(RequestHead, Miss<Arc<CachedObject>>),
    /// A `no-store` request the store could not serve: loaded for this client only.
    Unstored(RequestHead),
    /// A `Range` request whose response would not be stored: sent with its `Range`.
    RangeAround(RequestHead),
    /// A `Range` request answered from stored parts, or stored as one.
    FromParts(RequestHead),
    /// Around the cache, to the origin.
    Forward {
        head: RequestHead,
        version: Version,
        body: RequestBody,
        /// Whether a success invalidates what it touched (the unsafe methods).
        invalidates: bool,
    },
}

/// A request from its arrival to its record: counted in flight while it lives, and holding the
/// proxy for the future that answers it. Dropped unrecorded (its client went away before the
/// answer, or sidecache closed the connection), it is recorded as unanswered.
struct Handling {
    proxy: Arc<Proxy>,
    ctx: RequestCtx,
    /// The connection of a request that waits for its answer, which tells how it ends if it is
    /// dropped first; `None` for one answered at once, and once recorded.
    waiting_on: Option<Client>,
}

impl Handling {
    fn enter(proxy: Arc<Proxy>, ctx: RequestCtx) -> Self {
        proxy.in_flight.fetch_add(1, Ordering::SeqCst);
        Self {
            proxy,
            ctx,
            waiting_on: None,
        }
    }

    /// The request waits for its answer on `client`'s connection.
    fn wait_on(mut self, client: &Client) -> Self {
        self.waiting_on = Some(client.clone());
        self
    }

    /// Records the request as `answered` says; hands its response back.
    fn record(mut self, answered: Answered) -> Response<Body> {
        self.waiting_on = None;
        self.proxy.recorder.record(&mut self.ctx, answered)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.proxy.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(client) = &self.waiting_on {
            self.proxy
                .recorder
                .record_unanswered(&mut self.ctx, client.unanswered_end());
        }
    }
}

// === impl Proxy ===

impl Proxy {
    /// A proxy answering from `cache` (and from the stored `parts` of representations, which
    /// its loader completes), counting into `metrics` and `stats`, holding requests to `limits`
    /// (`--max-headers`, `--max-request-body`, ...).
    pub fn new(
        cache: HttpCache,
        parts: PartStore,
        metrics: ProxyMetrics,
        stats: Arc<Stats>,
        limits: RequestSettings,
    ) -> Self {
        Self {
            purger: Purger::new(
                cache.clone(),
                parts.clone(),
                metrics.clone(),
                Arc::clone(&stats),
            ),
            cache,
            parts,
            in_flight: AtomicUsize::new(0),
            recorder: Recorder {
                metrics,
                stats,
                request_counts: None,
                access_log: AccessLogFormat::Off,
            },
            traced: None,
            limits,
        }
    }

    /// Traces the requests `sampler` keeps (tracing on; see [`crate::telemetry`]).
    pub fn with_tracing(mut self, sampler: Option<RequestSampler>) -> Self {
        self.traced = sampler;
        self
    }

    /// Counts requests per cache key (`--writebehind-count-requests`), under the names
    /// `RequestCounts::name` gives.
    pub fn count_requests(mut self, counts: RequestCounts) -> Self {
        self.recorder.request_counts = Some(counts);
        self
    }

    /// Writes one access line per request in `format` (`--access-log`).
    pub fn access_log(mut self, format: AccessLogFormat) -> Self {
        self.recorder.access_log = format;
        self
    }

    /// Requests received and not yet answered.
    pub fn in_flight_requests(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The cache (for shutdown and inspection).
    pub fn cache(&self) -> &HttpCache {
        &self.cache
    }

    /// The windowed stats.
    pub fn stats(&self) -> &Stats {
        &self.recorder.stats
    }

    /// What removes stored URLs (the admin port's purges).
    pub fn purger(&self) -> &Purger {
        &self.purger
    }

    /// The phases that need no waiting: classify, then (for a cacheable request) look it up.
    /// A hit, or one of sidecache's own answers, is answered here; anything that needs the origin
    /// or another caller's load is handed back as what the deferred phases will do.
    fn answer_now(
        &self,
        parts: http::request::Parts,
        carried: CarriedFields,
        body: RequestBody,
        client: &Client,
        ctx: &RequestCtx,
    ) -> Routed {
        let unsampled = ctx.trace.unsampled_ids();
        match classify::classify(&self.limits, parts, carried, client.addr().ip(), unsampled) {
            Classified::Answered(response, decision) => {
                Routed::Now(Answered::new(response, decision))
            }
            Classified::Pass {
                head,
                version,
                invalidates,
            } => Routed::Later(Deferred::Forward {
                head,
                version,
                body,
                invalidates,
            }),
            Classified::Cacheable(head) => match lookup::lookup(&self.cache, &self.parts, &head) {
                Looked::Served(outcome) => Routed::Now(respond::outcome(&head, outcome)),
                Looked::NotCached => Routed::Now(respond::not_cached()),
                Looked::Unstored => Routed::Later(Deferred::Unstored(head)),
                Looked::RangeAround => Routed::Later(Deferred::RangeAround(head)),
                Looked::FromParts => Routed::Later(Deferred::FromParts(head)),
                Looked::Load(miss) => Routed::Later(Deferred::Load(head, miss)),
            },
        }
    }

    /// The phases that wait: load (single-flight, or for this client alone), or forward.
    async fn answer_later(&self, deferred: Deferred) -> Answered {
        match deferred {
            Deferred::Load(head, miss) => {
                let outcome = self.cache.load(&head.key, &head, miss).await;
                respond::outcome(&head, outcome)
            }
            Deferred::Unstored(head) => load::unstored(&self.cache, &head).await,
            Deferred::RangeAround(head) => {
                forward::range(self.cache.loader().origin(), &head).await
            }
            Deferred::FromParts(head) => partial::answer(&self.cache, &self.parts, &head).await,
            Deferred::Forward {
                head,
                version,
                body,
                invalidates,
            } => {
                let origin = self.cache.loader().origin();
                let limits = &self.limits;
                forward::forward(
                    origin,
                    limits,
                    &self.purger,
                    head,
                    version,
                    body,
                    invalidates,
                )
                .await
            }
        }
    }
}

impl Handler for Proxy {
    /// Answers one client request. Never fails: every error becomes a response here.
    ///
    /// This is the outermost wrapper: it counts the request in flight, starts its clock, and
    /// (with tracing on) runs it inside its server span; then the phases run, and the request is
    /// recorded (as unanswered if it is dropped first). A request answered at once (a hit) is
    /// answered and recorded before this returns, with no future at all; the rest is answered by
    /// a boxed future, in a turn of the connection's share of the origin.
    fn handle(
        self: &Arc<Self>,
        request: Request<RequestBody>,
        connection: &Client,
    ) -> Handled<impl Future<Output = Response<Body>> + Send + use<>> {
        let (parts, body) = request.into_parts();
        // One pass over the fields tells the trace and the cache which of them to look up.
        let carried = CarriedFields::of(&parts.headers);
        let handling = Handling::enter(Arc::clone(self), self.open(&parts, carried, connection));
        let ctx = &handling.ctx;
        let routed = {
            let _entered = ctx.trace.span().enter();
            self.answer_now(parts, carried, body, connection, ctx)
        };
        match routed {
            Routed::Now(answered) => Handled::Now(handling.record(answered)),
            // A request whose key was loaded while it waited for its turn costs no second load
            // (the load's leader looks in the store again first).
            Routed::Later(deferred) => {
                let mut handling = handling.wait_on(connection);
                Handled::Later(Box::pin(connection.in_turn(async move {
                    let proxy = &handling.proxy;
                    let span = handling.ctx.trace.span();
                    // Timed only for the access line.
                    let waited_from = handling.ctx.access.is_some().then(Instant::now);
                    let answered = proxy.answer_later(deferred);
                    let answered = if span.is_none() {
                        answered.await
                    } else {
                        answered.instrument(span.clone()).await
                    };
                    handling.ctx.upstream = waited_from.map(|from| from.elapsed());
                    handling.record(answered)
                })))
            }
        }
    }
}

impl Proxy {
    /// Starts a request's clock and (with tracing on) its server span.
    fn open(
        &self,
        parts: &http::request::Parts,
        carried: CarriedFields,
        connection: &Client,
    ) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            trace: match &self.traced {
                Some(sampler) => RequestTrace::open(parts, carried, connection.addr(), sampler),
                None => RequestTrace::off(),
            },
            // Kept for the access line (an inline method; the URI only when the line is logged).
            method: parts.method.clone(),
            logged_uri: tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG)
                .then(|| parts.uri.clone()),
            // Only worked out here when requests are counted; `classify` keys the request again.
            counted_key: self
                .recorder
                .request_counts
                .as_ref()
                .and_then(|_| CacheKey::from_request(&parts.uri, &parts.headers).ok()),
            access: (self.recorder.access_log != AccessLogFormat::Off)
                .then(|| Box::new(AccessRequest::of(parts, connection.addr()))),
            upstream: None,
        }
    }
}
