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
//! * Grace ([`PolicySettings::grace`]) is the "disconnected" case of §4.2.4: it applies only
//!   when the origin is unreachable, never to an origin that answered with an error.
//!
//! Freshness the operator sets ([`PolicySettings::default_ttl`], [`PolicySettings::forced_ttl`])
//! stands exactly where a `max-age` would: the response's age (its `Age`, its time in transit)
//! counts against it, and every directive about reuse (`no-cache`, `must-revalidate`, the stale
//! windows) and every rule about storing (`no-store`, `private`, credentials) applies unchanged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    AGE, AUTHORIZATION, COOKIE, DATE, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE, VARY,
};
use http::{HeaderMap, Method, StatusCode};

use super::directives::parse_delta_seconds;
use super::directives::{DELTA_SECONDS_MAX, MaxStale, RequestDirectives, ResponseDirectives};
use super::fields::{http_date, single_value};

/// A stored response that has a validator is kept at least this long (or [`PolicySettings::grace`]
/// if longer), even when it can never be served without validation: a conditional request
/// that ends in 304 still saves the origin from sending the body again.
pub const MIN_VALIDATOR_RETENTION: Duration = Duration::from_secs(60);

/// The default bound on heuristic freshness: Varnish's `default_ttl`. A response that says
/// nothing of its freshness is kept briefly, and its `Last-Modified` makes each later
/// revalidation cheap.
pub const DEFAULT_MAX_HEURISTIC_FRESHNESS: Duration = Duration::from_secs(120);

/// Cache-wide knobs the policy needs, with the operator's freshness for the request's route.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    /// Fraction of (Date - Last-Modified) used as heuristic freshness (RFC 9111 §4.2.2 suggests 10%).
    pub heuristic_fraction: f64,
    /// Upper bound for heuristic freshness.
    pub max_heuristic_freshness: Duration,
    /// Freshness for a response the origin gave none (no `max-age`, `s-maxage` or `Expires`),
    /// in place of the heuristic: §4.2.2 lets a cache assign such a lifetime, to the same
    /// statuses the heuristic may serve. `None`: the heuristic applies.
    pub default_ttl: Option<Duration>,
    /// Freshness that replaces whatever the origin said (`max-age`, `s-maxage`, `Expires`, the
    /// heuristic), for an origin whose fields cannot be fixed; only for the heuristically
    /// cacheable statuses, so an error or a redirect the origin meant briefly is never kept
    /// longer. `None`: the origin's lifetime stands.
    pub forced_ttl: Option<Duration>,
    /// How long past freshness (+ stale windows) a stored response is kept to be served when the
    /// origin is unreachable (connection refused / timeout) — "grace", RFC 9111 §4.2.4 "disconnected".
    ///
    /// Measured from the end of the freshness lifetime, like the RFC 5861 windows.
    pub grace: Duration,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            heuristic_fraction: 0.1,
            max_heuristic_freshness: DEFAULT_MAX_HEURISTIC_FRESHNESS,
            default_ttl: None,
            forced_ttl: None,
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
/// Every stored response holds one, so it keeps only what later questions need (a size test bounds it):
/// whether the response may be stored is decided at construction, the directives are reduced
/// to the flags and windows that reuse, stand-ins and retention read, and its times take 8
/// bytes each (`Nanos`).
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
        config: &PolicySettings,
    ) -> Self {
        let directives = ResponseDirectives::from_response(res_headers);
        let credentials = Credentials::of(req_headers);
        let date = single_value(res_headers, &DATE).and_then(http_date);
        // RFC 9110 §6.6.1: without a (valid) Date, the time of receipt stands in for it.
        let date_value = date.unwrap_or(response_time);
        let expires = if directives.targeted {
            Expires::Absent
        } else {
            Expires::from_headers(res_headers)
        };
        // An answer to a request with credentials may be built for that user alone; only the
        // origin's own word may keep it for others, so neither heuristic freshness, a default
        // TTL nor grace applies to it, and a forced TTL only replaces a lifetime the origin gave.
        let personal_config;
        let config = if credentials.any() {
            let explicit = explicit_lifetime(&directives, expires != Expires::Absent);
            personal_config = PolicySettings {
                heuristic_fraction: 0.0,
                default_ttl: None,
                forced_ttl: config.forced_ttl.filter(|_| explicit),
                grace: Duration::ZERO,
                ..config.clone()
            };
            &personal_config
        } else {
            config
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
        explicit_lifetime(self.directives, self.has_expires)
    }
}

/// Whether the origin gave a response explicit freshness (RFC 9111 §4.2.1): `max-age` or
/// `s-maxage` (in `Cache-Control` or a targeted field), or `Expires` where no targeted field
/// applies; invalid values count too (they make it stale at once).
pub(crate) fn has_explicit_lifetime(headers: &HeaderMap) -> bool {
    let directives = ResponseDirectives::from_response(headers);
    let has_expires = !directives.targeted && headers.contains_key(EXPIRES);
    explicit_lifetime(&directives, has_expires)
}

fn explicit_lifetime(d: &ResponseDirectives, has_expires: bool) -> bool {
    d.max_age.is_some() || d.s_maxage.is_some() || d.freshness_invalid || has_expires
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

/// The operator's forced lifetime, else §4.2.1 (first match wins), else the operator's default
/// lifetime or the §4.2.2 heuristic.
fn freshness_lifetime(
    d: &ResponseDirectives,
    status: StatusCode,
    expires: Expires,
    date_value: SystemTime,
    last_modified: Option<SystemTime>,
    config: &PolicySettings,
) -> Duration {
    if let Some(forced) = config.forced_ttl {
        if heuristically_cacheable(status) {
            return forced;
        }
    }
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
    if let Some(default) = config.default_ttl {
        return default;
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
mod tests;
