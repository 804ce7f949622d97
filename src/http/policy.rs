//! RFC 9111 policy for one response in a shared cache: storability, freshness, age and reuse.
//!
//! A [`ResponsePolicy`] is built once, when a response arrives from the origin, and answers
//! every later question about it from values computed at construction; every question that
//! depends on time takes `now` explicitly, so the policy has no clock of its own.
//!
//! Stale-serving choices that the RFCs leave to the cache (all documented where they are made):
//!
//! * `s-maxage` implies `proxy-revalidate` for a shared cache (RFC 9111 §5.2.2.10), but an
//!   explicit `stale-while-revalidate` / `stale-if-error` from the origin (RFC 5861) overrides
//!   that *implicit* prohibition, so `s-maxage=600, stale-while-revalidate=30` works as it
//!   does on CDNs. Explicit `no-cache`, `must-revalidate` and `proxy-revalidate` are never
//!   overridden, and neither the client (`max-stale`, request `stale-if-error`) nor our own
//!   grace period overrides `s-maxage`.
//! * Grace ([`PolicyConfig::grace`]) is the "disconnected" case of §4.2.4: it applies only
//!   when the origin is unreachable, never to an origin that answered with an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    AGE, AUTHORIZATION, COOKIE, DATE, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE, VARY,
};
use http::{HeaderMap, Method, StatusCode};

use super::directives::parse_delta_seconds;
use super::directives::{DELTA_SECONDS_MAX, MaxStale, RequestDirectives, ResponseDirectives};
use super::fields::{http_date, single_value};

/// A stored response that has a validator is kept at least this long (or [`PolicyConfig::grace`]
/// if longer), even when it can never be served without validation: a conditional request
/// that ends in 304 still saves the origin from sending the body again.
pub const MIN_VALIDATOR_RETENTION: Duration = Duration::from_secs(60);

/// Cache-wide knobs the policy needs.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// Fraction of (Date - Last-Modified) used as heuristic freshness (RFC 9111 §4.2.2 suggests 10%).
    pub heuristic_fraction: f64,
    /// Upper bound for heuristic freshness.
    pub max_heuristic_freshness: Duration,
    /// How long past freshness (+ stale windows) a stored response is kept to be served when the
    /// origin is unreachable (connection refused / timeout) — "grace", RFC 9111 §4.2.4 "disconnected".
    ///
    /// Measured from the end of the freshness lifetime, like the RFC 5861 windows.
    pub grace: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            heuristic_fraction: 0.1,
            max_heuristic_freshness: Duration::from_secs(24 * 60 * 60),
            grace: Duration::from_secs(60),
        }
    }
}

/// Why a response is not stored. `as_str()` gives the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// The request method is not one we cache (only GET and HEAD are).
    Method,
    /// `no-store` (§5.2.2.5), not lifted by `must-understand`.
    NoStore,
    /// `private` (§5.2.2.7): a shared cache must not store it.
    Private,
    /// `Set-Cookie`, whatever `Cache-Control` says (`public` included): a cookie belongs to the
    /// one client it was issued to, so sidecache never stores it for others (as Varnish's
    /// built-in rules and nginx's defaults do).
    SetCookie,
    /// The request carried `Authorization` and the response does not allow sharing (§3.5).
    Authorization,
    /// The request carried `Cookie` and the response gave no explicit freshness (`max-age`,
    /// `s-maxage`, `Expires`): most frameworks send no cache fields on pages built for the user
    /// in the cookie, so only an origin that says how long the answer stays fresh shares it (as
    /// nginx does).
    Cookie,
    /// The status code: not final, partial (206), 304, one we must not store (RFC 6585), one
    /// `must-understand` requires us to know, or not heuristically cacheable without
    /// explicit freshness (§3).
    Status,
    /// `Vary: *` (§4.1): no later request can ever match it.
    VaryStar,
    /// Nothing would ever reuse it: stale on arrival, no stale window, no validator.
    ZeroTtl,
}

