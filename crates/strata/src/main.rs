//! # strata: the binary
//!
//! Floor 4 of the house: reads the configuration, opens the store, wires blocks to fronts,
//! runs them until SIGINT/SIGTERM, then shuts down gracefully. `strata serve` is the one
//! command a user needs.

mod config;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "strata", version, about = "Every classic building block of a system design in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every enabled front on one data directory.
    Serve {
        /// A TOML file; see strata.example.toml for every key.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the data lives (overrides data_dir and STRATA_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, data_dir } => {
            let mut config = match config::Config::load(config.as_deref(), std::env::vars()) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("strata: {err:#}");
                    return std::process::ExitCode::from(2);
                }
            };
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            serve::init_logging(&config.log);
            match serve::run(config) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("strata: {err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
