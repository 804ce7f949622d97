//! Tests of the response policy, table-driven by RFC section.

use super::*;
use crate::http::freshen::{freshen_headers, not_modified_selects};
use http::HeaderName;

/// A fixed origin for test time: 2023-11-14T22:13:20Z.
fn t(offset_secs: i64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if offset_secs >= 0 {
        base + Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        base - Duration::from_secs(offset_secs.unsigned_abs())
    }
}

fn http_date(offset_secs: i64) -> String {
    httpdate::fmt_http_date(t(offset_secs))
}

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
        map.append(name, value.parse().expect("test header value"));
    }
    map
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Header fields as written in a table row.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// One origin exchange to build a policy from.
struct Exchange<'a> {
    method: Method,
    request: Vec<(&'a str, &'a str)>,
    status: u16,
    response: Vec<(&'a str, String)>,
    request_time: SystemTime,
    response_time: SystemTime,
    config: PolicySettings,
}

impl<'a> Exchange<'a> {
    /// A GET answered with 200 at t(0), instantly, with `Date: t(0)`.
    fn new(response: &[(&'a str, &str)]) -> Self {
        let mut response: Vec<_> = response.iter().map(|(n, v)| (*n, v.to_string())).collect();
        if !response.iter().any(|(n, _)| n.eq_ignore_ascii_case("date")) {
            response.push(("date", http_date(0)));
        }
        Self {
            method: Method::GET,
            request: Vec::new(),
            status: 200,
            response,
            request_time: t(0),
            response_time: t(0),
            config: PolicySettings::default(),
        }
    }

    fn without_date(mut self) -> Self {
        self.response
            .retain(|(n, _)| !n.eq_ignore_ascii_case("date"));
        self
    }

    fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    fn request(mut self, fields: &[(&'a str, &'a str)]) -> Self {
        self.request = fields.to_vec();
        self
    }

    fn times(mut self, request_time: SystemTime, response_time: SystemTime) -> Self {
        self.request_time = request_time;
        self.response_time = response_time;
        self
    }

    fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = grace;
        self
    }

    fn policy(&self) -> ResponsePolicy {
        let response: Vec<(&str, &str)> = self
            .response
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        ResponsePolicy::new(
            &self.method,
            &headers(&self.request),
            StatusCode::from_u16(self.status).expect("test status"),
            &headers(&response),
            self.request_time,
            self.response_time,
            &self.config,
        )
    }
}

fn policy(response: &[(&str, &str)]) -> ResponsePolicy {
    Exchange::new(response).policy()
}

fn request(cache_control: &str) -> RequestDirectives {
    RequestDirectives::from_request(&headers(&[("cache-control", cache_control)]))
}

fn no_request() -> RequestDirectives {
    RequestDirectives::default()
}

// --- §3 storability ---

#[test]
fn rfc9111_3_storable_reasons() {
    use RefuseReason::*;
    #[rustfmt::skip]
    let cases: Vec<(&str, Exchange<'_>, Result<(), RefuseReason>)> = vec![
        ("§3 plain fresh 200", Exchange::new(&[("cache-control", "max-age=60")]), Ok(())),
        ("§3 HEAD", Exchange::new(&[("cache-control", "max-age=60")]).method(http::Method::HEAD), Ok(())),
        ("§3 method not cached", Exchange::new(&[("cache-control", "max-age=60")]).method(http::Method::POST), Err(Method)),
        ("§3 status not final", Exchange::new(&[("cache-control", "max-age=60")]).status(103), Err(Status)),
        ("§3 206 not stored", Exchange::new(&[("cache-control", "max-age=60")]).status(206), Err(Status)),
        ("§3 304 not stored", Exchange::new(&[("cache-control", "max-age=60")]).status(304), Err(Status)),
        ("RFC 6585 429 never stored", Exchange::new(&[("cache-control", "max-age=60")]).status(429), Err(Status)),
        ("RFC 6585 511 never stored", Exchange::new(&[("cache-control", "public, max-age=60")]).status(511), Err(Status)),
        ("§5.2.2.5 no-store", Exchange::new(&[("cache-control", "no-store, max-age=60")]), Err(NoStore)),
        ("§5.2.2.3 must-understand lifts no-store", Exchange::new(&[("cache-control", "must-understand, no-store, max-age=60")]), Ok(())),
        ("§5.2.2.3 must-understand lifts no-store (301)", Exchange::new(&[("cache-control", "must-understand, no-store, max-age=60")]).status(301), Ok(())),
        ("§5.2.2.3 unknown status keeps no-store", Exchange::new(&[("cache-control", "must-understand, no-store, max-age=60")]).status(299), Err(NoStore)),
        ("§5.2.2.3 unknown status without no-store", Exchange::new(&[("cache-control", "must-understand, max-age=60")]).status(299), Err(Status)),
        ("§3 unknown status, explicit freshness", Exchange::new(&[("cache-control", "max-age=60")]).status(299), Ok(())),
        ("§5.2.2.7 private", Exchange::new(&[("cache-control", "private, max-age=60")]), Err(Private)),
        ("§5.2.2.7 qualified private", Exchange::new(&[("cache-control", "private=\"x-user\", max-age=60")]), Err(Private)),
        ("no-store beats private", Exchange::new(&[("cache-control", "private, no-store")]), Err(NoStore)),
        ("§3.5 Authorization", Exchange::new(&[("cache-control", "max-age=60")]).request(&[("authorization", "Bearer x")]), Err(Authorization)),
        ("§3.5 Authorization + public", Exchange::new(&[("cache-control", "public, max-age=60")]).request(&[("authorization", "Bearer x")]), Ok(())),
        ("§3.5 Authorization + s-maxage", Exchange::new(&[("cache-control", "s-maxage=60")]).request(&[("authorization", "Bearer x")]), Ok(())),
        ("§3.5 Authorization + must-revalidate", Exchange::new(&[("cache-control", "must-revalidate, max-age=60")]).request(&[("authorization", "Bearer x")]), Ok(())),
        ("Set-Cookie is not shared", Exchange::new(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]), Err(SetCookie)),
        ("Set-Cookie + public", Exchange::new(&[("cache-control", "public, max-age=60"), ("set-cookie", "a=b")]), Err(SetCookie)),
        ("Set-Cookie + s-maxage", Exchange::new(&[("cache-control", "s-maxage=60"), ("set-cookie", "a=b")]), Err(SetCookie)),
        ("private beats Set-Cookie", Exchange::new(&[("cache-control", "private"), ("set-cookie", "a=b")]), Err(Private)),
        ("§4.1 Vary: *", Exchange::new(&[("cache-control", "max-age=60"), ("vary", "*")]), Err(VaryStar)),
        ("§4.1 Vary member *", Exchange::new(&[("cache-control", "max-age=60"), ("vary", "accept"), ("vary", "accept-encoding, *")]), Err(VaryStar)),
        ("§4.1 Vary without *", Exchange::new(&[("cache-control", "max-age=60"), ("vary", "accept-encoding")]), Ok(())),
        ("§3 500 without freshness", Exchange::new(&[]).status(500), Err(Status)),
        ("§3 500 with max-age", Exchange::new(&[("cache-control", "max-age=60")]).status(500), Ok(())),
        ("§3 302 with Expires", Exchange::new(&[("expires", &http_date(60))]).status(302), Ok(())),
        ("§3 302 with invalid Expires", Exchange::new(&[("expires", "0")]).status(302), Ok(())),
        ("§3 302 without freshness", Exchange::new(&[("last-modified", &http_date(-1000))]).status(302), Err(Status)),
        ("§3 302 with public", Exchange::new(&[("cache-control", "public"), ("last-modified", &http_date(-1000))]).status(302), Ok(())),
        ("§3 302 with invalid max-age", Exchange::new(&[("cache-control", "max-age=x")]).status(302), Ok(())),
        ("§3 heuristic 404", Exchange::new(&[("last-modified", &http_date(-1000))]).status(404), Ok(())),
        ("heuristic 200 without Last-Modified: kept for grace", Exchange::new(&[]), Ok(())),
        ("heuristic 200 without Last-Modified, no grace", Exchange::new(&[]).grace(Duration::ZERO), Err(ZeroTtl)),
        ("stale on arrival, must-revalidate, no validator", Exchange::new(&[("cache-control", "max-age=0, must-revalidate")]), Err(ZeroTtl)),
        ("old on arrival (Age), must-revalidate", Exchange::new(&[("cache-control", "max-age=60, must-revalidate"), ("age", "100")]), Err(ZeroTtl)),
        ("stale on arrival, must-revalidate, ETag", Exchange::new(&[("cache-control", "max-age=0, must-revalidate"), ("etag", "\"v1\"")]), Ok(())),
        ("§5.2.2.4 no-cache without validator", Exchange::new(&[("cache-control", "no-cache, max-age=600")]), Err(ZeroTtl)),
        ("§5.2.2.4 no-cache with ETag", Exchange::new(&[("cache-control", "no-cache"), ("etag", "\"v1\"")]), Ok(())),
        ("§5.2.2.4 no-cache with Last-Modified", Exchange::new(&[("cache-control", "no-cache"), ("last-modified", &http_date(-10))]), Ok(())),
        ("s-maxage=0 without validator: no grace", Exchange::new(&[("cache-control", "s-maxage=0")]), Err(ZeroTtl)),
        ("max-age=0 with swr", Exchange::new(&[("cache-control", "max-age=0, stale-while-revalidate=30")]).grace(Duration::ZERO), Ok(())),
        ("RFC 9213: targeted field overrides Cache-Control no-store", Exchange::new(&[("cache-control", "no-store"), ("cdn-cache-control", "max-age=60")]), Ok(())),
        ("RFC 9213: wrongly typed targeted field is ignored", Exchange::new(&[("cache-control", "no-store"), ("cdn-cache-control", "max-age=\"10000\"")]), Err(NoStore)),
        ("RFC 9213: targeted no-store", Exchange::new(&[("cache-control", "max-age=60"), ("cdn-cache-control", "no-store")]), Err(NoStore)),
        ("RFC 9213: Expires ignored for explicit freshness", Exchange::new(&[("cdn-cache-control", "must-revalidate"), ("expires", &http_date(600))]).status(302), Err(Status)),
    ];
    for (name, exchange, expected) in cases {
        assert_eq!(exchange.policy().storable(), expected, "{name}");
    }
}

