//! One client connection: size-prefixed frames in, responses out in request order.
//!
//! Requests on a connection are handled one at a time, as Kafka does (it mutes a connection until
//! the response is sent); clients pipeline by keeping several requests in flight on the socket.

use crate::broker::Broker;
use crate::handlers::{self, ConnectionContext};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

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
        let mut frame = BytesMut::zeroed(size as usize);
        if let Err(e) = reader.read_exact(&mut frame).await {
            tracing::debug!(%peer, error = %e, "connection closed mid-request");
            break;
        }
        match handlers::handle(&broker, &ctx, frame.freeze()).await {
            Ok(response) => {
                if let Some(response) = response
                    && writer.write_all(&response).await.is_err()
                {
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
