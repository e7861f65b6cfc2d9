//! DSL operators run through the TopologyTestDriver (no broker).

use std::time::Duration;

use strom_streams::config::DeserializationHandler;
use strom_streams::test_driver::TestRecord;
use strom_streams::*;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn wordcount() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("streams-plaintext-input", Consumed::with(s(), s()))
        .flat_map_values(|v: &String| {
            v.to_lowercase()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, w: &String| w.clone(), Grouped::with(s(), s()))
        .count(Materialized::as_("counts-store"))
        .to_stream()
        .to(
            "streams-wordcount-output",
            Produced::with(s(), Serdes::i64()),
        );
    b.build().unwrap()
}

#[test]
fn describe_matches_kafka_wordcount() {
    // The text Kafka 4.x prints for the same WordCountDemo topology.
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [streams-plaintext-input])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> counts-store-repartition-filter
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Processor: counts-store-repartition-filter (stores: [])
      --> counts-store-repartition-sink
      <-- KSTREAM-KEY-SELECT-0000000002
    Sink: counts-store-repartition-sink (topic: counts-store-repartition)
      <-- counts-store-repartition-filter

  Sub-topology: 1
    Source: counts-store-repartition-source (topics: [counts-store-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts-store])
      --> KTABLE-TOSTREAM-0000000007
      <-- counts-store-repartition-source
    Processor: KTABLE-TOSTREAM-0000000007 (stores: [])
      --> KSTREAM-SINK-0000000008
      <-- KSTREAM-AGGREGATE-0000000003
    Sink: KSTREAM-SINK-0000000008 (topic: streams-wordcount-output)
      <-- KTABLE-TOSTREAM-0000000007

";
    assert_eq!(wordcount().describe(), expected);
}

#[test]
fn wordcount_counts_and_store_query() {
    let d = TopologyTestDriver::new(wordcount()).unwrap();
    let mut input = d.create_input_topic("streams-plaintext-input", s(), s());
    let out = d.create_output_topic("streams-wordcount-output", s(), Serdes::i64());
    input.pipe_value("Hello Kafka Streams".into()).unwrap();
    input.pipe_value("hello strom".into()).unwrap();
    let got = out.read_key_values_to_list().unwrap();
    assert_eq!(
        got,
        vec![
            (Some("hello".into()), Some(1)),
            (Some("kafka".into()), Some(1)),
            (Some("streams".into()), Some(1)),
            (Some("hello".into()), Some(2)),
            (Some("strom".into()), Some(1)),
        ]
    );
    let store = d.key_value_store::<String, i64>("counts-store").unwrap();
    assert_eq!(store.get(&"hello".to_string()).unwrap(), Some(2));
    assert_eq!(store.get(&"nope".to_string()).unwrap(), None);
    let range = store
        .range(Some(&"k".to_string()), Some(&"stz".to_string()))
        .unwrap();
    assert_eq!(
        range,
        vec![
            ("kafka".into(), 1),
            ("streams".into(), 1),
            ("strom".into(), 1)
        ]
    );
    let topics = d.produced_topic_names();
    assert!(
        topics.contains("dummy-topology-test-driver-app-id-counts-store-changelog"),
        "{topics:?}"
    );
    assert!(
        topics.contains("dummy-topology-test-driver-app-id-counts-store-repartition"),
        "{topics:?}"
    );
}

