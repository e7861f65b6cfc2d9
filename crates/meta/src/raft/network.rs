//! The controllers' internal protocol on the CONTROLLER listener: Raft RPCs between voters, and
//! requests for the active controller (forwarded writes, broker registration and heartbeats).
//!
//! Only strom nodes speak it: each frame is a 4-byte big-endian length and a JSON body; one
//! request, then one reply, on a connection that may carry many. A frame that does not parse
//! closes the connection.

use super::{Inner, LeaderError, LeaderReply, LeaderRequest, TypeConfig};
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Nid = u64;

/// Frames above this are refused: the metadata of even a large cluster is far smaller.
const MAX_FRAME: usize = 256 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
pub enum Rpc {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<Nid>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Leader(LeaderRequest),
    /// From a broker-only node: handle `LeaderRequest` here if this is the active controller,
    /// else pass it on to the leader (an observer may only know a bootstrap controller).
    Forward(LeaderRequest),
}

#[derive(Serialize, Deserialize)]
pub enum RpcReply {
    AppendEntries(Result<AppendEntriesResponse<Nid>, RaftError<Nid>>),
    Vote(Result<VoteResponse<Nid>, RaftError<Nid>>),
    InstallSnapshot(Result<InstallSnapshotResponse<Nid>, RaftError<Nid, InstallSnapshotError>>),
    Leader(Result<LeaderReply, LeaderError>),
}

pub async fn write_frame<T: Serialize>(s: &mut TcpStream, msg: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    s.write_all(&buf).await
}

pub async fn read_frame<T: DeserializeOwned>(s: &mut TcpStream) -> std::io::Result<T> {
    let len = s.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "controller frame of {len} bytes exceeds {MAX_FRAME}"
        )));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

/// One request/reply on a fresh connection (forwarded writes, heartbeats: a few a second).
pub async fn call(addr: &str, rpc: &Rpc, timeout: Duration) -> std::io::Result<RpcReply> {
    tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(addr).await?;
        let _ = s.set_nodelay(true);
        write_frame(&mut s, rpc).await?;
        read_frame(&mut s).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "controller RPC timed out"))?
}

/// Serve the CONTROLLER listener until the runtime stops.
pub async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(inner, stream).await
                        && e.kind() != std::io::ErrorKind::UnexpectedEof
                    {
                        tracing::debug!(%peer, error = %e, "controller connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(inner: Arc<Inner>, mut s: TcpStream) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    loop {
        let rpc: Rpc = read_frame(&mut s).await?;
        let reply = match rpc {
            Rpc::AppendEntries(r) => RpcReply::AppendEntries(inner.raft.append_entries(r).await),
            Rpc::Vote(r) => RpcReply::Vote(inner.raft.vote(r).await),
            Rpc::InstallSnapshot(r) => {
                RpcReply::InstallSnapshot(inner.raft.install_snapshot(r).await)
            }
            Rpc::Leader(r) => RpcReply::Leader(inner.handle_as_leader(r).await),
            Rpc::Forward(r) => {
                RpcReply::Leader(super::leader_request(inner.clone(), r).await.map_err(
                    |e| match e {
                        crate::store::MetaError::Refused(m) => LeaderError::Refused(m),
                        other => LeaderError::Unavailable(other.to_string()),
                    },
                ))
            }
        };
        write_frame(&mut s, &reply).await?;
    }
}

/// openraft's view of the other voters.
pub struct Network;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: Nid, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

pub struct PeerClient {
    target: Nid,
    addr: String,
    conn: Option<TcpStream>,
}

impl PeerClient {
    async fn send<E>(
        &mut self,
        rpc: Rpc,
        timeout: Duration,
    ) -> Result<RpcReply, RPCError<Nid, BasicNode, E>>
    where
        E: std::error::Error,
    {
        // A vote request keeps knocking while the peer is not listening yet: voters started
        // together come up a few milliseconds apart, and a vote lost to that costs a whole
        // election timeout. Other RPCs report the peer unreachable at once (openraft backs off).
        let wait_for_listener = matches!(rpc, Rpc::Vote(_));
        let result = tokio::time::timeout(timeout, async {
            if self.conn.is_none() {
                let s = loop {
                    match TcpStream::connect(&self.addr).await {
                        Err(e)
                            if wait_for_listener
                                && e.kind() == std::io::ErrorKind::ConnectionRefused =>
                        {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        other => break other?,
                    }
                };
                let _ = s.set_nodelay(true);
                self.conn = Some(s);
            }
            let Some(s) = self.conn.as_mut() else {
                return Err(std::io::Error::other("no connection"));
            };
            write_frame(s, &rpc).await?;
            read_frame::<RpcReply>(s).await
        })
        .await;
        match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.conn = None;
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    Err(RPCError::Unreachable(Unreachable::new(&e)))
                } else {
                    Err(RPCError::Network(NetworkError::new(&e)))
                }
            }
            Err(_) => {
                self.conn = None;
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<Nid, BasicNode, E> {
    let e = std::io::Error::other("unexpected reply type from controller");
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<Nid>, RPCError<Nid, BasicNode, RaftError<Nid>>> {
        match self
            .send(Rpc::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            RpcReply::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<Nid>,
        RPCError<Nid, BasicNode, RaftError<Nid, InstallSnapshotError>>,
    > {
        match self
            .send(Rpc::InstallSnapshot(rpc), option.hard_ttl())
            .await?
        {
            RpcReply::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Nid>,
        option: RPCOption,
    ) -> Result<VoteResponse<Nid>, RPCError<Nid, BasicNode, RaftError<Nid>>> {
        match self.send(Rpc::Vote(rpc), option.hard_ttl()).await? {
            RpcReply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }
}