#[test]
fn refuse_reason_labels() {
    use RefuseReason::*;
    let labels: Vec<_> = [
        Method,
        NoStore,
        Private,
        SetCookie,
        Authorization,
        Status,
        VaryStar,
        ZeroTtl,
    ]
    .iter()
    .map(|r| r.as_str())
    .collect();
    assert_eq!(
        labels,
        [
            "method",
            "no_store",
            "private",
            "set_cookie",
            "authorization",
            "status",
            "vary_star",
            "zero_ttl"
        ]
    );
}

// --- §4.2.1 freshness lifetime, §4.2.2 heuristic, §5.3 Expires ---

#[test]
fn rfc9111_4_2_1_freshness_lifetime() {
    let lm_1000 = http_date(-1000);
    #[rustfmt::skip]
    let cases: Vec<(&str, Exchange<'_>, Duration)> = vec![
        ("§4.2.1 s-maxage beats max-age", Exchange::new(&[("cache-control", "max-age=10, s-maxage=20")]), secs(20)),
        ("§4.2.1 s-maxage=0 beats max-age", Exchange::new(&[("cache-control", "max-age=10, s-maxage=0")]), secs(0)),
        ("§4.2.1 max-age", Exchange::new(&[("cache-control", "max-age=10")]), secs(10)),
        ("§5.3 max-age beats Expires", Exchange::new(&[("cache-control", "max-age=10"), ("expires", &http_date(100))]), secs(10)),
        ("§5.3 s-maxage beats invalid Expires", Exchange::new(&[("cache-control", "s-maxage=10"), ("expires", "0")]), secs(10)),
        ("§4.2.1 Expires - Date", Exchange::new(&[("expires", &http_date(100))]), secs(100)),
        ("§4.2.1 Expires - Date, Date in the past", Exchange::new(&[("date", &http_date(-50)), ("expires", &http_date(100))]), secs(150)),
        ("§4.2.1 Expires without Date uses response_time", Exchange::new(&[("expires", &http_date(100))]).without_date().times(t(-5), t(-5)), secs(105)),
        ("§4.2.1 Expires with invalid Date uses response_time", Exchange::new(&[("date", "yesterday"), ("expires", &http_date(100))]).times(t(-5), t(-5)), secs(105)),
        ("§4.2.1 Expires before Date", Exchange::new(&[("expires", &http_date(-100))]), secs(0)),
        ("§5.3 Expires: 0", Exchange::new(&[("expires", "0"), ("last-modified", &lm_1000)]), secs(0)),
        ("§5.3 Expires garbage", Exchange::new(&[("expires", "soon"), ("last-modified", &lm_1000)]), secs(0)),
        ("§4.2.1 two Expires lines", Exchange::new(&[("expires", &http_date(100)), ("expires", &http_date(100))]), secs(0)),
        ("RFC 9110 §5.6.7 rfc850-date", Exchange::new(&[("expires", "Tuesday, 14-Nov-23 22:15:00 GMT")]), secs(100)),
        ("RFC 9110 §5.6.7 asctime-date", Exchange::new(&[("expires", "Tue Nov 14 22:15:00 2023")]), secs(100)),
        ("RFC 9110 §5.6.7 IMF-fixdate", Exchange::new(&[("expires", "Tue, 14 Nov 2023 22:15:00 GMT")]), secs(100)),
        ("RFC 9110 §5.6.7 not an HTTP-date", Exchange::new(&[("expires", "2023-11-14T22:15:00Z")]), secs(0)),
        ("§4.2.1 invalid freshness beats everything", Exchange::new(&[("cache-control", "max-age=10, max-age=20"), ("expires", &http_date(100))]), secs(0)),
        ("§4.2.1 invalid s-maxage", Exchange::new(&[("cache-control", "s-maxage=-1, max-age=20")]), secs(0)),
        ("RFC 9213 targeted max-age", Exchange::new(&[("cache-control", "max-age=10"), ("cdn-cache-control", "max-age=20")]), secs(20)),
        ("RFC 9213 targeted field ignores Expires", Exchange::new(&[("cdn-cache-control", "public"), ("expires", &http_date(100)), ("last-modified", &lm_1000)]), secs(100)),
        ("§4.2.2 no Last-Modified", Exchange::new(&[]), secs(0)),
        ("§4.2.2 10% of Date - Last-Modified", Exchange::new(&[("last-modified", &lm_1000)]), secs(100)),
        ("§4.2.2 relative to Date, not receipt", Exchange::new(&[("date", &http_date(-500)), ("last-modified", &lm_1000)]).times(t(0), t(0)), secs(50)),
        ("§4.2.2 capped at Varnish's default_ttl", Exchange::new(&[("last-modified", &http_date(-100 * 24 * 3600))]), secs(120)),
        ("§4.2.2 Last-Modified in the future", Exchange::new(&[("last-modified", &http_date(1000))]), secs(0)),
        ("§4.2.2 Last-Modified invalid", Exchange::new(&[("last-modified", "last tuesday")]), secs(0)),
        ("§4.2.2 heuristic status 404", Exchange::new(&[("last-modified", &lm_1000)]).status(404), secs(100)),
        ("§4.2.2 heuristic status 501", Exchange::new(&[("last-modified", &lm_1000)]).status(501), secs(100)),
        ("§4.2.2 not heuristic: 302", Exchange::new(&[("last-modified", &lm_1000)]).status(302), secs(0)),
        ("§4.2.2 not heuristic: 500", Exchange::new(&[("last-modified", &lm_1000)]).status(500), secs(0)),
        ("§5.2.2.9 public makes 302 heuristic", Exchange::new(&[("cache-control", "public"), ("last-modified", &lm_1000)]).status(302), secs(100)),
        ("§4.2.2 no heuristic with explicit expiry", Exchange::new(&[("expires", "0"), ("last-modified", &lm_1000)]), secs(0)),
        ("no-cache keeps the lifetime", Exchange::new(&[("cache-control", "no-cache, max-age=30")]), secs(30)),
        ("immutable does not extend", Exchange::new(&[("cache-control", "immutable, max-age=30")]), secs(30)),
    ];
    for (name, exchange, expected) in cases {
        assert_eq!(exchange.policy().freshness_lifetime(), expected, "{name}");
    }
}

