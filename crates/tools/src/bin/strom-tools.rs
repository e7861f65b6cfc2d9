//! The console tools alone, without the server: the same subcommands as `strom topic|produce|consume|bench`.
//!
//! It exists so the tools' integration tests (and anyone who only needs a client) can run them without
//! building the broker; the `strom` binary in crates/cli is the one users get.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "strom-tools",
    version,
    about = "strom's console tools (Kafka clients)"
)]
struct Cli {
    #[command(subcommand)]
    command: strom_tools::ToolCommand,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match strom_tools::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
