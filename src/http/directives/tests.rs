//! Tests of the Cache-Control and targeted-field parsers, table-driven by RFC section.

use super::*;
use http::HeaderName;

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
        map.append(name, value.parse().expect("test header value"));
    }
    map
}

fn cc(value: &str) -> ResponseDirectives {
    ResponseDirectives::from_response(&headers(&[("cache-control", value)]))
}

fn req(fields: &[(&str, &str)]) -> RequestDirectives {
    RequestDirectives::from_request(&headers(fields))
}

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

/// Header fields as written in a table row.
type Fields<'a> = &'a [(&'a str, &'a str)];

const MAX: Option<Duration> = Some(Duration::from_secs(DELTA_SECONDS_MAX));

#[test]
fn rfc9111_1_2_2_delta_seconds() {
    let cases: &[(&str, Option<Duration>)] = &[
        ("0", secs(0)),
        ("60", secs(60)),
        ("0060", secs(60)),
        ("2147483647", secs(2_147_483_647)),
        ("2147483648", MAX),
        ("2147483649", MAX),
        ("99999999999999999999999999999", MAX),
        ("", None),
        ("-1", None),
        ("+1", None),
        ("1.5", None),
        ("1e3", None),
        (" 1", None),
        ("1 2", None),
        ("abc", None),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_delta_seconds(input), *expected, "{input:?}");
    }
}

#[test]
fn rfc9111_5_2_2_every_response_directive() {
    let d = cc(
        "max-age=1, s-maxage=2, no-store, no-cache, private, public, must-revalidate, \
                proxy-revalidate, must-understand, immutable, stale-while-revalidate=3, \
                stale-if-error=4",
    );
    let expected = ResponseDirectives {
        max_age: secs(1),
        s_maxage: secs(2),
        no_store: true,
        no_cache: true,
        private: true,
        public: true,
        must_revalidate: true,
        proxy_revalidate: true,
        must_understand: true,
        immutable: true,
        stale_while_revalidate: secs(3),
        stale_if_error: secs(4),
        freshness_invalid: false,
        targeted: false,
    };
    assert_eq!(d, expected);
    assert_eq!(
        ResponseDirectives::from_response(&HeaderMap::new()),
        ResponseDirectives::default()
    );
}

/// Table: Cache-Control value -> (max_age, freshness_invalid).
#[test]
fn rfc9111_5_2_cache_control_syntax() {
    let cases: &[(&str, Option<Duration>, bool)] = &[
        // §5.2: "Cache directives are identified by a token, to be compared
        // case-insensitively".
        ("MAX-AGE=60", secs(60), false),
        ("Max-Age=60", secs(60), false),
        // §5.2: "recipients ... MUST accept both forms, even if a specific form is
        // required for generation".
        ("max-age=\"60\"", secs(60), false),
        ("max-age=\"6\\0\"", secs(60), false),
        // OWS around commas and empty list members are fine (RFC 9110 §5.6.1)...
        ("  max-age=60  ", secs(60), false),
        (",, ,max-age=60,,", secs(60), false),
        // ...but the grammar has no whitespace around "=" (cache-tests
        // freshness-max-age-space-before-equals / -space-after-equals).
        ("max-age =60", None, true),
        ("max-age= 60", None, true),
        ("max-age = 60", None, true),
        ("max-age=\t60", None, true),
        ("foo= \"a, b\", max-age=60", secs(60), false),
        ("public ,max-age=60\t, private", secs(60), false),
        // Commas inside a quoted-string do not split members.
        (
            "private=\"set-cookie, max-age=1\", max-age=60",
            secs(60),
            false,
        ),
        (
            "no-cache=\"a\\\"b, max-age=1\", max-age=60",
            secs(60),
            false,
        ),
        // Unknown directives are ignored (§5.2.3).
        ("foo, bar=baz, qux=\"1,2\", max-age=60", secs(60), false),
        // §4.2.1 duplicates: same value is fine, different values are invalid.
        ("max-age=60, max-age=60", secs(60), false),
        ("max-age=60, max-age=060", secs(60), false),
        ("max-age=60, max-age=61", None, true),
        ("max-age=60, max-age=abc", None, true),
        // §1.2.2 / §4.2.1: not delta-seconds makes freshness invalid.
        ("max-age=-1", None, true),
        ("max-age=1.5", None, true),
        ("max-age=", None, true),
        ("max-age", None, true),
        ("max-age=abc", None, true),
        ("max-age=1 2", None, true),
        ("max-age=\"60\"junk", None, true),
        ("max-age=\"60", None, true),
        ("s-maxage=x, max-age=60", secs(60), true),
        // §1.2.2: too large means 2^31.
        ("max-age=99999999999999999999", MAX, false),
        ("max-age=2147483648", MAX, false),
    ];
    for (value, max_age, invalid) in cases {
        let d = cc(value);
        assert_eq!(d.max_age, *max_age, "max_age for {value:?}");
        assert_eq!(
            d.freshness_invalid, *invalid,
            "freshness_invalid for {value:?}"
        );
    }
}