impl RefuseReason {
    /// Every reason, in declaration order (for creating every metric series up front).
    pub const ALL: [RefuseReason; 9] = [
        Self::Method,
        Self::NoStore,
        Self::Private,
        Self::SetCookie,
        Self::Authorization,
        Self::Cookie,
        Self::Status,
        Self::VaryStar,
        Self::ZeroTtl,
    ];

    /// Metric label for `sidecache_store_refused_total{reason}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::NoStore => "no_store",
            Self::Private => "private",
            Self::SetCookie => "set_cookie",
            Self::Authorization => "authorization",
            Self::Cookie => "cookie",
            Self::Status => "status",
            Self::VaryStar => "vary_star",
            Self::ZeroTtl => "zero_ttl",
        }
    }
}

/// What the origin did wrong, for deciding whether a stale response may stand in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginFailure {
    /// Connect error, reset, timeout, unparseable response: the cache is "disconnected"
    /// (RFC 9111 §4.2.4), so grace applies.
    Unreachable,
    /// The origin answered 500, 502, 503 or 504 (the errors of RFC 5861 §4).
    ErrorStatus,
}

/// How a stored response may be used for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh and nothing asks for validation: serve it.
    Fresh,
    /// Stale, but the request's `max-stale` allows it (serve, no revalidation).
    StaleAllowedByRequest,
    /// Stale within `stale-while-revalidate`: serve now, revalidate in the background.
    StaleWhileRevalidate,
    /// Must be validated with the origin first.
    Revalidate,
}

/// The RFC 9111 facts about one stored response, computed once at construction.
///
/// Every stored response holds one, so it keeps only what later questions need (48 bytes):
/// whether the response may be stored is decided at construction, the directives are reduced
/// to the flags and windows that reuse, stand-ins and retention read, and its times take 8
/// bytes each ([`Nanos`]).
#[derive(Debug, Clone)]
pub struct ResponsePolicy {
    freshness_lifetime: Nanos,
    /// §4.2.3 `corrected_initial_age`; `current_age` adds the resident time to it.
    corrected_initial_age: Nanos,
    /// When the response arrived, since the Unix epoch.
    response_time: Nanos,
    grace: Nanos,
    /// `stale-while-revalidate` (RFC 5861 §3) of the governing directives.
    stale_while_revalidate: Window,
    /// `stale-if-error` (RFC 5861 §4) of the governing directives.
    stale_if_error: Window,
    /// Why the response must not be stored (§3), decided once from the whole exchange.
    refusal: Option<RefuseReason>,
    /// `no-cache` (§5.2.2.4).
    no_cache: bool,
    /// `must-revalidate` (§5.2.2.2).
    must_revalidate: bool,
    /// `proxy-revalidate` (§5.2.2.8).
    proxy_revalidate: bool,
    /// `s-maxage` is present (§5.2.2.10); it implies `proxy-revalidate` for a shared cache.
    shared_max_age: bool,
    has_validator: bool,
}

/// A stale window from a directive, in four bytes. Directive values are whole seconds of at
/// most 2^31 ([`DELTA_SECONDS_MAX`]), so a `u32` holds every one exactly and `u32::MAX` is free
/// to mean "absent".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window(u32);

/// A length of time, or a time as its distance from the Unix epoch, in 8 bytes where a
/// `Duration` or a `SystemTime` takes 16. Whole nanoseconds saturate at ~584 years, beyond
/// anything a response can mean: delta-seconds stop at 2^31 s (~68 years), an `Expires` further
/// out is fresh for the 584 years instead, and a clock before 1970 reads as 1970.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Nanos(u64);

/// The parts of an exchange that decide storability (§3) but nothing after it.
struct Storability<'a> {
    directives: &'a ResponseDirectives,
    method_cacheable: bool,
    status: StatusCode,
    /// §3.5 needs to know whether the request that produced it was authenticated, and the
    /// `Cookie` rule whether it carried a cookie.
    credentials: Credentials,
    has_set_cookie: bool,
    vary_star: bool,
    /// An `Expires` field counts as explicit freshness for §3 even when invalid, but not when a
    /// targeted field governs the response (RFC 9213 §2.1).
    has_expires: bool,
}

