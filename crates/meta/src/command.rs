//! Metadata commands: the records of the metadata log and how each one changes the image.
//!
//! Applying a command is deterministic (ids and choices are made by the proposer and carried in
//! the command), so every node that applies the same log holds the same image. Both stores use
//! it: the single-node file store applies a command directly, the Raft quorum applies it once it
//! is committed.
//!
//! Must not touch: files, sockets, clocks or randomness.

use crate::image::{BrokerMeta, MetadataImage, PartitionMeta, TopicMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum MetadataCommand {
    /// The first cluster id proposed wins; later ones are ignored.
    SetClusterId {
        cluster_id: String,
    },
    CreateTopic {
        name: String,
        id: Uuid,
        placement: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    AddPartitions {
        name: String,
        placement: Vec<Vec<i32>>,
    },
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    SetBrokerConfigs {
        resource: String,
        configs: BTreeMap<String, String>,
    },
    AllocateProducerIds {
        size: i64,
    },
    /// A broker (re)starts: its endpoints and rack; it is unfenced and takes back leadership of
    /// partitions left without a leader whose ISR it is in.
    RegisterBroker {
        broker: BrokerMeta,
    },
    /// A broker missed its heartbeats (or shut down): out of every ISR, its partitions get new
    /// leaders from the ISR; `unclean_default` is the controller's unclean.leader.election.enable,
    /// used where the topic does not override it.
    FenceBroker {
        node_id: i32,
        unclean_default: bool,
    },
    /// A fenced broker heartbeats again with the same incarnation.
    UnfenceBroker {
        node_id: i32,
    },
    /// Kafka's AlterPartition: the leader shrinks or expands the ISR.
    AlterPartition {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
    /// Move leadership back to the first replica where it is live and in the ISR; `None` = all.
    ElectPreferred {
        partitions: Option<Vec<(String, i32)>>,
    },
    /// AlterPartitionReassignments: start moving a partition to `target` replicas (added ones
    /// join first and catch up), or cancel the ongoing move (`None`).
    ReassignPartition {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// Every added replica is in the ISR: drop the removed ones (the controller proposes it).
    CompleteReassignment {
        topic: String,
        partition: i32,
    },
}

/// What a command returns to its proposer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum CommandResult {
    Done,
    Topic(TopicMeta),
    ProducerIdBlock(i64),
    Partition(PartitionMeta),
    /// Partitions whose leader changed.
    Elected(Vec<(String, i32)>),
}

/// Why a command was refused; carried back to the proposer across nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("This server does not host this topic: {0}")]
    UnknownTopic(String),
    #[error("Partition {1} of topic '{0}' does not exist.")]
    UnknownPartition(String, i32),
    #[error(
        "Topic currently has {current} partitions, which is higher than the requested {requested}."
    )]
    PartitionsDecrease { current: i32, requested: i32 },
    #[error("{0}")]
    FencedLeaderEpoch(String),
    #[error("{0}")]
    InvalidUpdateVersion(String),
    #[error("{0}")]
    IneligibleReplica(String),
    #[error("Broker {0} is not registered.")]
    UnknownBroker(i32),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("No reassignment is in progress for partition {0}-{1}.")]
    NoReassignmentInProgress(String, i32),
}

pub type CommandOutcome = Result<CommandResult, CommandError>;

/// Apply `cmd` to `image`. On error the image is unchanged.
pub fn apply(image: &mut MetadataImage, cmd: &MetadataCommand) -> CommandOutcome {
    let out = apply_inner(image, cmd)?;
    image.epoch += 1;
    Ok(out)
}

