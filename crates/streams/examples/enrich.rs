//! Enrich: orders (key = customer id, value = product id) joined with a customers table
//! (stream-table join, key = customer id, value = name) and a products GlobalKTable (key = product
//! id, value = product name, found through the order's value).
//! `--input orders,customers,products`; output value "<product id>|<customer name>|<product name>",
//! with "unknown" where a table has no row.

use clap::Parser;
use strom_streams::cli::{ExampleArgs, run};
use strom_streams::*;

fn main() -> anyhow::Result<()> {
    let args = ExampleArgs::parse();
    let topics: Vec<&str> = args.input.split(',').map(str::trim).collect();
    let [orders, customers, products] = topics[..] else {
        anyhow::bail!("--input takes three topics: <orders>,<customers>,<products>");
    };
    let b = StreamsBuilder::new();
    let s = Serdes::string;
    let customers = b.table(
        customers,
        Consumed::with(s(), s()),
        Materialized::as_("customers-store"),
    );
    let products = b.global_table(
        products,
        Consumed::with(s(), s()),
        Materialized::as_("products-store"),
    );
    b.stream(orders, Consumed::with(s(), s()))
        .left_join_table(&customers, |product: &String, name: Option<&String>| {
            format!("{product}|{}", name.map_or("unknown", |n| n.as_str()))
        })
        .left_join_global(
            &products,
            |_, v: &String| v.split('|').next().unwrap_or("").to_string(),
            |v: &String, p: Option<&String>| format!("{v}|{}", p.map_or("unknown", |p| p.as_str())),
        )
        .to(&args.output, Produced::with(s(), s()));
    run(b.build()?, &args)
}
