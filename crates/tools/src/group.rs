//! `strom group`, like kafka-consumer-groups.sh: list groups, describe a group's offsets, lag,
//! members and state, reset its offsets, delete it.

use crate::common::ConnectArgs;
use crate::wire::WireClient;
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::consumer_group_describe_response::ConsumerGroupDescribeResponse;
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::DeleteGroupsResponse;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::{DescribeGroupsResponse, DescribedGroup};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::ListGroupsResponse;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::list_offsets_response::ListOffsetsResponse;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, GroupId, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::collections::BTreeMap;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List the consumer groups.
    List(ListArgs),
    /// Per partition: current offset, log end offset, lag, and the member that owns it.
    Describe(DescribeArgs),
    /// Reset a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
    /// Delete groups with no active members, and their offsets.
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Also print each group's state.
    #[arg(long)]
    state: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The group to describe (also accepted as --group).
    #[arg(value_name = "GROUP", required_unless_present = "group_flag")]
    group: Option<String>,
    #[arg(long = "group", hide = true)]
    group_flag: Option<String>,
    /// Print the members (consumer id, host, client id, partition count) instead of offsets.
    #[arg(long, conflicts_with = "state")]
    members: bool,
    /// Print the group's coordinator, assignment strategy, state and member count.
    #[arg(long)]
    state: bool,
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[arg(value_name = "GROUP", required_unless_present = "group_flag")]
    group: Option<String>,
    #[arg(long = "group", hide = true)]
    group_flag: Option<String>,
    /// TOPIC or TOPIC:PARTITION[,PARTITION...]; repeatable.
    #[arg(long, required = true)]
    topic: Vec<String>,
    #[arg(long = "to-earliest", group = "target")]
    to_earliest: bool,
    #[arg(long = "to-latest", group = "target")]
    to_latest: bool,
    /// An ISO-8601 time (YYYY-MM-DDTHH:mm:SS[.sss], UTC) or milliseconds since the epoch.
    #[arg(long = "to-datetime", group = "target")]
    to_datetime: Option<String>,
    #[arg(long = "to-offset", group = "target")]
    to_offset: Option<i64>,
    #[arg(long = "shift-by", group = "target", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Show the new offsets without committing them (the default).
    #[arg(long = "dry-run", conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[arg(value_name = "GROUP", required_unless_present = "group_flag")]
    group: Vec<String>,
    #[arg(long = "group", hide = true)]
    group_flag: Option<String>,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn pick(positional: Option<String>, flag: Option<String>) -> anyhow::Result<String> {
    positional.or(flag).context("a GROUP is required")
}

pub fn run(cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::List(a) => list(a),
        GroupCommand::Describe(a) => describe(a),
        GroupCommand::ResetOffsets(a) => reset(a),
        GroupCommand::Delete(a) => delete(a),
    }
}

fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    let resp: ListGroupsResponse = c.send(ApiKey::ListGroups, 4, &ListGroupsRequest::default())?;
    if resp.error_code != 0 {
        bail!("ListGroups failed with error code {}", resp.error_code);
    }
    let mut groups: Vec<_> = resp.groups.into_iter().collect();
    groups.sort_by(|x, y| x.group_id.0.cmp(&y.group_id.0));
    if a.state {
        println!("GROUP\tSTATE");
    }
    for g in groups {
        if a.state {
            println!("{}\t{}", g.group_id.0.as_str(), g.group_state.as_str());
        } else {
            println!("{}", g.group_id.0.as_str());
        }
    }
    Ok(())
}

fn describe_group(c: &mut WireClient, group: &str) -> anyhow::Result<DescribedGroup> {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let resp: DescribeGroupsResponse = c.send(ApiKey::DescribeGroups, 5, &req)?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .context("empty DescribeGroups response")?;
    if g.error_code != 0 && g.error_code != 69 {
        bail!(
            "describing group {group} failed with error code {}",
            g.error_code
        );
    }
    Ok(g)
}

/// (topic, partition) -> committed offset of `group`.
fn committed(c: &mut WireClient, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(None);
    let resp: OffsetFetchResponse = c.send(ApiKey::OffsetFetch, 7, &req)?;
    if resp.error_code != 0 {
        bail!(
            "fetching the offsets of group {group} failed with error code {}",
            resp.error_code
        );
    }
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// ListOffsets for many partitions at once: (topic, partition) -> offset.
fn list_offsets(
    c: &mut WireClient,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp: ListOffsetsResponse = c.send(ApiKey::ListOffsets, 7, &req)?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "ListOffsets for {}-{} failed with error code {}",
                    t.name.0.as_str(),
                    p.partition_index,
                    p.error_code
                );
            }
            out.insert((t.name.0.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}

/// A group as `describe` shows it, whichever protocol it uses.
struct GroupView {
    state: String,
    /// The classic group's protocol (range, cooperative-sticky, ...) or the consumer group's
    /// server assignor (uniform, range).
    strategy: String,
    /// (member id, host, client id)
    members: Vec<(String, String, String)>,
    /// (topic, partition) -> (member id, host, client id) of its owner.
    owners: BTreeMap<(String, i32), (String, String, String)>,
}

/// Which member owns which partition, from a classic group's members' assignments.
fn owners(g: &DescribedGroup) -> BTreeMap<(String, i32), (String, String, String)> {
    let mut out = BTreeMap::new();
    for m in &g.members {
        let mut bytes: Bytes = m.member_assignment.clone();
        if bytes.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        bytes::Buf::advance(&mut bytes, 2);
        let Ok(a) = ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3)) else {
            continue;
        };
        for tp in a.assigned_partitions {
            for p in tp.partitions {
                out.insert(
                    (tp.topic.0.to_string(), p),
                    (
                        m.member_id.to_string(),
                        m.client_host.to_string(),
                        m.client_id.to_string(),
                    ),
                );
            }
        }
    }
    out
}

