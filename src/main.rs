//! The `im-dispatcher` binary: parse the command line, load settings, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use im_dispatcher::config::Settings;
use im_dispatcher::loadgen::LoadOptions;
use im_dispatcher::startup::{Application, ShutdownSignal};

/// jemalloc rather than glibc's malloc: frames and buffers are allocated on one thread and freed
/// on another (group actor → connection thread), which glibc pays for in free-list work (7 % of
/// the server's CPU in a normal-group fan-out); jemalloc takes 8 % less CPU a delivery there at
/// the same idle memory (README "Performance"; mimalloc: as fast, 23 % more bytes a connection).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "im-dispatcher",
    version,
    about = "GoBelieve-compatible IM server: REST API and message dispatcher"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (HTTP API + WebSocket channel).
    Serve {
        /// Settings file layered over the built-in defaults (config/default.toml).
        #[arg(long, short, value_name = "PATH")]
        config: Option<PathBuf>,
        /// This node's name among the nodes sharing one Redis (overrides `node.id`).
        #[arg(long, value_name = "NAME")]
        node_id: Option<String>,
    },
    /// Generate load against a running server and report what it measured.
    Loadgen(Box<LoadOptions>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, node_id } => serve(config, node_id),
        Command::Loadgen(opts) => loadgen(*opts),
    }
}

/// Runs a load scenario; the report goes to stdout (one JSON line with `--json`), failures to
/// stderr with exit code 1.
fn loadgen(opts: LoadOptions) -> ExitCode {
    let json = opts.common.json;
    let result = actix_web::rt::System::new().block_on(im_dispatcher::loadgen::run(opts));
    match result {
        Ok(report) if json => match serde_json::to_string(&report) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("im-dispatcher loadgen: encoding the report: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("im-dispatcher loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>, node_id: Option<String>) -> ExitCode {
    let settings = match Settings::load_with_node(config.as_deref(), node_id) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("im-dispatcher: config error: {e}");
            return ExitCode::from(2);
        }
    };
    im_dispatcher::telemetry::init_tracing(&settings.log);
    // Every WebSocket is a file descriptor: use all the process may have.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }
    let result = actix_web::rt::System::new().block_on(async move {
        let signal = ShutdownSignal::install()?;
        Application::build(settings)
            .await?
            .run_until_signal(signal)
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("im-dispatcher: {e:#}");
            ExitCode::FAILURE
        }
    }
}
