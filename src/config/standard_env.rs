//! The standard OpenTelemetry environment variables that also set sidecache's tracing options.
//!
//! Each option is still declared once, with its own `SIDECACHE_*` variable; this table only adds
//! a second name for it, read below the `SIDECACHE_*` one (flag > `SIDECACHE_*` > `OTEL_*` >
//! file > default), so the same deployment settings that configure any OpenTelemetry SDK
//! configure sidecache too. Values are checked by the option's own parser, after
//! [`StandardEnv::convert`] has turned the variable's unit into the flag's.

/// One standard variable and the option it sets.
#[derive(Debug, Clone, Copy)]
pub struct StandardEnv {
    /// The option's long flag name.
    pub long: &'static str,
    /// The standard variable.
    pub var: &'static str,
    /// Turns the variable's value into the text the flag takes.
    pub convert: fn(&str) -> String,
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: the generic OTLP endpoint (the HTTP exporter appends
/// `/v1/traces`, as the specification says for this variable).
pub(super) const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf`.
pub(super) const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// `OTEL_SERVICE_NAME`.
pub(super) const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_TRACES_SAMPLER`.
pub(super) const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// `OTEL_TRACES_SAMPLER_ARG`.
pub(super) const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// `OTEL_BSP_SCHEDULE_DELAY`, in milliseconds.
pub(super) const OTEL_BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
/// `OTEL_BSP_MAX_QUEUE_SIZE`.
pub(super) const OTEL_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
pub(super) const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
/// `OTEL_BSP_EXPORT_TIMEOUT`, in milliseconds.
pub(super) const OTEL_BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";

/// Every standard variable sidecache reads, with the option it sets.
pub const STANDARD_ENV: [StandardEnv; 9] = [
    StandardEnv {
        long: "otlp-endpoint",
        var: OTEL_EXPORTER_OTLP_ENDPOINT,
        convert: as_is,
    },
    StandardEnv {
        long: "otlp-protocol",
        var: OTEL_EXPORTER_OTLP_PROTOCOL,
        convert: as_is,
    },
    StandardEnv {
        long: "service-name",
        var: OTEL_SERVICE_NAME,
        convert: as_is,
    },
    StandardEnv {
        long: "trace-sampler",
        var: OTEL_TRACES_SAMPLER,
        convert: as_is,
    },
    StandardEnv {
        long: "trace-sampler-arg",
        var: OTEL_TRACES_SAMPLER_ARG,
        convert: as_is,
    },
    StandardEnv {
        long: "trace-batch-delay",
        var: OTEL_BSP_SCHEDULE_DELAY,
        convert: milliseconds,
    },
    StandardEnv {
        long: "trace-queue-size",
        var: OTEL_BSP_MAX_QUEUE_SIZE,
        convert: as_is,
    },
    StandardEnv {
        long: "trace-batch-size",
        var: OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
        convert: as_is,
    },
    StandardEnv {
        long: "trace-export-timeout",
        var: OTEL_BSP_EXPORT_TIMEOUT,
        convert: milliseconds,
    },
];

/// The standard variable that also sets the option `long`, if any.
pub(super) fn for_option(long: &str) -> Option<&'static StandardEnv> {
    STANDARD_ENV.iter().find(|standard| standard.long == long)
}

fn as_is(value: &str) -> String {
    value.to_owned()
}

/// The OpenTelemetry variables give durations as a whole number of milliseconds; the flags take
/// a duration with its unit. Anything else is passed on for the flag's parser to reject.
fn milliseconds(value: &str) -> String {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        format!("{value}ms")
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_variables_become_durations() {
        assert_eq!(milliseconds("250"), "250ms");
        assert_eq!(milliseconds(" 0 "), "0ms");
        assert_eq!(milliseconds("5s"), "5s");
        assert_eq!(milliseconds(""), "");
    }
}
