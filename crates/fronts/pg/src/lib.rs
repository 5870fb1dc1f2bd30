//! # strata-pg: the PostgreSQL wire front (port 5432)
//!
//! `pgwire` speaks the protocol (startup, SSL refusal, simple and extended query, message
//! size limits); this crate maps it onto [`strata_sql`] sessions and holds no SQL logic:
//!
//! - one [`Session`] per connection, kept in the connection's session extensions;
//! - Parse binds the statement to infer `$n` parameter types and result columns, so
//!   tokio-postgres and psycopg can prepare statements;
//! - Bind/Execute decode parameters (text or binary) and encode rows in the format each
//!   client asked for;
//! - errors become ErrorResponse with the SQLSTATE and position, and the connection stays.
//!
//! Authentication: no password by default on loopback (any user, as `trust`); with
//! `pg.password` set, cleartext password authentication for `pg.user`.
//!
//! ## Threads
//!
//! Each connection runs on a thread of its own (a single-threaded tokio runtime driving
//! pgwire), as each PostgreSQL connection runs in a backend process of its own. Statements
//! run inline on that thread: a commit waiting for its fsync or an UPDATE waiting for a row
//! lock holds up only its own connection, and a query costs no hand-over between threads.
//! Measured against handing each statement to tokio's blocking pool from a shared runtime:
//! pgbench point SELECT 35.5k -> 59k TPS on 2 cores, the hand-over's two thread wake-ups
//! having been most of the cost (`perf`: 35% of samples in the scheduler).
//!
//! ## Limitations
//!
//! - No pg_catalog tables yet: clients that introspect (psql's `\d`) get "relation does not
//!   exist"; plain queries work.
//! - A portal's rows are all computed at its first Execute; `max_rows` splits only their
//!   delivery (PortalSuspended between chunks).

mod cancel;
mod connection;
mod extended;
mod types;

use async_trait::async_trait;
use extended::Parser;
use futures::stream;
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::portal::Format;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::{ClientInfo, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use std::sync::{Arc, Mutex};
use strata_sql::{Column, Outcome, Prepared, Session, Sql, SqlError};
use tokio::net::TcpListener;

/// Settings of the front.
#[derive(Clone, Debug, Default)]
pub struct PgConfig {
    /// The user that must log in when a password is set.
    pub user: String,
    /// When set, clients must send it (cleartext password authentication).
    pub password: Option<String>,
    /// Most connections served at once; more wait in the accept queue.
    pub max_connections: usize,
}

/// A prepared statement as the handler keeps it.
#[derive(Clone, Debug)]
pub struct Statement {
    prepared: Prepared,
}

/// A connection's session, kept in its session extensions, with its cancel registration.
struct ConnectionSession {
    session: Mutex<Session>,
    _cancel: cancel::Registration,
}

impl std::ops::Deref for ConnectionSession {
    type Target = Mutex<Session>;

    fn deref(&self) -> &Mutex<Session> {
        &self.session
    }
}

type SharedSession = Arc<ConnectionSession>;

fn session_of<C: ClientInfo>(client: &C, sql: &Sql, cancels: &Arc<cancel::Cancels>) -> SharedSession {
    client.session_extensions().get_or_insert_with(|| {
        let session = sql.session();
        let (pid, secret) = client.pid_and_secret_key();
        let registration = cancels.register(pid, &secret, session.cancel_flag());
        ConnectionSession { session: Mutex::new(session), _cancel: registration }
    })
}

fn to_pg_error(err: SqlError) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), err.code.into(), err.message);
    info.position = err.position.map(|p| p.to_string());
    info
}

fn user_error(err: SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(to_pg_error(err)))
}

fn fields(columns: &[Column], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| FieldInfo::new(c.name.clone(), None, None, types::pg_type(&c.ty), format.format_for(i)))
        .collect()
}

fn response(outcome: Outcome, format: &Format) -> PgWireResult<Response> {
    Ok(match outcome {
        Outcome::Command { tag } => {
            let upper = tag.to_uppercase();
            match upper.as_str() {
                "BEGIN" => Response::TransactionStart(Tag::new("BEGIN")),
                "COMMIT" | "ROLLBACK" => Response::TransactionEnd(Tag::new(&upper)),
                _ => Response::Execution(Tag::new(&tag)),
            }
        }
        Outcome::Rows { columns, rows, tag } => {
            let schema = Arc::new(fields(&columns, format));
            let mut encoder = DataRowEncoder::new(schema.clone());
            let mut data = Vec::with_capacity(rows.len());
            for row in &rows {
                for (value, column) in row.iter().zip(&columns) {
                    types::encode(&mut encoder, value, &column.ty)?;
                }
                data.push(Ok(encoder.take_row()));
            }
            let mut response = QueryResponse::new(schema, stream::iter(data));
            response.set_command_tag(command_word(&tag, rows.len()));
            Response::Query(response)
        }
    })
}

