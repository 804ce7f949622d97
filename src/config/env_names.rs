//! The `SIDECACHE_*` namespace: every name in it is an option's variable or a documented alias,
//! and any other is refused with the closest known name, as unknown file keys are.

use super::error::{Place, Problem};

/// The prefix of sidecache's own variables.
pub(super) const PREFIX: &str = "SIDECACHE_";

/// Former names of options' variables, still read below the current name, so deployments that
/// set them keep working: (the option's long flag, the former variable).
pub(super) const ALIASES: [(&str, &str); 1] = [
    // --log-level was read from SIDECACHE_LOG before every variable was named after its flag.
    ("log-level", "SIDECACHE_LOG"),
];

/// The former variable that still sets the option `long`, if any.
pub(super) fn alias_of(long: &str) -> Option<&'static str> {
    ALIASES
        .iter()
        .find_map(|&(option, var)| (option == long).then_some(var))
}

/// A problem for every `SIDECACHE_*` name in `set` that is neither in `known` nor an alias,
/// naming the closest of `known`.
pub(super) fn unknown(set: &[String], known: &[&str]) -> Vec<Problem> {
    let mut unknown: Vec<&String> = set
        .iter()
        .filter(|name| name.starts_with(PREFIX))
        .filter(|name| !known.contains(&name.as_str()))
        .filter(|name| !ALIASES.iter().any(|&(_, alias)| alias == name.as_str()))
        .collect();
    unknown.sort_unstable();
    unknown
        .into_iter()
        .map(|name| {
            let closest = closest(name, known).unwrap_or("none");
            Problem::new(
                Place::Env { var: name.clone() },
                format!(
                    "not a variable sidecache reads; the closest is {closest} (`sidecache --help` \
                     lists every variable after its flag)"
                ),
            )
        })
        .collect()
}

/// The name of `known` most like `name`, by Jaro-Winkler similarity (as clap suggests flags),
/// compared without the shared `SIDECACHE_` prefix, which would make every name look alike.
pub(super) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let bare = |text: &str| {
        text.strip_prefix(PREFIX)
            .unwrap_or(text)
            .to_ascii_lowercase()
    };
    let name = bare(name);
    known
        .iter()
        .map(|&candidate| (strsim::jaro_winkler(&name, &bare(candidate)), candidate))
        .max_by(|(a, _), (b, _)| a.total_cmp(b))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [&str; 4] = [
        "SIDECACHE_ORIGIN",
        "SIDECACHE_ORIGIN_TIMEOUT",
        "SIDECACHE_LOG_LEVEL",
        "SIDECACHE_LISTEN",
    ];

    #[test]
    fn the_closest_name_is_found_by_what_follows_the_prefix() {
        assert_eq!(closest("SIDECACHE_ORIGN", &KNOWN), Some("SIDECACHE_ORIGIN"));
        assert_eq!(
            closest("SIDECACHE_ORIGIN_TIMOUT", &KNOWN),
            Some("SIDECACHE_ORIGIN_TIMEOUT")
        );
        assert_eq!(
            closest("SIDECACHE_LISTEN_ADDR", &KNOWN),
            Some("SIDECACHE_LISTEN")
        );
        assert_eq!(
            closest("SIDECACHE_LOGLEVEL", &KNOWN),
            Some("SIDECACHE_LOG_LEVEL")
        );
        assert_eq!(closest("anything", &[]), None);
    }

    #[test]
    fn only_unknown_names_in_the_namespace_are_problems() {
        let set = [
            "SIDECACHE_ORIGN",
            "SIDECACHE_ORIGIN",
            "SIDECACHE_LOG",
            "PATH",
            "OTEL_SERVICE_NAME",
            "SIDECACHE_A",
        ]
        .map(str::to_owned);
        let problems = unknown(&set, &KNOWN);
        let places: Vec<String> = problems.iter().map(|p| p.place.to_string()).collect();
        assert_eq!(places, ["SIDECACHE_A", "SIDECACHE_ORIGN"]);
        assert!(
            problems[1]
                .message
                .contains("the closest is SIDECACHE_ORIGIN "),
            "{}",
            problems[1].message
        );
    }

    #[test]
    fn log_level_keeps_its_former_variable() {
        assert_eq!(alias_of("log-level"), Some("SIDECACHE_LOG"));
        assert_eq!(alias_of("listen"), None);
    }
}