/// The credentials a request carried, as far as sharing its answer depends on them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `Authorization` (RFC 9111 §3.5).
    pub authorization: bool,
    /// `Cookie`.
    pub cookie: bool,
}

// === impl Credentials ===

impl Credentials {
    /// What `request` carries.
    pub fn of(request: &HeaderMap) -> Self {
        Self {
            authorization: request.contains_key(AUTHORIZATION),
            cookie: request.contains_key(COOKIE),
        }
    }

    /// Whether it carries any: an answer to it may be meant for that user alone.
    pub fn any(self) -> bool {
        self.authorization || self.cookie
    }
}

// === impl ResponsePolicy ===

impl ResponsePolicy {
    /// `request_time`/`response_time`: when the request to the origin was sent / response received
    /// (RFC 9111 §4.2.3). `req_headers` are the headers of the request that was sent to the origin.
    pub fn new(
        req_method: &Method,
        req_headers: &HeaderMap,
        status: StatusCode,
        res_headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
        config: &PolicyConfig,
    ) -> Self {
        let directives = ResponseDirectives::from_response(res_headers);
        let credentials = Credentials::of(req_headers);
        // An answer to a request with credentials may be built for that user alone; only the
        // origin's own word may keep it for others, so neither heuristic freshness nor grace
        // applies to it.
        let personal_config;
        let config = if credentials.any() {
            personal_config = PolicyConfig {
                heuristic_fraction: 0.0,
                grace: Duration::ZERO,
                ..config.clone()
            };
            &personal_config
        } else {
            config
        };
        let date = single_value(res_headers, &DATE).and_then(http_date);
        // RFC 9110 §6.6.1: without a (valid) Date, the time of receipt stands in for it.
        let date_value = date.unwrap_or(response_time);
        let expires = if directives.targeted {
            Expires::Absent
        } else {
            Expires::from_headers(res_headers)
        };
        let last_modified = single_value(res_headers, &LAST_MODIFIED).and_then(http_date);
        let freshness_lifetime = freshness_lifetime(
            &directives,
            status,
            expires,
            date_value,
            last_modified,
            config,
        );
        let corrected_initial_age =
            corrected_initial_age(date, age_value(res_headers), request_time, response_time);
        let has_etag = res_headers
            .get(ETAG)
            .is_some_and(|etag| !etag.as_bytes().is_empty());
        let mut policy = Self {
            freshness_lifetime: Nanos::of(freshness_lifetime),
            corrected_initial_age: Nanos::of(corrected_initial_age),
            response_time: Nanos::since_epoch(response_time),
            grace: Nanos::of(config.grace),
            stale_while_revalidate: Window::new(directives.stale_while_revalidate),
            stale_if_error: Window::new(directives.stale_if_error),
            refusal: None,
            no_cache: directives.no_cache,
            must_revalidate: directives.must_revalidate,
            proxy_revalidate: directives.proxy_revalidate,
            shared_max_age: directives.s_maxage.is_some(),
            has_validator: has_etag || last_modified.is_some(),
        };
        policy.refusal = Storability {
            directives: &directives,
            method_cacheable: *req_method == Method::GET || *req_method == Method::HEAD,
            status,
            credentials,
            has_set_cookie: res_headers.contains_key(SET_COOKIE),
            vary_star: vary_star(res_headers),
            has_expires: expires != Expires::Absent,
        }
        .refusal(&policy)
        .err();
        policy
    }

    /// RFC 9111 §3 (+ §3.5 Authorization) + our Set-Cookie rule. Ok(()) means store.
    ///
    /// The request's own `no-store` is the caller's to check. Checks run from the most to the
    /// least specific reason, so the label says what the origin actually asked for.
    ///
    /// # Errors
    ///
    /// The reason the response must not (or need not) be stored.
    pub fn storable(&self) -> Result<(), RefuseReason> {
        self.refusal.map_or(Ok(()), Err)
    }

    /// §4.2.1 (+ §4.2.2 heuristic): how long the response is fresh, counted from its origin.
    pub fn freshness_lifetime(&self) -> Duration {
        self.freshness_lifetime.duration()
    }

