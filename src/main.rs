//! The `sidecache` binary: parse the configuration, start logging and tracing, serve until
//! SIGTERM/SIGINT, drain, exit. No business logic lives here.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

use sidecache::app::App;
use sidecache::config::Config;
use sidecache::demo::DemoOrigin;
use sidecache::server::Drained;
use sidecache::telemetry::Tracing;
use sidecache::{shutdown, telemetry};

fn main() -> ExitCode {
    // A bad configuration exits 64 (EX_USAGE) before any port is bound.
    let config = Config::load().unwrap_or_else(|error| error.exit());
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
    if let Err(error) = telemetry::init(&config.log, &tracing) {
        eprintln!("sidecache: {}", Chain(&error));
        return ExitCode::from(64);
    }
    runtime.block_on(run(config, tracing))
}

async fn run(config: Config, tracing: Tracing) -> ExitCode {
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
    match app.run_until(shutdown::signal()).await {
        Drained::Cleanly => tracing::info!("drained, exiting"),
        Drained::TimedOut => tracing::warn!("shutdown grace period ran out, exiting"),
    }
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
