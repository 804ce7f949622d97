//! Durations as the options take them: `250ms`, `5s`, `1h 30m`, `1d`, or a bare number of
//! seconds (as nginx reads `proxy_read_timeout 30`).

use std::time::Duration;

use thiserror::Error;

/// Why a text is not a duration. Each message says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Nothing but whitespace was given.
    #[error("a duration is empty; expected e.g. 250ms, 5s, 1h 30m, 1d or a number of seconds")]
    Empty,
    /// The text had a minus sign.
    #[error("a duration cannot be negative; expected e.g. 250ms, 5s, 1h 30m, 1d or 0")]
    Negative,
    /// The text is neither a number of seconds nor a duration with units.
    #[error(
        "not a duration ({0}); expected e.g. 250ms, 5s, 1h 30m, 1d or a whole number of seconds"
    )]
    Malformed(String),
}

/// Value parser for `#[arg(value_parser = ...)]` on [`Duration`] fields: a bare whole number is
/// seconds; anything else is read by `humantime` (`250ms`, `1h 30m`, `30days`).
///
/// ```
/// # use std::time::Duration;
/// # use sidecache::duration::parse_duration;
/// assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("-5s").is_err());
/// ```
///
/// # Errors
///
/// The text is empty, negative, or not a duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::Malformed("too many seconds".to_owned()));
    }
    humantime::parse_duration(text).map_err(|error| DurationError::Malformed(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_are_seconds_and_units_are_read_by_humantime() {
        for (text, expected) in [
            ("30", Duration::from_secs(30)),
            (" 0 ", Duration::ZERO),
            ("250ms", Duration::from_millis(250)),
            ("1h 30m", Duration::from_secs(5400)),
            ("30days", Duration::from_secs(30 * 86_400)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong_and_what_would_be_accepted() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("-5s"), Err(DurationError::Negative));
        assert_eq!(parse_duration("-5"), Err(DurationError::Negative));
        for text in ["5 parsecs", "1.5.2s", "99999999999999999999999"] {
            let error = parse_duration(text).expect_err(text).to_string();
            assert!(error.contains("expected e.g. 250ms"), "{text}: {error}");
        }
        assert!(
            DurationError::Negative
                .to_string()
                .contains("cannot be negative")
        );
    }
}