/// A consumer group of the KIP-848 protocol, through ConsumerGroupDescribe; `None` when the
/// broker does not have that API or the group is not such a group (then it is a classic one,
/// or unknown, and DescribeGroups says which).
fn describe_consumer_group(c: &mut WireClient, group: &str) -> anyhow::Result<Option<GroupView>> {
    if c.version(ApiKey::ConsumerGroupDescribe, 1).is_err() {
        return Ok(None);
    }
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    let resp: ConsumerGroupDescribeResponse = c.send(ApiKey::ConsumerGroupDescribe, 1, &req)?;
    let Some(g) = resp.groups.into_iter().next() else {
        return Ok(None);
    };
    if g.error_code != 0 {
        return Ok(None);
    }
    let mut owners = BTreeMap::new();
    let mut members = Vec::new();
    for m in &g.members {
        let who = (
            m.member_id.to_string(),
            m.client_host.to_string(),
            m.client_id.to_string(),
        );
        for tp in &m.assignment.topic_partitions {
            for p in &tp.partitions {
                owners.insert((tp.topic_name.0.to_string(), *p), who.clone());
            }
        }
        members.push(who);
    }
    Ok(Some(GroupView {
        state: g.group_state.to_string(),
        strategy: g.assignor_name.to_string(),
        members,
        owners,
    }))
}

fn group_view(c: &mut WireClient, group: &str) -> anyhow::Result<GroupView> {
    if let Some(v) = describe_consumer_group(c, group)? {
        return Ok(v);
    }
    let g = describe_group(c, group)?;
    Ok(GroupView {
        state: g.group_state.to_string(),
        strategy: g.protocol_data.to_string(),
        members: g
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.client_host.to_string(),
                    m.client_id.to_string(),
                )
            })
            .collect(),
        owners: owners(&g),
    })
}

fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let group = pick(a.group, a.group_flag)?;
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    let g = group_view(&mut c, &group)?;
    if a.state {
        println!("GROUP\tCOORDINATOR (ID)\tASSIGNMENT-STRATEGY\tSTATE\t#MEMBERS");
        println!(
            "{}\t{} ({})\t{}\t{}\t{}",
            group,
            a.connect.bootstrap_server,
            1,
            g.strategy,
            g.state,
            g.members.len()
        );
        return Ok(());
    }
    let owners = &g.owners;
    if a.members {
        println!("GROUP\tCONSUMER-ID\tHOST\tCLIENT-ID\t#PARTITIONS");
        for (member_id, host, client_id) in &g.members {
            let n = owners.values().filter(|o| &o.0 == member_id).count();
            println!("{group}\t{member_id}\t{host}\t{client_id}\t{n}");
        }
        return Ok(());
    }
    let committed = committed(&mut c, &group)?;
    let mut partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
    for k in owners.keys() {
        if !partitions.contains(k) {
            partitions.push(k.clone());
        }
    }
    partitions.sort();
    if partitions.is_empty() {
        eprintln!("Consumer group '{group}' has no active members and no committed offsets.");
        return Ok(());
    }
    let ends = list_offsets(&mut c, &partitions, -1)?;
    println!(
        "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID"
    );
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = ends.get(tp).copied().unwrap_or(-1);
        let lag = current.map(|cur| (end - cur).max(0));
        let (member, host, client) = owners
            .get(tp)
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            group,
            tp.0,
            tp.1,
            current.map_or("-".into(), |v| v.to_string()),
            end,
            lag.map_or("-".into(), |v| v.to_string()),
            member,
            host,
            client
        );
    }
    Ok(())
}

/// Milliseconds since the epoch from `--to-datetime` (UTC ISO-8601 or plain milliseconds).
fn parse_datetime(v: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    let bad =
        || anyhow::anyhow!("--to-datetime: '{v}' is not YYYY-MM-DDTHH:mm:SS[.sss] or milliseconds");
    let (date, time) = v.trim_end_matches('Z').split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let millis: i64 = format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + millis)
}

