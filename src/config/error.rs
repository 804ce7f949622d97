//! `ConfigError`: why the configuration could not be loaded, and how the binary should exit.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use thiserror::Error;

use super::EX_USAGE;

/// Why [`Config::load_from`](super::Config::load_from) returned no configuration.
///
/// `--help` and `--version` arrive here too (see [`is_help_or_version`](Self::is_help_or_version)):
/// print with [`print`](Self::print) and exit with [`exit_code`](Self::exit_code), or do both
/// with [`exit`](Self::exit).
#[derive(Debug, Error)]
#[error(transparent)]
pub struct ConfigError {
    kind: ErrorKind,
}

#[derive(Debug, Error)]
enum ErrorKind {
    /// `--help` or `--version`: clap's text, for stdout, exit code 0.
    #[error("{0}")]
    HelpOrVersion(clap::Error),
    /// A malformed command line, in clap's words.
    #[error("{0}")]
    CommandLine(clap::Error),
    /// Everything wrong with the environment, the config file and the values' semantics.
    #[error("invalid configuration:{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
}

/// One thing wrong with the configuration, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// Where the offending value (or file) came from.
    pub(super) place: Place,
    /// What is wrong, for the operator.
    pub(super) message: String,
}

/// Where a configuration value came from, as the operator should look for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    /// An option named by its long flag: given as a flag, or its default.
    Flag {
        /// The long flag name without dashes.
        long: String,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// The config file as a whole.
    File {
        /// The file as given.
        path: PathBuf,
    },
    /// One key in the config file.
    FileKey {
        /// The file as given.
        path: PathBuf,
        /// The key, which is an option's long flag name.
        key: String,
    },
}

/// Formats problems one per line, each under the heading of the error.
struct ProblemList<'a>(&'a [Problem]);

// === impl ConfigError ===

impl ConfigError {
    /// Wraps a clap error, telling `--help`/`--version` apart from real errors.
    pub(super) fn from_clap(error: clap::Error) -> Self {
        // Clap itself exits 0 for exactly the texts the user asked for (help, version).
        let kind = if error.exit_code() == 0 {
            ErrorKind::HelpOrVersion(error)
        } else {
            ErrorKind::CommandLine(error)
        };
        Self { kind }
    }

    /// Reports all `problems` together.
    pub(super) fn invalid(problems: Vec<Problem>) -> Self {
        Self {
            kind: ErrorKind::Invalid(problems),
        }
    }

    /// The problems found, if this error is about the values rather than the command line.
    #[cfg(test)]
    pub(super) fn problems(&self) -> &[Problem] {
        match &self.kind {
            ErrorKind::Invalid(problems) => problems,
            ErrorKind::HelpOrVersion(_) | ErrorKind::CommandLine(_) => &[],
        }
    }

    /// True when the user asked for `--help` or `--version`: not a failure.
    pub fn is_help_or_version(&self) -> bool {
        matches!(self.kind, ErrorKind::HelpOrVersion(_))
    }

    /// The process exit code: 0 for `--help`/`--version`, otherwise [`EX_USAGE`].
    pub fn exit_code(&self) -> i32 {
        if self.is_help_or_version() {
            0
        } else {
            EX_USAGE
        }
    }

    /// Prints the message the way the user expects it: help and version to stdout, errors to
    /// stderr (clap's messages styled as clap prints them).
    ///
    /// # Errors
    ///
    /// When stdout or stderr cannot be written.
    pub fn print(&self) -> io::Result<()> {
        match &self.kind {
            ErrorKind::HelpOrVersion(error) | ErrorKind::CommandLine(error) => error.print(),
            ErrorKind::Invalid(_) => writeln!(io::stderr().lock(), "error: {self}"),
        }
    }

    /// Prints the message (see [`print`](Self::print)) and exits the process with
    /// [`exit_code`](Self::exit_code). For `main`, before any port is bound.
    pub fn exit(&self) -> ! {
        // Nothing better can be done if the terminal is gone; the exit code still tells.
        let _ = self.print();
        std::process::exit(self.exit_code())
    }
}

// === impl Problem ===

impl Problem {
    /// A problem with the value found at `place`.
    pub(super) fn new(place: Place, message: impl Into<String>) -> Self {
        Self {
            place,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

// === impl Place ===

impl Place {
    /// The option named by its long flag.
    pub(super) fn flag(long: impl Into<String>) -> Self {
        Self::Flag { long: long.into() }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag { long } => write!(f, "--{long}"),
            Self::Env { var } => write!(f, "{var}"),
            Self::File { path } => write!(f, "{}", path.display()),
            Self::FileKey { path, key } => write!(f, "{}: {key}", path.display()),
        }
    }
}

// === impl ProblemList ===

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}