#[test]
fn rfc9111_4_2_2_heuristic_config() {
    let mut exchange = Exchange::new(&[]);
    exchange.response.push(("last-modified", http_date(-1000)));
    exchange.config.max_heuristic_freshness = secs(1000);
    exchange.config.heuristic_fraction = 0.5;
    assert_eq!(exchange.policy().freshness_lifetime(), secs(500));
    exchange.config.max_heuristic_freshness = secs(200);
    assert_eq!(exchange.policy().freshness_lifetime(), secs(200));
    for bad in [f64::NAN, -0.1, f64::INFINITY] {
        exchange.config.heuristic_fraction = bad;
        let lifetime = exchange.policy().freshness_lifetime();
        assert!(lifetime <= secs(200), "fraction {bad} gave {lifetime:?}");
    }
}

impl Exchange<'_> {
    fn default_ttl(mut self, ttl: u64) -> Self {
        self.config.default_ttl = Some(secs(ttl));
        self
    }

    fn forced_ttl(mut self, ttl: u64) -> Self {
        self.config.forced_ttl = Some(secs(ttl));
        self
    }
}

#[test]
fn operator_freshness_stands_in_or_replaces_as_configured() {
    let lm_1000 = http_date(-1000);
    // (name, exchange, freshness lifetime, storable)
    #[rustfmt::skip]
    let cases: Vec<(&str, Exchange<'_>, Duration, Result<(), RefuseReason>)> = vec![
        ("default without any freshness field", Exchange::new(&[]).default_ttl(30), secs(30), Ok(())),
        ("default instead of the heuristic", Exchange::new(&[("last-modified", &lm_1000)]).default_ttl(30), secs(30), Ok(())),
        ("default below the heuristic too", Exchange::new(&[("last-modified", &lm_1000)]).default_ttl(5), secs(5), Ok(())),
        ("max-age beats the default", Exchange::new(&[("cache-control", "max-age=7")]).default_ttl(30), secs(7), Ok(())),
        ("Expires beats the default", Exchange::new(&[("expires", &http_date(9))]).default_ttl(30), secs(9), Ok(())),
        ("invalid freshness is stale, not defaulted", Exchange::new(&[("expires", "0"), ("etag", "\"e\"")]).default_ttl(30), secs(0), Ok(())),
        ("default only for heuristic statuses: 302", Exchange::new(&[]).status(302).default_ttl(30), secs(0), Err(RefuseReason::Status)),
        ("default for a public 302", Exchange::new(&[("cache-control", "public")]).status(302).default_ttl(30), secs(30), Ok(())),
        ("default for a 404", Exchange::new(&[]).status(404).default_ttl(30), secs(30), Ok(())),
        ("default with a Cookie: not shared", Exchange::new(&[]).request(&[("cookie", "a=b")]).default_ttl(30), secs(0), Err(RefuseReason::Cookie)),
        ("default with Authorization and public: not applied", Exchange::new(&[("cache-control", "public")]).request(&[("authorization", "x")]).default_ttl(30), secs(0), Err(RefuseReason::ZeroTtl)),
        ("forced beats max-age", Exchange::new(&[("cache-control", "max-age=7")]).forced_ttl(60), secs(60), Ok(())),
        ("forced beats s-maxage", Exchange::new(&[("cache-control", "s-maxage=600")]).forced_ttl(60), secs(60), Ok(())),
        ("forced beats Expires", Exchange::new(&[("expires", &http_date(600))]).forced_ttl(60), secs(60), Ok(())),
        ("forced beats invalid freshness", Exchange::new(&[("cache-control", "max-age=1, max-age=2")]).forced_ttl(60), secs(60), Ok(())),
        ("forced beats the heuristic", Exchange::new(&[("last-modified", &lm_1000)]).forced_ttl(60), secs(60), Ok(())),
        ("forced to zero", Exchange::new(&[("cache-control", "max-age=600"), ("etag", "\"e\"")]).forced_ttl(0), secs(0), Ok(())),
        ("forced beats the default", Exchange::new(&[]).default_ttl(30).forced_ttl(60), secs(60), Ok(())),
        ("forced keeps no-cache", Exchange::new(&[("cache-control", "no-cache, max-age=5"), ("etag", "\"e\"")]).forced_ttl(60), secs(60), Ok(())),
        ("forced never stores no-store", Exchange::new(&[("cache-control", "no-store, max-age=5")]).forced_ttl(60), secs(60), Err(RefuseReason::NoStore)),
        ("forced never stores private", Exchange::new(&[("cache-control", "private, max-age=5")]).forced_ttl(60), secs(60), Err(RefuseReason::Private)),
        ("forced never stores Set-Cookie", Exchange::new(&[("cache-control", "max-age=5"), ("set-cookie", "a=b")]).forced_ttl(60), secs(60), Err(RefuseReason::SetCookie)),
        ("forced never shares an authorized answer", Exchange::new(&[("cache-control", "max-age=5")]).request(&[("authorization", "x")]).forced_ttl(60), secs(60), Err(RefuseReason::Authorization)),
        ("forced never shares a cookie's answer without lifetime", Exchange::new(&[]).request(&[("cookie", "a=b")]).forced_ttl(60), secs(0), Err(RefuseReason::Cookie)),
        ("forced never keeps a public authorized answer without lifetime", Exchange::new(&[("cache-control", "public")]).request(&[("authorization", "x")]).forced_ttl(60), secs(0), Err(RefuseReason::ZeroTtl)),
        ("forced replaces the lifetime of a shared cookie's answer", Exchange::new(&[("cache-control", "max-age=5")]).request(&[("cookie", "a=b")]).forced_ttl(60), secs(60), Ok(())),
        ("forced leaves a 503 alone", Exchange::new(&[("cache-control", "max-age=5")]).status(503).forced_ttl(60), secs(5), Ok(())),
        ("forced leaves a 302 alone", Exchange::new(&[("cache-control", "max-age=5")]).status(302).forced_ttl(60), secs(5), Ok(())),
    ];
    for (name, exchange, lifetime, storable) in cases {
        let policy = exchange.policy();
        assert_eq!(policy.freshness_lifetime(), lifetime, "{name}");
        assert_eq!(policy.storable(), storable, "{name}");
    }
}

