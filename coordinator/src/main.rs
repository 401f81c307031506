//! `coordinator`: parses its configuration, starts logging and runs the API until a signal.

use clap::Parser;
use farm_coordinator::config::{Command, Config};

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    if let Some(Command::ProbeSource { location }) = &config.command {
        // The child of a probe: no runtime of ours around it, its report on stdout.
        let report = farm_coordinator::probe::run_child(location, &config.s3());
        println!("{}", serde_json::to_string(&report).expect("reports serialise"));
        return std::process::ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
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
    let shutdown = tokio_util::sync::CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        token.cancel();
    });
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    farm_coordinator::run(config, listener, shutdown).await
}
