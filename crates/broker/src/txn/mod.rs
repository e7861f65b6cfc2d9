//! Transactions: the transaction coordinator and its `__transaction_state` records.

pub mod coordinator;
pub mod expiration;
pub(crate) mod markers;
pub mod metadata;

pub use coordinator::TransactionCoordinator;
pub use metadata::{TransactionMetadata, TransactionState};