fn apply_inner(image: &mut MetadataImage, cmd: &MetadataCommand) -> CommandOutcome {
    use MetadataCommand as C;
    match cmd {
        C::SetClusterId { cluster_id } => {
            if image.cluster_id.is_empty() {
                image.cluster_id = cluster_id.clone();
            }
            Ok(CommandResult::Done)
        }
        C::CreateTopic {
            name,
            id,
            placement,
            configs,
        } => {
            if image.topics.contains_key(name) {
                return Err(CommandError::TopicExists(name.clone()));
            }
            let topic = TopicMeta {
                name: name.clone(),
                id: *id,
                partitions: partitions_from(0, placement.clone()),
                configs: configs.clone(),
            };
            image.topics.insert(name.clone(), topic.clone());
            Ok(CommandResult::Topic(topic))
        }
        C::DeleteTopic { name } => image
            .topics
            .remove(name)
            .map(CommandResult::Topic)
            .ok_or_else(|| CommandError::UnknownTopic(name.clone())),
        C::AddPartitions { name, placement } => {
            let topic = image
                .topics
                .get_mut(name)
                .ok_or_else(|| CommandError::UnknownTopic(name.clone()))?;
            let first = topic.partitions.len() as i32;
            topic
                .partitions
                .extend(partitions_from(first, placement.clone()));
            Ok(CommandResult::Topic(topic.clone()))
        }
        C::SetTopicConfigs { name, configs } => {
            let topic = image
                .topics
                .get_mut(name)
                .ok_or_else(|| CommandError::UnknownTopic(name.clone()))?;
            topic.configs = configs.clone();
            Ok(CommandResult::Topic(topic.clone()))
        }
        C::SetBrokerConfigs { resource, configs } => {
            if configs.is_empty() {
                image.broker_configs.remove(resource);
            } else {
                image
                    .broker_configs
                    .insert(resource.clone(), configs.clone());
            }
            Ok(CommandResult::Done)
        }
        C::AllocateProducerIds { size } => {
            let first = image.next_producer_id_block;
            image.next_producer_id_block = first + size;
            Ok(CommandResult::ProducerIdBlock(first))
        }
        C::RegisterBroker { broker } => {
            let mut b = broker.clone();
            b.fenced = false;
            image.brokers.insert(b.node_id, b);
            Ok(CommandResult::Elected(take_leaderless(
                image,
                broker.node_id,
            )))
        }
        C::UnfenceBroker { node_id } => {
            let b = image
                .brokers
                .get_mut(node_id)
                .ok_or(CommandError::UnknownBroker(*node_id))?;
            b.fenced = false;
            Ok(CommandResult::Elected(take_leaderless(image, *node_id)))
        }
        C::FenceBroker {
            node_id,
            unclean_default,
        } => {
            let b = image
                .brokers
                .get_mut(node_id)
                .ok_or(CommandError::UnknownBroker(*node_id))?;
            b.fenced = true;
            Ok(CommandResult::Elected(fence(
                image,
                *node_id,
                *unclean_default,
            )))
        }
        C::AlterPartition {
            topic,
            partition,
            leader,
            leader_epoch,
            partition_epoch,
            new_isr,
        } => {
            let live: Vec<i32> = image.live_brokers().map(|b| b.node_id).collect();
            let single_node = image.brokers.is_empty();
            let p = image
                .topics
                .get_mut(topic)
                .ok_or_else(|| CommandError::UnknownTopic(topic.clone()))?
                .partitions
                .get_mut(*partition as usize)
                .ok_or_else(|| CommandError::UnknownPartition(topic.clone(), *partition))?;
            if p.leader != *leader || p.leader_epoch != *leader_epoch {
                return Err(CommandError::FencedLeaderEpoch(format!(
                    "{topic}-{partition}: leader {leader} epoch {leader_epoch} is not the current leader {} epoch {}",
                    p.leader, p.leader_epoch
                )));
            }
            if p.partition_epoch != *partition_epoch {
                return Err(CommandError::InvalidUpdateVersion(format!(
                    "{topic}-{partition}: partition epoch {partition_epoch} is stale (current {})",
                    p.partition_epoch
                )));
            }
            if !new_isr.contains(leader) {
                return Err(CommandError::InvalidUpdateVersion(format!(
                    "{topic}-{partition}: the new ISR {new_isr:?} must contain the leader {leader}"
                )));
            }
            for r in new_isr {
                if !p.replicas.contains(r) {
                    return Err(CommandError::IneligibleReplica(format!(
                        "{topic}-{partition}: {r} is not a replica"
                    )));
                }
                if !single_node && !p.isr.contains(r) && !live.contains(r) {
                    return Err(CommandError::IneligibleReplica(format!(
                        "{topic}-{partition}: broker {r} is fenced and cannot join the ISR"
                    )));
                }
            }
            let mut isr = new_isr.clone();
            isr.dedup();
            p.isr = isr;
            p.partition_epoch += 1;
            Ok(CommandResult::Partition(p.clone()))
        }
        C::ElectPreferred { partitions } => {
            let live: Vec<i32> = image.live_brokers().map(|b| b.node_id).collect();
            let mut elected = Vec::new();
            for t in image.topics.values_mut() {
                for p in &mut t.partitions {
                    if let Some(wanted) = partitions
                        && !wanted
                            .iter()
                            .any(|(n, i)| n == &t.name && *i == p.partition)
                    {
                        continue;
                    }
                    let Some(&preferred) = p.replicas.first() else {
                        continue;
                    };
                    if p.leader != preferred
                        && p.isr.contains(&preferred)
                        && live.contains(&preferred)
                    {
                        set_leader(p, preferred);
                        elected.push((t.name.clone(), p.partition));
                    }
                }
            }
            Ok(CommandResult::Elected(elected))
        }
        C::ReassignPartition {
            topic,
            partition,
            target,
        } => reassign(image, topic, *partition, target),
        C::CompleteReassignment { topic, partition } => {
            let live: Vec<i32> = image.live_brokers().map(|b| b.node_id).collect();
            let p = partition_mut(image, topic, *partition)?;
            if p.adding_replicas.is_empty() && p.removing_replicas.is_empty() {
                return Err(CommandError::NoReassignmentInProgress(
                    topic.clone(),
                    *partition,
                ));
            }
            complete(p, &live);
            Ok(CommandResult::Partition(p.clone()))
        }
    }
}

