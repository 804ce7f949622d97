//! The origin fetch's client span, and the `traceparent` the origin receives.
//!
//! Every request to the origin runs in an `origin fetch` span (kind CLIENT) whose context is
//! written into the request's `traceparent`, so the origin continues the same trace with this
//! span as its parent. In a trace the sampler dropped, the span is not recorded and the origin
//! gets the enclosing request's (unsampled) context. With tracing off the headers are left as the
//! client sent them.

use http::{Request, Response, Uri};
use tracing::Span;

use super::OriginError;
use crate::spans;
use crate::telemetry::context;
use crate::telemetry::semconv::{method_name, split_authority};

/// One origin request's client span.
#[derive(Debug)]
pub(crate) struct FetchTrace {
    span: Span,
    sampled: bool,
}

// === impl FetchTrace ===

impl FetchTrace {
    /// Opens the span for `request` (whose URI is already the origin's absolute URL) under the
    /// current span, and writes its context into the request's `traceparent`. Outside a traced
    /// request it opens nothing, and the `traceparent` the request carries goes on as it is.
    pub(crate) fn open<B>(request: &mut Request<B>) -> Self {
        if !spans::in_span() {
            return Self {
                span: Span::none(),
                sampled: false,
            };
        }
        let span = tracing::debug_span!(
            "origin fetch",
            otel.kind = "client",
            otel.name = method_name(request.method())
        );
        let sampled = context::start(&span);
        context::inject(&span, request.headers_mut());
        if sampled {
            request_attributes(&span, request.method(), request.uri());
        }
        Self { span, sampled }
    }

    /// The span the request runs in.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records the response status, or the failure.
    pub(crate) fn finish<B>(&self, result: &Result<Response<B>, OriginError>) {
        if !self.sampled {
            return;
        }
        match result {
            Ok(response) => {
                let status = response.status();
                context::set(
                    &self.span,
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                );
                // Semantic conventions: a client span fails on 4xx and 5xx.
                if status.is_client_error() || status.is_server_error() {
                    context::fail(&self.span, status.as_str().to_owned());
                }
            }
            Err(error) => context::fail(&self.span, error.as_str()),
        }
    }
}

fn request_attributes(span: &Span, method: &http::Method, uri: &Uri) {
    context::set(span, "http.request.method", method_name(method));
    context::set(span, "url.full", uri.to_string());
    if let Some((host, port)) = uri.authority().map(|a| split_authority(a.as_str())) {
        context::set(span, "server.address", host.to_owned());
        let port = port.unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
        context::set(span, "server.port", i64::from(port));
    }
}
