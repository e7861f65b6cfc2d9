//! The process's own gauges under the names every Prometheus client library uses
//! (`process_*`; the JMX exporter's Java client reports the same for a Kafka JVM), plus uptime.
//! Read from /proc at scrape time; on systems without /proc only uptime is reported.

use super::exposition::Exposition;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Linux reports CPU times in clock ticks of USER_HZ, which is 100 on every architecture
/// Linux supports today (the kernel's ABI fixes it, independent of CONFIG_HZ).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// When the broker started, as a monotonic instant and as wall-clock seconds since the epoch.
pub struct StartTime {
    instant: Instant,
    epoch_seconds: f64,
}

impl StartTime {
    pub fn now() -> StartTime {
        StartTime {
            instant: Instant::now(),
            epoch_seconds: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn virtual_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User plus system CPU time: fields 14 and 15 of /proc/self/stat.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field 14 is index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLOCK_TICKS_PER_SECOND)
}

fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files  <soft>  <hard>  files": the soft limit is what the process hits.
    line.split_whitespace().nth(3)?.parse().ok()
}

pub fn write(start: &StartTime, e: &mut Exposition) {
    if let Some(v) = resident_bytes() {
        e.single(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            v,
        );
    }
    if let Some(v) = virtual_bytes() {
        e.single(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            v,
        );
    }
    if let Some(v) = cpu_seconds() {
        e.single(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            v,
        );
    }
    if let Some(v) = open_fds() {
        e.single("process_open_fds", "gauge", "Open file descriptors.", v);
    }
    if let Some(v) = max_fds() {
        e.single(
            "process_max_fds",
            "gauge",
            "The soft limit on open file descriptors.",
            v,
        );
    }
    e.single(
        "process_start_time_seconds",
        "gauge",
        "When the broker started, in seconds since the Unix epoch.",
        start.epoch_seconds,
    );
    e.single(
        "strom_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
        start.instant.elapsed().as_secs_f64(),
    );
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_from_proc() {
        assert!(resident_bytes().expect("rss") > 0);
        assert!(open_fds().expect("fds") >= 1);
        assert!(max_fds().expect("max fds") >= open_fds().expect("fds"));
        assert!(cpu_seconds().expect("cpu") >= 0.0);
    }
}