fn partition_mut<'a>(
    image: &'a mut MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<&'a mut PartitionMeta, CommandError> {
    image
        .topics
        .get_mut(topic)
        .ok_or_else(|| CommandError::UnknownTopic(topic.to_string()))?
        .partitions
        .get_mut(partition as usize)
        .ok_or_else(|| CommandError::UnknownPartition(topic.to_string(), partition))
}

fn reassign(
    image: &mut MetadataImage,
    topic: &str,
    partition: i32,
    target: &Option<Vec<i32>>,
) -> CommandOutcome {
    let live: Vec<i32> = image.live_brokers().map(|b| b.node_id).collect();
    let registered: Vec<i32> = image.brokers.keys().copied().collect();
    let p = partition_mut(image, topic, partition)?;
    let ongoing = !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty();
    // Back to the replicas before any ongoing move.
    let original: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect();
    let Some(target) = target else {
        if !ongoing {
            return Err(CommandError::NoReassignmentInProgress(
                topic.to_string(),
                partition,
            ));
        }
        let adding = std::mem::take(&mut p.adding_replicas);
        p.removing_replicas.clear();
        p.replicas = original;
        p.isr.retain(|r| !adding.contains(r));
        if adding.contains(&p.leader) {
            let l = first_eligible(p, &live);
            set_leader(p, l);
        } else {
            p.partition_epoch += 1;
        }
        return Ok(CommandResult::Partition(p.clone()));
    };
    let mut seen = target.clone();
    seen.sort_unstable();
    seen.dedup();
    if target.is_empty() || seen.len() != target.len() {
        return Err(CommandError::InvalidReplicaAssignment(format!(
            "The proposed replica assignment {target:?} is empty or names a broker twice."
        )));
    }
    if let Some(b) = target.iter().find(|b| !registered.contains(b)) {
        return Err(CommandError::InvalidReplicaAssignment(format!(
            "The proposed replica assignment {target:?} names broker {b}, which is not registered."
        )));
    }
    p.adding_replicas = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    p.removing_replicas = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut replicas = target.clone();
    replicas.extend(p.removing_replicas.iter().copied());
    p.replicas = replicas;
    p.isr.retain(|r| p.replicas.contains(r));
    p.partition_epoch += 1;
    if p.adding_replicas.is_empty() {
        complete(p, &live);
    }
    Ok(CommandResult::Partition(p.clone()))
}

/// Drop the removed replicas once every added one is in the ISR (no-op before that).
fn complete(p: &mut PartitionMeta, live: &[i32]) -> bool {
    if !p.adding_replicas.iter().all(|r| p.isr.contains(r)) {
        return false;
    }
    let removing = std::mem::take(&mut p.removing_replicas);
    p.adding_replicas.clear();
    p.replicas.retain(|r| !removing.contains(r));
    let isr_before = p.isr.clone();
    p.isr.retain(|r| !removing.contains(r));
    if p.isr.is_empty() {
        p.isr = isr_before;
    }
    if removing.contains(&p.leader) || p.leader < 0 {
        let l = first_eligible(p, live);
        set_leader(p, l);
    } else {
        p.partition_epoch += 1;
    }
    true
}