/// The tag without its row count, which pgwire appends itself ("SELECT 3" -> "SELECT",
/// "INSERT 0 3" -> "INSERT 0"); sending the count twice made libpq's `PQcmdTuples` fail
/// ("could not interpret result from server: SELECT 1 1").
fn command_word(tag: &str, rows: usize) -> &str {
    match tag.rsplit_once(' ') {
        Some((word, count)) if count.parse() == Ok(rows) => word,
        _ => tag,
    }
}

/// The query handler shared by every connection.
pub struct Handler {
    sql: Sql,
    cancels: Arc<cancel::Cancels>,
    parser: Arc<Parser>,
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(client, &self.sql, &self.cancels);
        let results = match session.lock().expect("session lock poisoned").execute_each(query) {
            Err(e) => vec![Err(e)],
            Ok(results) if results.is_empty() => return Ok(vec![Response::EmptyQuery]),
            Ok(results) => results,
        };
        let mut responses = Vec::with_capacity(results.len());
        for result in results {
            responses.push(match result {
                Ok(outcome) => response(outcome, &Format::UnifiedText)?,
                Err(err) => Response::Error(Box::new(to_pg_error(err))),
            });
        }
        Ok(responses)
    }
}

/// Password checks for `pg.user` / `pg.password`.
#[derive(Debug)]
struct PasswordSource {
    user: String,
    password: String,
}

#[async_trait]
impl AuthSource for PasswordSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        if login.user() != Some(self.user.as_str()) {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!("password authentication failed for user \"{}\"", login.user().unwrap_or_default()),
            ))));
        }
        Ok(Password::new(None, self.password.as_bytes().to_vec()))
    }
}

/// The no-password startup: anyone connects (loopback only, enforced by the binary).
pub struct Trust;

impl NoopStartupHandler for Trust {}

struct Factory {
    handler: Arc<Handler>,
    config: PgConfig,
}

impl PgWireServerHandlers for Factory {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Startup::new(&self.config))
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.handler.cancels.clone()
    }
}

/// Either startup flavour, as one type.
enum Startup {
    Trust(Trust),
    Password(Box<CleartextPasswordAuthStartupHandler<PasswordSource, DefaultServerParameterProvider>>),
}

impl Startup {
    fn new(config: &PgConfig) -> Self {
        match &config.password {
            None => Startup::Trust(Trust),
            Some(password) => {
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version = "15.0 (Strata)".into();
                Startup::Password(Box::new(CleartextPasswordAuthStartupHandler::new(
                    PasswordSource { user: config.user.clone(), password: password.clone() },
                    parameters,
                )))
            }
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + futures::Sink<pgwire::messages::PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<pgwire::messages::PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Trust(h) => h.on_startup(client, message).await,
            Startup::Password(h) => h.on_startup(client, message).await,
        }
    }
}

/// Serves PostgreSQL connections on `listener` until `shutdown` completes, each on a thread
/// of its own (see the module doc). Returns once every connection has ended: at shutdown,
/// connections close after the statement they are running.
pub async fn serve(
    listener: TcpListener,
    sql: Sql,
    config: PgConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancels = Arc::<cancel::Cancels>::default();
    let handler = Arc::new(Handler {
        sql: sql.clone(),
        cancels: cancels.clone(),
        parser: Arc::new(Parser { sql, cancels }),
    });
    let limit = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let factory = Arc::new(Factory { handler, config });
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Every connection thread holds a sender; `recv` returns None once all have ended.
    let (running, mut ended) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    let result = loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            permit = limit.clone().acquire_owned() => permit.expect("semaphore never closes"),
        };
        let socket = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(err) => break Err(err),
            },
        };
        let (factory, mut stop, running) = (factory.clone(), stop.clone(), running.clone());
        let socket = socket.into_std()?;
        let spawned = std::thread::Builder::new().name("strata-pg".into()).spawn(move || {
            let runtime =
                match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
                    Ok(runtime) => runtime,
                    Err(err) => return tracing::warn!(%err, "could not start a postgres connection thread"),
                };
            runtime.block_on(async move {
                let socket = match tokio::net::TcpStream::from_std(socket) {
                    Ok(socket) => socket,
                    Err(err) => return tracing::debug!(%err, "postgres connection lost"),
                };
                tokio::select! {
                    result = connection::serve(socket, factory) => {
                        if let Err(err) = result {
                            tracing::debug!(%err, "postgres connection ended with an error");
                        }
                    }
                    _ = stop.wait_for(|stopping| *stopping) => {}
                }
            });
            drop((permit, running));
        });
        if let Err(err) = spawned {
            tracing::warn!(%err, "could not start a postgres connection thread");
        }
    };
    let _ = stop_tx.send(true);
    drop(running);
    ended.recv().await;
    result
}
