//! The `sidecache` binary: parse the configuration, start logging and tracing, serve until
//! SIGTERM/SIGINT (reloading on SIGHUP), drain (or stop at once on a second one), exit. No
//! business logic lives here.

use std::error::Error;
use std::ffi::OsString;
use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sidecache::app::App;
use sidecache::config::{Config, Invocation, ProcessEnv};
use sidecache::demo::DemoOrigin;
use sidecache::reload::{AdminTokenSetting, Hangups, LogFilterSetting, Reloader};
use sidecache::server::Drained;
use sidecache::shutdown::StopSignals;
use sidecache::telemetry::Tracing;
use sidecache::telemetry::{self, LogFilterHandle};
use sidecache::writebehind::WriteBehind;

/// How long the write-behind counters get to reach their sink when a second stop request cuts
/// the drain short, before they are written to the recovery file.
const FORCED_FLUSH_BOUND: Duration = Duration::from_secs(1);

/// The exit status after a drain cut short by a second stop request: not a clean stop.
const EXIT_FORCED: i32 = 1;

fn main() -> ExitCode {
    // A bad configuration exits 64 (EX_USAGE) before any port is bound.
    let args: Vec<OsString> = std::env::args_os().collect();
    let invocation =
        Invocation::load_from(args.clone(), &ProcessEnv).unwrap_or_else(|error| error.exit());
    if invocation.check_only {
        return check_config(&invocation);
    }
    let config = invocation.config.clone();
    let runtime = match build_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sidecache: cannot start the runtime: {}", Chain(&error));
            return ExitCode::FAILURE;
        }
    };
    // The span exporter runs its exports on this runtime.
    let tracing = match runtime.block_on(async { Tracing::start(&config.tracing) }) {
        Ok(tracing) => tracing,
        Err(error) => {
            eprintln!("sidecache: {}", Chain(&error));
            return ExitCode::from(64);
        }
    };
    let log_filter = match telemetry::init(&config.log, &tracing) {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("sidecache: {}", Chain(&error));
            return ExitCode::from(64);
        }
    };
    let reload = Reload {
        args,
        running: invocation,
        log_filter,
    };
    runtime.block_on(run(config, tracing, reload))
}

/// What a reload starts from: the command line, the configuration in effect and the log filter.
struct Reload {
    args: Vec<OsString>,
    running: Invocation,
    log_filter: LogFilterHandle,
}

async fn run(config: Config, tracing: Tracing, reload: Reload) -> ExitCode {
    // From before any port is bound: a stop request or a SIGHUP during startup is kept, not lost
    // (nor fatal).
    let mut stops = StopSignals::listen();
    let hangups = Hangups::listen();
    let traced = tracing.is_enabled();
    let app = match App::bind_with(&config, tracing).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("sidecache: {}", Chain(&error));
            return ExitCode::from(error.exit_code());
        }
    };
    tracing::info!(
        proxy = %app.proxy_addr(),
        admin = %app.admin_addr(),
        origin = %config.origin.url.as_ref().map_or("embedded demo".to_owned(), ToString::to_string),
        otlp = %config.tracing.otlp_endpoint.as_ref().filter(|_| traced).map_or("off".to_owned(), ToString::to_string),
        "sidecache listening"
    );
    if let Some(demo) = app.demo_addr() {
        tracing::info!(%demo, "embedded demo origin started (no --origin given)");
        println!(
            "{}",
            DemoOrigin::walkthrough(app.proxy_addr(), app.admin_addr())
        );
    }
    let writebehind = Arc::clone(app.writebehind());
    let reloader = match Reloader::new(reload.args, ProcessEnv, reload.running, app.registry()) {
        Ok(reloader) => reloader
            .with(LogFilterSetting::new(
                reload.log_filter,
                std::env::var("RUST_LOG").ok(),
            ))
            .with(AdminTokenSetting::new(app.admin_token().clone())),
        Err(error) => {
            eprintln!("sidecache: cannot register the reload metrics: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (drain, draining) = tokio::sync::oneshot::channel::<()>();
    let second_stop = async {
        let first = stops.next().await;
        tracing::info!("{first} received, draining");
        let _ = drain.send(());
        stops.next().await
    };
    tokio::select! {
        drained = app.run_until(async { let _ = draining.await; }) => match drained {
            Drained::Cleanly => tracing::info!("drained, exiting"),
            Drained::TimedOut => tracing::warn!("shutdown grace period ran out, exiting"),
        },
        second = second_stop => exit_now(second, &writebehind).await,
        () = reloader.serve(hangups) => {}
    }
    ExitCode::SUCCESS
}

/// A second stop request during the drain: the requests still in flight are cut off and the
/// process exits 1 at once, after giving the write-behind counters [`FORCED_FLUSH_BOUND`] to
/// reach their sink (else they go to the recovery file, replayed at the next start).
async fn exit_now(signal: &str, writebehind: &WriteBehind) -> ! {
    tracing::warn!(
        "{signal} received again during the drain: exiting now, in-flight requests are cut off"
    );
    // Logs where the counts went.
    writebehind.close(FORCED_FLUSH_BOUND).await;
    // Not a return from `main`: dropping the runtime would wait for the tasks left running.
    std::process::exit(EXIT_FORCED)
}

/// `--check-config`: what starting would check before binding a port (the loaded configuration
/// and the log filter), then a summary on stdout and exit 0, or the problems on stderr and exit 64.
/// Nothing is bound, written or started.
fn check_config(invocation: &Invocation) -> ExitCode {
    let rust_log = std::env::var("RUST_LOG").ok();
    if let Err(error) = telemetry::log_filter(&invocation.config.log, rust_log.as_deref()) {
        eprintln!("sidecache: {}", Chain(&error));
        return ExitCode::from(64);
    }
    println!(
        "sidecache: the configuration is valid\n{}",
        invocation.summary()
    );
    ExitCode::SUCCESS
}

/// One worker thread per CPU the process may use. With a single CPU (a sidecar pinned to one
/// core) a current-thread runtime serves the same work without cross-thread wake-ups.
fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
}

/// An error and its causes on one line, `: `-separated: each error's `Display` describes its own
/// layer and leaves the cause to [`Error::source`]. A cause whose text its error's message already
/// ends with (some dependencies' errors repeat their source) is not repeated.
struct Chain<'a>(&'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !shown.ends_with(&text) {
                shown.push_str(": ");
                shown.push_str(&text);
            }
            cause = error.source();
        }
        f.write_str(&shown)
    }
}