#[test]
fn operator_freshness_counts_age_and_keeps_the_stale_rules() {
    // Counted like max-age: an Age from upstream uses it up.
    let aged = Exchange::new(&[("age", "20")]).default_ttl(30).policy();
    assert_eq!(aged.ttl_seconds(t(0)), 10);
    assert!(!aged.is_fresh(t(10)));

    // The stale windows start where the operator's freshness ends.
    let swr = Exchange::new(&[("cache-control", "max-age=5, stale-while-revalidate=10")])
        .forced_ttl(60)
        .policy();
    assert_eq!(swr.reuse(&no_request(), t(59)), Reuse::Fresh);
    assert_eq!(swr.reuse(&no_request(), t(65)), Reuse::StaleWhileRevalidate);
    assert_eq!(swr.reuse(&no_request(), t(71)), Reuse::Revalidate);

    // `must-revalidate` still forbids serving it stale, even with the origin down.
    let strict = Exchange::new(&[("cache-control", "must-revalidate"), ("etag", "\"e\"")])
        .default_ttl(30)
        .policy();
    assert_eq!(strict.reuse(&no_request(), t(29)), Reuse::Fresh);
    assert!(!strict.usable_on_error(&no_request(), OriginFailure::Unreachable, t(31)));

    // `no-cache` still sends every reuse to the origin.
    let no_cache = Exchange::new(&[("cache-control", "no-cache"), ("etag", "\"e\"")])
        .forced_ttl(60)
        .policy();
    assert_eq!(no_cache.reuse(&no_request(), t(1)), Reuse::Revalidate);

    // Kept for its freshness plus grace, as any response.
    let kept = Exchange::new(&[]).default_ttl(30).policy();
    assert_eq!(
        kept.retain_for(t(0)),
        secs(30) + PolicySettings::default().grace
    );
}

