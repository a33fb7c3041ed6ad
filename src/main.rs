//! The `petal` binary: parses the command line, sets up logging, hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use petal::config::{Cli, Command, Settings};

// musl's allocator serialises threads; mimalloc keeps the static builds as fast as glibc ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let result = match Cli::parse().command {
        Command::Serve(args) => Settings::try_from(args)
            .map_err(anyhow::Error::from)
            .and_then(|settings| {
                log::info!("settings: {settings:?}");
                actix_web::rt::System::new().block_on(petal::http::serve(settings))
            }),
        Command::Classify(args) => petal::cli::classify(&args),
        Command::Healthcheck(args) => petal::cli::healthcheck(&args),
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
