//! Byte sizes with an optional unit ("256MiB", "64 KiB", "1048576"), as taken by `--cache-capacity`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A number of bytes, parsed from an integer with an optional unit: B, KB/MB/GB (powers of 1000)
/// or KiB/MiB/GiB (powers of 1024), or nginx's K/M/G (powers of 1024 too), case-insensitive,
/// with optional space before the unit.
///
/// ```
/// # use sidecache::byte_size::ByteSize;
/// assert_eq!("64 KiB".parse::<ByteSize>(), Ok(ByteSize(64 * 1024)));
/// assert_eq!(ByteSize(256 * 1024 * 1024).to_string(), "256MiB");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// Why a text is not a byte size.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ByteSizeError {
    /// Nothing but whitespace was given.
    #[error("byte size is empty")]
    Empty,
    /// The number had a minus sign.
    #[error("byte size must not be negative")]
    Negative,
    /// The text did not start with a whole number.
    #[error("byte size must start with a whole number of bytes or units")]
    MissingNumber,
    /// The text after the number is not a known unit.
    #[error("unknown unit {0:?} (expected B, KB, MB, GB, KiB, MiB, GiB, K, M or G)")]
    UnknownUnit(String),
    /// The number had a fractional part.
    #[error("byte size must be a whole number; use a smaller unit (e.g. 1536MiB, not 1.5GiB)")]
    Fraction,
    /// The size does not fit in 64 bits.
    #[error("byte size is too large (more than 2^64 - 1 bytes)")]
    Overflow,
}

/// Units in the order [`ByteSize`]'s `Display` prefers them (binary first), with their size in
/// bytes; nginx's one-letter spellings come after `B`, so they are read but never written.
const UNITS: [(&str, u64); 10] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
    ("K", 1 << 10),
    ("M", 1 << 20),
    ("G", 1 << 30),
];

/// Value parser for `#[arg(value_parser = ...)]` on `*_bytes: u64` fields.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, ByteSizeError> {
    text.parse::<ByteSize>().map(ByteSize::bytes)
}

// === impl ByteSize ===

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ByteSizeError::Empty);
        }
        if text.starts_with('-') {
            return Err(ByteSizeError::Negative);
        }
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(digits_end);
        if digits.is_empty() {
            return Err(ByteSizeError::MissingNumber);
        }
        // `digits` holds only ASCII digits, so parsing can only fail by overflowing.
        let count: u64 = digits.parse().map_err(|_| ByteSizeError::Overflow)?;
        if unit.starts_with(['.', ',']) {
            return Err(ByteSizeError::Fraction);
        }
        let unit_bytes = unit_bytes(unit.trim_start())?;
        count
            .checked_mul(unit_bytes)
            .map(ByteSize)
            .ok_or(ByteSizeError::Overflow)
    }
}

/// The size of `unit` in bytes; no unit means bytes.
fn unit_bytes(unit: &str) -> Result<u64, ByteSizeError> {
    if unit.is_empty() {
        return Ok(1);
    }
    UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, bytes)| bytes)
        .ok_or_else(|| ByteSizeError::UnknownUnit(unit.to_owned()))
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly, so the text parses back to the same size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, bytes) = UNITS
            .iter()
            .find(|&&(_, bytes)| self.0 != 0 && self.0.is_multiple_of(bytes))
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{}{name}", self.0 / bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn parses_plain_numbers_and_every_unit() {
        let cases = [
            ("0", 0),
            ("1048576", 1_048_576),
            ("12B", 12),
            ("3KB", 3_000),
            ("3MB", 3_000_000),
            ("3GB", 3_000_000_000),
            ("64KiB", 64 * KIB),
            ("256MiB", 256 * MIB),
            ("2GiB", 2 * GIB),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
    }

    #[test]
    fn units_are_case_insensitive_and_may_follow_a_space() {
        for text in ["64 KiB", "64kib", "64 KIB", "64  kIb", " 64KiB "] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(64 * KIB)), "{text:?}");
        }
    }

    #[test]
    fn rejects_unknown_units() {
        for (text, unit) in [
            ("12XB", "XB"),
            ("10 bytes", "bytes"),
            ("5kk", "kk"),
            ("5T", "T"),
        ] {
            assert_eq!(
                text.parse::<ByteSize>(),
                Err(ByteSizeError::UnknownUnit(unit.to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn reads_nginx_one_letter_units_as_binary() {
        for (text, bytes) in [
            ("256M", 256 * MIB),
            ("1G", GIB),
            ("1g", GIB),
            ("64k", 64 * KIB),
            ("64 K", 64 * KIB),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
    }

    #[test]
    fn a_fraction_is_refused_with_what_to_write_instead() {
        for text in ["1.5GiB", "0.5G", "2,5MB"] {
            assert_eq!(
                text.parse::<ByteSize>(),
                Err(ByteSizeError::Fraction),
                "{text}"
            );
        }
        assert!(ByteSizeError::Fraction.to_string().contains("1536MiB"));
    }

    #[test]
    fn rejects_negative_empty_and_missing_numbers() {
        assert_eq!("-5".parse::<ByteSize>(), Err(ByteSizeError::Negative));
        assert_eq!("-5MiB".parse::<ByteSize>(), Err(ByteSizeError::Negative));
        assert_eq!("".parse::<ByteSize>(), Err(ByteSizeError::Empty));
        assert_eq!("   ".parse::<ByteSize>(), Err(ByteSizeError::Empty));
        assert_eq!("MiB".parse::<ByteSize>(), Err(ByteSizeError::MissingNumber));
        assert_eq!("+5".parse::<ByteSize>(), Err(ByteSizeError::MissingNumber));
    }

    #[test]
    fn rejects_overflow_in_the_number_and_in_the_unit_multiplication() {
        assert_eq!(
            u64::MAX.to_string().parse::<ByteSize>(),
            Ok(ByteSize(u64::MAX))
        );
        assert_eq!(
            "18446744073709551616".parse::<ByteSize>(),
            Err(ByteSizeError::Overflow)
        );
        assert_eq!(
            "17179869184GiB".parse::<ByteSize>(),
            Err(ByteSizeError::Overflow)
        );
        assert_eq!(
            "17179869183GiB".parse::<ByteSize>(),
            Ok(ByteSize(17_179_869_183 * GIB))
        );
    }

    #[test]
    fn displays_the_largest_exact_unit_and_parses_back() {
        let cases = [
            (0, "0B"),
            (1, "1B"),
            (1_000, "1KB"),
            (1_536, "1536B"),
            (2_048_000, "2000KiB"),
            (8 * MIB, "8MiB"),
            (3_000_000_000, "3GB"),
            (u64::MAX, "18446744073709551615B"),
        ];
        for (bytes, text) in cases {
            assert_eq!(ByteSize(bytes).to_string(), text);
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)));
        }
    }

    #[test]
    fn parse_bytes_is_the_u64_value_parser() {
        assert_eq!(parse_bytes("8MiB"), Ok(8 * MIB));
        assert_eq!(
            parse_bytes("8XiB"),
            Err(ByteSizeError::UnknownUnit("XiB".into()))
        );
    }
}
