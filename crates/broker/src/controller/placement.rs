//! Replica placement for new topics and partitions: spread across brokers and racks, as Kafka's
//! rack-aware assignment does.
//!
//! Brokers are ordered so that consecutive ones alternate racks; partition `p`'s replicas are
//! consecutive brokers of that order from a start that moves with `p`, so leaders (the first
//! replica) rotate over all brokers and the replicas of one partition land on distinct racks
//! while there are enough racks.

/// One live broker: node id and `broker.rack`.
pub type Candidate = (i32, Option<String>);

/// `partitions` replica lists of `replication_factor` distinct brokers, the first being the
/// leader; `first_partition` is the index of the first new partition (so CreatePartitions
/// continues the rotation). Err with Kafka's message when there are too few brokers.
pub fn assign(
    brokers: &[Candidate],
    first_partition: i32,
    partitions: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, String> {
    let rf = replication_factor.max(0) as usize;
    if rf == 0 {
        return Err("Replication factor must be larger than 0.".into());
    }
    if rf > brokers.len() {
        return Err(format!(
            "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
            brokers.len()
        ));
    }
    let order = rack_alternating(brokers);
    let rack_of = |id: i32| {
        brokers
            .iter()
            .find(|b| b.0 == id)
            .and_then(|b| b.1.clone())
            .unwrap_or_default()
    };
    let all_racks: std::collections::BTreeSet<String> =
        order.iter().map(|id| rack_of(*id)).collect();
    let n = order.len();
    Ok((0..partitions)
        .map(|i| {
            let p = (first_partition + i) as usize;
            // The followers' shift grows each full round over the brokers (as Kafka's
            // nextReplicaShift), so that pairs of brokers do not always share partitions.
            let shift = (p / n) % n;
            let leader = p % n;
            let mut replicas = vec![order[leader]];
            let mut used_racks = std::collections::BTreeSet::from([rack_of(order[leader])]);
            while replicas.len() < rf {
                let start = leader + 1 + (shift + replicas.len() - 1) % (n - 1).max(1);
                let scan = (0..n).map(|k| order[(start + k) % n]);
                let fresh_rack = used_racks.len() < all_racks.len();
                let pick = scan
                    .clone()
                    .find(|b| {
                        !replicas.contains(b) && (!fresh_rack || !used_racks.contains(&rack_of(*b)))
                    })
                    .or_else(|| scan.clone().find(|b| !replicas.contains(b)));
                let Some(pick) = pick else { break };
                used_racks.insert(rack_of(pick));
                replicas.push(pick);
            }
            replicas
        })
        .collect())
}

/// Brokers sorted by id within each rack, then interleaved rack by rack.
fn rack_alternating(brokers: &[Candidate]) -> Vec<i32> {
    let mut racks: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for (id, rack) in brokers {
        racks
            .entry(rack.as_deref().unwrap_or(""))
            .or_default()
            .push(*id);
    }
    for ids in racks.values_mut() {
        ids.sort_unstable();
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut i = 0;
    while out.len() < brokers.len() {
        for ids in racks.values() {
            if let Some(id) = ids.get(i) {
                out.push(*id);
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[(i32, &str)]) -> Vec<Candidate> {
        racks
            .iter()
            .map(|(id, r)| (*id, Some(r.to_string())))
            .collect()
    }

    #[test]
    fn spreads_leaders_and_keeps_replicas_distinct() {
        let b = brokers(&[(1, "a"), (2, "a"), (3, "a")]);
        let p = assign(&b, 0, 6, 3).unwrap();
        for r in &p {
            let mut s = r.clone();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 3, "{p:?}");
        }
        let leaders: Vec<i32> = p.iter().map(|r| r[0]).collect();
        for id in 1..=3 {
            assert_eq!(leaders.iter().filter(|l| **l == id).count(), 2, "{p:?}");
        }
    }

    #[test]
    fn replicas_land_on_distinct_racks() {
        let b = brokers(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        for r in assign(&b, 0, 8, 2).unwrap() {
            let rack = |id: i32| b.iter().find(|x| x.0 == id).unwrap().1.clone();
            assert_ne!(rack(r[0]), rack(r[1]), "{r:?}");
        }
    }

    #[test]
    fn too_few_brokers_is_kafkas_error() {
        let b = brokers(&[(1, "a")]);
        let e = assign(&b, 0, 1, 3).unwrap_err();
        assert!(e.contains("only 1 broker(s) are registered"), "{e}");
    }
}
