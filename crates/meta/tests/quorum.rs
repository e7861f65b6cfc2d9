//! Three metadata stores in one process form a Raft quorum over real sockets on 127.0.0.1:
//! writes from any node reach every image, the quorum survives the loss of its leader, and a
//! restarted node catches up from its own log plus the leader.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strom_meta::{ClusterOptions, MetaError, MetadataStore, ObserverOptions};

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn open(dir: &Path, id: i32, voters: &BTreeMap<i32, String>) -> MetadataStore {
    let listener = TcpListener::bind(&voters[&id]).expect("bind controller port");
    MetadataStore::open_cluster(
        dir,
        id,
        ClusterOptions {
            voters: voters.clone(),
            listener,
            session_timeout: Duration::from_secs(3),
        },
    )
    .expect("open cluster store")
}

#[test]
fn three_voters_replicate_fail_over_and_catch_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let l = TcpListener::bind("127.0.0.1:0").expect("port");
        voters.insert(id, l.local_addr().expect("addr").to_string());
    }
    let dirs: BTreeMap<i32, PathBuf> = (1..=3)
        .map(|i| (i, root.path().join(format!("n{i}"))))
        .collect();
    let mut stores: BTreeMap<i32, MetadataStore> =
        (1..=3).map(|i| (i, open(&dirs[&i], i, &voters))).collect();

    let leader = wait_for("a leader", || {
        let ids: Vec<Option<i32>> = stores.values().map(|s| s.controller_id()).collect();
        (ids.iter().all(|i| i.is_some() && *i == ids[0]))
            .then(|| ids[0])
            .flatten()
    });
    // The cluster id is agreed through the log and written to every meta.properties.
    let cluster_id = wait_for("a cluster id everywhere", || {
        let ids: Vec<String> = stores.values().map(|s| s.cluster_id()).collect();
        (!ids[0].is_empty() && ids.iter().all(|i| *i == ids[0])).then(|| ids[0].clone())
    });
    for d in dirs.values() {
        let props = wait_for("meta.properties", || {
            std::fs::read_to_string(d.join("meta.properties")).ok()
        });
        assert!(
            props.contains(&format!("cluster.id={cluster_id}")),
            "{props}"
        );
    }

    // A write on a follower is forwarded to the leader and applied everywhere.
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let t = stores[&follower]
        .create_topic(
            "orders",
            vec![vec![1, 2, 3], vec![2, 3, 1]],
            BTreeMap::new(),
        )
        .expect("create via follower");
    assert!(matches!(
        stores[&leader].create_topic("orders", vec![vec![1]], BTreeMap::new()),
        Err(MetaError::TopicExists(_))
    ));
    for s in stores.values() {
        wait_for("orders everywhere", || {
            (s.image().topic("orders").map(|x| x.id) == Some(t.id)).then_some(())
        });
    }
    let first_block = stores[&follower].allocate_producer_ids(1000).expect("pids");

    // Lose the leader: the other two elect a new one and keep accepting writes.
    drop(stores.remove(&leader));
    let new_leader = wait_for("a new leader", || {
        let ids: Vec<Option<i32>> = stores.values().map(|s| s.controller_id()).collect();
        (ids.iter()
            .all(|i| i.is_some() && *i != Some(leader) && *i == ids[0]))
        .then(|| ids[0])
        .flatten()
    });
    assert_ne!(new_leader, leader);
    let survivor = *stores.keys().next().expect("survivor");
    stores[&survivor]
        .create_topic("after", vec![vec![1]], BTreeMap::new())
        .expect("write after failover");
    let second_block = stores[&survivor].allocate_producer_ids(1000).expect("pids");
    assert_eq!(
        second_block,
        first_block + 1000,
        "producer-id blocks never overlap"
    );

    // The old leader restarts from its own log and learns what it missed.
    std::thread::sleep(Duration::from_millis(200));
    stores.insert(leader, open(&dirs[&leader], leader, &voters));
    wait_for("the restarted node to catch up", || {
        let img = stores[&leader].image();
        (img.topic("after").is_some() && img.topic("orders").is_some()).then_some(())
    });
    assert_eq!(stores[&leader].cluster_id(), cluster_id);
}

