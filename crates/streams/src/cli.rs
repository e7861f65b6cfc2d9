//! The command line shared by the example programs: `--bootstrap-servers --input --output
//! --application-id --state-dir --processing-guarantee`, and the run-until-signal loop.

use std::time::Duration;

use crate::config::StreamsConfig;
use crate::runtime::{KafkaStreams, State};
use crate::topology::Topology;

#[derive(clap::Parser, Debug, Clone)]
pub struct ExampleArgs {
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_servers: String,
    /// Input topic(s), comma-separated for programs that read more than one.
    #[arg(long)]
    pub input: String,
    #[arg(long)]
    pub output: String,
    #[arg(long)]
    pub application_id: String,
    #[arg(long, default_value_t = std::env::temp_dir().join("kafka-streams").display().to_string())]
    pub state_dir: String,
    /// at_least_once or exactly_once_v2.
    #[arg(long, default_value = "at_least_once")]
    pub processing_guarantee: String,
    #[arg(long, default_value_t = 1)]
    pub num_stream_threads: usize,
    #[arg(long)]
    pub commit_interval_ms: Option<u64>,
    /// Any other StreamsConfig property, as key=value (repeatable), e.g.
    /// `--config consumer.session.timeout.ms=6000`.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub extra: Vec<String>,
    /// Print the topology description and exit.
    #[arg(long)]
    pub describe: bool,
}

impl ExampleArgs {
    pub fn config(&self) -> anyhow::Result<StreamsConfig> {
        let mut props = vec![
            ("application.id".to_string(), self.application_id.clone()),
            (
                "bootstrap.servers".to_string(),
                self.bootstrap_servers.clone(),
            ),
            ("state.dir".to_string(), self.state_dir.clone()),
            (
                "processing.guarantee".to_string(),
                self.processing_guarantee.clone(),
            ),
            (
                "num.stream.threads".to_string(),
                self.num_stream_threads.to_string(),
            ),
        ];
        if let Some(c) = self.commit_interval_ms {
            props.push(("commit.interval.ms".to_string(), c.to_string()));
        }
        for kv in &self.extra {
            let Some((k, v)) = kv.split_once('=') else {
                anyhow::bail!("--config takes KEY=VALUE, got '{kv}'");
            };
            props.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(StreamsConfig::from_props(props)?)
    }
}

/// Starts the topology and runs until SIGINT/SIGTERM (then closes cleanly) or a thread fails.
pub fn run(topology: Topology, args: &ExampleArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,librdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    if args.describe {
        print!("{}", topology.describe());
        return Ok(());
    }
    let mut streams = KafkaStreams::new(topology, args.config()?)?;
    streams.start()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let failed = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok::<_, anyhow::Error>(None),
                _ = term.recv() => return Ok(None),
                _ = tick.tick() => {
                    if streams.state() == State::Error {
                        return Ok(Some(streams.error().unwrap_or_default()));
                    }
                }
            }
        }
    })?;
    streams.close();
    if let Some(e) = failed {
        anyhow::bail!("stream thread failed: {e}");
    }
    Ok(())
}
