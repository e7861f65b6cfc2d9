//! The `strom` binary: the server and the command-line tools, one program.
//!
//! Owns argument parsing and process set-up (logging, the tokio runtime). The tools talk to brokers
//! only over the Kafka protocol (through librdkafka), never through broker internals.

use strom_tools as tools;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

// jemalloc keeps freed pages for reuse for a while (its decay). glibc hands the ~1 MiB request
// and fetch buffers back to the kernel (munmap, or MADV_DONTNEED when an arena's top shrinks),
// so every produce and fetch paid page faults and page zeroing on fresh memory: about a fifth
// of the server's CPU on a 1 KB produce profile.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "strom",
    version,
    about = "A Kafka-compatible event streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (and controller) node, like kafka-server-start.sh.
    Server {
        /// A server.properties file; without one, a single local node with embedded defaults.
        config: Option<PathBuf>,
        /// Override a configuration key: --override key=value (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Run a Kafka Connect worker, like connect-standalone.sh / connect-distributed.sh.
    Connect {
        #[command(subcommand)]
        cmd: strom_connect::ConnectCommand,
    },
    #[command(flatten)]
    Tool(tools::ToolCommand),
}

fn main() -> std::process::ExitCode {
    // A reloadable filter, so Connect's `PUT /admin/loggers/{logger}` can change levels live.
    use tracing_subscriber::prelude::*;
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| tracing_subscriber::EnvFilter::try_new(f).is_ok())
        .unwrap_or_else(|| "info,openraft=warn".to_string());
    let (filter, handle) =
        tracing_subscriber::reload::Layer::new(tracing_subscriber::EnvFilter::new(&base));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    strom_connect::loggers::install(
        &base,
        Box::new(move |directives| {
            let f =
                tracing_subscriber::EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
            handle.reload(f).map_err(|e| e.to_string())
        }),
    );
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server { config, overrides } => run_server(config, overrides),
        Command::Connect { cmd } => strom_connect::run(cmd, strom_connectors::plugins()),
        Command::Tool(t) => tools::run(t),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_server(config: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    let config = strom_broker::BrokerConfig::load(config.as_deref(), &overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom")
        .build()?;
    runtime.block_on(strom_broker::run(config))
}