// --- §4.2.3 age, §5.1 Age ---

#[test]
fn rfc9111_4_2_3_current_age() {
    // (name, exchange, current_age at response_time)
    #[rustfmt::skip]
    let cases: Vec<(&str, Exchange<'_>, Duration)> = vec![
        ("§4.2.3 nothing", Exchange::new(&[]), secs(0)),
        ("§5.1 Age", Exchange::new(&[("age", "100")]), secs(100)),
        ("§4.2.3 response_delay added to Age", Exchange::new(&[("age", "10")]).times(t(-2), t(0)), secs(12)),
        ("§4.2.3 response_delay counts without Age", Exchange::new(&[]).times(t(-3), t(0)), secs(3)),
        ("§4.2.3 apparent age from Date", Exchange::new(&[("date", &http_date(-30))]), secs(30)),
        ("§4.2.3 max(apparent, corrected): apparent", Exchange::new(&[("date", &http_date(-30)), ("age", "10")]), secs(30)),
        ("§4.2.3 max(apparent, corrected): Age", Exchange::new(&[("date", &http_date(-5)), ("age", "10")]), secs(10)),
        ("§4.2.3 Date in the future: no apparent age", Exchange::new(&[("date", &http_date(30))]), secs(0)),
        ("§4.2.3 invalid Date: no apparent age", Exchange::new(&[("date", "not a date")]), secs(0)),
        ("§4.2.3 two Date lines: no apparent age", Exchange::new(&[("date", &http_date(-30)), ("date", &http_date(-30))]), secs(0)),
        ("§5.1 invalid Age ignored", Exchange::new(&[("age", "abc")]), secs(0)),
        ("§5.1 negative Age ignored", Exchange::new(&[("age", "-5")]), secs(0)),
        ("§5.1 fractional Age ignored", Exchange::new(&[("age", "1.5")]), secs(0)),
        ("§5.1 empty Age ignored", Exchange::new(&[("age", "")]), secs(0)),
        ("§5.1 list: first member", Exchange::new(&[("age", "10, 20")]), secs(10)),
        ("§5.1 list: first line", Exchange::new(&[("age", "10"), ("age", "20")]), secs(10)),
        ("§5.1 list: invalid first member", Exchange::new(&[("age", "x, 20")]), secs(0)),
        ("§5.1 whitespace", Exchange::new(&[("age", "7 ")]), secs(7)),
        ("§1.2.2 huge Age", Exchange::new(&[("age", "99999999999999999999")]), secs(DELTA_SECONDS_MAX)),
    ];
    for (name, exchange, expected) in cases {
        let policy = exchange.policy();
        assert_eq!(
            policy.current_age(exchange.response_time),
            expected,
            "{name}"
        );
    }
}

#[test]
fn rfc9111_4_2_3_resident_time_and_headers() {
    let policy = Exchange::new(&[("cache-control", "max-age=100"), ("age", "10")]).policy();
    assert_eq!(policy.current_age(t(50)), secs(60));
    // A clock that went backwards adds no resident time.
    assert_eq!(policy.current_age(t(-50)), secs(10));
    // §5.1: whole seconds, rounded down.
    assert_eq!(
        policy.age_header_seconds(t(50) + Duration::from_millis(999)),
        60
    );
    // RFC 9211 ttl: remaining freshness, negative when stale.
    assert_eq!(policy.ttl_seconds(t(0)), 90);
    assert_eq!(policy.ttl_seconds(t(89) + Duration::from_millis(500)), 0);
    assert!(policy.is_fresh(t(89) + Duration::from_millis(500)));
    assert_eq!(policy.ttl_seconds(t(90)), 0);
    assert!(
        !policy.is_fresh(t(90)),
        "§4.2: fresh only while lifetime > age"
    );
    assert_eq!(policy.ttl_seconds(t(90) + Duration::from_millis(1)), -1);
    assert_eq!(policy.ttl_seconds(t(200)), -110);

    let huge = policy_from_age("2147483648");
    assert_eq!(
        huge.age_header_seconds(t(1000)),
        DELTA_SECONDS_MAX,
        "§1.2.2 cap"
    );
}