fn reset(a: ResetArgs) -> anyhow::Result<()> {
    let group = pick(a.group.clone(), a.group_flag.clone())?;
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    if let Some(cg) = describe_consumer_group(&mut c, &group)?
        && cg.state != "Empty"
    {
        bail!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.",
            cg.state
        );
    }
    let g = describe_group(&mut c, &group)?;
    let state = g.group_state.as_str();
    if !(state == "Empty" || state == "Dead" || g.error_code == 69) {
        bail!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
        );
    }
    // The partitions named by --topic, all of a topic's when none are given.
    let mut partitions = Vec::new();
    for spec in &a.topic {
        let (topic, parts) = match spec.split_once(':') {
            Some((t, ps)) => (t, Some(ps)),
            None => (spec.as_str(), None),
        };
        match parts {
            Some(ps) => {
                for p in ps.split(',') {
                    let p: i32 = p.trim().parse().with_context(|| {
                        format!("--topic {spec}: '{p}' is not a partition number")
                    })?;
                    partitions.push((topic.to_string(), p));
                }
            }
            None => {
                let req = MetadataRequest::default()
                    .with_topics(Some(vec![
                        MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
                    ]))
                    .with_allow_auto_topic_creation(false);
                let md: MetadataResponse = c.send(ApiKey::Metadata, 9, &req)?;
                let t = md
                    .topics
                    .into_iter()
                    .next()
                    .context("empty Metadata response")?;
                if t.error_code != 0 {
                    bail!(
                        "--topic {topic}: the topic does not exist (error code {})",
                        t.error_code
                    );
                }
                partitions.extend(
                    t.partitions
                        .iter()
                        .map(|p| (topic.to_string(), p.partition_index)),
                );
            }
        }
    }
    partitions.sort();
    let earliest = list_offsets(&mut c, &partitions, -2)?;
    let latest = list_offsets(&mut c, &partitions, -1)?;
    let current = committed(&mut c, &group)?;
    let by_time = match &a.to_datetime {
        Some(v) => Some(list_offsets(&mut c, &partitions, parse_datetime(v)?)?),
        None => None,
    };
    let mut plan = Vec::new();
    for tp in &partitions {
        let lo = earliest.get(tp).copied().unwrap_or(0);
        let hi = latest.get(tp).copied().unwrap_or(0);
        let target = if a.to_earliest {
            lo
        } else if a.to_latest {
            hi
        } else if let Some(o) = a.to_offset {
            o
        } else if let Some(shift) = a.shift_by {
            current.get(tp).copied().unwrap_or(lo) + shift
        } else if let Some(times) = &by_time {
            // No record at or after that time: the end, as Kafka does.
            times.get(tp).copied().filter(|o| *o >= 0).unwrap_or(hi)
        } else {
            bail!(
                "say where to reset to: --to-earliest, --to-latest, --to-datetime, --to-offset or --shift-by"
            );
        };
        plan.push((tp.clone(), target.clamp(lo, hi)));
    }
    println!("GROUP\tTOPIC\tPARTITION\tNEW-OFFSET");
    for ((t, p), o) in &plan {
        println!("{group}\t{t}\t{p}\t{o}");
    }
    if !a.execute {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in &plan {
        by_topic.entry(t.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s(""))),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp: OffsetCommitResponse = c.send(ApiKey::OffsetCommit, 8, &req)?;
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "committing {}-{} failed with error code {}",
                    t.name.0.as_str(),
                    p.partition_index,
                    p.error_code
                );
            }
        }
    }
    Ok(())
}

fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    let mut groups = a.group.clone();
    groups.extend(a.group_flag.clone());
    let mut c = WireClient::connect(&a.connect.bootstrap_server)?;
    let req = DeleteGroupsRequest::default()
        .with_groups_names(groups.iter().map(|g| GroupId(s(g))).collect());
    let resp: DeleteGroupsResponse = c.send(ApiKey::DeleteGroups, 2, &req)?;
    let mut failed = false;
    for r in resp.results {
        match r.error_code {
            0 => println!(
                "Deletion of requested consumer group '{}' was successful.",
                r.group_id.0.as_str()
            ),
            68 => {
                failed = true;
                eprintln!(
                    "Deletion of consumer group '{}' failed: the group is not empty.",
                    r.group_id.0.as_str()
                );
            }
            69 => {
                failed = true;
                eprintln!(
                    "Deletion of consumer group '{}' failed: the group does not exist.",
                    r.group_id.0.as_str()
                );
            }
            code => {
                failed = true;
                eprintln!(
                    "Deletion of consumer group '{}' failed with error code {code}.",
                    r.group_id.0.as_str()
                );
            }
        }
    }
    if failed {
        bail!("some groups were not deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("0").expect("ms"), 0);
        assert_eq!(parse_datetime("1970-01-01T00:00:00").expect("epoch"), 0);
        assert_eq!(
            parse_datetime("2023-11-14T22:13:20.123").expect("iso"),
            1_700_000_000_123
        );
        assert!(parse_datetime("yesterday").is_err());
    }
}
