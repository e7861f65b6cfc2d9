//! Exponential backoff, the one schedule behind the worker's waits: `errors.retry.*` between
//! tries of a record operation and `errors.restart.*` between restarts of a failed task.

use std::time::Duration;

/// `first` doubled `doublings` times, capped at `max` (saturating: huge counts give `max`).
pub fn doubling(first: Duration, doublings: u32, max: Duration) -> Duration {
    first
        .saturating_mul(2u32.saturating_pow(doublings.min(31)))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let ms = |n| doubling(Duration::from_millis(300), n, Duration::from_secs(2)).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4)],
            [300, 600, 1200, 2000, 2000]
        );
        assert_eq!(ms(u32::MAX), 2000);
        assert_eq!(
            doubling(Duration::from_secs(u64::MAX / 4), 40, Duration::MAX),
            Duration::MAX
        );
    }
}
