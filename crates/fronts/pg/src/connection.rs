//! One client connection from accept to close: SSL negotiation (refused), startup within
//! [`STARTUP_TIMEOUT`], then messages until the client leaves or a FATAL error.
//!
//! This is pgwire's `process_socket` loop, built from pgwire's public pieces (`negotiate_tls`,
//! which also sets TCP_NODELAY, `process_message`, `process_error`). `process_socket` keeps
//! its startup timer registered for the connection's first minute even after startup, so
//! every wait for the next message armed a kernel timer (an `epoll_wait` with a timeout). On this VM that cost
//! pgbench point SELECTs about 15%: 59-69k TPS in a connection's first minute, 78-81k after
//! (`pgbench -M prepared -c 8 -T 80 -P 10`). Here the deadline applies to startup reads only.

use futures::StreamExt;
use pgwire::api::ErrorHandler;
use pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// How long a client has to finish SSL negotiation, startup and authentication.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `socket` until the client disconnects.
pub(crate) async fn serve<H: PgWireServerHandlers>(socket: TcpStream, handlers: H) -> std::io::Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let Ok(negotiated) = timeout_at(deadline, negotiate_tls(socket, None)).await else { return Ok(()) };
    // None: a direct TLS handshake, which this front does not offer.
    let Some(mut socket) = negotiated? else { return Ok(()) };
    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
        );
        let next = if starting {
            match timeout_at(deadline, socket.next()).await {
                Ok(next) => next,
                Err(_) => return Ok(()),
            }
        } else {
            socket.next().await
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                tracing::debug!(%err, "postgres connection sent an unreadable message");
                return Ok(());
            }
            None => return Ok(()),
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        // A CancelRequest comes on a connection of its own, which `process_message` closes.
        let cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let result = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut err) = result {
            errors.on_error(&socket, &mut err);
            // A FATAL error ends the session, as in PostgreSQL.
            let fatal = err.is_fatal();
            process_error(&mut socket, err, extended_query).await?;
            if fatal {
                return Ok(());
            }
        }
        if cancel_request {
            return Ok(());
        }
    }
}
