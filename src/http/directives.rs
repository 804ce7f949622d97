//! Cache-Control directive parsing (RFC 9111 §5.2) and targeted cache-control fields (RFC 9213).
//!
//! Two syntaxes feed the same directive model:
//!
//! * `Cache-Control` (RFC 9111 §5.2): `#cache-directive`, where a directive is
//!   `token [ "=" ( token / quoted-string ) ]`. Names are case-insensitive, empty list
//!   members are skipped, unknown directives are ignored and one malformed directive does
//!   not spoil the others. The argument grammar is exact, though: whitespace around `=`
//!   makes the argument invalid, as the cache-tests suite requires.
//! * Targeted fields such as `CDN-Cache-Control` (RFC 9213 §2): a Structured Field
//!   Dictionary (RFC 8941 §3.2). Parsing is strict: a field that is not a valid
//!   dictionary, or gives a delta-seconds directive a value that is not an integer, is
//!   ignored as a whole and the next source is used instead.

use std::time::Duration;

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

use super::sf;

/// Targeted field aimed at sidecache alone (RFC 9213 §2.1); first on our target list.
pub const SIDECACHE_CACHE_CONTROL: &str = "sidecache-cache-control";

/// Targeted field aimed at every CDN-like cache (RFC 9213 §3); second on our target list.
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// Our target list, most specific first (RFC 9213 §2.1: "select the first (in target-list
/// order) field with a valid, non-empty value").
const TARGET_LIST: [&str; 2] = [SIDECACHE_CACHE_CONTROL, CDN_CACHE_CONTROL];

/// RFC 9111 §1.2.2: a delta-seconds value too large to represent (or any later overflow) is
/// taken as 2^31 seconds, which the RFC uses as "infinity".
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// Response directives the cache acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    /// `max-age` (§5.2.2.1): freshness lifetime when no `s-maxage` applies.
    pub max_age: Option<Duration>,
    /// `s-maxage` (§5.2.2.10): freshness lifetime for shared caches like us; it also carries
    /// the semantics of `proxy-revalidate`.
    pub s_maxage: Option<Duration>,
    /// `no-store` (§5.2.2.5): never store (unless overridden by `must-understand`).
    pub no_store: bool,
    /// `no-cache` (§5.2.2.4): store, but validate before every reuse. The qualified form
    /// `no-cache="field"` is treated as unqualified, which §5.2.2.4 explicitly allows.
    pub no_cache: bool,
    /// `private` (§5.2.2.7): a shared cache must not store it. The qualified form
    /// `private="field"` is treated as unqualified, the conservative reading.
    pub private: bool,
    /// `public` (§5.2.2.9): storable even where it would otherwise not be (Authorization,
    /// non-heuristic status); sidecache also lets it share a `Set-Cookie` response.
    pub public: bool,
    /// `must-revalidate` (§5.2.2.2): never serve stale, not even when disconnected.
    pub must_revalidate: bool,
    /// `proxy-revalidate` (§5.2.2.8): `must-revalidate` for shared caches.
    pub proxy_revalidate: bool,
    /// `must-understand` (§5.2.2.3): store only if we understand the status code, and
    /// then ignore `no-store`.
    pub must_understand: bool,
    /// `immutable` (RFC 8246): parsed so callers can see it; it does not extend freshness.
    pub immutable: bool,
    /// `stale-while-revalidate` (RFC 5861 §3): how long past freshness the response may be
    /// served while it is revalidated in the background.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error` (RFC 5861 §4): how long past freshness the response may stand in
    /// for an origin error.
    pub stale_if_error: Option<Duration>,
    /// max-age or s-maxage present more than once with different values, or with a value that is not
    /// delta-seconds: the response's freshness information is invalid and the cache treats it as stale
    /// (§4.2.1 "caches are encouraged to consider responses that have invalid freshness information to be stale").
    pub freshness_invalid: bool,
    /// These came from a targeted field (RFC 9213): then `Expires` and `Cache-Control` are ignored.
    pub targeted: bool,
}

/// Request directives the cache acts on (RFC 9111 §5.2.1, RFC 5861 §4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `max-age` (§5.2.1.1): the client does not want a response older than this.
    pub max_age: Option<Duration>,
    /// `max-stale` (§5.2.1.2): the client accepts a stale response (up to a limit).
    pub max_stale: Option<MaxStale>,
    /// `min-fresh` (§5.2.1.3): the client wants a response fresh for at least this long.
    pub min_fresh: Option<Duration>,
    /// `no-cache` (§5.2.1.4): validate before reusing. Also set by `Pragma: no-cache` when the
    /// request has no `Cache-Control` field (§5.4).
    pub no_cache: bool,
    /// `no-store` (§5.2.1.5): do not store the request or its response; checked by the caller.
    pub no_store: bool,
    /// `only-if-cached` (§5.2.1.7): answer from the cache or with 504, never from the origin.
    pub only_if_cached: bool,
    /// `stale-if-error` as a request directive (RFC 5861 §4: "its scope of application is the
    /// request it appears in"): how stale a response the client accepts instead of an error.
    pub stale_if_error: Option<Duration>,
}

