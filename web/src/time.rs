//! Epoch seconds as the console shows them (UTC, ISO 8601), without a date crate.

/// `2026-11-28 17:40:56` (UTC).
pub fn format(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// How long ago, coarsely, as a queue list shows it: `45s`, `12m`, `3h 05m`, `2d 4h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

pub use postern_store::now;

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc() {
        assert_eq!(super::format(0), "1970-01-01 00:00:00");
        assert_eq!(super::format(1_796_146_856), "2026-12-01 17:40:56");
        assert_eq!(super::format(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn ages_are_coarse() {
        assert_eq!(super::age(-5), "0s");
        assert_eq!(super::age(59), "59s");
        assert_eq!(super::age(125), "2m");
        assert_eq!(super::age(3 * 3600 + 5 * 60), "3h 05m");
        assert_eq!(super::age(2 * 86_400 + 4 * 3600 + 59), "2d 4h");
    }
}
