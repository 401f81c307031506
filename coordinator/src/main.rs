//! `coordinator`: parses its configuration, starts logging and runs the API until a signal.

use clap::Parser;
use std::process::ExitCode;

use farm_coordinator::audit::{self, Verdict};
use farm_coordinator::config::{AuditCommand, Command, Config};
use farm_coordinator::principals::{self, Role};

fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(Command::ProbeSource { location }) = &config.command {
        // The child of a probe: no runtime of ours around it, its report on stdout.
        farm_coordinator::probe::run_child(location.as_deref(), &config.s3());
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(Command::Token { name, role }) = &config.command {
        return token(name, *role);
    }
    farm_service::logging::init(config.log.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Some(Command::Audit { command: AuditCommand::Verify }) = &config.command {
        return runtime.block_on(verify_audit(&config));
    }
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

/// `coordinator token NAME ROLE`: the token on stdout's first line, its entry on the second.
fn token(name: &str, role: Role) -> ExitCode {
    match principals::new_token(name, role) {
        Ok((token, line)) => {
            println!("{token}\n{line}");
            eprintln!("give the first line to {name}; add the second to the principals file (FARM_PRINCIPALS_FILE)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: reading random bytes: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `coordinator audit verify`: 0 and the head when the trail is intact, 1 naming the first
/// bad row, 2 when the database cannot be read.
async fn verify_audit(config: &Config) -> ExitCode {
    let store = match farm_coordinator::db::Store::connect(&config.database_url()).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: opening the job database: {e}");
            return ExitCode::from(2);
        }
    };
    match audit::verify(&store).await {
        Ok(Verdict::Intact { rows, head }) => {
            println!("audit trail intact: {rows} rows, head {head} (keep the head: a removed last row shows only against it)");
            ExitCode::SUCCESS
        }
        Ok(Verdict::Broken { seq, reason }) => {
            println!("audit trail BROKEN at row {seq}: {reason}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: reading the audit trail: {e}");
            ExitCode::from(2)
        }
    }
}
