//! The sources of configuration and their precedence: flags > environment > TOML file > defaults.
//!
//! The command line is parsed first, alone, so `--help` shows the built-in defaults and flag errors
//! read as clap writes them. Values from the file and the environment are then each checked with
//! their option's own value parser (all problems collected), and the valid ones are placed before
//! the user's arguments, lowest precedence first; as a later occurrence of an option overrides an
//! earlier one, the user's flags win, then the environment, then the file, then the defaults.
//! Names that are no option's are refused in both sources alike: unknown file keys and unknown
//! `SIDECACHE_*` variables, each with the closest known name.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::iter;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command, CommandFactory, FromArgMatches, Parser};

use super::env_names;
use super::error::{Place, Problem};
use super::standard_env::{self, StandardEnv};
use super::{Config, ConfigError, Env, Invocation, validation};

/// The variable naming the config file when `--config` is not given.
const CONFIG_FILE_ENV: &str = "SIDECACHE_CONFIG";

/// Argument id of `--config`, the one option that is not part of [`Config`].
const CONFIG_FILE_ID: &str = "config";

/// Argument id of `--check-config`, which asks for a check instead of a server.
const CHECK_ONLY_ID: &str = "check-config";

/// Printed after the options in `--help`.
const AFTER_HELP: &str = "\
Units:
  DURATION  a duration such as 250ms, 5s, 1h 30m or 1d, or a whole number of seconds (30)
  BYTES     a whole number with an optional unit: B, KB/MB/GB (powers of 1000) or KiB/MiB/GiB
            (powers of 1024; nginx's K/M/G too), case-insensitive, e.g. 1048576, 256MiB, 256M
            or \"64 KiB\"
  ADDR      HOST:PORT, an IP address or a host name resolved at start, e.g. 0.0.0.0:8080 or
            localhost:8080

Every option can also be set by the environment variable shown, or in the --config TOML file under
its long name (e.g. cache-capacity = \"256MiB\"). Precedence: flag > environment > file > default.";

/// The command line: every option of [`Config`], plus the file to read more of them from.
#[derive(Debug, Parser)]
#[command(name = "sidecache", version = crate::build::VERSION_LINE, about, after_help = AFTER_HELP)]
struct Cli {
    /// TOML file of options keyed by their long flag names (e.g. cache-capacity = "256MiB").
    /// Unset by default: no file is read.
    #[arg(id = CONFIG_FILE_ID, long = "config", env = CONFIG_FILE_ENV, value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Check the configuration (flags, environment and file) and exit: 0 with a summary of the
    /// effective configuration (secrets redacted), 64 with every problem. Binds no port and
    /// writes no file.
    #[arg(id = CHECK_ONLY_ID, long = "check-config", help_heading = "Lifecycle")]
    check_only: bool,
    #[command(flatten)]
    config: Config,
}

/// One option as its `#[arg]` declares it: where to look for its value in each source.
struct OptionSpec {
    /// The declaration, with clap's environment reading switched off; its value parser checks
    /// values from every source.
    arg: Arg,
    /// The long flag name, which is also the option's key in the config file.
    long: String,
    /// The environment variable that sets it.
    env: String,
    /// The standard OpenTelemetry variable that also sets it, below `env`.
    standard: Option<&'static StandardEnv>,
}

/// A value for an option from a source below the command line.
struct SourcedValue<'a> {
    spec: &'a OptionSpec,
    value: OsString,
    /// Where it came from, for error messages.
    place: Place,
}

/// Loads, checks and validates the configuration from `args` (argv\[0\] first) and `env`.
pub(super) fn load(args: Vec<OsString>, env: &dyn Env) -> Result<Config, ConfigError> {
    load_invocation(args, env).map(|invocation| invocation.config)
}

/// [`load`], with what else the command line asked for and the effective value of every option.
pub(super) fn load_invocation(
    args: Vec<OsString>,
    env: &dyn Env,
) -> Result<Invocation, ConfigError> {
    let (mut command, options) = command_and_options();
    let flags = command
        .try_get_matches_from_mut(&args)
        .map_err(ConfigError::from_clap)?;

    let known_vars: Vec<&str> = options.iter().map(|spec| spec.env.as_str()).collect();
    let set: Vec<(String, String)> = env
        .names()
        .into_iter()
        .filter_map(|name| env.var(&name).map(|value| (name, value)))
        .collect();
    let mut problems = env_names::unknown(&set, &known_vars);
    let mut below_flags = Vec::new();
    let file = config_file(&flags, env);
    if let Some(path) = &file {
        below_flags.extend(file_values(path, &options, &mut problems));
    }
    below_flags.extend(env_values(&options, env));
    below_flags.retain(|sourced| match check(sourced) {
        Ok(()) => true,
        Err(problem) => {
            problems.push(problem);
            false
        }
    });

    let (cli, values) = parse_layered(&command, &args, &below_flags)?;
    let config = cli.config;
    problems.extend(
        validation::problems(&config)
            .into_iter()
            .map(|problem| relabel(problem, &flags, &below_flags)),
    );
    if problems.is_empty() {
        Ok(Invocation {
            config,
            file,
            check_only: cli.check_only,
            values,
        })
    } else {
        Err(ConfigError::invalid(problems))
    }
}

/// The command users see, and the options it declares.
///
/// Clap's own environment reading is switched off: values come through [`Env`], so tests never
/// see the process environment. The variable's name moves into the help text instead, where clap
/// would have shown it (without the value, which may be a secret).
fn command_and_options() -> (Command, Vec<OptionSpec>) {
    let mut options = Vec::new();
    let command = Cli::command().args_override_self(true).mut_args(|arg| {
        let Some(env) = arg.get_env().map(|var| var.to_string_lossy().into_owned()) else {
            return arg;
        };
        let standard = arg.get_long().and_then(standard_env::for_option);
        let arg = with_env_in_help(arg, &env, standard);
        if let Some(long) = arg.get_long() {
            options.push(OptionSpec {
                long: long.to_owned(),
                arg: arg.clone(),
                env,
                standard,
            });
        }
        arg
    });
    (command, options)
}

fn with_env_in_help(arg: Arg, env: &str, standard: Option<&StandardEnv>) -> Arg {
    let note = match standard {
        Some(standard) => format!("[env: {env}, else {}]", standard.var),
        None => format!("[env: {env}]"),
    };
    let help = match arg.get_help() {
        Some(help) => format!("{help} {note}"),
        None => note.clone(),
    };
    let long_help = arg.get_long_help().map(|help| format!("{help}\n\n{note}"));
    let arg = arg.env(None).help(help);
    match long_help {
        Some(long_help) => arg.long_help(long_help),
        None => arg,
    }
}

/// The config file: `--config`, else `SIDECACHE_CONFIG`.
fn config_file(flags: &ArgMatches, env: &dyn Env) -> Option<PathBuf> {
    flags
        .get_one::<PathBuf>(CONFIG_FILE_ID)
        .cloned()
        .or_else(|| env.var(CONFIG_FILE_ENV).map(PathBuf::from))
}

/// The values set in the TOML file at `path`; unreadable files, unknown keys and values of the
/// wrong TOML type are added to `problems`.
fn file_values<'a>(
    path: &Path,
    options: &'a [OptionSpec],
    problems: &mut Vec<Problem>,
) -> Vec<SourcedValue<'a>> {
    let whole_file = Place::File {
        path: path.to_owned(),
    };
    let table = match read_table(path) {
        Ok(table) => table,
        Err(message) => {
            problems.push(Problem::new(whole_file, message));
            return Vec::new();
        }
    };
    let mut unknown_keys = Vec::new();
    let mut values = Vec::new();
    for (key, value) in table {
        let Some(spec) = options
            .iter()
            .find(|spec| spec.long == key && !is_config_file(spec))
        else {
            unknown_keys.push(key);
            continue;
        };
        let place = Place::FileKey {
            path: path.to_owned(),
            key,
        };
        match scalar_text(&value) {
            Some(text) => values.push(SourcedValue {
                spec,
                value: text.into(),
                place,
            }),
            None => problems.push(Problem::new(
                place,
                format!(
                    "expected a string, integer or boolean, found {}",
                    value.type_str()
                ),
            )),
        }
    }
    if !unknown_keys.is_empty() {
        let keys: Vec<&str> = options
            .iter()
            .filter(|spec| !is_config_file(spec))
            .map(|spec| spec.long.as_str())
            .collect();
        let named: Vec<String> = unknown_keys
            .iter()
            .map(|key| match env_names::closest(key, &keys) {
                Some(closest) => format!("{key} (closest: {closest})"),
                None => key.clone(),
            })
            .collect();
        problems.push(Problem::new(
            whole_file,
            format!(
                "unknown keys: {} (keys are the long flag names listed by --help, e.g. cache-capacity)",
                named.join(", ")
            ),
        ));
    }
    values
}

fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text = fs::read_to_string(path)
        .map_err(|error| format!("cannot read the config file: {error}"))?;
    text.parse::<toml::Table>()
        .map_err(|error| format!("not a valid TOML file: {error}"))
}

/// The text a TOML scalar stands for on the command line; `None` for floats, dates, arrays and
/// tables, which no option takes.
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        toml::Value::Float(_)
        | toml::Value::Datetime(_)
        | toml::Value::Array(_)
        | toml::Value::Table(_) => None,
    }
}

/// The values set by `SIDECACHE_*` variables, or else by the option's former variable, or else by
/// the standard OpenTelemetry variable of the option, if it has one.
fn env_values<'a>(
    options: &'a [OptionSpec],
    env: &'a dyn Env,
) -> impl Iterator<Item = SourcedValue<'a>> {
    options
        .iter()
        .filter(|spec| !is_config_file(spec))
        .filter_map(move |spec| {
            let own = || env.var(&spec.env).map(|value| (spec.env.clone(), value));
            let alias = || {
                let alias = env_names::alias_of(&spec.long)?;
                env.var(alias).map(|value| (alias.to_owned(), value))
            };
            let standard = || {
                let standard = spec.standard?;
                let value = env.var(standard.var)?;
                Some((standard.var.to_owned(), (standard.convert)(&value)))
            };
            let (var, value) = own().or_else(alias).or_else(standard)?;
            Some(SourcedValue {
                spec,
                value: value.into(),
                place: Place::Env { var },
            })
        })
}

