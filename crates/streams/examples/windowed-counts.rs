//! Windowed counts per key, one output topic per window type, all with a 10 s grace:
//! tumbling 1 min -> `<output>`, hopping 1 min every 30 s -> `<output>-hopping`, sliding 1 min ->
//! `<output>-sliding` (keys: key bytes + 8-byte window start, as Kafka's TimeWindowedSerializer),
//! sessions with a 30 s inactivity gap -> `<output>-session` (key + 8-byte end + 8-byte start, as
//! Kafka's SessionWindowedSerializer). Values are 8-byte big-endian i64 counts.

use std::time::Duration;

use clap::Parser;
use strom_streams::cli::{ExampleArgs, run};
use strom_streams::*;

fn main() -> anyhow::Result<()> {
    let args = ExampleArgs::parse();
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let grouped = b
        .stream(&args.input, Consumed::with(s(), s()))
        .group_by_key(Grouped::with(s(), s()));
    let size = Duration::from_secs(60);
    grouped
        .windowed_by(TimeWindows::of_size_and_grace(
            size,
            Duration::from_secs(10),
        ))
        .count(Materialized::as_("tumbling-counts"))
        .to_stream()
        .to(
            &args.output,
            Produced::with(Serdes::time_windowed(s(), 60_000), Serdes::i64()),
        );
    grouped
        .windowed_by(
            TimeWindows::of_size_and_grace(size, Duration::from_secs(10))
                .advance_by(Duration::from_secs(30)),
        )
        .count(Materialized::as_("hopping-counts"))
        .to_stream()
        .to(
            &format!("{}-hopping", args.output),
            Produced::with(Serdes::time_windowed(s(), 60_000), Serdes::i64()),
        );
    grouped
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            size,
            Duration::from_secs(10),
        ))
        .count(Materialized::as_("sliding-counts"))
        .to_stream()
        .to(
            &format!("{}-sliding", args.output),
            Produced::with(Serdes::time_windowed(s(), 60_000), Serdes::i64()),
        );
    grouped
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(30),
            Duration::from_secs(10),
        ))
        .count(Materialized::as_("session-counts"))
        .to_stream()
        .to(
            &format!("{}-session", args.output),
            Produced::with(Serdes::session_windowed(s()), Serdes::i64()),
        );
    run(b.build()?, &args)
}
