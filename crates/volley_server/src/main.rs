//! `volley-server`: see `volley-server --help`.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use tracing_subscriber::EnvFilter;
use volley_server::cli::{Cli, Commands};
use volley_server::{Server, ticket};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Commands::Ticket(args)) = &cli.command {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let expiry = now + args.ttl.as_secs();
        println!(
            "{}",
            ticket::mint(args.ticket_secret.expose(), &args.room, &args.user, expiry)
        );
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    // Each peer holds a socket: lift the soft descriptor limit to the hard one.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!("file descriptor limit: {limit}"),
        Err(e) => tracing::warn!("cannot raise the file descriptor limit: {e}"),
    }
    let mut runtime = if cli.serve.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if cli.serve.threads > 1 {
        runtime.worker_threads(cli.serve.threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("volley-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match cli.serve.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("volley-server: TLS: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let result = runtime.block_on(async move {
        let server = Server::bind(config).await?;
        tracing::info!(
            "volley-server listening on {scheme}://{}",
            server.local_addr()
        );
        server.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("volley-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
