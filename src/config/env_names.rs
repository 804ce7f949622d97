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

/// A problem for every `SIDECACHE_*` variable in `set` (name, value) that is neither in `known`
/// nor an alias nor a service link, naming the closest of `known`.
pub(super) fn unknown(set: &[(String, String)], known: &[&str]) -> Vec<Problem> {
    let mut unknown: Vec<&String> = set
        .iter()
        .filter(|(name, value)| name.starts_with(PREFIX) && !is_service_link(name, value))
        .map(|(name, _)| name)
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

/// Whether `name` is one of the variables Kubernetes (and Docker's links) set for a Service: a
/// Service named `sidecache` or `sidecache-demo` in the pod's namespace gives every pod
/// `SIDECACHE_SERVICE_HOST`, `SIDECACHE_DEMO_PORT=tcp://…`, `SIDECACHE_PORT_80_TCP_ADDR` and so
/// on, which are not meant for sidecache and must not stop it.
fn is_service_link(name: &str, value: &str) -> bool {
    if name.ends_with("_SERVICE_HOST")
        || name.ends_with("_SERVICE_PORT")
        || name.contains("_SERVICE_PORT_")
    {
        return true;
    }
    let is_link_url = ["tcp://", "udp://", "sctp://"]
        .iter()
        .any(|scheme| value.starts_with(scheme));
    if name.ends_with("_PORT") && is_link_url {
        return true;
    }
    // NAME_PORT_<number>_<PROTOCOL>, then nothing or _PROTO, _PORT or _ADDR.
    name.split("_PORT_").skip(1).any(|rest| {
        let mut parts = rest.split('_');
        let number = parts.next().unwrap_or_default();
        let protocol = parts.next().unwrap_or_default();
        let field = parts.next();
        !number.is_empty()
            && number.bytes().all(|byte| byte.is_ascii_digit())
            && matches!(protocol, "TCP" | "UDP" | "SCTP")
            && matches!(field, None | Some("PROTO" | "PORT" | "ADDR"))
            && parts.next().is_none()
    })
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
        .map(|name| (name.to_owned(), "value".to_owned()));
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
    fn the_variables_kubernetes_sets_for_a_service_are_left_alone() {
        let links = [
            ("SIDECACHE_SERVICE_HOST", "10.0.0.11"),
            ("SIDECACHE_SERVICE_PORT", "80"),
            ("SIDECACHE_SERVICE_PORT_HTTP", "80"),
            ("SIDECACHE_DEMO_PORT", "tcp://10.0.0.11:80"),
            ("SIDECACHE_DEMO_PORT_80_TCP", "tcp://10.0.0.11:80"),
            ("SIDECACHE_DEMO_PORT_80_TCP_PROTO", "tcp"),
            ("SIDECACHE_DEMO_PORT_80_TCP_PORT", "80"),
            ("SIDECACHE_DEMO_PORT_80_TCP_ADDR", "10.0.0.11"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert!(unknown(&links, &KNOWN).is_empty());
        // The same shapes with values that are no service's are typos, not links.
        let typos = [
            ("SIDECACHE_ADMIN_PORT", "8081"),
            ("SIDECACHE_PORT_HTTP", "80"),
            ("SIDECACHE_PORT_80_TCP_HOST", "x"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(unknown(&typos, &KNOWN).len(), 3);
    }

    #[test]
    fn log_level_keeps_its_former_variable() {
        assert_eq!(alias_of("log-level"), Some("SIDECACHE_LOG"));
        assert_eq!(alias_of("listen"), None);
    }
}
