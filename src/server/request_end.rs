//! How each request a listener handed to its handler ended: the label of
//! `sidecache_requests_ended_total`, counted once per request by whatever held it last (the
//! request wrapper before its answer, the response body after).

use std::sync::Arc;

use prometheus::IntCounter;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RequestEnd {
    /// Its whole response was handed to the connection.
    Completed,
    /// Its response head was ready, and the body broke off before its end: the client stopped
    /// reading or went away, sidecache reset a stream that took nothing, or the origin's body
    /// broke off.
    BodyAborted,
    /// Its client reset the stream or closed the connection before the response head was ready.
    ClientClosed,
    /// sidecache closed the connection on a client limit before the response head was ready.
    CutOff,
}

impl RequestEnd {
    /// Every end, in declaration order (the metric's series).
    pub(super) const ALL: [RequestEnd; 4] = [
        Self::Completed,
        Self::BodyAborted,
        Self::ClientClosed,
        Self::CutOff,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::BodyAborted => "body_aborted",
            Self::ClientClosed => "client_closed",
            Self::CutOff => "cut_off",
        }
    }
}

/// `sidecache_requests_ended_total`, one counter per [`RequestEnd`]; one shared allocation,
/// cloned into each connection.
#[derive(Debug, Clone)]
pub(super) struct RequestEnds(Arc<[IntCounter]>);

impl RequestEnds {
    /// The counters, indexed by [`RequestEnd`].
    pub(super) fn new(counters: Vec<IntCounter>) -> Self {
        debug_assert_eq!(counters.len(), RequestEnd::ALL.len());
        Self(counters.into())
    }

    /// One request ended as `end`.
    pub(super) fn record(&self, end: RequestEnd) {
        self.0[end as usize].inc();
    }
}
