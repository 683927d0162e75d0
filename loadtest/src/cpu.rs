//! CPU time of running processes, read from `/proc/PID/stat`, so that a run can say how much
//! CPU each part of the system spent per request. On a machine where the load generator, the
//! root and the leaves share the cores, that is what bounds throughput: a system spending
//! `c` CPU-µs per request on `n` cores cannot serve more than `n / c` requests per µs.
//! Also the CPU of this process and its reaped children, for runs whose processes have exited
//! by the time they are counted.

use std::collections::BTreeMap;
use std::time::Duration;

/// The processes to account for, each under a role (`root`, `leaves`, `load generator`);
/// processes of one role are summed.
#[derive(Clone, Debug, Default)]
pub struct CpuMeter {
    processes: Vec<(String, u32)>,
}

impl CpuMeter {
    /// Accounts for this process under `role`.
    pub fn with_self(mut self, role: &str) -> Self {
        self.processes.push((role.to_string(), std::process::id()));
        self
    }

    /// Accounts for process `pid` under `role`.
    pub fn with(mut self, role: &str, pid: u32) -> Self {
        self.processes.push((role.to_string(), pid));
        self
    }

    /// CPU time (user + system) used so far, per role. A process that has gone counts nothing.
    pub fn sample(&self) -> BTreeMap<String, Duration> {
        let mut by_role = BTreeMap::new();
        for (role, pid) in &self.processes {
            let used = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| cpu_of_stat(&stat))
                .unwrap_or_default();
            *by_role.entry(role.clone()).or_default() += used;
        }
        by_role
    }
}

/// CPU seconds used so far by this process and by its reaped children: for processes that are
/// gone by the time they are counted, which `/proc` no longer shows.
pub fn cpu_seconds() -> (f64, f64) {
    use nix::sys::resource::{getrusage, UsageWho};
    let secs = |who| {
        getrusage(who).map_or(0.0, |u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
    };
    (secs(UsageWho::RUSAGE_SELF), secs(UsageWho::RUSAGE_CHILDREN))
}

/// CPU µs per request per role between two samples, over `requests`.
pub fn per_request(
    before: &BTreeMap<String, Duration>,
    after: &BTreeMap<String, Duration>,
    requests: u64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(role, used)| {
            let spent = used.saturating_sub(before.get(role).copied().unwrap_or_default());
            (
                role.clone(),
                spent.as_secs_f64() * 1e6 / requests.max(1) as f64,
            )
        })
        .collect()
}

/// utime + stime of a `/proc/PID/stat` line. The command name (field 2) is in parentheses and
/// may hold spaces or parentheses itself, so fields are counted from the last `)`.
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14 and stime field 15 of proc(5).
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&hz| hz > 0)
        .unwrap_or(100) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / per_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_a_name_with_spaces_and_parentheses() {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as u64;
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 120 0 0 0 \
                    250 50 0 0 20 0 3 0 100 1000 100";
        assert_eq!(
            cpu_of_stat(stat),
            Some(Duration::from_micros(300 * 1_000_000 / hz))
        );
        assert_eq!(cpu_of_stat("garbage"), None);
    }

    #[test]
    fn this_process_uses_cpu_and_a_vanished_one_none() {
        let meter = CpuMeter::default()
            .with_self("me")
            .with("gone", u32::MAX - 1);
        let before = meter.sample();
        // Burn a little CPU so that the clock ticks at least once.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = meter.sample();
        assert!(after["me"] > before["me"], "{before:?} {after:?}");
        assert_eq!(after["gone"], Duration::ZERO);
        let per = per_request(&before, &after, 10);
        assert!(per["me"] > 0.0 && per["gone"] == 0.0, "{per:?}");
    }
}
