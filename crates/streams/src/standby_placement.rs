//! Where standby replicas go (Kafka's `num.standby.replicas`). strom has no custom assignor (the
//! stream threads use librdkafka's range assignor), so every instance computes the same placement
//! from what the group coordinator holds after a rebalance: the processes in the group and the
//! active tasks each runs. A task's standbys are the next `num.standby.replicas` processes after
//! its active process in the sorted list of process ids, wrapping around, never the active process
//! itself. Like Kafka, only tasks with a changelogged store get standbys (others have nothing to
//! keep warm).

use std::collections::{BTreeMap, BTreeSet};

use crate::task::TaskId;

/// For every process in `active` (process id -> its active tasks; processes without tasks
/// included), the tasks it keeps a standby replica of. `has_changelog` says which tasks have
/// state to replicate.
pub(crate) fn standby_tasks(
    active: &BTreeMap<String, BTreeSet<TaskId>>,
    num_standby_replicas: usize,
    has_changelog: impl Fn(&TaskId) -> bool,
) -> BTreeMap<String, BTreeSet<TaskId>> {
    let processes: Vec<&String> = active.keys().collect();
    let mut out: BTreeMap<String, BTreeSet<TaskId>> = processes
        .iter()
        .map(|p| ((*p).clone(), BTreeSet::new()))
        .collect();
    let replicas = num_standby_replicas.min(processes.len().saturating_sub(1));
    for (i, tasks) in active.values().enumerate() {
        for task in tasks.iter().filter(|t| has_changelog(t)) {
            for k in 1..=replicas {
                let p = processes[(i + k) % processes.len()];
                // A task is active on one process only, but a member list read mid-rebalance could
                // show it twice; a process never keeps a standby of a task it runs.
                if !active[p].contains(task)
                    && let Some(s) = out.get_mut(p)
                {
                    s.insert(*task);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(subtopology: usize, partition: i32) -> TaskId {
        TaskId {
            subtopology,
            partition,
        }
    }

    #[test]
    fn next_processes_in_sorted_order_hold_the_standbys() {
        let active: BTreeMap<String, BTreeSet<TaskId>> = [
            ("p-b".to_string(), [t(1, 1)].into()),
            ("p-a".to_string(), [t(0, 0), t(1, 0)].into()),
            ("p-c".to_string(), BTreeSet::new()),
        ]
        .into();
        // Sub-topology 0 has no changelogged store.
        let one = standby_tasks(&active, 1, |t| t.subtopology == 1);
        assert_eq!(one["p-a"], BTreeSet::new());
        assert_eq!(one["p-b"], [t(1, 0)].into());
        assert_eq!(one["p-c"], [t(1, 1)].into());
        // More replicas than other processes: every other process, once.
        let many = standby_tasks(&active, 5, |_| true);
        assert_eq!(many["p-a"], [t(1, 1)].into());
        assert_eq!(many["p-b"], [t(0, 0), t(1, 0)].into());
        assert_eq!(many["p-c"], [t(0, 0), t(1, 0), t(1, 1)].into());
        // One process alone has no one to replicate to.
        let alone: BTreeMap<String, BTreeSet<TaskId>> =
            [("p".to_string(), [t(1, 0)].into())].into();
        assert!(standby_tasks(&alone, 1, |_| true)["p"].is_empty());
        assert!(
            standby_tasks(&active, 0, |_| true)
                .values()
                .all(|s| s.is_empty())
        );
    }
}
