//! The machine's floor: what one TCP round trip over loopback costs between two threads that
//! block on their sockets, the cheapest way two parts of a system can talk. Sent back to back,
//! both threads stay on a core; sent with gaps, as at low load, every message wakes a sleeping
//! thread, and a wake-up costs what the machine (here a virtual one) charges for it. Each hop a
//! cluster adds over an in-process search costs at least one such round trip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// `fanout-loadtest floor`.
#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// Round trips per measurement.
    #[arg(long, default_value_t = 300)]
    pub count: usize,
    /// Gaps between messages to measure with, e.g. `0,100ms` (0: back to back).
    #[arg(long, value_delimiter = ',', default_value = "0,10ms,100ms", value_parser = fanout_proto::args::parse_duration)]
    pub gaps: Vec<Duration>,
}

/// Prints the round trip's median and 90th percentile at every gap.
pub fn run(args: &FloorArgs) -> std::io::Result<()> {
    for gap in &args.gaps {
        let mut times = round_trips(args.count, *gap)?;
        println!(
            "TCP loopback round trip, {} every {:?} after the answer: p50 {} µs, p90 {} µs",
            args.count,
            gap,
            quantile(&mut times, 0.5).as_micros(),
            quantile(&mut times, 0.9).as_micros()
        );
    }
    Ok(())
}

/// Round-trip times of `count` one-byte messages, each sent `gap` after the last answer.
pub fn round_trips(count: usize, gap: Duration) -> std::io::Result<Vec<Duration>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut byte = [0u8; 1];
        while stream.read(&mut byte)? == 1 {
            stream.write_all(&byte)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut times = Vec::with_capacity(count);
    let mut byte = [0u8; 1];
    for _ in 0..count {
        let sent = Instant::now();
        stream.write_all(b"x")?;
        stream.read_exact(&mut byte)?;
        times.push(sent.elapsed());
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
    drop(stream);
    echo.join().expect("echo thread")?;
    Ok(times)
}

/// The `q` quantile of `times` (sorted in place).
pub fn quantile(times: &mut [Duration], q: f64) -> Duration {
    times.sort_unstable();
    let i = ((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1));
    times.get(i).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_comes_back_and_quantiles_pick_from_the_sorted_times() {
        let mut times = round_trips(20, Duration::from_millis(1)).unwrap();
        assert_eq!(times.len(), 20);
        assert!(times.iter().all(|t| *t > Duration::ZERO));
        let mut fixed: Vec<Duration> = [5, 1, 4, 2, 3].map(Duration::from_micros).to_vec();
        assert_eq!(quantile(&mut fixed, 0.5), Duration::from_micros(3));
        assert_eq!(quantile(&mut fixed, 1.0), Duration::from_micros(5));
        assert!(quantile(&mut times, 0.5) <= quantile(&mut times, 0.9));
    }
}