fn policy_from_age(age: &str) -> ResponsePolicy {
    policy(&[("age", age)])
}

// --- §4, §4.2.4, §5.2.1, RFC 5861 reuse ---

#[test]
fn rfc9111_4_reuse() {
    use Reuse::*;
    // (name, response Cache-Control, request Cache-Control, now, expected); Date = t(0).
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, i64, Reuse)] = &[
        ("§4.2 fresh", "max-age=100", "", 50, Fresh),
        ("§4.2 stale at exactly the lifetime", "max-age=100", "", 100, Revalidate),
        ("§4.2.4 stale", "max-age=100", "", 101, Revalidate),
        ("§5.2.2.4 response no-cache", "no-cache, max-age=100", "", 1, Revalidate),
        ("§5.2.2.4 qualified no-cache", "no-cache=\"set-cookie\", max-age=100", "", 1, Revalidate),
        ("§5.2.1.4 request no-cache", "max-age=100", "no-cache", 1, Revalidate),
        ("§5.2.1.1 request max-age exceeded", "max-age=100", "max-age=10", 11, Revalidate),
        ("§5.2.1.1 request max-age met", "max-age=100", "max-age=10", 10, Fresh),
        ("§5.2.1.1 request max-age=0", "max-age=100", "max-age=0", 1, Revalidate),
        ("§5.2.1.1 max-age with max-stale", "max-age=10", "max-age=30, max-stale", 20, StaleAllowedByRequest),
        ("§5.2.1.3 min-fresh not met", "max-age=100", "min-fresh=60", 50, Revalidate),
        ("§5.2.1.3 min-fresh met", "max-age=100", "min-fresh=50", 50, Fresh),
        ("§5.2.1.3 min-fresh beats max-stale", "max-age=100", "min-fresh=10, max-stale", 150, Revalidate),
        ("§5.2.1.2 max-stale any", "max-age=100", "max-stale", 10_000, StaleAllowedByRequest),
        ("§5.2.1.2 max-stale within", "max-age=100", "max-stale=50", 150, StaleAllowedByRequest),
        ("§5.2.1.2 max-stale beyond", "max-age=100", "max-stale=50", 151, Revalidate),
        ("§5.2.2.2 must-revalidate beats max-stale", "max-age=100, must-revalidate", "max-stale", 101, Revalidate),
        ("§5.2.2.8 proxy-revalidate beats max-stale", "max-age=100, proxy-revalidate", "max-stale", 101, Revalidate),
        ("§5.2.2.10 s-maxage beats max-stale", "s-maxage=100", "max-stale", 101, Revalidate),
        ("§5.2.2.4 no-cache beats max-stale", "no-cache", "max-stale", 1, Revalidate),
        ("RFC 5861 §3 swr", "max-age=100, stale-while-revalidate=30", "", 120, StaleWhileRevalidate),
        ("RFC 5861 §3 swr edge", "max-age=100, stale-while-revalidate=30", "", 130, StaleWhileRevalidate),
        ("RFC 5861 §3 swr beyond", "max-age=100, stale-while-revalidate=30", "", 131, Revalidate),
        ("RFC 5861 §3 swr but fresh", "max-age=100, stale-while-revalidate=30", "", 99, Fresh),
        ("swr overrides s-maxage's implied proxy-revalidate", "s-maxage=100, stale-while-revalidate=30", "", 120, StaleWhileRevalidate),
        ("swr does not override must-revalidate", "max-age=100, must-revalidate, stale-while-revalidate=30", "", 120, Revalidate),
        ("swr does not override proxy-revalidate", "max-age=100, proxy-revalidate, stale-while-revalidate=30", "", 120, Revalidate),
        ("swr does not override no-cache", "no-cache, max-age=100, stale-while-revalidate=30", "", 120, Revalidate),
        ("swr does not override request no-cache", "max-age=100, stale-while-revalidate=30", "no-cache", 120, Revalidate),
        ("swr preferred over max-stale", "max-age=100, stale-while-revalidate=30", "max-stale", 120, StaleWhileRevalidate),
        ("max-stale beyond swr", "max-age=100, stale-while-revalidate=30", "max-stale", 200, StaleAllowedByRequest),
        ("sie does not allow normal stale reuse", "max-age=100, stale-if-error=300", "", 120, Revalidate),
        ("§4.2.1 invalid freshness is stale", "max-age=abc", "", 0, Revalidate),
        ("§5.2 no whitespace before =", "max-age =100", "", 1, Revalidate),
        ("§5.2 no whitespace after =", "max-age= 100", "", 1, Revalidate),
        ("§4.2.1 invalid freshness with max-stale", "max-age=abc", "max-stale", 0, StaleAllowedByRequest),
    ];
    for (name, response, req, now, expected) in cases {
        let policy = policy(&[("cache-control", response)]);
        let request = if req.is_empty() {
            no_request()
        } else {
            request(req)
        };
        assert_eq!(policy.reuse(&request, t(*now)), *expected, "{name}");
    }
}

#[test]
fn rfc9111_5_4_pragma_no_cache_forces_revalidation() {
    let policy = policy(&[("cache-control", "max-age=100")]);
    let pragma = RequestDirectives::from_request(&headers(&[("pragma", "no-cache")]));
    assert_eq!(policy.reuse(&pragma, t(1)), Reuse::Revalidate);
}