/// More writes than the snapshot interval (1000 entries) while one voter is down: the leader
/// snapshots and purges its log, so the voter must catch up by installing the snapshot; and a
/// restart of every node rebuilds the same image from snapshot plus log.
#[test]
fn a_voter_that_missed_a_purged_log_catches_up_from_the_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let l = TcpListener::bind("127.0.0.1:0").expect("port");
        voters.insert(id, l.local_addr().expect("addr").to_string());
    }
    let dirs: BTreeMap<i32, PathBuf> = (1..=3)
        .map(|i| (i, root.path().join(format!("n{i}"))))
        .collect();
    let mut stores: BTreeMap<i32, MetadataStore> =
        (1..=3).map(|i| (i, open(&dirs[&i], i, &voters))).collect();
    let leader = wait_for("a leader", || stores[&1].controller_id());
    let down = (1..=3).find(|i| *i != leader).expect("a follower");
    drop(stores.remove(&down));
    let writer = *stores.keys().next().expect("a live store");
    let mut last = 0;
    for _ in 0..1100 {
        last = stores[&writer].allocate_producer_ids(1).expect("pid block");
    }
    assert!(
        dirs[&leader].join("raft/snapshot.json").exists(),
        "the leader took a snapshot"
    );
    std::thread::sleep(Duration::from_millis(200));
    stores.insert(down, open(&dirs[&down], down, &voters));
    wait_for("the returning voter to catch up", || {
        (stores[&down].image().next_producer_id_block == last + 1).then_some(())
    });

    // Every node restarts; the image comes back from snapshot + log.
    drop(stores);
    std::thread::sleep(Duration::from_millis(200));
    let stores: BTreeMap<i32, MetadataStore> =
        (1..=3).map(|i| (i, open(&dirs[&i], i, &voters))).collect();
    for s in stores.values() {
        wait_for("the image after a full restart", || {
            (s.image().next_producer_id_block == last + 1).then_some(())
        });
    }
    let next = stores[&down]
        .allocate_producer_ids(1)
        .expect("pid after restart");
    assert_eq!(next, last + 1);
}

/// A node whose meta.properties names another cluster is told so (the broker then stops).
#[test]
fn a_node_from_another_cluster_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let l = TcpListener::bind("127.0.0.1:0").expect("port");
        voters.insert(id, l.local_addr().expect("addr").to_string());
    }
    let dirs: BTreeMap<i32, PathBuf> = (1..=3)
        .map(|i| (i, root.path().join(format!("n{i}"))))
        .collect();
    let mut stores: BTreeMap<i32, MetadataStore> =
        (1..=3).map(|i| (i, open(&dirs[&i], i, &voters))).collect();
    let cluster_id = wait_for("a cluster id on node 3", || {
        let id = stores[&3].cluster_id();
        (!id.is_empty() && dirs[&3].join("meta.properties").exists()).then_some(id)
    });
    drop(stores.remove(&3));
    std::fs::write(
        dirs[&3].join("meta.properties"),
        "version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=3\n",
    )
    .expect("rewrite meta.properties");
    std::thread::sleep(Duration::from_millis(200));
    stores.insert(3, open(&dirs[&3], 3, &voters));
    let err = wait_for("the cluster id conflict", || {
        stores[&3].check_cluster_id().err()
    });
    let msg = err.to_string();
    assert!(
        msg.contains("AAAAAAAAAAAAAAAAAAAAAA") && msg.contains(&cluster_id),
        "{msg}"
    );
    assert!(stores[&1].check_cluster_id().is_ok());
}

/// A broker-only node (an observer, no vote) given one bootstrap controller: it follows the
/// image, its writes reach the active controller, and it keeps both after the leader is lost.
#[test]
fn an_observer_follows_the_image_and_survives_a_leader_failover() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let l = TcpListener::bind("127.0.0.1:0").expect("port");
        voters.insert(id, l.local_addr().expect("addr").to_string());
    }
    let mut stores: BTreeMap<i32, MetadataStore> = (1..=3)
        .map(|i| (i, open(&root.path().join(format!("n{i}")), i, &voters)))
        .collect();
    let leader = wait_for("a leader", || stores[&1].controller_id());
    // Bootstrap through a voter that is not the leader: it must be told where the leader is.
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let observer_dir = root.path().join("n4");
    let observer = MetadataStore::open_observer(
        &observer_dir,
        4,
        ObserverOptions {
            voters: BTreeMap::new(),
            bootstrap: vec![voters[&follower].clone()],
        },
    )
    .expect("open observer");
    let cluster_id = wait_for("the cluster id on the observer", || {
        let id = observer.cluster_id();
        (!id.is_empty()).then_some(id)
    });
    assert_eq!(cluster_id, stores[&leader].cluster_id());
    let props = wait_for("the observer's meta.properties", || {
        std::fs::read_to_string(observer_dir.join("meta.properties")).ok()
    });
    assert!(
        props.contains(&format!("cluster.id={cluster_id}")),
        "{props}"
    );
    assert!(!observer.is_active_controller());
    assert_eq!(observer.controller_id(), Some(leader));

    stores[&leader]
        .create_topic("from-controller", vec![vec![4]], BTreeMap::new())
        .expect("create on the leader");
    wait_for("the controller's write on the observer", || {
        observer.image().topic("from-controller").map(|_| ())
    });
    observer
        .create_topic("from-observer", vec![vec![4]], BTreeMap::new())
        .expect("a write from the observer");
    for s in stores.values() {
        wait_for("the observer's write on every voter", || {
            s.image().topic("from-observer").map(|_| ())
        });
    }
    let status = observer.quorum_status().expect("quorum status");
    assert_eq!(
        status.voters.iter().map(|v| v.node_id).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "the observer learned every voter from its bootstrap controller"
    );

    drop(stores.remove(&leader));
    let new_leader = wait_for("the observer to see a new leader", || {
        observer.controller_id().filter(|l| *l != leader)
    });
    assert!(stores.contains_key(&new_leader));
    observer
        .create_topic("after-failover", vec![vec![4]], BTreeMap::new())
        .expect("a write from the observer after failover");
    wait_for("the write on the new leader", || {
        stores[&new_leader]
            .image()
            .topic("after-failover")
            .map(|_| ())
    });
    wait_for("the write back on the observer", || {
        observer.image().topic("after-failover").map(|_| ())
    });
}

