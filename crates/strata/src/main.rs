//! # strata: the binary
//!
//! Floor 4 of the house: reads the configuration, opens the store, wires blocks to fronts,
//! runs them until SIGINT/SIGTERM, then shuts down gracefully. `strata serve` is the one
//! command a user needs.

mod blob_cli;
mod config;
mod edge_journal;
mod search_sources;
mod serve;
mod view_sink;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// mimalloc rather than glibc's malloc: indexing (tantivy) allocates per token, and glibc's
/// malloc and free were about a sixth of indexing time under perf.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, as redis-server does (`disable-thp`).
///
/// mimalloc asks for huge pages on the memory it maps, and the kernel zeroes each 2 MiB page
/// on its first touch: under `perf`, bulk indexing spent a fifth of its CPU in
/// `clear_page_erms`, for memory that was mostly freed again soon after. Without them
/// indexing 100k documents took 13-18% less CPU; the kernel's own default (`madvise`) is untouched
/// for other processes.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("strata: could not turn transparent huge pages off: {err}");
    }
}

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
    /// Blob storage: access keys and presigned links, through a running Strata.
    Blob {
        /// The http front of the running Strata.
        #[arg(long, env = "STRATA_URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// The http front's API key, if it has one (`http.api_key`).
        #[arg(long, env = "STRATA_HTTP_API_KEY")]
        api_key: Option<String>,
        #[command(subcommand)]
        command: blob_cli::BlobCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Blob { server, api_key, command } => {
            let server = blob_cli::Server { url: server, api_key: api_key.filter(|k| !k.is_empty()) };
            match blob_cli::run(&server, command) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("strata: {err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Serve { config, data_dir } => {
            disable_transparent_huge_pages();
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