/// The argument of a request `max-stale` directive (§5.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// `max-stale` without a value: "the client will accept a stale response of any age".
    Any,
    /// `max-stale=N`: stale by no more than N seconds.
    Limit(Duration),
}

/// Parses an RFC 9111 §1.2.2 `delta-seconds` (`1*DIGIT`), saturating at 2^31 seconds.
///
/// Returns `None` for anything else: empty, signed, fractional or containing non-digits.
/// Surrounding whitespace is not accepted; callers trim where the grammar allows OWS.
pub fn parse_delta_seconds(value: &str) -> Option<Duration> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Accumulate with saturation so arbitrarily long digit strings cannot overflow (§1.2.2).
    let secs = value.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(DELTA_SECONDS_MAX)
    });
    Some(Duration::from_secs(secs))
}

// === impl ResponseDirectives ===

impl ResponseDirectives {
    /// Parses the response's directives: the first targeted field with a valid, non-empty value in
    /// target-list order (`Sidecache-Cache-Control`, then `CDN-Cache-Control`), else `Cache-Control`.
    ///
    /// All field lines of a field are combined, as §5.3 of RFC 9110 allows for list fields.
    pub fn from_response(headers: &HeaderMap) -> Self {
        for name in TARGET_LIST {
            if let Some(members) = targeted_field(headers, name) {
                let mut directives = Self::from_directives(&members);
                directives.targeted = true;
                return directives;
            }
        }
        Self::from_directives(&cache_control_directives(headers))
    }

    fn from_directives(directives: &[Directive]) -> Self {
        let mut out = Self::default();
        let mut max_age = Occurrence::Absent;
        let mut s_maxage = Occurrence::Absent;
        for directive in directives {
            if directive.value.is_false() {
                // RFC 9213 targeted fields: `name=?0` means the directive is not there.
                continue;
            }
            match directive.name.as_str() {
                "max-age" => max_age.record(directive.value.delta_seconds()),
                "s-maxage" => s_maxage.record(directive.value.delta_seconds()),
                "no-store" => out.no_store = true,
                "no-cache" => out.no_cache = true,
                "private" => out.private = true,
                "public" => out.public = true,
                "must-revalidate" => out.must_revalidate = true,
                "proxy-revalidate" => out.proxy_revalidate = true,
                "must-understand" => out.must_understand = true,
                "immutable" => out.immutable = true,
                "stale-while-revalidate" => {
                    out.stale_while_revalidate =
                        shortest(out.stale_while_revalidate, directive.value.delta_seconds())
                }
                "stale-if-error" => {
                    out.stale_if_error =
                        shortest(out.stale_if_error, directive.value.delta_seconds())
                }
                _ => {} // §5.2.3: unknown extensions are ignored.
            }
        }
        out.max_age = max_age.value();
        out.s_maxage = s_maxage.value();
        out.freshness_invalid = max_age.is_invalid() || s_maxage.is_invalid();
        out
    }
}

