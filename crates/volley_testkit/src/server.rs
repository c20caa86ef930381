//! An in-process volley-server on 127.0.0.1 for the duration of a test.

use volley_server::{Server, ServerConfig, ServerHandle};

/// Runs `test` with a server on an ephemeral port, then shuts it down.
pub fn with_server(test: impl FnOnce(&ServerHandle)) {
    with_server_config(ServerConfig::default(), test)
}

/// [`with_server`] with a configuration (its address is replaced by an
/// ephemeral port on 127.0.0.1).
pub fn with_server_config(config: ServerConfig, test: impl FnOnce(&ServerHandle)) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let server = runtime.block_on(spawn_with(config));
    test(&server);
    runtime.block_on(server.shutdown());
}

/// Runs an async test on a 2-thread tokio runtime, failing it after `limit`.
pub fn run_async(limit: std::time::Duration, test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async {
            tokio::time::timeout(limit, test)
                .await
                .unwrap_or_else(|_| panic!("test finished within {limit:?}"))
        });
}

/// A server on an ephemeral port on 127.0.0.1, inside a tokio runtime.
pub async fn spawn() -> ServerHandle {
    spawn_with(ServerConfig::default()).await
}

/// [`spawn`] with a configuration (its address is replaced).
pub async fn spawn_with(config: ServerConfig) -> ServerHandle {
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().expect("an address"),
        ..config
    };
    Server::bind(config)
        .await
        .expect("the server binds")
        .spawn()
}

/// `GET /metrics` of the server at `addr` (blocking; call it outside the
/// server's runtime).
pub fn metrics(addr: std::net::SocketAddr) -> String {
    let url = format!("http://{addr}/metrics");
    let mut response = ureq::get(&url).call().expect("GET /metrics");
    response.body_mut().read_to_string().expect("a text body")
}

/// The value of the sample line `name value` in a `/metrics` text (0 when
/// absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
