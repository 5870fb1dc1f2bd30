//! The http front on port 0, for the integration tests: a state with every optional block
//! off, to which a test adds the one it drives, and a server that stops when told.

use strata_http::{AppState, metrics_handle};
use strata_kv::Kv;
use tokio::sync::watch;

/// A state serving only `kv`, stopped by `shutdown`; tests turn on the block they drive.
pub fn state(kv: Kv, shutdown: watch::Receiver<bool>) -> AppState {
    AppState {
        kv,
        blob: None,
        views: None,
        edge: None,
        locks: None,
        metrics: metrics_handle(),
        max_body_bytes: 64 * 1024,
        api_key: None,
        shutdown,
    }
}

/// Serves `state` on a port-0 listener until its shutdown receiver sees `true`; returns the
/// base URL.
pub async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut stop = state.shutdown.clone();
    tokio::spawn(strata_http::serve(listener, state, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    base
}