#[test]
fn stateless_operators() {
    let b = StreamsBuilder::new();
    let src = b.stream("in", Consumed::with(s(), Serdes::i64()));
    src.filter(|_, v| *v > 0)
        .map_values(|v| v * 10)
        .to("pos", Produced::with(s(), Serdes::i64()));
    src.filter_not(|_, v| *v > 0)
        .map(|k, v| {
            (
                format!("neg-{}", k.map_or("?", |k| k.as_str())),
                v.to_string(),
            )
        })
        .to("neg", Produced::with(s(), s()));
    src.flat_map(|k, v| {
        let k = k.cloned().unwrap_or_default();
        (0..*v).map(move |i| (format!("{k}{i}"), i))
    })
    .select_key(|k, _| k.map_or(0, |k| k.len() as i32))
    .to("flat", Produced::with(Serdes::i32(), Serdes::i64()));
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    src.peek(move |_, v| seen2.lock().push(*v))
        .foreach(|_, _| {});
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), Serdes::i64());
    i.pipe_input_at(Some(&"a".into()), Some(&2), 5).unwrap();
    i.pipe_input_at(Some(&"b".into()), Some(&-1), 6).unwrap();
    let pos = d.create_output_topic("pos", s(), Serdes::i64());
    assert_eq!(
        pos.read_records_to_list().unwrap(),
        vec![TestRecord {
            key: Some("a".into()),
            value: Some(20),
            timestamp: 5
        }]
    );
    let neg = d.create_output_topic("neg", s(), s());
    assert_eq!(
        neg.read_key_values_to_list().unwrap(),
        vec![(Some("neg-b".into()), Some("-1".into()))]
    );
    let flat = d.create_output_topic("flat", Serdes::i32(), Serdes::i64());
    assert_eq!(
        flat.read_key_values_to_list().unwrap(),
        vec![(Some(2), Some(0)), (Some(2), Some(1))]
    );
    assert_eq!(*seen.lock(), vec![2, -1]);
}

#[test]
fn split_merge_and_dynamic_topics() {
    let b = StreamsBuilder::new();
    let src = b.stream("in", Consumed::with(s(), Serdes::i64()));
    let branches = src
        .split_named(Some("Branch-"))
        .branch_as("small", |_, v| *v < 10)
        .branch(|_, v| *v < 100)
        .default_branch(None);
    let mut names: Vec<_> = branches.keys().cloned().collect();
    names.sort();
    assert_eq!(names, vec!["Branch-0", "Branch-2", "Branch-small"]);
    branches["Branch-small"]
        .merge(&branches["Branch-0"])
        .to("small-or-huge", Produced::with(s(), Serdes::i64()));
    branches["Branch-2"].to_dynamic(
        |k, _, _| format!("mid-{}", k.map_or("none", |k| k.as_str())),
        Produced::with(s(), Serdes::i64()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), Serdes::i64());
    for (k, v) in [("a", 1), ("b", 50), ("c", 1000)] {
        i.pipe_input(k.into(), v).unwrap();
    }
    let o = d.create_output_topic("small-or-huge", s(), Serdes::i64());
    assert_eq!(o.read_values_to_list().unwrap(), vec![Some(1), Some(1000)]);
    let m = d.create_output_topic("mid-b", s(), Serdes::i64());
    assert_eq!(m.read_values_to_list().unwrap(), vec![Some(50)]);
}

#[test]
fn reduce_aggregate_and_table_ops() {
    let b = StreamsBuilder::new();
    let src = b.stream("in", Consumed::with(s(), Serdes::i64()));
    let g = src.group_by_key(Grouped::with(s(), Serdes::i64()));
    g.reduce(|a, v| (*a).max(*v), Materialized::as_("max"))
        .to_stream()
        .to("max-out", Produced::with(s(), Serdes::i64()));
    g.aggregate(
        String::new,
        |_, v, agg: &String| format!("{agg}{v}"),
        Materialized::as_("concat").with_value_serde(s()),
    )
    .filter(|_, v| v.len() < 3)
    .to_stream()
    .to("concat-out", Produced::with(s(), s()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), Serdes::i64());
    for v in [3, 1, 7, 2] {
        i.pipe_input("k".into(), v).unwrap();
    }
    let o = d.create_output_topic("max-out", s(), Serdes::i64());
    assert_eq!(
        o.read_values_to_list().unwrap(),
        vec![Some(3), Some(3), Some(7), Some(7)]
    );
    let c = d.create_output_topic("concat-out", s(), s());
    // "317" fails the filter: Kafka's KTable filter emits a delete (null) for the key.
    assert_eq!(
        c.read_values_to_list().unwrap(),
        vec![Some("3".into()), Some("31".into()), None, None]
    );
}

