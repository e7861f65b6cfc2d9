//! The Processor API (Kafka's `processor.api.Processor`): what a node of the graph does with each
//! record. The context a processor sees lives in `task.rs`, next to the task that owns the state.

use crate::error::Result;
use crate::record::Record;
use crate::state::FlushedEntry;
pub use crate::task::ProcessorContext;

/// Kafka's PunctuationType.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PunctuationType {
    /// Driven by record timestamps (stream time).
    StreamTime,
    /// Driven by the system clock.
    WallClockTime,
}

/// A processor: `init` once per task, `process` per record, `close` at the end.
pub trait Processor: Send {
    fn init(&mut self, _ctx: &mut ProcessorContext<'_>) -> Result<()> {
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record) -> Result<()>;
    /// A punctuator scheduled with `ctx.schedule` fired; `id` is what `schedule` returned.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_>,
        _id: u64,
        _timestamp: i64,
    ) -> Result<()> {
        Ok(())
    }
    /// The record cache of a store this processor listens to (`ctx.set_flush_listener`) was flushed.
    fn on_cache_flush(
        &mut self,
        _ctx: &mut ProcessorContext<'_>,
        _store: &str,
        _entries: Vec<FlushedEntry>,
    ) -> Result<()> {
        Ok(())
    }
    fn close(&mut self) {}
}

/// A processor from a closure, for simple stateless nodes.
pub struct FnProcessor<F>(pub F);

impl<F> Processor for FnProcessor<F>
where
    F: FnMut(&mut ProcessorContext<'_>, Record) -> Result<()> + Send,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record) -> Result<()> {
        (self.0)(ctx, record)
    }
}