#[test]
fn rfc9111_4_2_3_reuse_uses_corrected_age() {
    // Age 90 on arrival + 5 s in transit: only 5 s of the 100 s lifetime remain.
    let policy = Exchange::new(&[("cache-control", "max-age=100"), ("age", "90")])
        .times(t(-5), t(0))
        .policy();
    assert_eq!(policy.reuse(&no_request(), t(4)), Reuse::Fresh);
    assert_eq!(policy.reuse(&no_request(), t(5)), Reuse::Revalidate);
}

#[test]
fn stale_windows_keep_zero_apart_from_absent_and_the_largest_value_whole() {
    use Reuse::*;
    // (response Cache-Control, now, expected); Date = t(0), the lifetime ends at t(100).
    #[rustfmt::skip]
    let cases: &[(&str, i64, Reuse)] = &[
        ("max-age=100", 100, Revalidate),
        ("max-age=100, stale-while-revalidate=0", 100, StaleWhileRevalidate),
        ("max-age=100, stale-while-revalidate=0", 101, Revalidate),
        ("max-age=100, stale-while-revalidate=2147483648", 2_147_483_748, StaleWhileRevalidate),
        ("max-age=100, stale-while-revalidate=2147483648", 2_147_483_749, Revalidate),
        ("max-age=100, stale-while-revalidate=99999999999", 2_147_483_748, StaleWhileRevalidate),
    ];
    for (response, now, expected) in cases {
        let policy = policy(&[("cache-control", response)]);
        assert_eq!(
            policy.reuse(&no_request(), t(*now)),
            *expected,
            "{response} at {now}"
        );
    }
    let zero = policy(&[("cache-control", "max-age=100, stale-if-error=0")]);
    assert!(zero.usable_on_error(&no_request(), OriginFailure::ErrorStatus, t(100)));
    let absent = policy(&[("cache-control", "max-age=100")]);
    assert!(!absent.usable_on_error(&no_request(), OriginFailure::ErrorStatus, t(100)));
}

#[test]
fn a_policy_stays_small() {
    // Every stored response holds one: growing it costs every entry of the cache.
    assert!(std::mem::size_of::<ResponsePolicy>() <= 80);
}

// --- usable_on_error: §4.2.4, RFC 5861 §4, grace ---

#[test]
fn rfc5861_4_usable_on_error() {
    use OriginFailure::*;
    // (name, response Cache-Control, request Cache-Control, failure, now, expected);
    // Date = t(0), grace = 60 s.
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, OriginFailure, i64, bool)] = &[
        ("fresh stands in", "max-age=100", "", ErrorStatus, 50, true),
        ("fresh must-revalidate stands in", "max-age=100, must-revalidate", "", ErrorStatus, 50, true),
        ("§5.2.2.4 fresh no-cache never", "no-cache, max-age=100", "", Unreachable, 50, false),
        ("sie within", "max-age=100, stale-if-error=60", "", ErrorStatus, 160, true),
        ("sie beyond", "max-age=100, stale-if-error=60", "", ErrorStatus, 161, false),
        ("sie beyond, unreachable, grace beyond too", "max-age=100, stale-if-error=60", "", Unreachable, 161, false),
        ("sie longer than grace", "max-age=100, stale-if-error=600", "", Unreachable, 600, true),
        ("grace: unreachable", "max-age=100", "", Unreachable, 160, true),
        ("grace: beyond", "max-age=100", "", Unreachable, 161, false),
        ("grace: not for an error status", "max-age=100", "", ErrorStatus, 110, false),
        ("§5.2.2.2 must-revalidate beats sie", "max-age=100, must-revalidate, stale-if-error=60", "", ErrorStatus, 110, false),
        ("§5.2.2.2 must-revalidate beats grace", "max-age=100, must-revalidate", "", Unreachable, 110, false),
        ("§5.2.2.8 proxy-revalidate beats grace", "max-age=100, proxy-revalidate", "", Unreachable, 110, false),
        ("§5.2.2.8 proxy-revalidate beats sie", "max-age=100, proxy-revalidate, stale-if-error=60", "", ErrorStatus, 110, false),
        ("§5.2.2.4 no-cache beats sie", "no-cache, stale-if-error=60", "", ErrorStatus, 1, false),
        ("§5.2.2.10 s-maxage beats grace", "s-maxage=100", "", Unreachable, 110, false),
        ("sie overrides s-maxage's implied proxy-revalidate", "s-maxage=100, stale-if-error=60", "", ErrorStatus, 110, true),
        ("s-maxage with sie, then beyond sie: no grace", "s-maxage=100, stale-if-error=10", "", Unreachable, 120, false),
        ("RFC 5861 §4 request sie", "max-age=100", "stale-if-error=300", ErrorStatus, 400, true),
        ("RFC 5861 §4 request sie beyond", "max-age=100", "stale-if-error=300", ErrorStatus, 401, false),
        ("request sie does not override s-maxage", "s-maxage=100", "stale-if-error=300", ErrorStatus, 110, false),
        ("request sie does not override must-revalidate", "max-age=100, must-revalidate", "stale-if-error=300", ErrorStatus, 110, false),
        ("§5.2.1.2 max-stale", "max-age=100", "max-stale=50", ErrorStatus, 150, true),
        ("§5.2.1.2 max-stale beyond", "max-age=100", "max-stale=50", ErrorStatus, 151, false),
        ("request no-cache does not stop a fresh stand-in", "max-age=100", "no-cache", Unreachable, 50, true),
        ("§5.2.1.2 max-stale does not override s-maxage", "s-maxage=100", "max-stale", ErrorStatus, 110, false),
    ];
    for (name, response, req, failure, now, expected) in cases {
        let policy = policy(&[("cache-control", response)]);
        let request = if req.is_empty() {
            no_request()
        } else {
            request(req)
        };
        assert_eq!(
            policy.usable_on_error(&request, *failure, t(*now)),
            *expected,
            "{name}"
        );
    }
}