#[test]
fn table_and_stream_table_join() {
    let b = StreamsBuilder::new();
    let users = b.table(
        "users",
        Consumed::with(s(), s()),
        Materialized::as_("users-store"),
    );
    b.stream("clicks", Consumed::with(s(), Serdes::i64()))
        .left_join_table(&users, |clicks, region: Option<&String>| {
            format!("{clicks}@{}", region.map_or("unknown", |r| r.as_str()))
        })
        .to("enriched", Produced::with(s(), s()));
    users
        .map_values(|r| r.to_uppercase())
        .to_stream()
        .to("regions-upper", Produced::with(s(), s()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut u = d.create_input_topic("users", s(), s());
    let mut c = d.create_input_topic("clicks", s(), Serdes::i64());
    u.pipe_input("alice".into(), "europe".into()).unwrap();
    c.pipe_input("alice".into(), 3).unwrap();
    c.pipe_input("bob".into(), 4).unwrap();
    u.pipe_input_at(Some(&"alice".to_string()), None, 0)
        .unwrap();
    c.pipe_input("alice".into(), 5).unwrap();
    let o = d.create_output_topic("enriched", s(), s());
    assert_eq!(
        o.read_key_values_to_list().unwrap(),
        vec![
            (Some("alice".into()), Some("3@europe".into())),
            (Some("bob".into()), Some("4@unknown".into())),
            (Some("alice".into()), Some("5@unknown".into())),
        ]
    );
    let up = d.create_output_topic("regions-upper", s(), s());
    assert_eq!(
        up.read_values_to_list().unwrap(),
        vec![Some("EUROPE".into()), None]
    );
}

#[test]
fn tumbling_and_hopping_windows_with_late_records() {
    let b = StreamsBuilder::new();
    let g = b
        .stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()));
    g.windowed_by(TimeWindows::of_size_and_grace(
        Duration::from_millis(10),
        Duration::from_millis(5),
    ))
    .count(Materialized::as_("tumbling"))
    .to_stream()
    .map(|k, v| {
        (
            format!("{}@{}", k.unwrap().key, k.unwrap().window.start),
            *v,
        )
    })
    .to("tumbling-out", Produced::with(s(), Serdes::i64()));
    g.windowed_by(
        TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
            .advance_by(Duration::from_millis(5)),
    )
    .count(Materialized::as_("hopping"))
    .to_stream()
    .to(
        "hopping-out",
        Produced::with(Serdes::time_windowed(s(), 10), Serdes::i64()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), s());
    let k = Some("k".to_string());
    let v = Some("x".to_string());
    // 0 and 9 in [0,10); 10 opens [10,20); 20 moves stream time so [0,10) closes at 10+5=15 < 20.
    for ts in [0, 9, 10, 14, 20, 3] {
        i.pipe_input_at(k.as_ref(), v.as_ref(), ts).unwrap();
    }
    let o = d.create_output_topic("tumbling-out", s(), Serdes::i64());
    assert_eq!(
        o.read_key_values_to_list().unwrap(),
        vec![
            (Some("k@0".into()), Some(1)),
            (Some("k@0".into()), Some(2)),
            (Some("k@10".into()), Some(1)),
            // ts 14: stream time 14, window [0,10) still open (10 + 5 > 14) but 14 is in [10,20).
            (Some("k@10".into()), Some(2)),
            (Some("k@20".into()), Some(1)),
            // ts 3 arrives at stream time 20: [0,10) closed at 15, dropped.
        ]
    );
    let w = d.window_store::<String, i64>("tumbling").unwrap();
    // Retention is size + grace = 15 ms: at stream time 20 the window starting at 0 has expired
    // from the store, as Kafka's window store drops windows older than stream time - retention.
    assert_eq!(
        w.fetch(&"k".into(), 0, 100).unwrap(),
        vec![(10, 2), (20, 1)]
    );
    let h = d.create_output_topic("hopping-out", Serdes::time_windowed(s(), 10), Serdes::i64());
    let got: Vec<(i64, i64)> = h
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.unwrap().window.start, v.unwrap()))
        .collect();
    // Hopping windows of 10 every 5; no grace, so the late ts=3 is dropped for every window.
    assert_eq!(
        got,
        vec![
            (0, 1),
            (0, 2),
            (5, 1),
            (5, 2),
            (10, 1),
            (5, 3),
            (10, 2),
            (15, 1),
            (20, 1)
        ]
    );
}

