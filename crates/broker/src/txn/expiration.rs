//! Forgetting idle producers, as Kafka does:
//!
//! - `transactional.id.expiration.ms` (7 days): a transactional id whose last transaction ended
//!   (or that never began one) longer ago than this is removed from the coordinator, with a
//!   tombstone in `__transaction_state`; the next InitProducerId with it gets a new producer id.
//!   Checked every `transaction.remove.expired.transaction.cleanup.interval.ms` (1 hour).
//! - `producer.id.expiration.ms` (1 day): each partition forgets a producer that has written
//!   nothing to it for this long (`Log::remove_expired_producers`); checked every
//!   `producer.id.expiration.check.interval.ms` (10 minutes).
//!
//! Owns the two periodic passes and their settings. Must not touch open transactions: an id
//! with a transaction in progress, or a producer with an open transaction on a partition, stays.

use super::coordinator::TransactionCoordinator;
use super::metadata::TransactionState;
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::handlers::now_ms;
use anyhow::bail;
use std::sync::Arc;
use std::time::Duration;

/// The broker keys read here (all positive milliseconds).
pub const EXPIRATION_KEYS: &[&str] = &[
    "transactional.id.expiration.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "producer.id.expiration.ms",
    "producer.id.expiration.check.interval.ms",
];

/// The expiration settings, read from the broker's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpirationSettings {
    pub transactional_id_expiration_ms: i64,
    pub transactional_id_check_interval_ms: i64,
    pub producer_id_expiration_ms: i64,
    pub producer_id_check_interval_ms: i64,
}

/// A positive millisecond setting; the error names the key as Kafka's ConfigException does.
fn positive_ms(config: &BrokerConfig, key: &str, default: i64) -> anyhow::Result<i64> {
    let Some(raw) = config.explicit.get(key) else {
        return Ok(default);
    };
    match raw.trim().parse::<i64>() {
        Ok(v) if v >= 1 => Ok(v),
        Ok(_) => bail!("Invalid value {raw} for configuration {key}: Value must be at least 1"),
        Err(_) => bail!("Invalid value {raw} for configuration {key}: Not a number of type LONG"),
    }
}

impl ExpirationSettings {
    pub fn from_config(config: &BrokerConfig) -> anyhow::Result<ExpirationSettings> {
        Ok(ExpirationSettings {
            transactional_id_expiration_ms: positive_ms(
                config,
                "transactional.id.expiration.ms",
                604_800_000,
            )?,
            transactional_id_check_interval_ms: positive_ms(
                config,
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                3_600_000,
            )?,
            producer_id_expiration_ms: positive_ms(
                config,
                "producer.id.expiration.ms",
                86_400_000,
            )?,
            producer_id_check_interval_ms: positive_ms(
                config,
                "producer.id.expiration.check.interval.ms",
                600_000,
            )?,
        })
    }
}

impl TransactionCoordinator {
    /// Removes every transactional id with no transaction in progress whose last update is older
    /// than `max_age_ms`, writing its tombstone first; returns how many went.
    pub fn expire_transactional_ids(&self, broker: &Broker, now: i64, max_age_ms: i64) -> usize {
        let horizon = now.saturating_sub(max_age_ms);
        let mut txns = self.txns.lock();
        let expired: Vec<String> = txns
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TransactionState::Empty
                        | TransactionState::CompleteCommit
                        | TransactionState::CompleteAbort
                ) && m.last_update_ms < horizon
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        let mut removed = 0;
        for id in expired {
            match self.write_record(broker, &id, None) {
                Ok(()) => {
                    tracing::info!(transactional_id = %id, "expired an idle transactional id");
                    txns.remove(&id);
                    removed += 1;
                }
                Err(code) => {
                    tracing::warn!(transactional_id = %id, ?code, "writing a transactional id tombstone failed");
                }
            }
        }
        removed
    }
}

/// Every partition on this node forgets producers idle for `max_age_ms`.
pub fn expire_producer_ids(broker: &Broker, now: i64, max_age_ms: i64) -> usize {
    broker
        .replicas
        .all()
        .iter()
        .map(|p| p.log.remove_expired_producers(now, max_age_ms))
        .sum()
}

/// Starts both passes; fails (naming the key) when a setting is invalid.
pub fn spawn(broker: &Arc<Broker>) -> anyhow::Result<()> {
    let settings = ExpirationSettings::from_config(&broker.config)?;
    let b = broker.clone();
    tokio::spawn(async move {
        let period = Duration::from_millis(settings.transactional_id_check_interval_ms as u64);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate: nothing can have expired yet
        loop {
            tick.tick().await;
            let b2 = b.clone();
            let max_age = settings.transactional_id_expiration_ms;
            if tokio::task::spawn_blocking(move || {
                b2.txn.expire_transactional_ids(&b2, now_ms(), max_age)
            })
            .await
            .is_err()
            {
                tracing::error!("transactional id expiration panicked");
            }
        }
    });
    let b = broker.clone();
    tokio::spawn(async move {
        let period = Duration::from_millis(settings.producer_id_check_interval_ms as u64);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let b2 = b.clone();
            let max_age = settings.producer_id_expiration_ms;
            if tokio::task::spawn_blocking(move || expire_producer_ids(&b2, now_ms(), max_age))
                .await
                .is_err()
            {
                tracing::error!("producer id expiration panicked");
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_refuse_bad_values() {
        let c = BrokerConfig::from_pairs(vec![]).unwrap();
        let s = ExpirationSettings::from_config(&c).unwrap();
        assert_eq!(s.transactional_id_expiration_ms, 604_800_000);
        assert_eq!(s.producer_id_expiration_ms, 86_400_000);
        let c = BrokerConfig::from_pairs(vec![("producer.id.expiration.ms".into(), "2000".into())])
            .unwrap();
        let s = ExpirationSettings::from_config(&c).unwrap();
        assert_eq!(s.producer_id_expiration_ms, 2000);
        for (key, bad) in [
            ("producer.id.expiration.ms", "0"),
            ("transactional.id.expiration.ms", "soon"),
        ] {
            let e = BrokerConfig::from_pairs(vec![(key.into(), bad.into())])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(key), "{key}={bad}: {e}");
        }
    }
}
