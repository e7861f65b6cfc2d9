//! Enrich: a stream of orders (key = customer id) joined with a customers table (key = customer
//! id, value = name). `--input orders,customers`; output value "<order>|<name or unknown>".

use clap::Parser;
use strom_streams::cli::{ExampleArgs, run};
use strom_streams::*;

fn main() -> anyhow::Result<()> {
    let args = ExampleArgs::parse();
    let topics: Vec<&str> = args.input.split(',').map(str::trim).collect();
    let [orders, customers] = topics[..] else {
        anyhow::bail!("--input takes two topics: <orders>,<customers>");
    };
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let table = b.table(
        customers,
        Consumed::with(s(), s()),
        Materialized::as_("customers-store"),
    );
    b.stream(orders, Consumed::with(s(), s()))
        .left_join_table(&table, |order: &String, name: Option<&String>| {
            format!("{order}|{}", name.map_or("unknown", |n| n.as_str()))
        })
        .to(&args.output, Produced::with(s(), s()));
    run(b.build()?, &args)
}
