//! Joins (stream-stream with JoinWindows, table-table) and the Processor API with stores and
//! punctuators, through the TopologyTestDriver.

use std::sync::Arc;
use std::time::Duration;

use strom_streams::serde::ErasedSerde;
use strom_streams::topology::SinkTopic;
use strom_streams::*;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn stream_join(kind: &str) -> Vec<(Option<String>, Option<String>)> {
    let b = StreamsBuilder::new();
    let l = b.stream("left", Consumed::with(s(), s()));
    let r = b.stream("right", Consumed::with(s(), s()));
    let w = JoinWindows::of_time_difference_and_grace(
        Duration::from_millis(10),
        Duration::from_millis(5),
    );
    let joined = match kind {
        "inner" => l.join(&r, |a, b| format!("{a}+{b}"), w),
        "left" => l.left_join(
            &r,
            |a, b| format!("{a}+{}", b.map_or("null", |b| b.as_str())),
            w,
        ),
        _ => l.outer_join(
            &r,
            |a, b| {
                format!(
                    "{}+{}",
                    a.map_or("null", |a| a.as_str()),
                    b.map_or("null", |b| b.as_str())
                )
            },
            w,
        ),
    };
    joined.to("out", Produced::with(s(), s()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut li = d.create_input_topic("left", s(), s());
    let mut ri = d.create_input_topic("right", s(), s());
    let k = |x: &str| Some(x.to_string());
    li.pipe_input_at(k("a").as_ref(), k("L1").as_ref(), 0)
        .unwrap();
    ri.pipe_input_at(k("a").as_ref(), k("R1").as_ref(), 10)
        .unwrap(); // edge: exactly 10 apart joins
    ri.pipe_input_at(k("b").as_ref(), k("R2").as_ref(), 12)
        .unwrap(); // no partner
    li.pipe_input_at(k("c").as_ref(), k("L2").as_ref(), 13)
        .unwrap(); // no partner
    li.pipe_input_at(k("a").as_ref(), k("L3").as_ref(), 21)
        .unwrap(); // 11 after R1: no join
    // Stream time 40 closes the windows of b, c and L3 (ts + 10 + 5 < 40).
    li.pipe_input_at(k("z").as_ref(), k("L4").as_ref(), 40)
        .unwrap();
    d.create_output_topic("out", s(), s())
        .read_key_values_to_list()
        .unwrap()
}

#[test]
fn stream_stream_inner_left_outer() {
    let k = |a: &str, b: &str| (Some(a.to_string()), Some(b.to_string()));
    assert_eq!(stream_join("inner"), vec![k("a", "L1+R1")]);
    assert_eq!(
        stream_join("left"),
        vec![k("a", "L1+R1"), k("c", "L2+null"), k("a", "L3+null")]
    );
    assert_eq!(
        stream_join("outer"),
        vec![
            k("a", "L1+R1"),
            k("b", "null+R2"),
            k("c", "L2+null"),
            k("a", "L3+null")
        ]
    );
}

#[test]
fn table_table_joins() {
    for kind in ["inner", "left", "outer"] {
        let b = StreamsBuilder::new();
        let l = b.table(
            "tl",
            Consumed::with(s(), s()),
            Materialized::as_("tl-store"),
        );
        let r = b.table(
            "tr",
            Consumed::with(s(), s()),
            Materialized::as_("tr-store"),
        );
        let f = |a: Option<&String>, b: Option<&String>| {
            format!(
                "{}/{}",
                a.map_or("-", |a| a.as_str()),
                b.map_or("-", |b| b.as_str())
            )
        };
        let j = match kind {
            "inner" => l.join(&r, move |a, b| f(Some(a), Some(b))),
            "left" => l.left_join(&r, move |a, b| f(Some(a), b)),
            _ => l.outer_join(&r, f),
        };
        j.to_stream().to("out", Produced::with(s(), s()));
        let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let mut li = d.create_input_topic("tl", s(), s());
        let mut ri = d.create_input_topic("tr", s(), s());
        li.pipe_input("k".into(), "a".into()).unwrap();
        ri.pipe_input("k".into(), "x".into()).unwrap();
        ri.pipe_input("j".into(), "y".into()).unwrap();
        li.pipe_input_at(Some(&"k".to_string()), None, 0).unwrap();
        let got: Vec<_> = d
            .create_output_topic("out", s(), s())
            .read_key_values_to_list()
            .unwrap()
            .into_iter()
            .map(|(k, v)| format!("{}={}", k.unwrap(), v.unwrap_or_else(|| "null".into())))
            .collect();
        let want: Vec<&str> = match kind {
            "inner" => vec!["k=a/x", "k=null"],
            "left" => vec!["k=a/-", "k=a/x", "k=null"],
            _ => vec!["k=a/-", "k=a/x", "j=-/y", "k=-/x"],
        };
        assert_eq!(got, want, "{kind} join");
    }
}

/// Counts per key in a Processor API store; a stream-time punctuator every 10 ms forwards all counts.
struct CountProcessor;

impl Processor for CountProcessor {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<()> {
        ctx.schedule(10, PunctuationType::StreamTime);
        ctx.schedule(1000, PunctuationType::WallClockTime);
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let k = r.key_as::<String>().cloned().unwrap_or_default();
        let store = ctx.store("counts")?;
        let n = store
            .get(k.as_bytes())?
            .map(|(_, b)| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
        store.put(k.as_bytes(), Some(&(n + 1).to_be_bytes()), r.timestamp)?;
        Ok(())
    }
    fn punctuate(&mut self, ctx: &mut ProcessorContext<'_>, _id: u64, ts: i64) -> Result<()> {
        for (k, _, v) in ctx.store("counts")?.range(None, None)? {
            let k = String::from_utf8(k).unwrap_or_default();
            let v = i64::from_be_bytes(v.try_into().unwrap_or([0; 8]));
            ctx.forward(Record::new(Some(Arc::new(k)), Some(Arc::new(v)), ts))?;
        }
        Ok(())
    }
}

#[test]
fn processor_api_with_store_and_punctuators() {
    let mut t = Topology::new();
    t.add_source(
        "Source",
        &["in"],
        Some(ErasedSerde::of(s())),
        Some(ErasedSerde::of(s())),
    )
    .unwrap()
    .add_processor(
        "Count",
        Arc::new(|| Box::new(CountProcessor) as Box<dyn Processor>),
        &["Source"],
    )
    .unwrap()
    .add_state_store(
        Stores::key_value_store_builder("counts", s(), Serdes::i64()),
        &["Count"],
    )
    .unwrap()
    .add_sink(
        "Sink",
        SinkTopic::Fixed("out".into()),
        Some(ErasedSerde::of(s())),
        Some(ErasedSerde::of(Serdes::i64())),
        &["Count"],
    )
    .unwrap();
    assert_eq!(
        t.describe(),
        "Topologies:\n   Sub-topology: 0\n    Source: Source (topics: [in])\n      --> Count\n    Processor: Count (stores: [counts])\n      --> Sink\n      <-- Source\n    Sink: Sink (topic: out)\n      <-- Count\n\n"
    );
    let e = Topology::new()
        .add_processor(
            "p",
            Arc::new(|| Box::new(CountProcessor) as Box<dyn Processor>),
            &["nope"],
        )
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("Invalid topology") && e.contains("nope"),
        "{e}"
    );
    let d = TopologyTestDriver::new(t).unwrap();
    let mut i = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), Serdes::i64());
    let k = |x: &str| Some(x.to_string());
    // Stream-time punctuation: fires at the first record (time 0), then at 10, 20 ...
    i.pipe_input_at(k("a").as_ref(), k("1").as_ref(), 0)
        .unwrap();
    i.pipe_input_at(k("b").as_ref(), k("1").as_ref(), 5)
        .unwrap();
    i.pipe_input_at(k("a").as_ref(), k("1").as_ref(), 9)
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(k("a"), Some(1))]
    );
    i.pipe_input_at(k("b").as_ref(), k("1").as_ref(), 12)
        .unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(k("a"), Some(2)), (k("b"), Some(2))]
    );
    // Wall-clock punctuation only when the mock clock moves.
    d.advance_wall_clock_time(999).unwrap();
    assert!(out.is_empty());
    d.advance_wall_clock_time(1).unwrap();
    assert_eq!(out.read_key_values_to_list().unwrap().len(), 2);
    let store = d.key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(store.get(&"a".to_string()).unwrap(), Some(2));
    assert!(
        d.produced_topic_names()
            .contains("dummy-topology-test-driver-app-id-counts-changelog")
    );
}

