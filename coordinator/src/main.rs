//! `coordinator`: parses its configuration, starts logging and runs the API until a signal.

use clap::Parser;
use farm_coordinator::config::{Command, Config};

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    if let Some(Command::ProbeSource { location }) = &config.command {
        // The child of a probe: no runtime of ours around it, its report on stdout.
        farm_coordinator::probe::run_child(location.as_deref(), &config.s3());
        return std::process::ExitCode::SUCCESS;
    }
    farm_service::logging::init(config.log.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(serve(config));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Before binding: a refused setting (a public address without a token) never listens.
    config.check().map_err(anyhow::Error::msg)?;
    let shutdown = farm_service::shutdown::on_signals()?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    farm_coordinator::run(config, listener, shutdown).await
}