    /// §4.2.3 `current_age` at `now`.
    pub fn current_age(&self, now: SystemTime) -> Duration {
        let resident_time = elapsed(self.response_time.time(), now);
        self.corrected_initial_age
            .duration()
            .saturating_add(resident_time)
    }

    /// Whole seconds for the `Age` header (§5.1), at most 2^31 (§1.2.2).
    pub fn age_header_seconds(&self, now: SystemTime) -> u64 {
        self.current_age(now).as_secs().min(DELTA_SECONDS_MAX)
    }

    /// freshness_lifetime - current_age in whole seconds, negative when stale (RFC 9211 `ttl`).
    ///
    /// Rounded down, so any staleness at all gives a negative value.
    pub fn ttl_seconds(&self, now: SystemTime) -> i64 {
        let remaining =
            self.freshness_lifetime().as_nanos() as i128 - self.current_age(now).as_nanos() as i128;
        let secs = remaining.div_euclid(1_000_000_000);
        i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX })
    }

    /// §4.2: `response_is_fresh = (freshness_lifetime > current_age)`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.freshness_lifetime() > self.current_age(now)
    }

    /// How the stored response may be used for a request with `request` directives (§4,
    /// §4.2.4, §5.2.1, §5.2.2, RFC 5861 §3).
    ///
    /// When a stale response is both within `stale-while-revalidate` and allowed by the
    /// request's `max-stale`, this answers [`Reuse::StaleWhileRevalidate`]: the client gets the
    /// same response either way, and the background revalidation refreshes the entry.
    pub fn reuse(&self, request: &RequestDirectives, now: SystemTime) -> Reuse {
        // §4 / §5.2.2.4 and §5.2.1.4: no-cache on either side means validate first.
        if self.no_cache || request.no_cache {
            return Reuse::Revalidate;
        }
        let age = self.current_age(now);
        // §5.2.1.1: the client does not want a response older than max-age.
        if request.max_age.is_some_and(|max_age| age > max_age) {
            return Reuse::Revalidate;
        }
        let lifetime = self.freshness_lifetime();
        let remaining = lifetime.saturating_sub(age);
        // §5.2.1.3: the response must stay fresh for at least min-fresh more.
        if request
            .min_fresh
            .is_some_and(|min_fresh| remaining < min_fresh)
        {
            return Reuse::Revalidate;
        }
        if lifetime > age {
            return Reuse::Fresh;
        }
        // §4.2.4: stale from here on.
        let staleness = age - lifetime;
        if self.forbids_stale_explicitly() {
            return Reuse::Revalidate;
        }
        // RFC 5861 §3, overriding the implicit proxy-revalidate of s-maxage (module docs).
        if self
            .stale_while_revalidate
            .get()
            .is_some_and(|swr| staleness <= swr)
        {
            return Reuse::StaleWhileRevalidate;
        }
        if !self.forbids_stale_implicitly() && max_stale_allows(request.max_stale, staleness) {
            return Reuse::StaleAllowedByRequest;
        }
        Reuse::Revalidate
    }

    /// Whether this stored response may stand in for a failed origin fetch (stale-if-error, or
    /// grace when the origin is unreachable), §4.2.4, RFC 5861 §4.
    ///
    /// A fresh response may always stand in (RFC 9111 §4.3.3 lets a cache act as if a
    /// failed validation never happened), unless it carries `no-cache`: that response must
    /// never be used without a successful validation (§5.2.2.4). The request's `no-cache`,
    /// `max-age` and `min-fresh` are preferences for the normal path (§5.2.1) and do not stop
    /// a stand-in; its `max-stale` and `stale-if-error` widen what may stand in.
    pub fn usable_on_error(
        &self,
        request: &RequestDirectives,
        failure: OriginFailure,
        now: SystemTime,
    ) -> bool {
        if self.no_cache {
            return false;
        }
        let age = self.current_age(now);
        let lifetime = self.freshness_lifetime();
        if lifetime > age {
            return true;
        }
        // §5.2.2.2 / §5.2.2.8: "MUST NOT reuse ... until it has been successfully validated",
        // even when disconnected.
        if self.forbids_stale_explicitly() {
            return false;
        }
        let staleness = age - lifetime;
        // RFC 5861 §4, from the origin: overrides the implicit prohibition of s-maxage.
        if self
            .stale_if_error
            .get()
            .is_some_and(|sie| staleness <= sie)
        {
            return true;
        }
        if self.forbids_stale_implicitly() {
            return false;
        }
        // RFC 5861 §4 in a request, and §5.2.1.2 max-stale: the client allows it.
        if request.stale_if_error.is_some_and(|sie| staleness <= sie)
            || max_stale_allows(request.max_stale, staleness)
        {
            return true;
        }
        failure == OriginFailure::Unreachable && staleness <= self.grace.duration()
    }

    /// How long from `now` the store should keep the response: remaining freshness plus the longest
    /// stale window that could still use it (swr, sie, grace where allowed); Duration::ZERO if none
    /// and it has no validator (ETag / Last-Modified) that would make it worth keeping for revalidation.
    ///
    /// Choices:
    /// * The windows that count are the response's own `stale-while-revalidate` and
    ///   `stale-if-error`, and grace unless `s-maxage` forbids it — the same rules as
    ///   [`Self::reuse`] and [`Self::usable_on_error`]. A client's `max-stale` cannot be
    ///   foreseen and does not extend retention.
    /// * `no-cache`, `must-revalidate` and `proxy-revalidate` close every stale window; a
    ///   `no-cache` response without a validator is not worth keeping at all (every reuse would
    ///   be a full fetch, and it may not stand in for errors).
    /// * A response with a validator is kept at least `max(grace, 60 s)` from `now`
    ///   ([`MIN_VALIDATOR_RETENTION`]), even if already stale: revalidating it costs the origin
    ///   a 304 instead of a body. This is what keeps `no-cache` + `ETag` and `max-age=0` +
    ///   `ETag` responses useful. Each successful revalidation builds a new policy and so
    ///   starts a new retention period.
    pub fn retain_for(&self, now: SystemTime) -> Duration {
        let retain = self
            .freshness_lifetime()
            .saturating_add(self.longest_stale_window())
            .saturating_sub(self.current_age(now));
        if self.has_validator {
            retain.max(self.grace.duration().max(MIN_VALIDATOR_RETENTION))
        } else if self.no_cache {
            Duration::ZERO
        } else {
            retain
        }
    }

    /// Whether the response has a validator (`ETag` or a valid `Last-Modified`) that a
    /// conditional request can use (RFC 9110 §8.8).
    pub fn has_validator(&self) -> bool {
        self.has_validator
    }

    /// §4.2.4: "prohibited by an explicit in-protocol directive". Nothing overrides these.
    fn forbids_stale_explicitly(&self) -> bool {
        self.no_cache || self.must_revalidate || self.proxy_revalidate
    }

    /// §5.2.2.10: s-maxage "incorporates the semantics of the proxy-revalidate response
    /// directive" for shared caches. Only the origin's explicit RFC 5861 windows override it.
    fn forbids_stale_implicitly(&self) -> bool {
        self.shared_max_age
    }

    /// The longest time past freshness during which some path may still serve the response.
    fn longest_stale_window(&self) -> Duration {
        if self.forbids_stale_explicitly() {
            return Duration::ZERO;
        }
        let explicit = self
            .stale_while_revalidate
            .get()
            .unwrap_or_default()
            .max(self.stale_if_error.get().unwrap_or_default());
        if self.forbids_stale_implicitly() {
            explicit
        } else {
            explicit.max(self.grace.duration())
        }
    }
}