/// The first replica that is in the ISR and live (-1 if none).
fn first_eligible(p: &PartitionMeta, live: &[i32]) -> i32 {
    p.replicas
        .iter()
        .copied()
        .find(|r| p.isr.contains(r) && (live.is_empty() || live.contains(r)))
        .unwrap_or(-1)
}

fn set_leader(p: &mut PartitionMeta, leader: i32) {
    if p.leader != leader {
        p.leader = leader;
        p.leader_epoch += 1;
    }
    p.partition_epoch += 1;
}

/// Fence `node`: out of every ISR it shares with others; new leaders where it led.
fn fence(image: &mut MetadataImage, node: i32, unclean_default: bool) -> Vec<(String, i32)> {
    let live: Vec<i32> = image.live_brokers().map(|b| b.node_id).collect();
    let mut elected = Vec::new();
    for t in image.topics.values_mut() {
        let unclean = t
            .configs
            .get("unclean.leader.election.enable")
            .map(|v| v == "true")
            .unwrap_or(unclean_default);
        for p in &mut t.partitions {
            if !p.replicas.contains(&node) {
                continue;
            }
            let mut changed = false;
            // The last ISR member stays in the ISR (as Kafka keeps it): it is the only replica
            // known to have every committed record, so a clean election can wait for it.
            if p.isr.contains(&node) && p.isr.len() > 1 {
                p.isr.retain(|r| *r != node);
                changed = true;
            }
            if p.leader == node {
                let clean = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| *r != node && p.isr.contains(r) && live.contains(r));
                let new_leader = match clean {
                    Some(l) => l,
                    None if unclean => {
                        match p.replicas.iter().copied().find(|r| live.contains(r)) {
                            Some(l) => {
                                p.isr = vec![l];
                                l
                            }
                            None => -1,
                        }
                    }
                    None => -1,
                };
                p.leader = new_leader;
                p.leader_epoch += 1;
                changed = true;
                elected.push((t.name.clone(), p.partition));
            }
            if changed {
                p.partition_epoch += 1;
            }
        }
    }
    elected
}

/// `node` is back: partitions without a leader whose ISR holds it get it as leader.
fn take_leaderless(image: &mut MetadataImage, node: i32) -> Vec<(String, i32)> {
    let mut elected = Vec::new();
    for t in image.topics.values_mut() {
        for p in &mut t.partitions {
            if p.leader == -1 && p.isr.contains(&node) {
                set_leader(p, node);
                elected.push((t.name.clone(), p.partition));
            }
        }
    }
    elected
}