/// Merges a repeated directive keeping the shorter value: for windows and the request's
/// `max-age` that is the most restrictive one (§4.2.1 "If directives conflict ... the most
/// restrictive directive should be honored"). An invalid (`None`) value is ignored.
fn shortest(current: Option<Duration>, new: Option<Duration>) -> Option<Duration> {
    match (current, new) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What has been seen of a freshness directive (`max-age`, `s-maxage`) so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occurrence {
    Absent,
    Valid(Duration),
    /// A value that is not delta-seconds, or two different values (§4.2.1).
    Invalid,
}

impl Occurrence {
    fn record(&mut self, value: Option<Duration>) {
        *self = match (*self, value) {
            (Self::Absent, Some(v)) => Self::Valid(v),
            // Duplicates with the same value are harmless.
            (Self::Valid(old), Some(v)) if old == v => Self::Valid(v),
            _ => Self::Invalid,
        };
    }

    fn value(self) -> Option<Duration> {
        match self {
            Self::Valid(v) => Some(v),
            Self::Absent | Self::Invalid => None,
        }
    }

    fn is_invalid(self) -> bool {
        self == Self::Invalid
    }
}

// === impl RequestDirectives ===

impl RequestDirectives {
    /// Parses the request's `Cache-Control` (and, without it, `Pragma: no-cache`, §5.4).
    ///
    /// Invalid values make the directive absent: a client's malformed preference must not
    /// turn into a stricter or looser one. Duplicates keep the most restrictive value.
    pub fn from_request(headers: &HeaderMap) -> Self {
        let mut out = Self::default();
        for directive in cache_control_directives(headers) {
            match directive.name.as_str() {
                "max-age" => {
                    out.max_age = shortest(out.max_age, directive.value.delta_seconds());
                }
                "min-fresh" => {
                    out.min_fresh = longest(out.min_fresh, directive.value.delta_seconds());
                }
                "max-stale" => {
                    let new = match directive.value {
                        Value::Absent => Some(MaxStale::Any),
                        _ => directive.value.delta_seconds().map(MaxStale::Limit),
                    };
                    out.max_stale = stricter_max_stale(out.max_stale, new);
                }
                "stale-if-error" => {
                    out.stale_if_error =
                        shortest(out.stale_if_error, directive.value.delta_seconds());
                }
                "no-cache" => out.no_cache = true,
                "no-store" => out.no_store = true,
                "only-if-cached" => out.only_if_cached = true,
                _ => {}
            }
        }
        // §5.4: Pragma only counts for HTTP/1.0 clients that send no Cache-Control at all.
        if !headers.contains_key(CACHE_CONTROL) && pragma_no_cache(headers) {
            out.no_cache = true;
        }
        out
    }
}

/// Merges a repeated `min-fresh`, keeping the longer (more restrictive) value.
fn longest(current: Option<Duration>, new: Option<Duration>) -> Option<Duration> {
    match (current, new) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Merges a repeated `max-stale`: a limit is stricter than none, a shorter limit stricter still.
fn stricter_max_stale(current: Option<MaxStale>, new: Option<MaxStale>) -> Option<MaxStale> {
    match (current, new) {
        (Some(MaxStale::Limit(a)), Some(MaxStale::Limit(b))) => Some(MaxStale::Limit(a.min(b))),
        (Some(MaxStale::Limit(a)), _) | (_, Some(MaxStale::Limit(a))) => Some(MaxStale::Limit(a)),
        (a, b) => a.or(b),
    }
}

/// `Pragma: no-cache` (RFC 9111 §5.4; the pragma-directive names are case-insensitive tokens).
fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(PRAGMA).iter().any(|line| {
        String::from_utf8_lossy(line.as_bytes())
            .split(',')
            .any(|member| member.trim().eq_ignore_ascii_case("no-cache"))
    })
}

// === directive model shared by both syntaxes ===

/// One directive as received, before its meaning is applied.
#[derive(Debug, Clone, PartialEq)]
struct Directive {
    /// Lowercase name.
    name: String,
    value: Value,
}

/// A directive's argument, keeping enough of its syntax to judge validity.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// No argument (`Cache-Control: no-store`).
    Absent,
    /// A `Cache-Control` argument: a token, or a quoted-string with its escapes removed.
    Text(String),
    /// A `Cache-Control` argument that is neither a token nor a well-formed quoted-string.
    Malformed,
    /// An sf-integer from a targeted field.
    Integer(i64),
    /// An sf-boolean from a targeted field; a bare key is `?1` (RFC 8941 §3.2).
    Boolean(bool),
    /// Any other structured value (string, token, decimal, byte sequence, inner list).
    OtherStructured,
}

impl Value {
    /// The value as delta-seconds, or `None` when it is not one (RFC 9111 §1.2.2 for
    /// `Cache-Control`; RFC 9213 §2.1 sf-integer for targeted fields).
    fn delta_seconds(&self) -> Option<Duration> {
        match self {
            // §5.2: recipients must accept both token and quoted-string forms.
            Self::Text(text) => parse_delta_seconds(text),
            Self::Integer(n) => u64::try_from(*n)
                .ok()
                .map(|secs| Duration::from_secs(secs.min(DELTA_SECONDS_MAX))),
            Self::Absent | Self::Malformed | Self::Boolean(_) | Self::OtherStructured => None,
        }
    }

    fn is_false(&self) -> bool {
        *self == Self::Boolean(false)
    }
}

impl From<sf::Member> for Value {
    fn from(member: sf::Member) -> Self {
        match member {
            sf::Member::Integer(n) => Self::Integer(n),
            sf::Member::Boolean(b) => Self::Boolean(b),
            sf::Member::Other => Self::OtherStructured,
        }
    }
}

// === Cache-Control syntax (RFC 9111 §5.2) ===