// === impl Storability ===

impl Storability<'_> {
    /// §3 for the exchange that produced `policy`: why it must not be stored, if it must not.
    fn refusal(&self, policy: &ResponsePolicy) -> Result<(), RefuseReason> {
        let d = self.directives;
        if !self.method_cacheable {
            return Err(RefuseReason::Method);
        }
        let code = self.status.as_u16();
        // §3: the status must be final; we store neither partial content nor 304s.
        if self.status.is_informational() || code == 206 || code == 304 {
            return Err(RefuseReason::Status);
        }
        // RFC 6585 §§3-6: 428, 429, 431 and 511 "MUST NOT be stored by a cache".
        if matches!(code, 428 | 429 | 431 | 511) {
            return Err(RefuseReason::Status);
        }
        // §5.2.2.3: with must-understand we store only statuses whose caching rules we
        // implement, and for those the accompanying no-store is ignored.
        let understood = d.must_understand && understood_status(self.status);
        if d.must_understand && !understood && !d.no_store {
            return Err(RefuseReason::Status);
        }
        if d.no_store && !understood {
            return Err(RefuseReason::NoStore);
        }
        if d.private {
            return Err(RefuseReason::Private);
        }
        // §3.5: only must-revalidate, public and s-maxage allow sharing an authenticated response.
        if self.credentials.authorization
            && !(d.public || d.s_maxage.is_some() || d.must_revalidate)
        {
            return Err(RefuseReason::Authorization);
        }
        // Stricter than §3 (which lets `public` share it): a stored cookie would be handed to
        // every later client, a session-fixation and account-mixing hazard.
        if self.has_set_cookie {
            return Err(RefuseReason::SetCookie);
        }
        if self.vary_star {
            return Err(RefuseReason::VaryStar);
        }
        if self.credentials.cookie && !self.has_explicit_lifetime() {
            return Err(RefuseReason::Cookie);
        }
        if !self.has_explicit_freshness() && !heuristically_cacheable(self.status) {
            return Err(RefuseReason::Status);
        }
        if policy.retain_for(policy.response_time.time()).is_zero() {
            return Err(RefuseReason::ZeroTtl);
        }
        Ok(())
    }

    /// §3: max-age, s-maxage (even invalid ones), Expires (even an invalid one), or public.
    fn has_explicit_freshness(&self) -> bool {
        self.has_explicit_lifetime() || self.directives.public
    }

    /// The origin said how long the response stays fresh: max-age, s-maxage or Expires (invalid
    /// ones too: they make it stale at once).
    fn has_explicit_lifetime(&self) -> bool {
        let d = self.directives;
        d.max_age.is_some() || d.s_maxage.is_some() || d.freshness_invalid || self.has_expires
    }
}