/// KIP-853 style voter changes: a controller started without voters joins once added; a removed
/// voter no longer counts, so with two of the original three gone the quorum still commits only
/// because the added voter votes.
#[test]
fn voters_are_added_and_removed_at_runtime() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let l = TcpListener::bind("127.0.0.1:0").expect("port");
        voters.insert(id, l.local_addr().expect("addr").to_string());
    }
    let mut stores: BTreeMap<i32, MetadataStore> = (1..=3)
        .map(|i| (i, open(&root.path().join(format!("n{i}")), i, &voters)))
        .collect();
    let leader = wait_for("a leader", || stores[&1].controller_id());
    let listener = TcpListener::bind("127.0.0.1:0").expect("port");
    let new_addr = listener.local_addr().expect("addr").to_string();
    let joining = MetadataStore::open_cluster(
        &root.path().join("n4"),
        4,
        ClusterOptions {
            voters: BTreeMap::new(),
            listener,
            session_timeout: Duration::from_secs(3),
        },
    )
    .expect("open the joining controller");
    stores.insert(4, joining);
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    stores[&follower]
        .add_voter(4, &new_addr)
        .expect("add voter 4 through a follower");
    let voter_ids = |s: &MetadataStore| {
        s.quorum_status()
            .map(|q| q.voters.iter().map(|v| v.node_id).collect::<Vec<_>>())
    };
    assert_eq!(voter_ids(&stores[&leader]), Some(vec![1, 2, 3, 4]));
    wait_for("the new voter to see itself a voter", || {
        (voter_ids(&stores[&4]) == Some(vec![1, 2, 3, 4])).then_some(())
    });
    assert!(matches!(
        stores[&leader].add_voter(4, &new_addr),
        Err(MetaError::Refused(_))
    ));

    // Remove both original followers; stop them. Leader + the new voter are two of three.
    let followers: Vec<i32> = (1..=3).filter(|i| *i != leader).collect();
    stores[&leader]
        .remove_voter(followers[0])
        .expect("remove a follower");
    assert!(matches!(
        stores[&leader].remove_voter(followers[0]),
        Err(MetaError::Refused(_))
    ));
    drop(stores.remove(&followers[0]));
    drop(stores.remove(&followers[1]));
    stores[&4]
        .create_topic("after-voter-change", vec![vec![1]], BTreeMap::new())
        .expect("a write committed by the leader and the added voter");
    wait_for("the write on the new voter", || {
        stores[&4].image().topic("after-voter-change").map(|_| ())
    });
}

fn three_voter_addresses() -> BTreeMap<i32, String> {
    (1..=3)
        .map(|id| {
            let l = TcpListener::bind("127.0.0.1:0").expect("port");
            (id, l.local_addr().expect("addr").to_string())
        })
        .collect()
}

/// Voters started together elect the lowest id in the first term, whatever order they come
/// up in: a split first vote would cost a whole election timeout of cluster start-up.
#[test]
fn voters_started_together_elect_in_the_first_term() {
    for order in [[1, 2, 3], [3, 2, 1]] {
        let root = tempfile::tempdir().expect("tempdir");
        let voters = three_voter_addresses();
        let stores: Vec<MetadataStore> = order
            .iter()
            .map(|&i| open(&root.path().join(format!("n{i}")), i, &voters))
            .collect();
        let status = wait_for("a leader known everywhere", || {
            let all: Vec<_> = stores
                .iter()
                .filter_map(|s| s.quorum_status())
                .filter(|st| st.leader.is_some())
                .collect();
            (all.len() == 3 && all.iter().all(|st| st.leader == all[0].leader))
                .then(|| all[0].clone())
        });
        assert_eq!(status.leader, Some(1), "start order {order:?}");
        assert_eq!(
            status.term, 1,
            "start order {order:?}: first election split"
        );
    }
}

/// The lowest voter does not come up on the first start: the next one initialises the
/// quorum after its turn, and the two form a quorum without it.
#[test]
fn a_first_start_without_the_lowest_voter_still_elects() {
    let root = tempfile::tempdir().expect("tempdir");
    let voters = three_voter_addresses();
    let stores: Vec<MetadataStore> = [2, 3]
        .iter()
        .map(|&i| open(&root.path().join(format!("n{i}")), i, &voters))
        .collect();
    let leader = wait_for("a leader", || {
        let ids: Vec<Option<i32>> = stores.iter().map(|s| s.controller_id()).collect();
        (ids.iter().all(|i| i.is_some() && *i == ids[0]))
            .then(|| ids[0])
            .flatten()
    });
    assert!(matches!(leader, 2 | 3), "leader {leader}");
}