/// All directives from every `Cache-Control` field line, in order.
///
/// Lines are parsed one by one rather than joined so that an unterminated quoted-string on
/// one line cannot swallow the directives of the next.
fn cache_control_directives(headers: &HeaderMap) -> Vec<Directive> {
    let mut out = Vec::new();
    for line in headers.get_all(CACHE_CONTROL) {
        parse_cache_control_line(&String::from_utf8_lossy(line.as_bytes()), &mut out);
    }
    out
}

/// Parses one `Cache-Control` field line, appending its directives to `out`.
fn parse_cache_control_line(line: &str, out: &mut Vec<Directive>) {
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(|c| c == ',' || is_ows(c));
        if rest.is_empty() {
            return;
        }
        let name_end = rest.find(['=', ',']).unwrap_or(rest.len());
        let raw_name = &rest[..name_end];
        let name = raw_name.trim_end_matches(is_ows).to_ascii_lowercase();
        rest = &rest[name_end..];
        let value = match rest.strip_prefix('=') {
            Some(after_eq) => {
                let (value, remainder) = parse_argument(after_eq.trim_start_matches(is_ows));
                rest = remainder;
                // `cache-directive = token [ "=" ( token / quoted-string ) ]` has no
                // whitespace around "=", and cache-tests requires `max-age =100` and
                // `max-age= 100` to be ignored, so such an argument is unusable.
                let spaced = raw_name.ends_with(is_ows) || after_eq.starts_with(is_ows);
                if spaced { Value::Malformed } else { value }
            }
            None => Value::Absent,
        };
        if !name.is_empty() {
            out.push(Directive { name, value });
        }
    }
}

/// Parses a directive argument (token or quoted-string) up to the next list separator.
/// Returns the value and the input after it (starting at the `,` or empty).
fn parse_argument(input: &str) -> (Value, &str) {
    let Some(quoted) = input.strip_prefix('"') else {
        let end = input.find(',').unwrap_or(input.len());
        let token = input[..end].trim_end_matches(is_ows);
        return (Value::Text(token.to_owned()), &input[end..]);
    };
    let mut text = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            // RFC 9110 §5.6.4 quoted-pair: the backslash escapes the next character.
            '\\' => match chars.next() {
                Some((_, escaped)) => text.push(escaped),
                None => return (Value::Malformed, ""),
            },
            '"' => {
                let after = &quoted[i + 1..];
                let end = after.find(',').unwrap_or(after.len());
                // Anything but whitespace between the closing quote and the comma is junk
                // that makes the argument unusable (the directive itself still counts).
                let value = if after[..end].trim_matches(is_ows).is_empty() {
                    Value::Text(text)
                } else {
                    Value::Malformed
                };
                return (value, &after[end..]);
            }
            _ => text.push(c),
        }
    }
    // Unterminated quoted-string: it runs to the end of the line.
    (Value::Malformed, "")
}

/// RFC 9110 §5.6.3 OWS: space or horizontal tab.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

// === targeted fields: Structured Field Dictionary (RFC 8941 §4.2.2) ===

/// The members of targeted field `name`, if it is present with a valid, non-empty value
/// (RFC 9213 §2.1). A parse error or an empty dictionary means "behave as if absent".
fn targeted_field(headers: &HeaderMap, name: &str) -> Option<Vec<Directive>> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    // RFC 8941 §4.2: combine multiple field lines with ", " before parsing. Structured
    // fields are ASCII-only, so a non-ASCII byte makes the whole field invalid.
    let mut combined = String::new();
    for (i, line) in lines.enumerate() {
        if i > 0 {
            combined.push_str(", ");
        }
        combined.push_str(std::str::from_utf8(line.as_bytes()).ok()?);
    }
    let members = sf::parse_dictionary(&combined).ok()?;
    if members.is_empty() || members.iter().any(|(key, value)| wrong_type(key, value)) {
        return None;
    }
    Some(
        members
            .into_iter()
            .map(|(key, value)| Directive {
                name: key,
                value: value.into(),
            })
            .collect(),
    )
}

/// RFC 9213 §2.1 maps delta-seconds arguments to sf-integers. A value of another type is
/// treated as a parse error of the whole field (which is then ignored), as the cache-tests
/// suite requires (`cdn-cc-invalid-sh-type-wrong`: `max-age="10000"` must not override
/// `Cache-Control: no-store`). A negative integer has the right type and only makes that
/// directive invalid.
fn wrong_type(key: &str, value: &sf::Member) -> bool {
    const DELTA_SECONDS_DIRECTIVES: [&str; 4] = [
        "max-age",
        "s-maxage",
        "stale-while-revalidate",
        "stale-if-error",
    ];
    DELTA_SECONDS_DIRECTIVES.contains(&key) && !matches!(value, sf::Member::Integer(_))
}

#[cfg(test)]
mod tests;
