//! Windowed counts per key: tumbling (1 minute), hopping (1 minute every 30 s) with a 10 s grace.
//! Output keys are Kafka's windowed keys (key bytes + 8-byte window start), values 8-byte i64; the
//! tumbling counts go to `<output>`, the hopping ones to `<output>-hopping`.

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
    run(b.build()?, &args)
}
