//! The log line of a failed origin request: one WARN line per failed load (or request sent
//! around the cache) naming the origin, the key, what failed and its cause, within a budget so
//! an outage that fails every request cannot flood the log. A line written after some were held
//! back says how many.

use std::error::Error;
use std::fmt;
use std::time::{Duration, Instant};

use http::Uri;

use super::error::{OriginError, OriginErrorKind};
use crate::telemetry::line_budget::LineBudget;

/// The log target of the lines, so they can be filtered on their own.
pub const ORIGIN_LOG: &str = "sidecache::origin";

/// Lines written at once after a quiet spell.
const BURST: u32 = 10;

/// How long it takes for one more line to be allowed once the burst is spent: ten a minute.
const REFILL: Duration = Duration::from_secs(6);

/// Writes the lines of failed origin requests, within its budget.
#[derive(Debug)]
pub(crate) struct FailureLog {
    /// The origin's URL, as the lines name it.
    origin: String,
    budget: LineBudget,
}

// === impl FailureLog ===

impl FailureLog {
    /// A log of the failures of the origin at `origin`.
    pub(crate) fn new(origin: &Uri) -> Self {
        Self::with_budget(origin, LineBudget::new(BURST, REFILL, Instant::now()))
    }

    fn with_budget(origin: &Uri, budget: LineBudget) -> Self {
        Self {
            origin: origin.to_string(),
            budget,
        }
    }

    /// Logs that the origin request for `key` failed with `error`, unless the client's own
    /// request body is what failed (that is no fault of the origin's) or the budget is spent.
    pub(crate) fn failed(&self, key: &dyn fmt::Display, error: &OriginError) {
        self.failed_at(Instant::now(), key, error);
    }

    fn failed_at(&self, now: Instant, key: &dyn fmt::Display, error: &OriginError) {
        if is_clients_fault(error) || !tracing::enabled!(target: ORIGIN_LOG, tracing::Level::WARN) {
            return;
        }
        let Some(held_back) = self.budget.admit(now) else {
            return;
        };
        tracing::warn!(
            target: ORIGIN_LOG,
            origin = %self.origin,
            key = %key,
            error = error.as_str(),
            cause = %Cause(error),
            suppressed = (held_back > 0).then_some(held_back),
            "origin request failed"
        );
    }
}

/// Whether `error` is the failure of the client's request body while it was being sent.
fn is_clients_fault(error: &OriginError) -> bool {
    matches!(
        error.kind(),
        OriginErrorKind::RequestBodyTooLarge
            | OriginErrorKind::RequestBodyTimeout
            | OriginErrorKind::RequestBodyMalformed
    )
}

/// What caused an origin error: the origin's answer, or the chain of underlying errors (e.g.
/// `client error (Connect): tcp connect error: Connection refused (os error 111)`).
struct Cause<'a>(&'a OriginError);

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if matches!(self.0.kind(), OriginErrorKind::ErrorStatus(_)) {
            return write!(f, "{}", self.0);
        }
        let mut cause = self.0.source();
        if cause.is_none() {
            return f.write_str(self.0.as_str());
        }
        let mut first = true;
        while let Some(error) = cause {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{error}")?;
            first = false;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::origin::error::ErrorResponse;
    use crate::testing::CapturedLog;

    fn refused() -> OriginError {
        OriginError::new(
            OriginErrorKind::Connect,
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"),
        )
    }

    /// The JSON lines `log` writes.
    fn lines(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = CapturedLog::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, log);
        captured
            .text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn a_failure_is_one_warning_with_the_origin_the_key_and_the_cause() {
        let log = FailureLog::new(&Uri::from_static("http://origin.test:9000"));
        let lines = lines(|| log.failed(&"example.com/a?b=1", &refused()));
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], ORIGIN_LOG);
        let fields = &line["fields"];
        assert_eq!(fields["message"], "origin request failed");
        assert_eq!(fields["origin"], "http://origin.test:9000/");
        assert_eq!(fields["key"], "example.com/a?b=1");
        assert_eq!(fields["error"], "origin-connect-failed");
        assert_eq!(fields["cause"], "connection refused");
        assert!(fields.get("suppressed").is_none(), "{fields}");
    }

    #[test]
    fn an_error_answer_is_its_status_and_a_bad_client_body_is_not_logged() {
        let log = FailureLog::new(&Uri::from_static("http://origin.test"));
        let answered = OriginError::bare(OriginErrorKind::ErrorStatus(ErrorResponse {
            status: StatusCode::SERVICE_UNAVAILABLE,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            truncated: false,
            shareable: true,
        }));
        let timeout = OriginError::bare(OriginErrorKind::Timeout);
        let stalled = OriginError::bare(OriginErrorKind::RequestBodyTimeout);
        let lines = lines(|| {
            log.failed(&"k1", &answered);
            log.failed(&"k2", &stalled);
            log.failed(&"k3", &timeout);
        });
        let causes: Vec<_> = lines
            .iter()
            .map(|line| {
                (
                    line["fields"]["key"].as_str().unwrap_or_default(),
                    line["fields"]["cause"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            causes,
            [
                ("k1", "origin answered 503 Service Unavailable"),
                ("k3", "origin-timeout")
            ]
        );
    }

    #[test]
    fn past_the_burst_lines_are_held_back_and_the_next_one_counts_them() {
        let start = Instant::now();
        let log = FailureLog::with_budget(
            &Uri::from_static("http://origin.test"),
            LineBudget::new(2, REFILL, start),
        );
        let lines = lines(|| {
            for n in 0..5 {
                log.failed_at(start, &format_args!("k{n}"), &refused());
            }
            log.failed_at(start + REFILL, &"k5", &refused());
        });
        let written: Vec<_> = lines
            .iter()
            .map(|line| {
                (
                    line["fields"]["key"].as_str().unwrap_or_default(),
                    line["fields"]["suppressed"].as_u64(),
                )
            })
            .collect();
        assert_eq!(written, [("k0", None), ("k1", None), ("k5", Some(3))]);
    }

    #[test]
    fn nothing_is_counted_held_back_while_warnings_are_filtered_out() {
        let start = Instant::now();
        let log = FailureLog::with_budget(
            &Uri::from_static("http://origin.test"),
            LineBudget::new(1, REFILL, start),
        );
        // No subscriber: the line would be written nowhere, so it spends nothing.
        log.failed_at(start, &"unseen", &refused());
        let lines = lines(|| log.failed_at(start, &"seen", &refused()));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0]["fields"].get("suppressed").is_none());
    }
}