// === impl Window ===

impl Window {
    /// No such directive.
    const ABSENT: Self = Self(u32::MAX);

    fn new(window: Option<Duration>) -> Self {
        window.map_or(Self::ABSENT, |window| {
            // Never more than 2^31 (the directive parser saturates there); clamped all the same.
            let secs = u32::try_from(window.as_secs()).unwrap_or(u32::MAX);
            Self(secs.min(Self::ABSENT.0 - 1))
        })
    }

    fn get(self) -> Option<Duration> {
        (self != Self::ABSENT).then(|| Duration::from_secs(u64::from(self.0)))
    }
}

// === impl Nanos ===

impl Nanos {
    fn of(duration: Duration) -> Self {
        Self(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
    }

    fn since_epoch(time: SystemTime) -> Self {
        Self::of(elapsed(UNIX_EPOCH, time))
    }

    fn duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    fn time(self) -> SystemTime {
        UNIX_EPOCH + self.duration()
    }
}

/// §5.2.1.2: `max-stale` without a value accepts any staleness, with one accepts up to it.
fn max_stale_allows(max_stale: Option<MaxStale>, staleness: Duration) -> bool {
    match max_stale {
        Some(MaxStale::Any) => true,
        Some(MaxStale::Limit(limit)) => staleness <= limit,
        None => false,
    }
}

/// The `Expires` field as §4.2.1 and §5.3 see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expires {
    Absent,
    /// §5.3: "A cache recipient MUST interpret invalid date formats, especially the value
    /// "0", as representing a time in the past (i.e., "already expired")." Several field
    /// lines are invalid too: Expires is a singleton and its dates contain commas.
    Invalid,
    At(SystemTime),
}