#[test]
fn deserialization_handler() {
    let build = || {
        let b = StreamsBuilder::new();
        b.stream("in", Consumed::with(s(), Serdes::i64()))
            .to("out", Produced::with(s(), Serdes::i64()));
        b.build().unwrap()
    };
    let d = TopologyTestDriver::with_app_id(build(), "app", DeserializationHandler::LogAndContinue)
        .unwrap();
    let mut i = d.create_input_topic("in", s(), Serdes::i64());
    i.pipe_raw(Some(b"k"), Some(b"abc"), 0).unwrap();
    i.pipe_input("k".into(), 7).unwrap();
    let o = d.create_output_topic("out", s(), Serdes::i64());
    assert_eq!(o.read_values_to_list().unwrap(), vec![Some(7)]);
    let d = TopologyTestDriver::new(build()).unwrap();
    let mut i = d.create_input_topic("in", s(), Serdes::i64());
    let e = i.pipe_raw(Some(b"k"), Some(b"abc"), 0).unwrap_err();
    assert!(e.to_string().contains("LongDeserializer"), "{e}");
}

#[test]
fn topology_errors() {
    let b = StreamsBuilder::new();
    b.stream("a", Consumed::with(s(), s()));
    b.stream("a", Consumed::with(s(), s()));
    let e = b.build().err().unwrap();
    assert_eq!(
        e.to_string(),
        "Invalid topology: Topic a has already been registered by another source."
    );
    // A key change without serdes for the repartition topic is a build error naming the topic.
    let b = StreamsBuilder::new();
    b.stream("a", Consumed::with(s(), s()))
        .map(|_, v| (v.clone(), 1i64))
        .group_by_key(Grouped::default_serdes())
        .count(Materialized::as_("c"));
    let e = b.build().err().unwrap().to_string();
    assert!(e.contains("c-repartition"), "{e}");
}

