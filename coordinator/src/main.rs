//! `coordinator`: parses its configuration, starts logging and runs the API until a signal.

use clap::Parser;
use std::process::ExitCode;

use farm_coordinator::access::Caller;
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
    if let Some(Command::Trace { leak, job }) = &config.command {
        return trace(&runtime, &config, leak, job);
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

/// `coordinator trace LEAKED_FILE --job ID`: the verdict as JSON on stdout, exit 0; 1 with
/// the reason on stderr when no trace could be made. Made or refused, the trace is a row in
/// the audit trail (principal `console:USER`) before any verdict is printed.
fn trace(runtime: &tokio::runtime::Runtime, config: &Config, leak: &std::path::Path, job: &str) -> ExitCode {
    let run = || -> anyhow::Result<String> {
        let master = config.master_key()?.ok_or_else(|| anyhow::anyhow!("FARM_MASTER_KEY_FILE is not set: watermarked jobs' secrets derive from it"))?;
        let store = runtime.block_on(farm_coordinator::db::Store::connect(&config.database_url()))?;
        let sinks = farm_storage::Sinks::new(config.s3());
        let leak = std::path::absolute(leak).unwrap_or_else(|_| leak.to_path_buf());
        let answer = farm_coordinator::trace::trace(&store, &master, &sinks, runtime.handle(), &farm_storage::SourceLocation::Local(leak.clone()), job);
        // The account the command runs as, from the system (not the environment's `USER`).
        let user = whoami::fallible::username().unwrap_or_else(|_| "unknown".into());
        let caller = Caller { name: format!("console:{user}"), role: Role::Admin, address: "console".into() };
        let event = farm_coordinator::trace_api::audit_event(&caller, Some(job), Some(&leak.display().to_string()), answer.as_ref().map_err(|e| e.to_string()));
        runtime.block_on(audit::append(&store, event)).map_err(|e| anyhow::anyhow!("writing the trace to the audit trail: {e}"))?;
        Ok(serde_json::to_string_pretty(&answer?)?)
    };
    match run() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