impl Expires {
    fn from_headers(headers: &HeaderMap) -> Self {
        let mut lines = headers.get_all(EXPIRES).iter();
        match (lines.next(), lines.next()) {
            (None, _) => Self::Absent,
            (Some(value), None) => http_date(value).map_or(Self::Invalid, Self::At),
            (Some(_), Some(_)) => Self::Invalid,
        }
    }
}

/// §4.2.1 (first match wins) and §4.2.2.
fn freshness_lifetime(
    d: &ResponseDirectives,
    status: StatusCode,
    expires: Expires,
    date_value: SystemTime,
    last_modified: Option<SystemTime>,
    config: &PolicyConfig,
) -> Duration {
    // §4.2.1: "Caches are encouraged to consider responses that have invalid freshness
    // information ... to be stale."
    if d.freshness_invalid {
        return Duration::ZERO;
    }
    // A shared cache prefers s-maxage; either directive makes Expires irrelevant (§5.3).
    if let Some(lifetime) = d.s_maxage.or(d.max_age) {
        return lifetime;
    }
    match expires {
        Expires::At(expires) => return elapsed(date_value, expires),
        Expires::Invalid => return Duration::ZERO,
        Expires::Absent => {}
    }
    // §4.2.2 heuristic: only without explicit expiration, for heuristically cacheable status
    // codes, or any status marked `public` (§5.2.2.9).
    if !(heuristically_cacheable(status) || d.public) {
        return Duration::ZERO;
    }
    let Some(last_modified) = last_modified else {
        return Duration::ZERO;
    };
    // A Last-Modified in the future (after Date) gives an empty interval, hence zero.
    let interval = elapsed(last_modified, date_value);
    Duration::try_from_secs_f64(interval.as_secs_f64() * config.heuristic_fraction)
        // A negative or NaN fraction is a misconfiguration: no heuristic freshness then.
        .unwrap_or(Duration::ZERO)
        .min(config.max_heuristic_freshness)
}

/// §4.2.3: `corrected_initial_age = max(apparent_age, age_value + response_delay)`.
fn corrected_initial_age(
    date: Option<SystemTime>,
    age_value: Duration,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    // Without a valid Date there is no apparent age (the Date would be response_time).
    let apparent_age = date.map_or(Duration::ZERO, |date| elapsed(date, response_time));
    let response_delay = elapsed(request_time, response_time);
    apparent_age.max(age_value.saturating_add(response_delay))
}

/// §5.1: the first member of the first `Age` field line; an invalid value means no Age.
fn age_value(headers: &HeaderMap) -> Duration {
    headers
        .get(AGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .and_then(|first| parse_delta_seconds(first.trim_matches([' ', '\t'])))
        .unwrap_or(Duration::ZERO)
}

/// `later - earlier`, or zero when `later` is not later (clock skew never yields negative ages).
fn elapsed(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}

/// §4.1: "A stored response with a Vary header field value containing a member "*" always
/// fails to match."
fn vary_star(headers: &HeaderMap) -> bool {
    headers.get_all(VARY).iter().any(|line| {
        line.as_bytes()
            .split(|b| *b == b',')
            .any(|member| member.trim_ascii() == b"*")
    })
}

/// RFC 9110 §15.1: the status codes defined as "heuristically cacheable" (200, 203, 204, 206,
/// 300, 301, 308, 404, 405, 410, 414 and 501); no other registered code is.
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes whose caching requirements we implement (§5.2.2.3 must-understand): the
/// final RFC 9110 codes, except 206 and 304 (we store neither), the deprecated or unused
/// 305, 306 and 418, and the RFC 6585 codes that must never be stored anyway.
fn understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=205 | 300..=303 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

#[cfg(test)]
mod tests {
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
        config: PolicyConfig,
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
                config: PolicyConfig::default(),
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
            ("§4.2.2 capped", Exchange::new(&[("last-modified", &http_date(-100 * 24 * 3600))]), secs(24 * 3600)),
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
            &PolicyConfig::default(),
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
}
