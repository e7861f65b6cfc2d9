//! WordCount, as Kafka's WordCountDemo: lines in, (word, count) out with the word as UTF-8 and the
//! count as an 8-byte big-endian i64 (Kafka's LongSerializer).

use clap::Parser;
use strom_streams::cli::{ExampleArgs, run};
use strom_streams::*;

fn main() -> anyhow::Result<()> {
    let args = ExampleArgs::parse();
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    b.stream(&args.input, Consumed::with(s(), s()))
        .flat_map_values(|line: &String| {
            line.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, w: &String| w.clone(), Grouped::with(s(), s()))
        .count(Materialized::as_("counts-store"))
        .to_stream()
        .to(&args.output, Produced::with(s(), Serdes::i64()));
    run(b.build()?, &args)
}
