//! The one shutdown path: the first SIGTERM or Ctrl-C cancels the returned token (each
//! binary drains on it: the worker lets its task finish, the coordinator stops serving);
//! a second one exits at once with status 130.

use tokio_util::sync::CancellationToken;

/// Starts listening for signals on the current runtime; the token is cancelled on the first.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let first = token.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        for round in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if round == 1 {
                eprintln!("second signal: exiting now");
                std::process::exit(130);
            }
            eprintln!("stopping (signal again to exit now)");
            first.cancel();
        }
    });
    Ok(token)
}