fn partitions_from(first: i32, placement: Vec<Vec<i32>>) -> Vec<PartitionMeta> {
    placement
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| PartitionMeta {
            partition: first + i as i32,
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            isr: replicas.clone(),
            replicas,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerEndpoint;

    fn broker(id: i32) -> BrokerMeta {
        BrokerMeta {
            node_id: id,
            incarnation_id: Uuid::new_v4(),
            listeners: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "h".into(),
                port: 9092,
            }],
            rack: None,
            fenced: false,
        }
    }

    fn three_brokers_one_topic() -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 1..=3 {
            apply(
                &mut img,
                &MetadataCommand::RegisterBroker { broker: broker(id) },
            )
            .unwrap();
        }
        apply(
            &mut img,
            &MetadataCommand::CreateTopic {
                name: "t".into(),
                id: Uuid::new_v4(),
                placement: vec![vec![1, 2, 3], vec![2, 3, 1]],
                configs: BTreeMap::new(),
            },
        )
        .unwrap();
        img
    }

    #[test]
    fn fencing_the_leader_elects_from_the_isr_with_a_new_epoch() {
        let mut img = three_brokers_one_topic();
        let out = apply(
            &mut img,
            &MetadataCommand::FenceBroker {
                node_id: 1,
                unclean_default: false,
            },
        )
        .unwrap();
        assert_eq!(out, CommandResult::Elected(vec![("t".into(), 0)]));
        let p0 = &img.topic("t").unwrap().partitions[0];
        assert_eq!((p0.leader, p0.leader_epoch), (2, 1));
        assert_eq!(p0.isr, vec![2, 3]);
        let p1 = &img.topic("t").unwrap().partitions[1];
        assert_eq!(
            (p1.leader, p1.leader_epoch, p1.isr.clone()),
            (2, 0, vec![2, 3])
        );
        // Back with the same incarnation: unfenced, the preferred leader can take over again
        // once it is in the ISR again.
        apply(&mut img, &MetadataCommand::UnfenceBroker { node_id: 1 }).unwrap();
        let p0 = img.topic("t").unwrap().partitions[0].clone();
        apply(
            &mut img,
            &MetadataCommand::AlterPartition {
                topic: "t".into(),
                partition: 0,
                leader: 2,
                leader_epoch: p0.leader_epoch,
                partition_epoch: p0.partition_epoch,
                new_isr: vec![2, 3, 1],
            },
        )
        .unwrap();
        apply(
            &mut img,
            &MetadataCommand::ElectPreferred { partitions: None },
        )
        .unwrap();
        let p0 = &img.topic("t").unwrap().partitions[0];
        assert_eq!((p0.leader, p0.leader_epoch), (1, 2));
    }

    #[test]
    fn no_unclean_election_unless_enabled() {
        let mut img = three_brokers_one_topic();
        let p = img.topics.get_mut("t").unwrap();
        p.partitions[0].isr = vec![1];
        let mut unclean = img.clone();
        apply(
            &mut img,
            &MetadataCommand::FenceBroker {
                node_id: 1,
                unclean_default: false,
            },
        )
        .unwrap();
        let p0 = &img.topic("t").unwrap().partitions[0];
        assert_eq!((p0.leader, p0.isr.clone()), (-1, vec![1]));
        // Broker 1 returns: leadership goes back to it.
        apply(&mut img, &MetadataCommand::UnfenceBroker { node_id: 1 }).unwrap();
        assert_eq!(img.topic("t").unwrap().partitions[0].leader, 1);

        apply(
            &mut unclean,
            &MetadataCommand::FenceBroker {
                node_id: 1,
                unclean_default: true,
            },
        )
        .unwrap();
        let p0 = &unclean.topic("t").unwrap().partitions[0];
        assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn reassignment_adds_then_removes_replicas() {
        let mut img = three_brokers_one_topic();
        apply(
            &mut img,
            &MetadataCommand::RegisterBroker { broker: broker(4) },
        )
        .unwrap();
        let cmd = MetadataCommand::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![4, 2, 3]),
        };
        let CommandResult::Partition(p) = apply(&mut img, &cmd).unwrap() else {
            panic!("partition expected")
        };
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (vec![4], vec![1])
        );
        assert_eq!(p.leader, 1, "the old leader leads until the move completes");
        // Not caught up yet: completing changes nothing.
        let done = MetadataCommand::CompleteReassignment {
            topic: "t".into(),
            partition: 0,
        };
        let CommandResult::Partition(p) = apply(&mut img, &done).unwrap() else {
            panic!("partition expected")
        };
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        // Broker 4 joins the ISR (AlterPartition by the leader), then the move completes.
        img.topics.get_mut("t").unwrap().partitions[0].isr.push(4);
        let CommandResult::Partition(p) = apply(&mut img, &done).unwrap() else {
            panic!("partition expected")
        };
        assert_eq!(p.replicas, vec![4, 2, 3]);
        assert!(!p.isr.contains(&1));
        assert_eq!((p.leader, p.leader_epoch), (4, 1));
        assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
        assert!(matches!(
            apply(
                &mut img,
                &MetadataCommand::ReassignPartition {
                    topic: "t".into(),
                    partition: 0,
                    target: None
                }
            ),
            Err(CommandError::NoReassignmentInProgress(..))
        ));
        assert!(matches!(
            apply(
                &mut img,
                &MetadataCommand::ReassignPartition {
                    topic: "t".into(),
                    partition: 0,
                    target: Some(vec![9])
                }
            ),
            Err(CommandError::InvalidReplicaAssignment(_))
        ));
    }

    #[test]
    fn alter_partition_checks_epochs() {
        let mut img = three_brokers_one_topic();
        let stale = MetadataCommand::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 7,
            new_isr: vec![1],
        };
        assert!(matches!(
            apply(&mut img, &stale),
            Err(CommandError::InvalidUpdateVersion(_))
        ));
        let wrong_leader = MetadataCommand::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 2,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: vec![2],
        };
        assert!(matches!(
            apply(&mut img, &wrong_leader),
            Err(CommandError::FencedLeaderEpoch(_))
        ));
        let ok = MetadataCommand::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: vec![1, 3],
        };
        let CommandResult::Partition(p) = apply(&mut img, &ok).unwrap() else {
            panic!("partition expected")
        };
        assert_eq!((p.isr, p.partition_epoch), (vec![1, 3], 1));
    }
}