#[test]
fn dsl_process_with_a_store() {
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value_store_builder(
        "counts",
        s(),
        Serdes::i64(),
    ));
    b.stream("in", Consumed::with(s(), s()))
        .process::<String, i64>(
            Arc::new(|| Box::new(CountProcessor) as Box<dyn Processor>),
            &["counts"],
        )
        .to("out", Produced::with(s(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let mut i = d.create_input_topic("in", s(), s());
    i.pipe_input_at(Some(&"x".to_string()), Some(&"v".to_string()), 0)
        .unwrap();
    let out = d.create_output_topic("out", s(), Serdes::i64());
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(Some("x".to_string()), Some(1))]
    );
}

#[test]
fn stream_global_table_join_with_key_mapper() {
    let b = StreamsBuilder::new();
    let regions = b.global_table(
        "regions",
        Consumed::with(s(), s()),
        Materialized::as_("regions-store"),
    );
    // Orders keyed by order id; the value "customer:region-code" names the table key.
    let orders = b.stream("orders", Consumed::with(s(), s()));
    orders
        .join_global(
            &regions,
            |_, v: &String| v.split(':').nth(1).unwrap_or("").to_string(),
            |v, region| format!("{v}={region}"),
        )
        .to("inner", Produced::with(s(), s()));
    orders
        .left_join_global(
            &regions,
            |_, v: &String| v.split(':').nth(1).unwrap_or("").to_string(),
            |v, region: Option<&String>| format!("{v}={}", region.map_or("?", |r| r.as_str())),
        )
        .to("left", Produced::with(s(), s()));
    let t = b.build().unwrap();
    assert!(
        t.describe()
            .contains("Sub-topology: 1 for global store (will not generate tasks)"),
        "{}",
        t.describe()
    );
    let d = TopologyTestDriver::new(t).unwrap();
    let mut r = d.create_input_topic("regions", s(), s());
    let mut o = d.create_input_topic("orders", s(), s());
    r.pipe_input("eu".into(), "Europe".into()).unwrap();
    o.pipe_input("o1".into(), "ann:eu".into()).unwrap();
    o.pipe_input("o2".into(), "bob:us".into()).unwrap();
    let inner = d.create_output_topic("inner", s(), s());
    assert_eq!(
        inner.read_key_values_to_list().unwrap(),
        vec![(Some("o1".into()), Some("ann:eu=Europe".into()))]
    );
    let left = d.create_output_topic("left", s(), s());
    assert_eq!(
        left.read_values_to_list().unwrap(),
        vec![Some("ann:eu=Europe".into()), Some("bob:us=?".into())]
    );
    let q = d
        .key_value_store::<String, String>("regions-store")
        .unwrap();
    assert_eq!(q.get(&"eu".to_string()).unwrap(), Some("Europe".into()));
}