#[test]
fn session_windows_merge_and_drop_late() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(
            Duration::from_millis(10),
        ))
        .count(Materialized::as_("sessions"))
        .to_stream()
        .to(
            "out",
            Produced::with(Serdes::session_windowed(s()), Serdes::i64()),
        );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), s());
    let (k, v) = (Some("k".to_string()), Some("x".to_string()));
    for ts in [0, 5, 3, 30, 18, 22] {
        i.pipe_input_at(k.as_ref(), v.as_ref(), ts).unwrap();
    }
    let got: Vec<String> = d
        .create_output_topic("out", Serdes::session_windowed(s()), Serdes::i64())
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let k = k.unwrap();
            format!(
                "{}[{},{}]={}",
                k.key,
                k.window.start,
                k.window.end,
                v.map_or("null".into(), |v| v.to_string())
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "k[0,0]=1",
            "k[0,0]=null", // merged into [0,5]
            "k[0,5]=2",
            // ts 3 falls inside [0,5]: as Kafka, the session is deleted and put again.
            "k[0,5]=null",
            "k[0,5]=3",
            "k[30,30]=1",
            // ts 18: its session would end at 18 < stream time 30 - grace 0: dropped as late.
            "k[30,30]=null",
            "k[22,30]=2",
        ]
    );
    // The store holds the sessions still in retention (Kafka's ReadOnlySessionStore): [0,5]
    // ended before stream time 30 - retention 10 (gap + grace) and was dropped.
    i.pipe_input_at(Some(&"j".to_string()), v.as_ref(), 31)
        .unwrap();
    let st = d.session_store::<String, i64>("sessions").unwrap();
    let at = |key: &str, start, end, n| {
        (
            Windowed {
                key: key.to_string(),
                window: Window::new(start, end),
            },
            n,
        )
    };
    let (j, k) = ("j".to_string(), "k".to_string());
    assert_eq!(st.fetch(&k).unwrap(), vec![at("k", 22, 30, 2)]);
    assert_eq!(st.fetch(&j).unwrap(), vec![at("j", 31, 31, 1)]);
    assert!(st.fetch(&"x".to_string()).unwrap().is_empty());
    // Ending at or after / starting at or before.
    assert!(st.find_sessions(&k, 31, i64::MAX).unwrap().is_empty());
    assert!(st.find_sessions(&k, i64::MIN, 21).unwrap().is_empty());
    assert_eq!(
        st.find_sessions(&k, 30, 22).unwrap(),
        vec![at("k", 22, 30, 2)]
    );
    assert_eq!(
        st.fetch_range(None, None).unwrap(),
        vec![at("j", 31, 31, 1), at("k", 22, 30, 2)]
    );
    assert_eq!(
        st.fetch_range(Some(&k), None).unwrap(),
        vec![at("k", 22, 30, 2)]
    );
    assert_eq!(
        st.fetch_range(None, Some(&j)).unwrap(),
        vec![at("j", 31, 31, 1)]
    );
    assert!(
        d.window_store::<String, i64>("sessions").is_err(),
        "not a window store"
    );
    assert!(d.session_store::<String, i64>("nope").is_err());
}

#[test]
fn suppress_until_window_closes_emits_final_counts_only() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(10),
            Duration::from_millis(5),
        ))
        .count(Materialized::as_("counts"))
        .suppress_until_window_closes()
        .to_stream()
        .map(|k, v| {
            (
                format!("{}@{}", k.unwrap().key, k.unwrap().window.start),
                *v,
            )
        })
        .to("out", Produced::with(s(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), Serdes::i64());
    let (k, v) = (Some("k".to_string()), Some("x".to_string()));
    for ts in [0, 9, 3, 14] {
        i.pipe_input_at(k.as_ref(), v.as_ref(), ts).unwrap();
    }
    assert!(out.is_empty(), "nothing before [0,10) closes at 10 + 5");
    i.pipe_input_at(k.as_ref(), v.as_ref(), 15).unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(Some("k@0".into()), Some(3))]
    );
    i.pipe_input_at(k.as_ref(), v.as_ref(), 30).unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(Some("k@10".into()), Some(2))]
    );
}

