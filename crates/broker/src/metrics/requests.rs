//! Request counts and total times by API (Kafka's `kafka.network:type=RequestMetrics`, names
//! RequestsPerSec and TotalTimeMs), recorded once per request by the dispatcher.
//!
//! Fetch is also counted as FetchConsumer or FetchFollower, as Kafka does, so replication and
//! consumer latency can be told apart.

use kafka_protocol::messages::ApiKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the total-time histogram's buckets, in milliseconds (the unit of Kafka's
/// TotalTimeMs). Long-polling fetches wait up to fetch.max.wait.ms (500 ms by default), so the
/// buckets reach well past it.
pub const BUCKETS_MS: [f64; 15] = [
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0,
];

/// API keys are small numbers (the highest Kafka defines is below 100).
const API_SLOTS: usize = 128;
const FETCH_CONSUMER: usize = API_SLOTS;
const FETCH_FOLLOWER: usize = API_SLOTS + 1;

#[derive(Default)]
struct Stats {
    count: AtomicU64,
    sum_micros: AtomicU64,
    /// Per bucket, not cumulative: one add per request; the scrape adds them up.
    buckets: [AtomicU64; BUCKETS_MS.len()],
}

impl Stats {
    fn observe(&self, elapsed: Duration) {
        let micros = elapsed.as_micros().min(u64::MAX as u128) as u64;
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        let ms = micros as f64 / 1000.0;
        // Slower than the last bound: counted in +Inf only, which is `count`.
        if let Some(i) = BUCKETS_MS.iter().position(|b| ms <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One API's values at a scrape.
#[derive(Debug, Clone)]
pub struct RequestTotals {
    /// Kafka's name of the request: the API name, or FetchConsumer / FetchFollower.
    pub request: String,
    pub count: u64,
    pub sum_ms: f64,
    /// Cumulative, one per [`BUCKETS_MS`] bound.
    pub buckets: [u64; BUCKETS_MS.len()],
}

pub struct RequestMetrics {
    slots: Box<[Stats]>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            slots: (0..API_SLOTS + 2).map(|_| Stats::default()).collect(),
        }
    }
}

impl RequestMetrics {
    /// `fetch_from_follower` is `Some` for Fetch requests only.
    pub fn observe(&self, api_key: ApiKey, fetch_from_follower: Option<bool>, elapsed: Duration) {
        if let Some(s) = self.slots.get(api_key as i16 as usize) {
            s.observe(elapsed);
        }
        match fetch_from_follower {
            Some(false) => self.slots[FETCH_CONSUMER].observe(elapsed),
            Some(true) => self.slots[FETCH_FOLLOWER].observe(elapsed),
            None => {}
        }
    }

    /// The APIs requested at least once, in API key order (then FetchConsumer, FetchFollower).
    pub fn totals(&self) -> Vec<RequestTotals> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let count = s.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let request = match i {
                FETCH_CONSUMER => "FetchConsumer".to_string(),
                FETCH_FOLLOWER => "FetchFollower".to_string(),
                _ => match ApiKey::try_from(i as i16) {
                    Ok(k) => format!("{k:?}"),
                    Err(_) => continue,
                },
            };
            let mut buckets = [0u64; BUCKETS_MS.len()];
            let mut running = 0;
            for (b, c) in buckets.iter_mut().zip(s.buckets.iter()) {
                running += c.load(Ordering::Relaxed);
                *b = running;
            }
            out.push(RequestTotals {
                request,
                count,
                sum_ms: s.sum_micros.load(Ordering::Relaxed) as f64 / 1000.0,
                buckets,
            });
        }
        out
    }
}

/// Writes `kafka_network_requestmetrics_requests_total` and the
/// `kafka_network_requestmetrics_totaltimems` histogram, labelled by `request`.
pub fn write(m: &RequestMetrics, e: &mut super::exposition::Exposition) {
    let totals = m.totals();
    let name = "kafka_network_requestmetrics_requests_total";
    e.family(
        name,
        "counter",
        "Requests handled, by API (RequestsPerSec).",
    );
    for t in &totals {
        e.sample(name, &[("request", &t.request)], t.count);
    }
    let name = "kafka_network_requestmetrics_totaltimems";
    e.family(
        name,
        "histogram",
        "Time from a request's arrival to its response being ready, in milliseconds (TotalTimeMs).",
    );
    let bucket = format!("{name}_bucket");
    for t in &totals {
        for (bound, count) in BUCKETS_MS.iter().zip(t.buckets.iter()) {
            let le = bound.to_string();
            e.sample(&bucket, &[("request", &t.request), ("le", &le)], count);
        }
        e.sample(&bucket, &[("request", &t.request), ("le", "+Inf")], t.count);
        e.sample(&format!("{name}_sum"), &[("request", &t.request)], t.sum_ms);
        e.sample(
            &format!("{name}_count"),
            &[("request", &t.request)],
            t.count,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_api_with_cumulative_buckets_and_fetch_split() {
        let m = RequestMetrics::default();
        m.observe(ApiKey::Produce, None, Duration::from_micros(300));
        m.observe(ApiKey::Produce, None, Duration::from_millis(20));
        m.observe(ApiKey::Fetch, Some(true), Duration::from_secs(30));
        let t = m.totals();
        let names: Vec<&str> = t.iter().map(|t| t.request.as_str()).collect();
        assert_eq!(names, ["Produce", "Fetch", "FetchFollower"]);
        let produce = &t[0];
        assert_eq!(produce.count, 2);
        assert!((produce.sum_ms - 20.3).abs() < 1e-9, "{}", produce.sum_ms);
        // 0.3 ms falls in the 0.5 ms bucket, 20 ms in the 25 ms one.
        assert_eq!(produce.buckets[0], 0);
        assert_eq!(produce.buckets[1], 1);
        assert_eq!(produce.buckets[6], 2);
        // 30 s is past every bound: only in +Inf (the count).
        assert_eq!(t[2].buckets[BUCKETS_MS.len() - 1], 0);
        assert_eq!(t[2].count, 1);
    }
}
