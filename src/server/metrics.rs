//! What a listener counts about its clients: the connections it cut off and why, the HTTP/2
//! streams it reset, the requests clients abandoned, and how every request ended.
//!
//! Recorded by the task that serves each connection once it has ended, by the task of each
//! HTTP/2 stream, by the request wrapper and by the response body (the wrappers of connections,
//! streams, requests and bodies).

use prometheus::IntCounter;

use super::cutoff::Cutoff;
use super::request_end::{RequestEnd, RequestEnds};
use crate::metrics::{self, Registry, Result};

/// A listener's client metrics, with every label value resolved up front.
#[derive(Clone)]
pub struct ClientMetrics {
    /// `sidecache_client_connections_closed_total{reason}`, indexed by [`Cutoff`].
    closed: Vec<IntCounter>,
    /// `sidecache_client_streams_reset_total{reason="send_timeout"}`.
    streams_reset: IntCounter,
    /// `sidecache_client_requests_abandoned_total`.
    abandoned: IntCounter,
    /// `sidecache_requests_ended_total{outcome}`.
    ended: RequestEnds,
}

impl ClientMetrics {
    /// Registers the client metrics in `registry`.
    ///
    /// # Errors
    /// Registration failed (a name registered twice).
    pub fn register(registry: &Registry) -> Result<Self> {
        Self::build(Some(registry))
    }

    /// Metrics that count but are exposed nowhere, for a listener whose clients are not reported
    /// (the admin port, the demo origin).
    pub fn unexposed() -> Self {
        Self::build(None).expect("metric names and labels are valid")
    }

    fn build(registry: Option<&Registry>) -> Result<Self> {
        let reasons: Vec<_> = Cutoff::ALL.iter().map(|cutoff| cutoff.as_str()).collect();
        let ends: Vec<_> = RequestEnd::ALL.iter().map(|end| end.as_str()).collect();
        let scratch;
        let registry = match registry {
            Some(registry) => registry,
            None => {
                scratch = Registry::new();
                &scratch
            }
        };
        Ok(Self {
            closed: metrics::counters(
                registry,
                "sidecache_client_connections_closed_total",
                "Client connections sidecache closed on a client limit, by reason.",
                "reason",
                &reasons,
            )?,
            streams_reset: metrics::counters(
                registry,
                "sidecache_client_streams_reset_total",
                "HTTP/2 streams sidecache reset on a client limit, by reason.",
                "reason",
                &[Cutoff::Send.as_str()],
            )?
            .remove(0),
            abandoned: metrics::counter(
                registry,
                "sidecache_client_requests_abandoned_total",
                "Requests whose client reset the stream or closed the connection while sidecache worked on the answer.",
            )?,
            ended: RequestEnds::new(metrics::counters(
                registry,
                "sidecache_requests_ended_total",
                "Requests handed to the proxy, by how they ended: completed, body_aborted (after the response head), client_closed or cut_off (before it).",
                "outcome",
                &ends,
            )?),
        })
    }

    /// The counter of HTTP/2 streams reset because their client took nothing for the send
    /// timeout (for the streams' executor).
    pub(super) fn streams_reset(&self) -> IntCounter {
        self.streams_reset.clone()
    }

    /// The counter of abandoned requests (for each connection's account of them).
    pub(super) fn abandoned(&self) -> IntCounter {
        self.abandoned.clone()
    }

    /// The counters of how requests ended (for each connection's requests).
    pub(super) fn ends(&self) -> RequestEnds {
        self.ended.clone()
    }

    /// A connection that sidecache cut off for `cutoff`.
    pub(super) fn record_cutoff(&self, cutoff: Cutoff) {
        self.closed[cutoff as usize].inc();
    }
}
