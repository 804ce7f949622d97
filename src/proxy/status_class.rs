//! The class of a response's status code: the label of `sidecache_responses_total`, bounded to
//! the five classes of RFC 9110 §15 so that a dashboard's error rate never meets a label value
//! it did not expect.

use http::StatusCode;

/// The first digit of a status code (RFC 9110 §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StatusClass {
    /// 1xx: informational.
    Informational,
    /// 2xx: successful.
    Successful,
    /// 3xx: redirection.
    Redirection,
    /// 4xx: client error.
    ClientError,
    /// 5xx: server error.
    ServerError,
}

// === impl StatusClass ===

impl StatusClass {
    /// Every class, in declaration order (the metric's series).
    pub const ALL: [StatusClass; 5] = [
        Self::Informational,
        Self::Successful,
        Self::Redirection,
        Self::ClientError,
        Self::ServerError,
    ];

    /// The class of `status`. A code from 600 to 999 (which `http` accepts, and an origin may
    /// send, but RFC 9110 §15 makes invalid) is a server error: the answer is broken, and a
    /// class of its own would be a label value no dashboard expects.
    pub fn of(status: StatusCode) -> Self {
        match status.as_u16() {
            100..=199 => Self::Informational,
            200..=299 => Self::Successful,
            300..=399 => Self::Redirection,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "1xx",
            Self::Successful => "2xx",
            Self::Redirection => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_falls_in_the_class_of_its_first_digit_and_invalid_codes_are_server_errors() {
        for (code, class) in [
            (100, "1xx"),
            (199, "1xx"),
            (200, "2xx"),
            (299, "2xx"),
            (304, "3xx"),
            (399, "3xx"),
            (400, "4xx"),
            (499, "4xx"),
            (500, "5xx"),
            (599, "5xx"),
            (600, "5xx"),
            (999, "5xx"),
        ] {
            let status = StatusCode::from_u16(code).expect("a code http accepts");
            assert_eq!(StatusClass::of(status).as_str(), class, "{code}");
        }
        for (index, class) in StatusClass::ALL.iter().enumerate() {
            assert_eq!(*class as usize, index, "{class:?} indexes its series");
        }
    }
}
