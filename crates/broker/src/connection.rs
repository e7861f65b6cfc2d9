//! One client connection: size-prefixed frames in, responses out in request order.
//!
//! Requests on a connection are handled one at a time, as Kafka does (it mutes a connection until
//! the response is sent); clients pipeline by keeping several requests in flight on the socket.

use crate::broker::Broker;
use crate::handlers::response::Response;
use crate::handlers::{self, ConnectionContext};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr, listener: Arc<str>) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, rd);
    let mut writer = BufWriter::with_capacity(64 * 1024, wr);
    let ctx = ConnectionContext { peer, listener };
    let max = broker.config.socket_request_max_bytes;
    // An error reading the size is the client closing the connection.
    while let Ok(size) = reader.read_i32().await {
        if size < 8 || size > max {
            tracing::warn!(%peer, size, max, "closing connection: request size out of bounds (socket.request.max.bytes)");
            break;
        }
        let Some(frame) = read_frame(&mut reader, size as usize).await else {
            tracing::debug!(%peer, "connection closed mid-request");
            break;
        };
        match handlers::handle(&broker, &ctx, frame.freeze()).await {
            Ok(response) => {
                if let Some(response) = response
                    && let Err(e) = write_response(&mut writer, response).await
                {
                    tracing::debug!(%peer, error = %e, "closing connection: writing a response");
                    break;
                }
                // Batch responses to pipelined requests into one write; flush once nothing
                // more is waiting to be read.
                if reader.buffer().is_empty() && writer.flush().await.is_err() {
                    break;
                }
            }
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
    let _ = writer.flush().await;
}

/// One response: its bytes, with each spliced file range sent from the page cache in its place.
async fn write_response(
    writer: &mut BufWriter<OwnedWriteHalf>,
    response: Response,
) -> std::io::Result<()> {
    let mut at = 0;
    for (position, range) in &response.splices {
        writer.write_all(&response.bytes[at..*position]).await?;
        writer.flush().await?;
        crate::sendfile::send_range(writer.get_ref().as_ref(), range).await?;
        at = *position;
    }
    writer.write_all(&response.bytes[at..]).await
}

/// Read one request body of `size` bytes straight into the buffer's spare capacity: zero-filling a
/// buffer that is about to be overwritten cost a few percent of the produce path. `None` when the
/// connection ends first.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
) -> Option<BytesMut> {
    let mut frame = BytesMut::with_capacity(size);
    let mut limited = reader.take(size as u64);
    while frame.len() < size {
        match limited.read_buf(&mut frame).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    Some(frame)
}
