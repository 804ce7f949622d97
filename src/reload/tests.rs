use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::admin::AdminToken;
use crate::telemetry::{self, Tracing};
use crate::testing::CapturedLog;

/// A config file of its own for one test, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sidecache-reload-{name}-{}.toml",
            std::process::id()
        ));
        Self(path)
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).expect("write the config file");
    }

    fn args(&self) -> Vec<OsString> {
        // JSON lines: the text format colours its fields.
        let flags = ["--log-format", "json", "--config"];
        let mut args: Vec<OsString> = vec!["sidecache".into()];
        args.extend(flags.into_iter().map(OsString::from));
        args.push(self.0.clone().into());
        args
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A reloader of the log filter and the admin token of a configuration started from `file`
/// and `env`, with the subscriber whose filter it replaces writing to `log`.
fn started(
    file: &ConfigFile,
    env: HashMap<String, String>,
    log: &CapturedLog,
) -> (
    Reloader,
    impl tracing::Subscriber + Send + Sync,
    AdminToken,
    Registry,
) {
    let running = Invocation::load_from(file.args(), &env).expect("a valid start");
    let writer = log.clone();
    let (subscriber, filter) = telemetry::reloadable_subscriber(
        &running.config.log,
        &Tracing::disabled(),
        None,
        move || writer.clone(),
        false,
    )
    .expect("subscriber");
    let token = AdminToken::new(running.config.admin.token.clone());
    let registry = Registry::new();
    let reloader = Reloader::new(file.args(), env, running, &registry)
        .expect("register")
        .with(LogFilterSetting::new(filter, None))
        .with(AdminTokenSetting::new(token.clone()));
    (reloader, subscriber, token, registry)
}

fn reloads(registry: &Registry, outcome: &str) -> String {
    let text = crate::metrics::encode(registry);
    let series = format!("sidecache_config_reloads_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .to_owned()
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[test]
fn a_reload_applies_the_log_filter_and_token_and_names_what_needs_a_restart() {
    let file = ConfigFile::new("applies");
    let valid = "log-level = \"info\"\nadmin-token = \"new\"\ncache-capacity = \"128MiB\"\n";
    file.write("log-level = \"warn\"\nadmin-token = \"old\"\ncache-capacity = \"64MiB\"\n");
    let log = CapturedLog::default();
    let (mut reloader, subscriber, token, registry) = started(&file, HashMap::new(), &log);

    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("before the reload");
        file.write(valid);
        assert_eq!(
            reloader.reload(),
            Reloaded::Applied {
                applied: names(&["admin-token", "log-level"]),
                need_restart: names(&["cache-capacity"]),
            }
        );
        tracing::info!("after the reload");
        assert_eq!(token.current().as_deref(), Some("new"));

        // Invalid: a bad filter, then a file that is not TOML. Nothing changes.
        file.write("log-level = \"sidecache=loud\"\nadmin-token = \"newer\"\n");
        assert_eq!(reloader.reload(), Reloaded::Failed);
        file.write("admin-token = \n");
        assert_eq!(reloader.reload(), Reloaded::Failed);
        assert_eq!(token.current().as_deref(), Some("new"));
        tracing::info!("still at info");

        // What was applied is in effect; what needs a restart still does.
        file.write(valid);
        assert_eq!(
            reloader.reload(),
            Reloaded::Applied {
                applied: Vec::new(),
                need_restart: names(&["cache-capacity"]),
            }
        );
    });

    assert_eq!(reloads(&registry, "applied"), "2");
    assert_eq!(reloads(&registry, "failed"), "2");
    let text = log.text();
    assert!(!text.contains("before the reload"), "{text}");
    assert!(text.contains("after the reload"), "{text}");
    assert!(text.contains("still at info"), "{text}");
    let lines: Vec<_> = text.lines().collect();
    let applied = lines
        .iter()
        .find(|line| line.contains("configuration reloaded"))
        .expect("an INFO line");
    assert!(
        applied.contains(r#""level":"INFO""#)
            && applied.contains(r#""applied":"admin-token, log-level""#),
        "{applied}"
    );
    let restart = lines
        .iter()
        .find(|line| line.contains("take effect only after a restart"))
        .expect("a WARN line");
    assert!(
        restart.contains(r#""level":"WARN""#) && restart.contains(r#""options":"cache-capacity""#),
        "{restart}"
    );
    let failed: Vec<_> = lines
        .iter()
        .filter(|line| line.contains("configuration reload failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{text}");
    assert!(failed[0].contains(r#""level":"ERROR""#), "{}", failed[0]);
    assert!(failed[0].contains("sidecache=loud"), "{}", failed[0]);
    assert!(failed[1].contains("not a valid TOML file"), "{}", failed[1]);
}

#[test]
fn flags_and_environment_still_win_over_the_reloaded_file() {
    let file = ConfigFile::new("precedence");
    file.write("admin-token = \"from-file\"\n");
    let env = HashMap::from([("SIDECACHE_ADMIN_TOKEN".to_owned(), "from-env".to_owned())]);
    let log = CapturedLog::default();
    let (mut reloader, _subscriber, token, registry) = started(&file, env, &log);
    file.write("admin-token = \"changed-in-file\"\n");
    assert_eq!(
        reloader.reload(),
        Reloaded::Applied {
            applied: Vec::new(),
            need_restart: Vec::new(),
        }
    );
    assert_eq!(token.current().as_deref(), Some("from-env"));
    assert_eq!(reloads(&registry, "applied"), "1");
    assert_eq!(reloads(&registry, "failed"), "0");
}
