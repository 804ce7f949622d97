//! What a counter name may be, checked when it is incremented, so that every name accepted can
//! be stored by every sink.
//!
//! PostgreSQL's `text` cannot hold NUL, and a name must fit a b-tree index entry (at most
//! 2704 bytes, a third of a page), or the whole batch it is in is refused. Control characters
//! could be stored, but they turn log lines and JSON views into puzzles. A name is therefore
//! 1 to [`MAX_NAME_BYTES`] bytes of UTF-8 without control characters.

/// The longest counter name, in bytes: well within what a PostgreSQL b-tree index entry holds.
pub const MAX_NAME_BYTES: usize = 1024;

/// Why a name cannot be a counter's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the counter name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("the counter name must be at most 1024 bytes")]
    TooLong,
    /// The name holds a control character (NUL, a line break, DEL, C1 controls).
    #[error("the counter name must not contain control characters (NUL, line breaks, ...)")]
    Control,
}

/// Checks that `name` can be a counter's name.
///
/// # Errors
///
/// The first rule `name` breaks.
pub(crate) fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_to_1024_bytes_without_control_characters() {
        for good in [
            "views",
            "page views/home",
            "ünïcode ✓",
            "requests:x/a?b=1",
            &"é".repeat(512),
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(
            check(&"x".repeat(MAX_NAME_BYTES + 1)),
            Err(NameError::TooLong)
        );
        assert_eq!(
            check(&"é".repeat(513)),
            Err(NameError::TooLong),
            "bytes, not characters"
        );
        for control in [
            "a\0b", "a\nb", "a\rb", "\t", "a\u{7f}", "a\u{85}b", "\u{9f}",
        ] {
            assert_eq!(check(control), Err(NameError::Control), "{control:?}");
        }
    }
}
