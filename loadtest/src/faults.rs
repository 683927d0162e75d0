//! Faults on a schedule, against real processes: pause one (SIGSTOP, then SIGCONT) for a while at
//! a fixed period, or kill one (SIGKILL) at a given time. A paused process keeps its sockets
//! open and answers nothing: exactly a straggler, as the network sees it.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::schedule::pause_windows;
use fanout_proto::args::parse_duration;

/// A fault and its victim.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Pause `pid` for `length` every `every`, from `every` on.
    Pause {
        /// The process, for messages.
        name: String,
        /// Its pid.
        pid: i32,
        /// How often a pause starts.
        every: Duration,
        /// How long each lasts.
        length: Duration,
    },
    /// Kill `pid` at `at`.
    Kill {
        /// The process, for messages.
        name: String,
        /// Its pid.
        pid: i32,
        /// When, from the start of the load.
        at: Duration,
    },
}

/// Resumes a process if the pause is cut short (the run ends, the task is dropped), so that no
/// process is ever left stopped.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

/// Runs the faults from `start` for `duration`; returns when the last one is done.
pub async fn run_faults(faults: Vec<Fault>, start: Instant, duration: Duration) {
    let tasks = faults.into_iter().map(|fault| async move {
        match fault {
            Fault::Pause {
                name,
                pid,
                every,
                length,
            } => {
                for (at, length) in pause_windows(every, length, duration) {
                    tokio::time::sleep_until(start + at).await;
                    tracing::info!(%name, pid, ?length, "pausing");
                    let resume = Resume(pid);
                    if kill(Pid::from_raw(pid), Signal::SIGSTOP).is_err() {
                        return;
                    }
                    tokio::time::sleep(length).await;
                    drop(resume);
                }
            }
            Fault::Kill { name, pid, at } => {
                tokio::time::sleep_until(start + at).await;
                tracing::info!(%name, pid, "killing");
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    });
    futures::future::join_all(tasks).await;
}

/// Parses `NAME:EVERY:LENGTH` (e.g. `leaf-0-0:2s:200ms`) into a name and two durations.
pub fn parse_pause(spec: &str) -> Result<(String, Duration, Duration), String> {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [name, every, length] => Ok((
            name.to_string(),
            parse_duration(every)?,
            parse_duration(length)?,
        )),
        _ => Err(format!(
            "{spec:?}: expected NAME:EVERY:LENGTH, e.g. leaf-0-0:2s:200ms"
        )),
    }
}

/// Parses `NAME:AT` (e.g. `leaf-1-1:10s`).
pub fn parse_kill(spec: &str) -> Result<(String, Duration), String> {
    match spec.split_once(':') {
        Some((name, at)) => Ok((name.to_string(), parse_duration(at)?)),
        None => Err(format!("{spec:?}: expected NAME:AT, e.g. leaf-1-1:10s")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fault_specs() {
        assert_eq!(
            parse_pause("leaf-0-0:2s:200ms").unwrap(),
            (
                "leaf-0-0".to_string(),
                Duration::from_secs(2),
                Duration::from_millis(200)
            )
        );
        assert!(parse_pause("leaf-0-0:2s").is_err());
        assert_eq!(
            parse_kill("leaf-1-1:10s").unwrap(),
            ("leaf-1-1".to_string(), Duration::from_secs(10))
        );
    }

    #[tokio::test]
    async fn pauses_and_resumes_a_real_process() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap() as i32;
        let stat = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = || {
            stat()
                .rsplit(')')
                .next()
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        };
        let fault = Fault::Pause {
            name: "sleep".into(),
            pid,
            every: Duration::from_millis(100),
            length: Duration::from_millis(300),
        };
        let run = tokio::spawn(run_faults(
            vec![fault],
            Instant::now(),
            Duration::from_millis(450),
        ));
        // The pause runs from 100 ms to 400 ms: look for it until the run ends.
        let mut stopped = false;
        while !run.is_finished() && !stopped {
            stopped = state() == "T";
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(stopped, "stopped during the pause");
        run.await.unwrap();
        assert_ne!(state(), "T", "resumed after it");
        child.kill().await.unwrap();
    }
}