#[test]
fn table_group_by_with_adder_and_subtractor() {
    let b = StreamsBuilder::new();
    let users = b.table(
        "users",
        Consumed::with(s(), s()),
        Materialized::as_("users"),
    );
    users
        .group_by(
            |u: &String, region: &String| (region.clone(), u.clone()),
            Grouped::with(s(), s()),
        )
        .count(Materialized::as_("per-region"))
        .to_stream()
        .to("counts", Produced::with(s(), Serdes::i64()));
    let scores = b.table(
        "scores",
        Consumed::with(s(), Serdes::i64()),
        Materialized::as_("scores"),
    );
    scores
        .group_by(
            |k: &String, v: &i64| (k.split('/').next().unwrap_or("").to_string(), *v),
            Grouped::with(s(), Serdes::i64()),
        )
        .reduce(|a, v| a + v, |a, v| a - v, Materialized::as_("team-sum"))
        .to_stream()
        .to("sums", Produced::with(s(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut u = d.create_input_topic("users", s(), s());
    let k = |x: &str| Some(x.to_string());
    u.pipe_input("alice".into(), "eu".into()).unwrap();
    u.pipe_input("bob".into(), "eu".into()).unwrap();
    u.pipe_input("alice".into(), "us".into()).unwrap();
    u.pipe_input_at(k("bob").as_ref(), None, 0).unwrap();
    assert_eq!(
        d.create_output_topic("counts", s(), Serdes::i64())
            .read_key_values_to_list()
            .unwrap(),
        vec![
            (k("eu"), Some(1)),
            (k("eu"), Some(2)),
            (k("eu"), Some(1)),
            (k("us"), Some(1)),
            (k("eu"), Some(0)),
        ]
    );
    let mut sc = d.create_input_topic("scores", s(), Serdes::i64());
    sc.pipe_input("red/ann".into(), 5).unwrap();
    sc.pipe_input("red/bo".into(), 3).unwrap();
    sc.pipe_input("red/ann".into(), 1).unwrap();
    assert_eq!(
        d.create_output_topic("sums", s(), Serdes::i64())
            .read_values_to_list()
            .unwrap(),
        vec![Some(5), Some(8), Some(3), Some(4)]
    );
}

#[test]
fn sliding_windows_by_definition() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            Duration::from_millis(10),
            Duration::from_millis(5),
        ))
        .count(Materialized::as_("sliding"))
        .to_stream()
        .map(|k, v| {
            let w = k.unwrap();
            (format!("[{},{}]", w.window.start, w.window.end), *v)
        })
        .to("out", Produced::with(s(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), s());
    let (k, v) = (Some("k".to_string()), Some("x".to_string()));
    let out = d.create_output_topic("out", s(), Serdes::i64());
    let mut step = |ts: i64| {
        i.pipe_input_at(k.as_ref(), v.as_ref(), ts).unwrap();
        out.read_key_values_to_list()
            .unwrap()
            .into_iter()
            .map(|(k, v)| format!("{}={}", k.unwrap(), v.unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(step(10), vec!["[0,10]=1"]);
    // 15: 10's right window [11,21] is created first (it holds 15 only), then 15's left window
    // [5,15] from [0,10]'s aggregate (10 and 15), as Kafka does.
    assert_eq!(step(15), vec!["[11,21]=1", "[5,15]=2"]);
    // 12 arrives out of order (within grace): the windows holding it are updated from the latest
    // start down, then its left window is created from [0,10] and its right window [13,23] takes
    // the aggregate of [11,21] before 12 was added (15 alone).
    assert_eq!(
        step(12),
        vec!["[11,21]=2", "[5,15]=3", "[2,12]=2", "[13,23]=1"]
    );
    // 40 moves stream time: windows ending before 40 - 5 are closed; 14 is late for all of them.
    assert_eq!(step(40), vec!["[30,40]=1"]);
    assert_eq!(step(14), Vec::<String>::new());
}

#[test]
fn sliding_windows_early_records_and_shared_timestamps_as_kafka() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()))
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            Duration::from_millis(10),
            Duration::from_millis(100),
        ))
        .count(Materialized::as_("sliding"))
        .to_stream()
        .map(|k, v| {
            let w = k.unwrap();
            (format!("[{},{}]", w.window.start, w.window.end), *v)
        })
        .to("out", Produced::with(s(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), s());
    let (k, v) = (Some("k".to_string()), Some("x".to_string()));
    let out = d.create_output_topic("out", s(), Serdes::i64());
    let mut step = |ts: i64| {
        i.pipe_input_at(k.as_ref(), v.as_ref(), ts).unwrap();
        out.read_key_values_to_list()
            .unwrap()
            .into_iter()
            .map(|(k, v)| format!("{}={}", k.unwrap(), v.unwrap()))
            .collect::<Vec<_>>()
    };
    // Records before d share the window [0,d] instead of left windows starting before 0.
    assert_eq!(step(3), vec!["[0,10]=1"]);
    assert_eq!(step(3), vec!["[0,10]=2"]);
    // 3's right window [4,14] is created before [0,10] takes 5.
    assert_eq!(step(5), vec!["[4,14]=1", "[0,10]=3"]);
    assert_eq!(step(12), vec!["[4,14]=2", "[6,16]=1", "[2,12]=4"]);
    // A second record at 12 finds its left window holding a record at 12: all its windows exist,
    // so it only updates them, latest start first.
    assert_eq!(step(12), vec!["[6,16]=2", "[4,14]=3", "[2,12]=5"]);
}

