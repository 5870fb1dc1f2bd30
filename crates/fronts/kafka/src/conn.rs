//! One client connection: length-prefixed frames in, the request header and body decoded
//! for the version the client chose, one response out per request, in order.

use crate::{Ctx, admin, fetch, groups, metadata, produce, versions};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

/// Why a connection was closed on the client.
fn protocol_error(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

pub(crate) async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let (reader, writer) = socket.into_split();
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    let mut writer = BufWriter::with_capacity(64 << 10, writer);
    metrics::gauge!("strata_kafka_connections").increment(1.0);
    let result = async {
        loop {
            let len = match reader.read_i32().await {
                Ok(len) => len,
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(err) => return Err(err),
            };
            if len < 8 || len as usize > ctx.config.max_request_bytes {
                return Err(protocol_error(format!(
                    "request frame of {len} bytes (limit {} bytes)",
                    ctx.config.max_request_bytes
                )));
            }
            let mut frame = BytesMut::zeroed(len as usize);
            reader.read_exact(&mut frame).await?;
            if let Some(response) = handle_frame(frame.freeze(), peer, &ctx).await? {
                writer.write_all(&response).await?;
                if reader.buffer().is_empty() {
                    writer.flush().await?;
                }
            }
        }
    }
    .await;
    let _ = writer.flush().await;
    metrics::gauge!("strata_kafka_connections").decrement(1.0);
    result
}

/// Decodes one frame, runs it, and encodes the answer (with its length prefix); `None` for
/// requests that get no answer (produce with acks=0).
async fn handle_frame(mut frame: Bytes, peer: SocketAddr, ctx: &Ctx) -> std::io::Result<Option<Vec<u8>>> {
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(raw_key).map_err(|_| protocol_error(format!("unknown API key {raw_key}")))?;
    let Some((min, max)) = versions::supported(api) else {
        return Err(protocol_error(format!("API {api:?} is not served")));
    };
    if !(min..=max).contains(&version) {
        if api == ApiKey::ApiVersions {
            // Answered in v0 so that any client can read which versions to use instead.
            let mut response = metadata::api_versions();
            response.error_code = ResponseError::UnsupportedVersion.code();
            return encode(correlation_id, ResponseKind::ApiVersions(response), 0, 0).map(Some);
        }
        return Err(protocol_error(format!("{api:?} v{version} is not served (v{min}-v{max} are)")));
    }
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| protocol_error(format!("request header: {e}")))?;
    let request = RequestKind::decode(api, &mut frame, version)
        .map_err(|e| protocol_error(format!("{api:?} v{version} request: {e}")))?;
    if frame.has_remaining() && api != ApiKey::ApiVersions {
        tracing::debug!(?api, version, extra = frame.remaining(), "request with trailing bytes");
    }
    metrics::counter!("strata_kafka_requests_total", "api" => format!("{api:?}")).increment(1);
    let client_id = header.client_id.as_deref().unwrap_or("").to_string();
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(metadata::api_versions()),
        RequestKind::Metadata(req) => ResponseKind::Metadata(metadata::metadata(ctx, req, version)),
        RequestKind::FindCoordinator(req) => {
            ResponseKind::FindCoordinator(metadata::find_coordinator(ctx, req, version))
        }
        RequestKind::Produce(req) => match produce::produce(ctx, req).await {
            Some(response) => ResponseKind::Produce(response),
            None => return Ok(None),
        },
        RequestKind::Fetch(req) => ResponseKind::Fetch(fetch::fetch(ctx, req).await),
        RequestKind::ListOffsets(req) => ResponseKind::ListOffsets(fetch::list_offsets(ctx, req, version)),
        RequestKind::CreateTopics(req) => ResponseKind::CreateTopics(admin::create_topics(ctx, req, version)),
        RequestKind::DeleteTopics(req) => ResponseKind::DeleteTopics(admin::delete_topics(ctx, req)),
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(admin::create_partitions(ctx, req))
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(admin::describe_configs(ctx, req, version))
        }
        RequestKind::AlterConfigs(req) => ResponseKind::AlterConfigs(admin::alter_configs(ctx, req)),
        RequestKind::IncrementalAlterConfigs(req) => {
            ResponseKind::IncrementalAlterConfigs(admin::incremental_alter_configs(ctx, req))
        }
        RequestKind::InitProducerId(req) => ResponseKind::InitProducerId(admin::init_producer_id(ctx, req)),
        RequestKind::JoinGroup(req) => {
            ResponseKind::JoinGroup(groups::join(ctx, req, version, client_id, peer).await)
        }
        RequestKind::SyncGroup(req) => ResponseKind::SyncGroup(groups::sync(ctx, req).await),
        RequestKind::Heartbeat(req) => ResponseKind::Heartbeat(groups::heartbeat(ctx, req)),
        RequestKind::LeaveGroup(req) => ResponseKind::LeaveGroup(groups::leave(ctx, req)),
        RequestKind::OffsetCommit(req) => ResponseKind::OffsetCommit(groups::offset_commit(ctx, req)),
        RequestKind::OffsetFetch(req) => ResponseKind::OffsetFetch(groups::offset_fetch(ctx, req)),
        RequestKind::DescribeGroups(req) => ResponseKind::DescribeGroups(groups::describe(ctx, req)),
        RequestKind::ListGroups(req) => ResponseKind::ListGroups(groups::list(ctx, req)),
        RequestKind::DeleteGroups(req) => ResponseKind::DeleteGroups(groups::delete(ctx, req)),
        _ => return Err(protocol_error(format!("API {api:?} is not served"))),
    };
    let header_version = response.header_version(version);
    encode(correlation_id, response, version, header_version).map(Some)
}

fn encode(
    correlation_id: i32,
    response: ResponseKind,
    version: i16,
    header_version: i16,
) -> std::io::Result<Vec<u8>> {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(|e| std::io::Error::other(format!("encoding a response header: {e}")))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| std::io::Error::other(format!("encoding a response: {e}")))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.to_vec())
}
