//! The server-side assignors of the consumer group protocol (KIP-848): `uniform` and `range`.
//!
//! An assignor maps every member of a group to the partitions it should own (the target
//! assignment), from the members' subscriptions, the subscribed topics' partition counts and the
//! previous target assignment. It is pure: it knows nothing of epochs, reconciliation or records
//! (`consumer_group` owns those) and must not touch the log.

use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Partitions by topic id; what a member owns, must revoke, or is targeted to own.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignors this broker has, by the names clients use in `group.remote.assignor`.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// A member as the assignor sees it.
#[derive(Debug, Clone)]
pub struct AssignorMember {
    pub member_id: String,
    /// Static members keep their place in `range` across restarts.
    pub instance_id: Option<String>,
    /// Topic ids the member subscribes to (only topics that exist).
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment, which both assignors try to keep.
    pub current: Assignment,
}

/// Compute a new target assignment. `topics` holds every subscribed topic's partition count.
/// Unknown assignor names fall back to `uniform` (the caller validates names first).
pub fn assign(
    assignor: &str,
    members: &[AssignorMember],
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

/// Kafka's UniformAssignor: every partition of a subscribed topic goes to one of its
/// subscribers, spread so no subscriber has more than one partition above another that could
/// take it, moving as few partitions as possible from the previous assignment.
///
/// Three passes: keep previous ownership that is still valid; hand unowned partitions to the
/// eligible member with the fewest; then move partitions from a member to an eligible one with
/// at least two fewer until nothing moves. Homogeneous groups end with floor/ceil counts.
fn uniform(
    members: &[AssignorMember],
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut counts = vec![0usize; members.len()];
    // Pass 1: stickiness.
    for (i, m) in members.iter().enumerate() {
        for (topic, parts) in &m.current {
            let Some(n) = topics.get(topic) else { continue };
            if !m.topics.contains(topic) {
                continue;
            }
            for p in parts {
                if *p < *n && !owner.contains_key(&(*topic, *p)) {
                    owner.insert((*topic, *p), i);
                    counts[i] += 1;
                }
            }
        }
    }
    let eligible = |topic: &Uuid| -> Vec<usize> {
        members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.topics.contains(topic))
            .map(|(i, _)| i)
            .collect()
    };
    // Pass 2: unowned partitions, topic by topic, to the least loaded eligible member.
    for (topic, n) in topics {
        let candidates = eligible(topic);
        if candidates.is_empty() {
            continue;
        }
        for p in 0..*n {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            let Some(&best) = candidates.iter().min_by_key(|&&i| (counts[i], i)) else {
                continue;
            };
            owner.insert((*topic, p), best);
            counts[best] += 1;
        }
    }
    // Pass 3: balance. Each move lowers the sum of squared counts, so this terminates.
    loop {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().rev().copied().collect();
        for key in keys {
            let from = owner[&key];
            let candidates = eligible(&key.0);
            let Some(&to) = candidates.iter().min_by_key(|&&i| (counts[i], i)) else {
                continue;
            };
            if counts[from] > counts[to] + 1 {
                owner.insert(key, to);
                counts[from] -= 1;
                counts[to] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    collect(members, owner)
}

/// Kafka's server-side RangeAssignor: per topic, the subscribers (ordered by instance id, then
/// member id, so static members keep their ranges) get contiguous ranges, the first
/// `partitions % subscribers` of them one partition more. Topics with the same partition count
/// and subscribers are co-partitioned, which is what range is chosen for.
fn range(members: &[AssignorMember], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    for (topic, n) in topics {
        let mut subs: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].topics.contains(topic))
            .collect();
        if subs.is_empty() {
            continue;
        }
        subs.sort_by(|&a, &b| {
            let ka = (
                members[a].instance_id.is_none(),
                &members[a].instance_id,
                &members[a].member_id,
            );
            let kb = (
                members[b].instance_id.is_none(),
                &members[b].instance_id,
                &members[b].member_id,
            );
            ka.cmp(&kb)
        });
        let n = (*n).max(0) as usize;
        let quota = n / subs.len();
        let extra = n % subs.len();
        let mut next = 0usize;
        for (rank, &i) in subs.iter().enumerate() {
            let take = quota + usize::from(rank < extra);
            for p in next..next + take {
                owner.insert((*topic, p as i32), i);
            }
            next += take;
        }
    }
    collect(members, owner)
}

fn collect(
    members: &[AssignorMember],
    owner: BTreeMap<(Uuid, i32), usize>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    for ((topic, p), i) in owner {
        if let Some(a) = out.get_mut(&members[i].member_id) {
            a.entry(topic).or_default().insert(p);
        }
    }
    out
}

/// Number of partitions in an assignment.
pub fn size(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[Uuid]) -> AssignorMember {
        AssignorMember {
            member_id: id.into(),
            instance_id: None,
            topics: topics.iter().copied().collect(),
            current: Assignment::new(),
        }
    }

    fn all(result: &BTreeMap<String, Assignment>) -> Vec<(Uuid, i32)> {
        let mut v: Vec<(Uuid, i32)> = result
            .values()
            .flat_map(|a| {
                a.iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn uniform_balances_and_covers_every_partition_once() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let topics: BTreeMap<Uuid, i32> = [(t1, 6), (t2, 3)].into();
        let members = vec![
            member("a", &[t1, t2]),
            member("b", &[t1, t2]),
            member("c", &[t1, t2]),
            member("d", &[t1, t2]),
        ];
        let r = assign("uniform", &members, &topics);
        let mut expected: Vec<(Uuid, i32)> = (0..6)
            .map(|p| (t1, p))
            .chain((0..3).map(|p| (t2, p)))
            .collect();
        expected.sort();
        assert_eq!(all(&r), expected);
        let sizes: Vec<usize> = r.values().map(size).collect();
        assert!(sizes.iter().all(|s| *s == 2 || *s == 3), "{sizes:?}");
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let t = Uuid::from_u128(7);
        let topics: BTreeMap<Uuid, i32> = [(t, 6)].into();
        let two = vec![member("a", &[t]), member("b", &[t])];
        let first = assign("uniform", &two, &topics);
        let mut three: Vec<AssignorMember> = two
            .into_iter()
            .map(|mut m| {
                m.current = first[&m.member_id].clone();
                m
            })
            .collect();
        three.push(member("c", &[t]));
        let second = assign("uniform", &three, &topics);
        for id in ["a", "b"] {
            let kept = first[id][&t].intersection(&second[id][&t]).count();
            assert_eq!(kept, 2, "{id} keeps two of its three partitions");
        }
        assert_eq!(size(&second["c"]), 2);
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let topics: BTreeMap<Uuid, i32> = [(t1, 4), (t2, 4)].into();
        let members = vec![
            member("a", &[t1]),
            member("b", &[t1, t2]),
            member("c", &[t2]),
        ];
        let r = assign("uniform", &members, &topics);
        assert!(!r["a"].contains_key(&t2));
        assert!(!r["c"].contains_key(&t1));
        assert_eq!(all(&r).len(), 8);
        let sizes: Vec<usize> = r.values().map(size).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
    }

    #[test]
    fn range_gives_contiguous_ranges_extra_first() {
        let t = Uuid::from_u128(3);
        let topics: BTreeMap<Uuid, i32> = [(t, 7)].into();
        let members = vec![member("m2", &[t]), member("m1", &[t]), member("m3", &[t])];
        let r = assign("range", &members, &topics);
        assert_eq!(r["m1"][&t], [0, 1, 2].into());
        assert_eq!(r["m2"][&t], [3, 4].into());
        assert_eq!(r["m3"][&t], [5, 6].into());
    }
}