#[test]
fn rfc9111_5_2_field_lines_are_combined() {
    let d = ResponseDirectives::from_response(&headers(&[
        ("cache-control", "max-age=10"),
        ("cache-control", "public"),
        ("cache-control", "max-age=10, s-maxage=20"),
    ]));
    assert_eq!(d.max_age, secs(10));
    assert_eq!(d.s_maxage, secs(20));
    assert!(d.public);
    assert!(!d.freshness_invalid);

    let d = ResponseDirectives::from_response(&headers(&[
        ("cache-control", "max-age=10"),
        ("cache-control", "max-age=20"),
    ]));
    assert!(d.freshness_invalid, "conflict across field lines");

    // An unterminated quoted-string does not swallow the next field line.
    let d = ResponseDirectives::from_response(&headers(&[
        ("cache-control", "no-cache=\"abc, max-age=5"),
        ("cache-control", "s-maxage=7"),
    ]));
    assert!(d.no_cache);
    assert_eq!(d.max_age, None);
    assert_eq!(d.s_maxage, secs(7));
}

#[test]
fn rfc9111_5_2_2_qualified_forms_are_unqualified() {
    // §5.2.2.4 allows treating qualified no-cache as unqualified; private likewise.
    assert!(cc("no-cache=\"set-cookie\"").no_cache);
    assert!(cc("private=\"x-user, x-other\"").private);
    assert!(cc("no-store=anything").no_store);
}

#[test]
fn rfc5861_windows_parse_and_ignore_invalid() {
    let d = cc("stale-while-revalidate=30, stale-if-error=\"60\"");
    assert_eq!(d.stale_while_revalidate, secs(30));
    assert_eq!(d.stale_if_error, secs(60));
    let d = cc("stale-while-revalidate=-1, stale-if-error");
    assert_eq!(d.stale_while_revalidate, None);
    assert_eq!(d.stale_if_error, None);
    assert!(
        !d.freshness_invalid,
        "only max-age/s-maxage affect freshness"
    );
    // Conflicting windows: the most restrictive one (§4.2.1).
    let d = cc("stale-while-revalidate=30, stale-while-revalidate=10");
    assert_eq!(d.stale_while_revalidate, secs(10));
}

#[test]
fn rfc9111_5_2_1_request_directives() {
    let cases: &[(Fields<'_>, RequestDirectives)] = &[
        (&[], RequestDirectives::default()),
        (
            &[("cache-control", "max-age=5, min-fresh=6, max-stale=7")],
            RequestDirectives {
                max_age: secs(5),
                min_fresh: secs(6),
                max_stale: Some(MaxStale::Limit(Duration::from_secs(7))),
                ..Default::default()
            },
        ),
        (
            &[(
                "cache-control",
                "MAX-STALE, No-Cache, no-store, only-if-cached",
            )],
            RequestDirectives {
                max_stale: Some(MaxStale::Any),
                no_cache: true,
                no_store: true,
                only_if_cached: true,
                ..Default::default()
            },
        ),
        // Invalid values: the directive is ignored, not made stricter or looser.
        (
            &[(
                "cache-control",
                "max-age=-1, min-fresh=x, max-stale=1.5, max-stale=",
            )],
            RequestDirectives::default(),
        ),
        (
            &[("cache-control", "max-age=\"10\"")],
            RequestDirectives {
                max_age: secs(10),
                ..Default::default()
            },
        ),
        // Duplicates keep the most restrictive value.
        (
            &[(
                "cache-control",
                "max-age=10, max-age=5, min-fresh=1, min-fresh=3",
            )],
            RequestDirectives {
                max_age: secs(5),
                min_fresh: secs(3),
                ..Default::default()
            },
        ),
        (
            &[("cache-control", "max-stale, max-stale=9, max-stale=20")],
            RequestDirectives {
                max_stale: Some(MaxStale::Limit(Duration::from_secs(9))),
                ..Default::default()
            },
        ),
        // RFC 5861 §4: stale-if-error in a request.
        (
            &[("cache-control", "stale-if-error=30")],
            RequestDirectives {
                stale_if_error: secs(30),
                ..Default::default()
            },
        ),
        // §5.4: Pragma: no-cache counts only without Cache-Control.
        (
            &[("pragma", "No-Cache")],
            RequestDirectives {
                no_cache: true,
                ..Default::default()
            },
        ),
        (&[("pragma", "x, no-cachex")], RequestDirectives::default()),
        (
            &[("pragma", "no-cache"), ("cache-control", "max-age=3")],
            RequestDirectives {
                max_age: secs(3),
                ..Default::default()
            },
        ),
    ];
    for (fields, expected) in cases {
        assert_eq!(req(fields), *expected, "{fields:?}");
    }
}

/// RFC 9213 §2.1 target-list precedence and fallback.
#[test]
fn rfc9213_2_1_targeted_field_selection() {
    // (fields, expected max-age, expected targeted)
    let cases: &[(Fields<'_>, Option<Duration>, bool)] = &[
        (&[("cache-control", "max-age=10")], secs(10), false),
        (
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=20"),
            ],
            secs(20),
            true,
        ),
        (
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=20"),
                ("sidecache-cache-control", "max-age=30"),
            ],
            secs(30),
            true,
        ),
        // An invalid Sidecache-Cache-Control falls back to CDN-Cache-Control.
        (
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=20"),
                ("sidecache-cache-control", "Max-Age=30"),
            ],
            secs(20),
            true,
        ),
        // Invalid or empty targeted fields fall back to Cache-Control.
        (
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=20,"),
            ],
            secs(10),
            false,
        ),
        (
            &[("cache-control", "max-age=10"), ("cdn-cache-control", "")],
            secs(10),
            false,
        ),
        (
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "   "),
            ],
            secs(10),
            false,
        ),
        (
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age = 20"),
            ],
            secs(10),
            false,
        ),
        // A valid targeted field without max-age still wins: Cache-Control is ignored.
        (
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "public"),
            ],
            None,
            true,
        ),
    ];
    for (fields, max_age, targeted) in cases {
        let d = ResponseDirectives::from_response(&headers(fields));
        assert_eq!(d.max_age, *max_age, "max_age for {fields:?}");
        assert_eq!(d.targeted, *targeted, "targeted for {fields:?}");
    }
}

