//! The extended query protocol: Parse binds a statement to learn its parameter and result
//! types, Bind decodes parameters into a portal, Describe and Execute answer from it.
//!
//! pgwire's default handlers flush the socket after ParseComplete, BindComplete,
//! RowDescription and CommandComplete. Clients send Bind/Describe/Execute/Sync in one packet
//! and wait for ReadyForQuery, so every reply here is queued and the whole answer leaves in
//! the one write that Sync (or Flush) makes, as PostgreSQL does (strace of a prepared point
//! SELECT: four `sendto` calls before, one after).
//!
//! An Execute runs its statement on the connection's thread (see the crate doc); a
//! CancelRequest reaches it through the session's cancel flag (`cancel.rs`).

use crate::{Handler, Statement, fields, response, session_of, types, user_error};
use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete, TARGET_TYPE_BYTE_PORTAL,
    TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::EmptyQueryResponse;
use std::fmt::Debug;
use std::sync::Arc;
use strata_sql::{DataType, Sql, SqlError, Value};

/// Parses and binds statements for the extended protocol.
pub struct Parser {
    pub(crate) sql: Sql,
    pub(crate) cancels: Arc<crate::cancel::Cancels>,
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
        let session = session_of(client, &self.sql, &self.cancels);
        let declared: Vec<DataType> =
            types.iter().map(|t| t.as_ref().map_or(DataType::Unknown, types::data_type)).collect();
        let prepared =
            session.lock().expect("session lock poisoned").prepare(sql, &declared).map_err(user_error)?;
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

/// Queues a RowDescription for `columns`, or NoData when there are none.
async fn queue_row_description<C>(client: &mut C, columns: &[FieldInfo]) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<C::Error>,
{
    let message = if columns.is_empty() {
        PgWireBackendMessage::NoData(NoData::new())
    } else {
        PgWireBackendMessage::RowDescription(RowDescription::new(columns.iter().map(Into::into).collect()))
    };
    client.feed(message).await?;
    Ok(())
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match StoredStatement::parse(client, &message, self.parser.clone()).await? {
            Some(statement) => client.portal_store().put_statement(Arc::new(statement)),
            None => client.portal_store().put_empty_statement(name),
        }
        client.feed(PgWireBackendMessage::ParseComplete(ParseComplete::new())).await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
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
        client.feed(PgWireBackendMessage::BindComplete(BindComplete::new())).await?;
        Ok(())
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                let (declared, columns) = match client.portal_store().get_statement(name) {
                    Some(Entry::Value(stored)) => {
                        let params = &stored.statement.prepared.params;
                        // The client's declared types win over inferred ones.
                        let count = stored.parameter_types.len().max(params.len());
                        let declared: Vec<Type> = (0..count)
                            .map(|i| match stored.parameter_types.get(i).cloned().flatten() {
                                Some(t) => t,
                                None => params.get(i).map_or(Type::UNKNOWN, types::pg_type),
                            })
                            .collect();
                        (declared, fields(&stored.statement.prepared.columns, &Format::UnifiedBinary))
                    }
                    Some(Entry::Empty) => (Vec::new(), Vec::new()),
                    None => return Err(PgWireError::StatementNotFound(name.to_owned())),
                };
                let oids = declared.iter().map(Type::oid).collect();
                client
                    .feed(PgWireBackendMessage::ParameterDescription(ParameterDescription::new(oids)))
                    .await?;
                queue_row_description(client, &columns).await
            }
            TARGET_TYPE_BYTE_PORTAL => {
                let columns = match client.portal_store().get_portal(name) {
                    Some(Entry::Value(portal)) => {
                        fields(&portal.statement.statement.prepared.columns, &portal.result_column_format)
                    }
                    Some(Entry::Empty) => Vec::new(),
                    None => return Err(PgWireError::PortalNotFound(name.to_owned())),
                };
                queue_row_description(client, &columns).await
            }
            other => Err(PgWireError::InvalidTargetType(other)),
        }
    }

    /// pgwire's Execute (see `_on_execute`) with every reply queued, for the statements
    /// this front answers; a portal executed before, or in chunks of `max_rows`, keeps
    /// pgwire's handling.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal)) => portal,
            Some(Entry::Empty) => {
                client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(name.to_owned())),
        };
        let fresh = matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        if !fresh || message.max_rows != 0 {
            return self._on_execute(client, message).await;
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut status = client.transaction_status();
        let result = self.do_query(client, &portal, 0).await;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        let reply = match result? {
            Response::Query(mut rows) => {
                let mut count = 0;
                while let Some(row) = rows.data_rows().next().await {
                    client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                    count += 1;
                }
                // A second Execute of this portal finds it finished, as in PostgreSQL.
                *portal.state().lock().await = PortalExecutionState::Finished;
                Tag::new(rows.command_tag()).with_rows(count)
            }
            Response::EmptyQuery => {
                client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
                return Ok(());
            }
            Response::Execution(tag) => tag,
            Response::TransactionStart(tag) => {
                status = status.to_in_transaction_state();
                tag
            }
            Response::TransactionEnd(tag) => {
                status = status.to_idle_state();
                client.portal_store().rm_portal(DEFAULT_NAME);
                tag
            }
            _ => unreachable!("do_query answers rows, commands and transaction boundaries only"),
        };
        client.feed(PgWireBackendMessage::CommandComplete(reply.into())).await?;
        client.set_transaction_status(status);
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
        let prepared = &portal.statement.statement.prepared;
        // The client's declared types win over inferred ones.
        let types: Vec<DataType> = (0..portal.parameter_len())
            .map(|i| match portal.statement.parameter_types.get(i).cloned().flatten() {
                Some(t) => types::data_type(&t),
                None => prepared.params.get(i).cloned().unwrap_or(DataType::Text),
            })
            .collect();
        let params: Vec<Value> = types::parameters(portal, &types)?;
        let session = session_of(client, &self.sql, &self.cancels);
        let outcome = session
            .lock()
            .expect("session lock poisoned")
            .execute_prepared(prepared, &params)
            .map_err(user_error)?;
        response(outcome, &portal.result_column_format)
    }
}
