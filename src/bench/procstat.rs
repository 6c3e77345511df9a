//! What `/proc` says about a process and the machine: peak resident memory, CPU time, load.
//!
//! The machine this runs on is usually shared, so the benchmark reports who used the CPU
//! during each phase (daemon, broker, everything else) next to its figures.

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`): 100 on every Linux platform
/// Rust supports; asked of `getconf CLK_TCK` when it answers.
fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in bytes.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Peak resident set size of a live process (`VmHWM`), in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM")
}

/// Current resident set size of a live process (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS")
}

/// User + system CPU time a live process used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / ticks_per_sec()))
}

/// Busy and total CPU time of the whole machine so far (all cores), from `/proc/stat`.
pub fn machine_cpu() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    let hz = ticks_per_sec();
    Some((
        Duration::from_secs_f64((total - idle) / hz),
        Duration::from_secs_f64(total / hz),
    ))
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Online CPU cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU use over a phase: the daemon, the broker, and the rest of the machine.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: std::time::Instant,
    daemon: Option<Duration>,
    broker: Option<Duration>,
    machine_busy: Option<Duration>,
}

/// Cores' worth of CPU each party used between two snapshots (1.0 = one core fully busy).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuShare {
    pub daemon_cores: Option<f64>,
    pub broker_cores: Option<f64>,
    /// Everything else on the machine (other sessions' builds, this harness).
    pub others_cores: Option<f64>,
}

impl CpuSnapshot {
    pub fn take(daemon: Option<u32>, broker: Option<u32>) -> Self {
        CpuSnapshot {
            at: std::time::Instant::now(),
            daemon: daemon.and_then(cpu_time),
            broker: broker.and_then(cpu_time),
            machine_busy: machine_cpu().map(|(busy, _)| busy),
        }
    }

    /// What was used from `self` until `later`.
    pub fn share_until(&self, later: &CpuSnapshot) -> CpuShare {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall <= 0.0 {
            return CpuShare::default();
        }
        let used = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / wall),
            _ => None,
        };
        let daemon = used(self.daemon, later.daemon);
        let broker = used(self.broker, later.broker);
        let machine = used(self.machine_busy, later.machine_busy);
        let others = machine.map(|m| (m - daemon.unwrap_or(0.0) - broker.unwrap_or(0.0)).max(0.0));
        CpuShare {
            daemon_cores: daemon,
            broker_cores: broker,
            others_cores: others,
        }
    }
}

/// Size of a file, 0 if it cannot be read.
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_peak_and_cpu_time() {
        let pid = std::process::id();
        let rss = rss_bytes(pid).unwrap();
        let peak = peak_rss_bytes(pid).unwrap();
        assert!(peak >= rss, "the peak is at least what is resident now");
        assert!(peak > 1 << 20, "a test process holds more than 1 MB");
        let before = cpu_time(pid).unwrap();
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(150) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_time(pid).unwrap() > before, "busy looping used CPU");
        let (busy, total) = machine_cpu().unwrap();
        assert!(busy <= total);
    }
}
