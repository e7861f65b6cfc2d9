//! Window definitions (Kafka's TimeWindows, SlidingWindows, SessionWindows, JoinWindows) and the
//! windowed key type. Only the arithmetic lives here; stores and processors use it.

use std::time::Duration;

/// A time interval [start, end) as Kafka's `Window` (session windows are inclusive of both ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn new(start: i64, end: i64) -> Self {
        Window { start, end }
    }
}

/// Kafka's `Windowed<K>`: a key and the window it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Windowed<K> {
    pub key: K,
    pub window: Window,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Tumbling (advance = size) or hopping windows with a grace period.
#[derive(Clone, Copy, Debug)]
pub struct TimeWindows {
    pub size_ms: i64,
    pub advance_ms: i64,
    pub grace_ms: i64,
}

impl TimeWindows {
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        TimeWindows {
            size_ms: ms(size).max(1),
            advance_ms: ms(size).max(1),
            grace_ms: ms(grace),
        }
    }
    /// Makes the windows hopping. Kafka requires 0 < advance <= size; larger values are clamped.
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = ms(advance).clamp(1, self.size_ms);
        self
    }
    /// Every window [start, start+size) that contains `ts`, oldest first.
    pub fn windows_for(&self, ts: i64) -> Vec<Window> {
        let mut out = Vec::new();
        let last_start = ts - ts.rem_euclid(self.advance_ms);
        let mut start = last_start;
        while start > ts - self.size_ms {
            if start >= 0 {
                out.push(Window::new(start, start + self.size_ms));
            }
            start -= self.advance_ms;
        }
        out.reverse();
        out
    }
}

/// Kafka's SlidingWindows: a window [t - diff, t] for each record, aggregating everything within `diff`.
#[derive(Clone, Copy, Debug)]
pub struct SlidingWindows {
    pub time_difference_ms: i64,
    pub grace_ms: i64,
}

impl SlidingWindows {
    pub fn of_time_difference_with_no_grace(d: Duration) -> Self {
        Self::of_time_difference_and_grace(d, Duration::ZERO)
    }
    pub fn of_time_difference_and_grace(d: Duration, grace: Duration) -> Self {
        SlidingWindows {
            time_difference_ms: ms(d),
            grace_ms: ms(grace),
        }
    }
}

/// Kafka's SessionWindows: records of a key closer than `gap` apart belong to one session.
#[derive(Clone, Copy, Debug)]
pub struct SessionWindows {
    pub gap_ms: i64,
    pub grace_ms: i64,
}

impl SessionWindows {
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap_ms: ms(gap),
            grace_ms: ms(grace),
        }
    }
}

/// Kafka's JoinWindows: two records join when `other.ts` is within [ts - before, ts + after].
#[derive(Clone, Copy, Debug)]
pub struct JoinWindows {
    pub before_ms: i64,
    pub after_ms: i64,
    pub grace_ms: i64,
}

impl JoinWindows {
    pub fn of_time_difference_with_no_grace(d: Duration) -> Self {
        Self::of_time_difference_and_grace(d, Duration::ZERO)
    }
    pub fn of_time_difference_and_grace(d: Duration, grace: Duration) -> Self {
        JoinWindows {
            before_ms: ms(d),
            after_ms: ms(d),
            grace_ms: ms(grace),
        }
    }
    pub fn before(mut self, d: Duration) -> Self {
        self.before_ms = ms(d);
        self
    }
    pub fn after(mut self, d: Duration) -> Self {
        self.after_ms = ms(d);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_hopping_edges() {
        let t = TimeWindows::of_size_with_no_grace(Duration::from_millis(10));
        assert_eq!(t.windows_for(0), vec![Window::new(0, 10)]);
        assert_eq!(t.windows_for(9), vec![Window::new(0, 10)]);
        assert_eq!(t.windows_for(10), vec![Window::new(10, 20)]);
        let h = t.advance_by(Duration::from_millis(5));
        assert_eq!(
            h.windows_for(12),
            vec![Window::new(5, 15), Window::new(10, 20)]
        );
        assert_eq!(h.windows_for(3), vec![Window::new(0, 10)]);
    }
}