#[test]
fn suppress_until_time_limit_holds_each_key_from_its_first_update() {
    let b = StreamsBuilder::new();
    b.table("in", Consumed::with(s(), s()), Materialized::as_("t"))
        .suppress_until_time_limit(Duration::from_millis(10), BufferConfig::unbounded())
        .to_stream()
        .to("out", Produced::with(s(), s()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), s());
    let kv = |k: &str, v: &str| (Some(k.to_string()), Some(v.to_string()));
    for (k, v, ts) in [("a", "1", 0), ("a", "2", 3), ("b", "x", 5)] {
        let (k, v) = kv(k, v);
        i.pipe_input_at(k.as_ref(), v.as_ref(), ts).unwrap();
    }
    assert!(out.is_empty(), "nothing is due before stream time 10");
    let (k, v) = kv("c", "y");
    i.pipe_input_at(k.as_ref(), v.as_ref(), 10).unwrap();
    // `a` was first buffered at 0: due at 10, with its latest value only.
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![kv("a", "2")]);
    let (k, v) = kv("a", "3");
    i.pipe_input_at(k.as_ref(), v.as_ref(), 16).unwrap();
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![kv("b", "x")]);
    let (k, v) = kv("z", "z");
    i.pipe_input_at(k.as_ref(), v.as_ref(), 26).unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![kv("c", "y"), kv("a", "3")]
    );
}

#[test]
fn suppress_until_time_limit_full_buffer_emits_early_or_fails() {
    let run = |buffer: BufferConfig| {
        let b = StreamsBuilder::new();
        b.table("in", Consumed::with(s(), s()), Materialized::as_("t"))
            .suppress_until_time_limit(Duration::from_secs(60), buffer)
            .to_stream()
            .to("out", Produced::with(s(), s()));
        let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let mut i = d.create_input_topic("in", s(), s());
        let out = d.create_output_topic("out", s(), s());
        let mut results = Vec::new();
        for (k, ts) in [("a", 0), ("b", 1), ("c", 2)] {
            let (k, v) = (Some(k.to_string()), Some("v".to_string()));
            results.push(i.pipe_input_at(k.as_ref(), v.as_ref(), ts).is_ok());
        }
        (results, out.read_key_values_to_list().unwrap())
    };
    let (ok, emitted) = run(BufferConfig::max_records(2));
    assert_eq!(ok, vec![true, true, true]);
    assert_eq!(
        emitted,
        vec![(Some("a".to_string()), Some("v".to_string()))]
    );
    let (ok, emitted) = run(BufferConfig::max_records(2).shut_down_when_full());
    assert_eq!(ok, vec![true, true, false]);
    assert!(emitted.is_empty());
}

