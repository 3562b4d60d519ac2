//! The dashboard's traffic chart: SVG drawn here from counts alone, so that the markup the
//! template passes through unescaped can hold nothing but numbers and fixed names.

use std::fmt::Write;

use postern_store::HourCounts;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
pub const HOURS: usize = crate::traffic::HOURS;

/// The series, in drawing order, with the CSS class that colours each.
pub const SERIES: [(&str, &str); 5] = [
    ("received", "Received"),
    ("delivered", "Delivered"),
    ("deferred", "Deferred"),
    ("failed", "Bounced"),
    ("rejected", "Rejected"),
];

/// Counts for the `HOURS` hours from `start` (an hour boundary), hours without traffic as 0.
pub fn buckets(hours: &[HourCounts], start: i64) -> Vec<[u64; 5]> {
    let mut out = vec![[0u64; 5]; HOURS];
    for h in hours {
        let slot = (h.hour - start).div_euclid(3600);
        if let Some(b) = usize::try_from(slot).ok().and_then(|i| out.get_mut(i)) {
            *b = [h.received, h.delivered, h.deferred, h.failed, h.rejected];
        }
    }
    out
}

/// The inner markup of an `<svg viewBox="0 0 720 220">`: grid, axis numbers and one polyline
/// per series. `start` labels the hours (UTC).
pub fn svg(buckets: &[[u64; 5]], start: i64) -> String {
    let max = buckets.iter().flat_map(|b| b.iter().copied()).max().unwrap_or(0).max(1);
    let top = nice(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let step = plot_w / (HOURS.max(2) - 1) as f64;
    let y = |v: u64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let mut out = String::new();
    let mut ticks = vec![0, top / 2, top];
    ticks.dedup();
    for tick in ticks {
        let ty = y(tick);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{tick}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0
        );
    }
    for i in (0..buckets.len()).step_by(6) {
        let hour = (start + i as i64 * 3600).rem_euclid(86_400) / 3600;
        let _ = write!(
            out,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{hour:02}:00</text>"#,
            LEFT + i as f64 * step,
            HEIGHT - 8.0
        );
    }
    for (s, (class, _)) in SERIES.iter().enumerate() {
        let points: Vec<String> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{:.1},{:.1}", LEFT + i as f64 * step, y(b[s])))
            .collect();
        let _ = write!(out, r#"<polyline class="series {class}" points="{}"/>"#, points.join(" "));
    }
    out
}

/// A round number at or above `max` for the top of the axis: 1, 2 or 5 times a power of ten.
fn nice(max: u64) -> u64 {
    let mut base = 1u64;
    loop {
        for m in [1, 2, 5] {
            if base.saturating_mul(m) >= max {
                return base.saturating_mul(m);
            }
        }
        base = base.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svg_of_one() -> String {
        let mut b = vec![[0u64; 5]; HOURS];
        b[3][0] = 1;
        svg(&b, 0)
    }

    #[test]
    fn draws_numbers_only() {
        let start = 1_700_000_000 / 3600 * 3600;
        let hours = vec![
            HourCounts {
                hour: start,
                received: 7,
                delivered: 5,
                deferred: 1,
                failed: 1,
                rejected: 2,
                ..HourCounts::default()
            },
            HourCounts { hour: start + 23 * 3600, received: 3, ..HourCounts::default() },
            HourCounts { hour: start - 3600, received: 99, ..HourCounts::default() },
        ];
        let b = buckets(&hours, start);
        assert_eq!((b[0], b[23][0], b[1]), ([7, 5, 1, 1, 2], 3, [0; 5]));
        let svg = svg(&b, start);
        assert_eq!(svg.matches("<polyline").count(), 5);
        assert!(svg.contains(">10<"), "the axis tops at a round 10: {svg}");
        // Apart from fixed element, attribute and class names, nothing but numbers.
        let mut rest = svg.clone();
        for word in [
            "polyline",
            "line",
            "class",
            "grid",
            "x1",
            "y1",
            "x2",
            "y2",
            "text",
            "axis",
            "x=",
            "y=",
            "anchor",
            "end",
            "middle",
            "series",
            "received",
            "delivered",
            "deferred",
            "failed",
            "rejected",
            "points",
        ] {
            rest = rest.replace(word, "");
        }
        assert!(!rest.chars().any(|c| c.is_ascii_alphabetic()), "{rest}");
        assert_eq!(svg_of_one().matches(">0<").count(), 1, "no tick twice");
        assert_eq!(nice(1), 1);
        assert_eq!(nice(3), 5);
        assert_eq!(nice(101), 200);
    }
}