fn is_config_file(spec: &OptionSpec) -> bool {
    spec.arg.get_id() == CONFIG_FILE_ID
}

/// Runs the option's own value parser on a value from below the command line.
fn check(sourced: &SourcedValue<'_>) -> Result<(), Problem> {
    let arg = &sourced.spec.arg;
    Command::new("sidecache")
        .no_binary_name(true)
        .arg(arg.clone())
        .try_get_matches_from([flag_with_value(&sourced.spec.long, &sourced.value)])
        .map(drop)
        .map_err(|error| {
            Problem::new(
                sourced.place.clone(),
                format!(
                    "invalid value {:?}: {}",
                    sourced.value.to_string_lossy(),
                    rejection_reason(&error, arg)
                ),
            )
        })
}

/// Why clap rejected a value, without clap's usage text around it.
fn rejection_reason(error: &clap::Error, arg: &Arg) -> String {
    if let Some(cause) = error.source() {
        return cause.to_string();
    }
    let possible: Vec<_> = arg
        .get_possible_values()
        .iter()
        .map(|value| value.get_name().to_owned())
        .collect();
    if possible.is_empty() {
        error.kind().to_string()
    } else {
        format!("expected one of {}", possible.join(", "))
    }
}

/// `--long=value`, which clap reads as a value even when it starts with a dash.
fn flag_with_value(long: &str, value: &OsStr) -> OsString {
    let mut flag = OsString::from(format!("--{long}="));
    flag.push(value);
    flag
}

/// Parses `args` with the checked values from below the command line placed before the user's
/// arguments, lowest precedence first; also returns each option's effective value as text, by
/// long flag name.
fn parse_layered(
    command: &Command,
    args: &[OsString],
    below_flags: &[SourcedValue<'_>],
) -> Result<(Cli, BTreeMap<String, String>), ConfigError> {
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| OsString::from("sidecache"));
    let layered = below_flags
        .iter()
        .map(|sourced| flag_with_value(&sourced.spec.long, &sourced.value));
    let argv = iter::once(program)
        .chain(layered)
        .chain(args.iter().skip(1).cloned());
    let matches = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(ConfigError::from_clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(ConfigError::from_clap)?;
    Ok((cli, effective_values(command, &matches)))
}

/// The text each option of [`Config`] ended up with (an option left unset is absent).
fn effective_values(command: &Command, matches: &ArgMatches) -> BTreeMap<String, String> {
    command
        .get_arguments()
        .filter(|arg| ![CONFIG_FILE_ID, CHECK_ONLY_ID].contains(&arg.get_id().as_str()))
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let raw = matches.try_get_raw(arg.get_id().as_str()).ok().flatten()?;
            let text: Vec<_> = raw.map(OsStr::to_string_lossy).collect();
            Some((long.to_owned(), text.join(" ")))
        })
        .collect()
}

/// Points a validation problem at the source its value came from, when that was not a flag.
fn relabel(mut problem: Problem, flags: &ArgMatches, below_flags: &[SourcedValue<'_>]) -> Problem {
    let Place::Flag { long } = &problem.place else {
        return problem;
    };
    let winner = below_flags
        .iter()
        .rev()
        .find(|sourced| &sourced.spec.long == long);
    if let Some(winner) = winner {
        let id = winner.spec.arg.get_id().as_str();
        if flags.value_source(id) != Some(ValueSource::CommandLine) {
            problem.place = winner.place.clone();
        }
    }
    problem
}

#[cfg(test)]
pub(super) mod testing {
    //! Access for the module's tests.

    use clap::Command;

    /// The command as `load` parses it.
    pub(in crate::config) fn command() -> Command {
        super::command_and_options().0
    }

    /// The options with a standard variable: (long flag, standard variable).
    pub(in crate::config) fn standard_vars() -> Vec<(String, &'static str)> {
        super::command_and_options()
            .1
            .into_iter()
            .filter_map(|spec| Some((spec.long, spec.standard?.var)))
            .collect()
    }

    /// Every option: (long flag, environment variable).
    pub(in crate::config) fn options() -> Vec<(String, String)> {
        super::command_and_options()
            .1
            .into_iter()
            .map(|spec| (spec.long, spec.env))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use toml::Value;

    use super::scalar_text;

    #[test]
    fn toml_scalars_become_the_text_a_flag_would_take() {
        assert_eq!(
            scalar_text(&Value::String("5s".into())).as_deref(),
            Some("5s")
        );
        assert_eq!(scalar_text(&Value::Integer(-5)).as_deref(), Some("-5"));
        assert_eq!(scalar_text(&Value::Boolean(true)).as_deref(), Some("true"));
        assert_eq!(scalar_text(&Value::Float(1.5)), None);
        assert_eq!(scalar_text(&Value::Array(Vec::new())), None);
    }
}
