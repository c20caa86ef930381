//! The client asks the signaling server's `/api/ice` (a real HTTP request to
//! an in-process volley-server on 127.0.0.1) and falls back to its own
//! configuration when the server names nothing or is not there.

use volley_net::{IceServer, Session};
use volley_server::ice::IceConfig;
use volley_server::{Server, ServerConfig};

fn server_with(ice: IceConfig) -> (tokio::runtime::Runtime, volley_server::ServerHandle) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let handle = runtime.block_on(async {
        let config = ServerConfig {
            addr: "127.0.0.1:0".parse().expect("an address"),
            ice,
            ..ServerConfig::default()
        };
        Server::bind(config).await.expect("binds").spawn()
    });
    (runtime, handle)
}

fn configured() -> IceServer {
    IceServer {
        urls: vec!["stun:configured.example:3478".into()],
        username: None,
        credential: None,
    }
}

/// Runs a future to completion on this thread (the fetch needs no runtime).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

#[test]
fn the_servers_stun_and_turn_replace_the_configured_ones() {
    let (runtime, server) = server_with(IceConfig {
        stun: vec!["stun:stun.example:3478".into()],
        turn: vec!["turn:turn.example:3478".into()],
        turn_secret: Some("s3cret".into()),
        ..IceConfig::default()
    });
    let url = format!("ws://{}/room?next=2", server.addr());
    let builder = block_on(
        Session::builder(&url)
            .ice_server(configured())
            .with_server_ice(),
    );
    let servers = builder.ice_servers();
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert_eq!(servers[0].urls, vec!["stun:stun.example:3478"]);
    assert_eq!(servers[1].urls, vec!["turn:turn.example:3478"]);
    assert!(
        servers[1]
            .username
            .as_deref()
            .is_some_and(|u| u.contains(':'))
    );
    assert!(servers[1].credential.is_some());
    runtime.block_on(server.shutdown());
}

#[test]
fn without_an_answer_the_configured_servers_stay() {
    // The server names no ICE servers.
    let (runtime, server) = server_with(IceConfig::default());
    let url = format!("ws://{}/room", server.addr());
    let builder = block_on(
        Session::builder(&url)
            .ice_server(configured())
            .with_server_ice(),
    );
    assert_eq!(builder.ice_servers(), &[configured()]);
    runtime.block_on(server.shutdown());

    // Nobody listens any more.
    let builder = block_on(
        Session::builder(&url)
            .ice_server(configured())
            .with_server_ice(),
    );
    assert_eq!(builder.ice_servers(), &[configured()]);
    let error = block_on(volley_net::ice::fetch_ice_servers(
        &url,
        &Default::default(),
    ))
    .unwrap_err();
    assert!(
        matches!(error, volley_net::ice::IceError::Fetch { .. }),
        "{error}"
    );
}
