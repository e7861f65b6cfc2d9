//! Three metadata stores in one process form a Raft quorum over real sockets on 127.0.0.1:
//! writes from any node reach every image, the quorum survives the loss of its leader, and a
//! restarted node catches up from its own log plus the leader.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strom_meta::{ClusterOptions, MetaError, MetadataStore};

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
    let dirs: BTreeMap<i32, PathBuf> = (1..=3).map(|i| (i, root.path().join(format!("n{i}")))).collect();
    let mut stores: BTreeMap<i32, MetadataStore> =
        (1..=3).map(|i| (i, open(&dirs[&i], i, &voters))).collect();

    let leader = wait_for("a leader", || {
        let ids: Vec<Option<i32>> = stores.values().map(|s| s.controller_id()).collect();
        (ids.iter().all(|i| i.is_some() && *i == ids[0])).then(|| ids[0]).flatten()
    });
    // The cluster id is agreed through the log and written to every meta.properties.
    let cluster_id = wait_for("a cluster id everywhere", || {
        let ids: Vec<String> = stores.values().map(|s| s.cluster_id()).collect();
        (!ids[0].is_empty() && ids.iter().all(|i| *i == ids[0])).then(|| ids[0].clone())
    });
    for d in dirs.values() {
        let props = wait_for("meta.properties", || std::fs::read_to_string(d.join("meta.properties")).ok());
        assert!(props.contains(&format!("cluster.id={cluster_id}")), "{props}");
    }

    // A write on a follower is forwarded to the leader and applied everywhere.
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let t = stores[&follower]
        .create_topic("orders", vec![vec![1, 2, 3], vec![2, 3, 1]], BTreeMap::new())
        .expect("create via follower");
    assert!(matches!(
        stores[&leader].create_topic("orders", vec![vec![1]], BTreeMap::new()),
        Err(MetaError::TopicExists(_))
    ));
    for s in stores.values() {
        wait_for("orders everywhere", || (s.image().topic("orders").map(|x| x.id) == Some(t.id)).then_some(()));
    }
    let first_block = stores[&follower].allocate_producer_ids(1000).expect("pids");

    // Lose the leader: the other two elect a new one and keep accepting writes.
    drop(stores.remove(&leader));
    let new_leader = wait_for("a new leader", || {
        let ids: Vec<Option<i32>> = stores.values().map(|s| s.controller_id()).collect();
        (ids.iter().all(|i| i.is_some() && *i != Some(leader) && *i == ids[0])).then(|| ids[0]).flatten()
    });
    assert_ne!(new_leader, leader);
    let survivor = *stores.keys().next().expect("survivor");
    stores[&survivor]
        .create_topic("after", vec![vec![1]], BTreeMap::new())
        .expect("write after failover");
    let second_block = stores[&survivor].allocate_producer_ids(1000).expect("pids");
    assert_eq!(second_block, first_block + 1000, "producer-id blocks never overlap");

    // The old leader restarts from its own log and learns what it missed.
    std::thread::sleep(Duration::from_millis(200));
    stores.insert(leader, open(&dirs[&leader], leader, &voters));
    wait_for("the restarted node to catch up", || {
        let img = stores[&leader].image();
        (img.topic("after").is_some() && img.topic("orders").is_some()).then_some(())
    });
    assert_eq!(stores[&leader].cluster_id(), cluster_id);
}
