//! The latency percentile plot as a standalone SVG: one line per scenario, percentiles on the
//! x axis spaced by "nines" (50%, 90%, 99%, 99.9%, 99.99%, max), latency on a log y axis, so a
//! tail that differs by 10x at p99.9 is as visible as one at p50.

use std::fmt::Write;

use crate::report::ScenarioReport;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// Where a percentile goes on the x axis: the number of nines, `log10(1 / (1 - p))`; the
/// maximum is drawn half a step past 99.99%.
fn nines(percentile: f64) -> f64 {
    if percentile >= 100.0 {
        4.5
    } else {
        (1.0 / (1.0 - percentile / 100.0)).log10().min(4.0)
    }
}

/// The plot of every report's percentile curve.
pub fn percentile_svg(reports: &[ScenarioReport], title: &str) -> String {
    let plot = Plot::fitting(reports);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#,
        escape(title)
    );
    plot.axes(&mut svg);
    for (i, report) in reports.iter().enumerate() {
        plot.curve(&mut svg, i, report);
    }
    svg.push_str("</svg>\n");
    svg
}

/// The plot area and its log latency scale, from `lo` to `hi` decades of milliseconds.
struct Plot {
    lo: f64,
    hi: f64,
    w: f64,
    h: f64,
}

impl Plot {
    /// A scale that fits every report's latencies, in whole decades.
    fn fitting(reports: &[ScenarioReport]) -> Self {
        let values = reports.iter().flat_map(|r| {
            r.percentile_curve
                .iter()
                .map(|&(_, us)| us.max(1) as f64 / 1e3)
        });
        let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo.is_finite() {
            (
                lo.log10().floor(),
                hi.log10().ceil().max(lo.log10().floor() + 1.0),
            )
        } else {
            (0.0, 1.0)
        };
        Self {
            lo,
            hi,
            w: WIDTH - LEFT - RIGHT,
            h: HEIGHT - TOP - BOTTOM,
        }
    }

    fn x(&self, percentile: f64) -> f64 {
        LEFT + nines(percentile) / 4.5 * self.w
    }

    fn y(&self, ms: f64) -> f64 {
        TOP + self.h - (ms.max(1e-3).log10() - self.lo) / (self.hi - self.lo) * self.h
    }

    /// Grid lines and labels: percentiles across, a line per decade of latency up.
    fn axes(&self, svg: &mut String) {
        for (p, label) in [
            (0.0, "0%"),
            (90.0, "90%"),
            (99.0, "99%"),
            (99.9, "99.9%"),
            (99.99, "99.99%"),
            (100.0, "max"),
        ] {
            let px = self.x(p);
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/>"##,
                TOP + self.h
            );
            let _ = write!(
                svg,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
                TOP + self.h + 18.0
            );
        }
        let mut decade = self.lo;
        while decade <= self.hi {
            let ms = 10f64.powf(decade);
            let py = self.y(ms);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/>"##,
                LEFT + self.w
            );
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"#,
                LEFT - 6.0,
                py + 4.0,
                trim(ms)
            );
            decade += 1.0;
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
            LEFT + self.w / 2.0,
            HEIGHT - 10.0
        );
    }

    /// Report `i`'s curve, and its entry in the legend.
    fn curve(&self, svg: &mut String, i: usize, report: &ScenarioReport) {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = report
            .percentile_curve
            .iter()
            .map(|&(p, us)| format!("{:.1},{:.1}", self.x(p), self.y(us.max(1) as f64 / 1e3)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let ly = TOP + 16.0 + 20.0 * i as f64;
        let lx = LEFT + self.w + 16.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/>"#,
            lx + 20.0
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 26.0,
            ly + 4.0,
            escape(&report.scenario)
        );
    }
}

fn trim(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Answer, Recorder};
    use std::time::Duration;

    fn report(name: &str, slow_every: u64) -> ScenarioReport {
        let mut r = Recorder::default();
        for i in 1..=10_000u64 {
            let ms = if i % slow_every == 0 { 200 } else { 2 + i % 3 };
            r.answered(Duration::from_millis(ms), &Answer::default());
        }
        r.report(name, Duration::from_secs(10))
    }

    #[test]
    fn draws_one_line_per_scenario_rising_to_the_right() {
        let svg = percentile_svg(
            &[report("hedged", 100_000), report("un<hedged>", 500)],
            "pause & hedge",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("un&lt;hedged&gt;") && svg.contains("pause &amp; hedge"));
        for line in svg.split("points=\"").skip(1) {
            let points: Vec<(f64, f64)> = line
                .split('"')
                .next()
                .unwrap()
                .split(' ')
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            // Left to right, and latency never falls (y grows downward in SVG).
            assert!(
                points
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 >= w[1].1),
                "{points:?}"
            );
        }
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(0.0), 0.0);
        assert_eq!(nines(100.0), 4.5);
    }
}
