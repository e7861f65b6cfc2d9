//! `strom cluster describe`: the cluster id, the active controller, every broker (fenced or
//! not) and the metadata quorum's voters with their lag, like kafka-cluster.sh and
//! kafka-metadata-quorum.sh describe --status/--replication. `strom cluster add-voter` and
//! `remove-voter` change the voters (AddRaftVoter / RemoveRaftVoter, like
//! kafka-metadata-quorum.sh add-controller / remove-controller).

use crate::common::ConnectArgs;
use crate::wire::WireClient;
use anyhow::bail;
use clap::Subcommand;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use kafka_protocol::messages::describe_quorum_request::{
    DescribeQuorumRequest, PartitionData, TopicData,
};
use kafka_protocol::messages::describe_quorum_response::DescribeQuorumResponse;
use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::io::Write;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Show the cluster id, the active controller, the brokers and the metadata quorum.
    Describe {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Make a running controller (started with process.roles=controller and
    /// controller.quorum.bootstrap.servers only) a voter of the metadata quorum.
    AddVoter {
        /// The new voter's node.id.
        #[arg(long = "node-id")]
        node_id: i32,
        /// The new voter's CONTROLLER listener, HOST:PORT.
        #[arg(long = "controller", value_name = "HOST:PORT")]
        controller: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Take a voter out of the metadata quorum (stop that controller afterwards).
    RemoveVoter {
        /// The voter's node.id.
        #[arg(long = "node-id")]
        node_id: i32,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

pub fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Describe { connect } => describe(&connect),
        ClusterCommand::AddVoter {
            node_id,
            controller,
            connect,
        } => add_voter(&connect, node_id, &controller),
        ClusterCommand::RemoveVoter { node_id, connect } => remove_voter(&connect, node_id),
    }
}

fn add_voter(connect: &ConnectArgs, node_id: i32, controller: &str) -> anyhow::Result<()> {
    use kafka_protocol::messages::add_raft_voter_request::{AddRaftVoterRequest, Listener};
    use kafka_protocol::messages::add_raft_voter_response::AddRaftVoterResponse;
    let Some((host, port)) = controller.rsplit_once(':') else {
        bail!("--controller expects HOST:PORT, got '{controller}'");
    };
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--controller: '{port}' is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let req = AddRaftVoterRequest::default()
        .with_cluster_id(None)
        .with_timeout_ms(30_000)
        .with_voter_id(node_id)
        .with_listeners(vec![
            Listener::default()
                .with_name(StrBytes::from_static_str("CONTROLLER"))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port),
        ]);
    let mut c = WireClient::connect(&connect.bootstrap_server)?;
    let resp: AddRaftVoterResponse = c.send(ApiKey::AddRaftVoter, 0, &req)?;
    if resp.error_code != 0 {
        bail!(
            "AddRaftVoter failed with error code {}: {}",
            resp.error_code,
            resp.error_message.as_deref().unwrap_or("")
        );
    }
    println!("Added voter {node_id} ({controller}) to the metadata quorum.");
    Ok(())
}

fn remove_voter(connect: &ConnectArgs, node_id: i32) -> anyhow::Result<()> {
    use kafka_protocol::messages::remove_raft_voter_request::RemoveRaftVoterRequest;
    use kafka_protocol::messages::remove_raft_voter_response::RemoveRaftVoterResponse;
    let req = RemoveRaftVoterRequest::default()
        .with_cluster_id(None)
        .with_voter_id(node_id);
    let mut c = WireClient::connect(&connect.bootstrap_server)?;
    let resp: RemoveRaftVoterResponse = c.send(ApiKey::RemoveRaftVoter, 0, &req)?;
    if resp.error_code != 0 {
        bail!(
            "RemoveRaftVoter failed with error code {}: {}",
            resp.error_code,
            resp.error_message.as_deref().unwrap_or("")
        );
    }
    println!("Removed voter {node_id} from the metadata quorum.");
    Ok(())
}

fn describe(connect: &ConnectArgs) -> anyhow::Result<()> {
    let mut c = WireClient::connect(&connect.bootstrap_server)?;
    let mut req = DescribeClusterRequest::default();
    req.endpoint_type = 1;
    let cluster: DescribeClusterResponse = c.send(ApiKey::DescribeCluster, 2, &req)?;
    if cluster.error_code != 0 {
        bail!(
            "DescribeCluster failed with error code {}: {}",
            cluster.error_code,
            cluster.error_message.as_deref().unwrap_or("")
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ClusterId: {}", cluster.cluster_id.as_str())?;
    writeln!(out, "Controller: {}", cluster.controller_id.0)?;
    writeln!(out, "Brokers:")?;
    let mut brokers: Vec<_> = cluster.brokers.iter().collect();
    brokers.sort_by_key(|b| b.broker_id.0);
    for b in &brokers {
        writeln!(
            out,
            "\tId: {}\tEndpoint: {}:{}\tRack: {}\tFenced: {}",
            b.broker_id.0,
            b.host.as_str(),
            b.port,
            b.rack.as_deref().unwrap_or("-"),
            b.is_fenced
        )?;
    }
    // The lag of each voter is known to the active controller: ask it when it is a broker
    // we can reach, else the bootstrap node.
    let controller = brokers
        .iter()
        .find(|b| b.broker_id.0 == cluster.controller_id.0)
        .map(|b| format!("{}:{}", b.host.as_str(), b.port));
    let mut qc = match controller.as_deref().map(WireClient::connect) {
        Some(Ok(q)) => q,
        _ => c,
    };
    let req = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let quorum: DescribeQuorumResponse = match qc.send(ApiKey::DescribeQuorum, 2, &req) {
        Ok(q) => q,
        Err(e) => {
            writeln!(out, "Quorum: unavailable ({e:#})")?;
            return Ok(());
        }
    };
    let Some(p) = quorum.topics.first().and_then(|t| t.partitions.first()) else {
        writeln!(out, "Quorum: no answer")?;
        return Ok(());
    };
    writeln!(
        out,
        "Quorum:\tLeader: {}\tEpoch: {}\tHighWatermark: {}",
        p.leader_id.0, p.leader_epoch, p.high_watermark
    )?;
    for v in &p.current_voters {
        let lag = if v.log_end_offset < 0 {
            "unknown".to_string()
        } else {
            (p.high_watermark - v.log_end_offset).max(0).to_string()
        };
        writeln!(
            out,
            "\tVoter: {}\tLogEndOffset: {}\tLag: {lag}",
            v.replica_id.0, v.log_end_offset
        )?;
    }
    Ok(())
}
