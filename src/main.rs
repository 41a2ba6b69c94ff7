//! `tokengate`: parses the command line and dispatches.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = tokengate::cli::Cli::parse();
    match tokengate::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
