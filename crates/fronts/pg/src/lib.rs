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
//! ## Limitations
//!
//! - No pg_catalog tables yet: clients that introspect (psql's `\d`) get "relation does not
//!   exist"; plain queries work.
//! - Portals run to completion (`max_rows` is ignored).

mod types;

use async_trait::async_trait;
use futures::stream;
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::{ClientInfo, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use std::sync::{Arc, Mutex};
use strata_sql::{Column, DataType, Outcome, Prepared, Session, Sql, SqlError, Value};
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

type SharedSession = Arc<Mutex<Session>>;

fn session_of<C: ClientInfo>(client: &C, sql: &Sql) -> SharedSession {
    client.session_extensions().get_or_insert_with(|| Mutex::new(sql.session()))
}

fn to_pg_error(err: SqlError) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), err.code.into(), err.message);
    info.position = err.position.map(|p| p.to_string());
    info
}

fn user_error(err: SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(to_pg_error(err)))
}

/// Runs blocking session work off the reactor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> PgWireResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| PgWireError::ApiError(Box::new(e)))
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
            response.set_command_tag(&tag);
            Response::Query(response)
        }
    })
}

/// The query handler shared by every connection.
pub struct Handler {
    sql: Sql,
    parser: Arc<Parser>,
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(client, &self.sql);
        let query = query.to_string();
        let (statements, results) = blocking(move || {
            let statements = match strata_sql::session::parse(&query) {
                Ok(s) => s,
                Err(e) => return (0, vec![Err(e)]),
            };
            let mut session = session.lock().expect("session lock poisoned");
            let mut results = Vec::new();
            for statement in &statements {
                let result = session.execute_statement(statement, &[]);
                let failed = result.is_err();
                results.push(result);
                if failed {
                    break;
                }
            }
            (statements.len(), results)
        })
        .await?;
        if statements == 0 && results.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
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

/// Parses and binds statements for the extended protocol.
pub struct Parser {
    sql: Sql,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(client, &self.sql);
        let sql = sql.to_string();
        let declared: Vec<DataType> =
            types.iter().map(|t| t.as_ref().map_or(DataType::Unknown, types::data_type)).collect();
        let prepared =
            blocking(move || session.lock().expect("session lock poisoned").prepare(&sql, &declared))
                .await?
                .map_err(user_error)?;
        if prepared.statement.is_none() {
            return Ok(None);
        }
        Ok(Some(Statement { prepared }))
    }

    fn get_parameter_types(&self, stmt: &Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.prepared.params.iter().map(types::pg_type).collect())
    }

    fn get_result_schema(&self, stmt: &Statement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Ok(fields(&stmt.prepared.columns, format.unwrap_or(&Format::UnifiedBinary)))
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    /// pgwire's own Bind handling, except that BindComplete is queued rather than flushed:
    /// clients send Bind/Describe/Execute/Sync together, and a flush per reply message cost
    /// one packet (and one client wake-up) each (strace: 4 sends per prepared SELECT).
    async fn on_bind<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Bind,
    ) -> PgWireResult<()>
    where
        C: ClientInfo
            + pgwire::api::ClientPortalStore
            + futures::Sink<pgwire::messages::PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<pgwire::messages::PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        use pgwire::api::store::{Entry, PortalStore};
        let statement_name = message.statement_name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(user_error(SqlError::new(
                        "08P01",
                        format!(
                            "bind message supplies {} parameters, but the statement takes none",
                            message.parameters.len()
                        ),
                    )));
                }
                client.portal_store().put_empty_portal(portal_name);
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(pgwire::messages::PgWireBackendMessage::BindComplete(
                pgwire::messages::extendedquery::BindComplete::new(),
            ))
            .await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let prepared = portal.statement.statement.prepared.clone();
        let Some(statement) = prepared.statement else { return Ok(Response::EmptyQuery) };
        // The client's declared types win over inferred ones.
        let types: Vec<DataType> = (0..portal.parameter_len())
            .map(|i| match portal.statement.parameter_types.get(i).cloned().flatten() {
                Some(t) => types::data_type(&t),
                None => prepared.params.get(i).cloned().unwrap_or(DataType::Text),
            })
            .collect();
        let params: Vec<Value> = types::parameters(portal, &types)?;
        let session = session_of(client, &self.sql);
        let outcome = blocking(move || {
            session.lock().expect("session lock poisoned").execute_statement(&statement, &params)
        })
        .await?
        .map_err(user_error)?;
        response(outcome, &portal.result_column_format)
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

/// Serves PostgreSQL connections on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    sql: Sql,
    config: PgConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handler = Arc::new(Handler { sql: sql.clone(), parser: Arc::new(Parser { sql }) });
    let limit = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let factory = Arc::new(Factory { handler, config });
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            permit = limit.clone().acquire_owned() => permit.expect("semaphore never closes"),
        };
        let (socket, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        // Replies are small and latency-bound: do not let Nagle hold them back.
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        let factory = factory.clone();
        tokio::spawn(async move {
            if let Err(err) = pgwire::tokio::process_socket(socket, None, factory).await {
                tracing::debug!(%err, "postgres connection ended with an error");
            }
            drop(permit);
        });
    }
}