#[test]
fn rfc9213_2_1_targeted_values() {
    let cdn = |value: &str| {
        ResponseDirectives::from_response(&headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", value),
        ]))
    };
    // Booleans: bare key or ?1 means present, ?0 means absent.
    assert!(cdn("no-store").no_store);
    assert!(cdn("no-store=?1").no_store);
    assert!(!cdn("no-store=?0").no_store);
    assert!(!cdn("max-age=60").no_store, "Cache-Control is ignored");
    // Strings and tokens: present, like the qualified Cache-Control forms.
    assert!(cdn("no-cache=\"set-cookie\"").no_cache);
    assert!(cdn("private=x").private);
    // Parameters are ignored.
    let d = cdn("max-age=60;foo=bar, public;x;y=?0");
    assert_eq!(d.max_age, secs(60));
    assert!(d.public && !d.freshness_invalid);
    // A negative integer has the right type: only the directive is invalid.
    for negative in ["max-age=-1", "s-maxage=-5"] {
        let d = cdn(negative);
        assert!(d.targeted, "{negative:?}");
        assert!(d.freshness_invalid, "{negative:?}");
        assert_eq!((d.max_age, d.s_maxage), (None, None), "{negative:?}");
        assert!(!d.no_store, "{negative:?}: Cache-Control is ignored");
    }
    let d = cdn("stale-while-revalidate=-1");
    assert!(d.targeted && !d.freshness_invalid);
    assert_eq!(d.stale_while_revalidate, None);
    // Any other type for a delta-seconds directive makes the whole field invalid, so
    // Cache-Control (here: no-store) applies (cache-tests cdn-cc-invalid-sh-type-wrong).
    for wrong in [
        "max-age=1.5",
        "max-age=\"60\"",
        "max-age=sixty",
        "max-age",
        "max-age=?1",
        "max-age=?0",
        "max-age=(1 2)",
        "max-age=:AAAA:",
        "s-maxage=\"1\"",
        "stale-while-revalidate=1.5",
        "public, stale-if-error",
    ] {
        let d = cdn(wrong);
        assert!(!d.targeted, "{wrong:?} must be ignored");
        assert!(d.no_store, "{wrong:?} falls back to Cache-Control");
    }
    // cache-tests cdn-cc-invalid-sh-type-unknown: not a Structured Field at all.
    assert!(!cdn("max-age=10000, &&&&&").targeted);
    assert_eq!(cdn("max-age=999999999999999").max_age, MAX);
    // RFC 8941 §4.2.2: a later duplicate key overwrites the earlier one.
    let d = cdn("max-age=1, max-age=2");
    assert_eq!(d.max_age, secs(2));
    assert!(!d.freshness_invalid);
}

#[test]
fn rfc9213_targeted_field_lines_are_combined() {
    let d = ResponseDirectives::from_response(&headers(&[
        ("cdn-cache-control", "max-age=20"),
        ("cdn-cache-control", "stale-if-error=30"),
    ]));
    assert_eq!(d.max_age, secs(20));
    assert_eq!(d.stale_if_error, secs(30));
    assert!(d.targeted);
}