// --- retain_for ---

#[test]
fn retain_for_windows_and_validators() {
    // (name, response fields, grace, now, expected retention); Date = t(0).
    const ETAG: (&str, &str) = ("etag", "\"v1\"");
    #[rustfmt::skip]
    let cases: Vec<(&str, Fields<'_>, u64, i64, Duration)> = vec![
        ("freshness + grace", &[("cache-control", "max-age=100")], 60, 0, secs(160)),
        ("later", &[("cache-control", "max-age=100")], 60, 100, secs(60)),
        ("past everything", &[("cache-control", "max-age=100")], 60, 200, secs(0)),
        ("no grace", &[("cache-control", "max-age=100")], 0, 0, secs(100)),
        ("swr longer than grace", &[("cache-control", "max-age=100, stale-while-revalidate=300")], 60, 0, secs(400)),
        ("sie longer than swr", &[("cache-control", "max-age=100, stale-while-revalidate=30, stale-if-error=500")], 60, 0, secs(600)),
        ("s-maxage: no grace", &[("cache-control", "s-maxage=100")], 60, 0, secs(100)),
        ("s-maxage + swr", &[("cache-control", "s-maxage=100, stale-while-revalidate=30")], 60, 0, secs(130)),
        ("must-revalidate: no window", &[("cache-control", "max-age=100, must-revalidate, stale-if-error=500")], 60, 0, secs(100)),
        ("proxy-revalidate: no window", &[("cache-control", "max-age=100, proxy-revalidate")], 60, 0, secs(100)),
        ("no-cache without validator: useless", &[("cache-control", "no-cache, max-age=100")], 60, 0, secs(0)),
        ("no-cache with validator: at least 60 s", &[("cache-control", "no-cache"), ETAG], 60, 0, secs(60)),
        ("no-cache with validator and freshness", &[("cache-control", "no-cache, max-age=600"), ETAG], 60, 0, secs(600)),
        ("validator keeps a stale response", &[("cache-control", "max-age=0, must-revalidate"), ETAG], 60, 1000, secs(60)),
        ("validator keeps at least grace", &[("cache-control", "max-age=0, must-revalidate"), ETAG], 300, 1000, secs(300)),
        ("validator: 60 s even with no grace", &[("cache-control", "max-age=0, must-revalidate"), ETAG], 0, 0, MIN_VALIDATOR_RETENTION),
        ("Last-Modified is a validator", &[("cache-control", "max-age=0, must-revalidate"), ("last-modified", "Tue, 14 Nov 2023 22:00:00 GMT")], 0, 0, secs(60)),
        ("validator does not shorten", &[("cache-control", "max-age=1000"), ETAG], 60, 0, secs(1060)),
    ];
    for (name, fields, grace, now, expected) in cases {
        let policy = Exchange::new(fields).grace(secs(grace)).policy();
        assert_eq!(policy.retain_for(t(now)), expected, "{name}");
    }
}

#[test]
fn rfc9110_8_8_has_validator() {
    assert!(policy(&[("etag", "\"x\"")]).has_validator());
    assert!(policy(&[("etag", "W/\"x\"")]).has_validator());
    assert!(policy(&[("last-modified", &http_date(-10))]).has_validator());
    assert!(!policy(&[("last-modified", "garbage")]).has_validator());
    assert!(!policy(&[("cache-control", "max-age=10")]).has_validator());
}

#[test]
fn rfc9111_4_3_4_freshened_policy_is_fresh_again() {
    // A stale stored response, validated by a 304 at t(1000): rebuilt from the merged
    // fields with the new exchange times, it is fresh again and not aged by the old Age.
    let stored = headers(&[
        ("cache-control", "max-age=100"),
        ("date", &http_date(0)),
        ("age", "50"),
        ("etag", "\"a\""),
    ]);
    let not_modified = headers(&[("date", &http_date(1000)), ("etag", "\"a\"")]);
    assert!(not_modified_selects(
        |name| stored.get(name).cloned(),
        &not_modified
    ));
    let merged = freshen_headers(&stored, &not_modified);
    let policy = ResponsePolicy::new(
        &Method::GET,
        &HeaderMap::new(),
        StatusCode::OK,
        &merged,
        t(1000),
        t(1000),
        &PolicySettings::default(),
    );
    assert_eq!(policy.current_age(t(1000)), Duration::ZERO);
    assert_eq!(policy.reuse(&no_request(), t(1050)), Reuse::Fresh);
}

#[test]
fn times_kept_in_eight_bytes_round_trip_and_saturate() {
    assert_eq!(std::mem::size_of::<ResponsePolicy>(), 48);
    let arrived = t(0) + Duration::from_nanos(123);
    assert_eq!(Nanos::since_epoch(arrived).time(), arrived);
    assert_eq!(Nanos::of(secs(60)).duration(), secs(60));
    assert_eq!(Nanos::of(Duration::MAX), Nanos(u64::MAX));
    assert_eq!(Nanos::since_epoch(UNIX_EPOCH - secs(1)).time(), UNIX_EPOCH);
    // An Expires past what 8 bytes hold (year 9999) saturates at ~584 years of freshness.
    let far = Exchange::new(&[("expires", "Fri, 31 Dec 9999 23:59:59 GMT")]).policy();
    assert_eq!(far.freshness_lifetime(), Duration::from_nanos(u64::MAX));
    assert_eq!(far.reuse(&no_request(), t(1_000_000_000)), Reuse::Fresh);
}