fn fk_join_topology(left: bool) -> Topology {
    let b = StreamsBuilder::new();
    let orders = b.table(
        "orders",
        Consumed::with(s(), s()),
        Materialized::as_("orders"),
    );
    let customers = b.table(
        "customers",
        Consumed::with(s(), s()),
        Materialized::as_("customers"),
    );
    // order value "<customer>:<item>"; an empty customer means no foreign key.
    let fk = |v: &String| {
        let c = v.split(':').next().unwrap_or("");
        (!c.is_empty()).then(|| c.to_string())
    };
    let joined = if left {
        orders.left_join_foreign_key(&customers, fk, |o: &String, c: Option<&String>| {
            format!("{o}/{}", c.map_or("-", |c| c.as_str()))
        })
    } else {
        orders.join_foreign_key(&customers, fk, |o: &String, c: &String| format!("{o}/{c}"))
    };
    joined.to_stream().to("out", Produced::with(s(), s()));
    b.build().unwrap()
}

#[test]
fn foreign_key_join_follows_both_tables() {
    let topo = fk_join_topology(false);
    let desc = topo.describe();
    assert!(
        desc.contains("KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-"),
        "{desc}"
    );
    let d = TopologyTestDriver::new(topo).unwrap();
    let mut orders = d.create_input_topic("orders", s(), s());
    let mut customers = d.create_input_topic("customers", s(), s());
    let out = d.create_output_topic("out", s(), s());
    let put = |t: &mut strom_streams::test_driver::TestInputTopic<String, String>,
               k: &str,
               v: Option<&str>| {
        t.pipe_input_at(Some(&k.to_string()), v.map(str::to_string).as_ref(), 0)
            .unwrap()
    };
    let kv = |k: &str, v: Option<&str>| (Some(k.to_string()), v.map(str::to_string));
    put(&mut orders, "o1", Some("c1:book"));
    assert!(out.is_empty(), "inner join: no customer c1 yet");
    put(&mut customers, "c1", Some("Ann"));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![kv("o1", Some("c1:book/Ann"))]
    );
    put(&mut orders, "o2", Some("c1:pen"));
    put(&mut customers, "c2", Some("Bob"));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![kv("o2", Some("c1:pen/Ann"))]
    );
    // A right-side update reaches every order of that customer.
    put(&mut customers, "c1", Some("Anna"));
    let mut got = out.read_key_values_to_list().unwrap();
    got.sort();
    assert_eq!(
        got,
        vec![
            kv("o1", Some("c1:book/Anna")),
            kv("o2", Some("c1:pen/Anna"))
        ]
    );
    // Changing the foreign key re-joins with the new customer, and the old one no longer
    // reaches this order.
    put(&mut orders, "o1", Some("c2:book"));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![kv("o1", Some("c2:book/Bob"))]
    );
    put(&mut customers, "c1", Some("Annie"));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![kv("o2", Some("c1:pen/Annie"))]
    );
    // Deleting the customer retracts the inner-join result; deleting an order too.
    put(&mut customers, "c2", None);
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![kv("o1", None)]);
    put(&mut orders, "o2", None);
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![kv("o2", None)]);
}

#[test]
fn foreign_key_left_join_keeps_rows_without_match() {
    let d = TopologyTestDriver::new(fk_join_topology(true)).unwrap();
    let mut orders = d.create_input_topic("orders", s(), s());
    let mut customers = d.create_input_topic("customers", s(), s());
    let out = d.create_output_topic("out", s(), s());
    let kv = |k: &str, v: &str| (Some(k.to_string()), Some(v.to_string()));
    let (o1, c1) = (Some("o1".to_string()), Some("c1".to_string()));
    orders
        .pipe_input_at(o1.as_ref(), Some(&"c1:book".to_string()), 0)
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![kv("o1", "c1:book/-")]
    );
    customers
        .pipe_input_at(c1.as_ref(), Some(&"Ann".to_string()), 0)
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![kv("o1", "c1:book/Ann")]
    );
    // No foreign key at all: joined with None.
    orders
        .pipe_input_at(o1.as_ref(), Some(&":book".to_string()), 0)
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![kv("o1", ":book/-")]
    );
    // The old customer's updates no longer reach the order.
    customers
        .pipe_input_at(c1.as_ref(), Some(&"Anna".to_string()), 0)
        .unwrap();
    assert!(out.is_empty());
}
