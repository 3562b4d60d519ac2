//! The `[delivery]` section of the boot configuration: how many deliveries run at once, how
//! outbound sessions are reused, and the retry schedule with its delay warnings.

use std::time::Duration;

use serde::Deserialize;

use super::BootError;

/// A value as written: TOML gives numbers or strings, the environment always strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Number(i64),
    Text(String),
}

impl Scalar {
    pub(super) fn shown(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(t) => t.clone(),
        }
    }
}

/// The section as written, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    concurrency: Option<Scalar>,
    per_destination: Option<Scalar>,
    connection_idle: Option<Scalar>,
    connection_uses: Option<Scalar>,
    retry_first: Option<Scalar>,
    retry_max: Option<Scalar>,
    give_up: Option<Scalar>,
    delay_warning: Option<Scalar>,
}

impl RawDelivery {
    /// Takes a `POSTERN_DELIVERY_*` override; any other key is ignored.
    pub(super) fn set_from_env(&mut self, key: &str, value: String) {
        let field = match key {
            "POSTERN_DELIVERY_CONCURRENCY" => &mut self.concurrency,
            "POSTERN_DELIVERY_PER_DESTINATION" => &mut self.per_destination,
            "POSTERN_DELIVERY_CONNECTION_IDLE" => &mut self.connection_idle,
            "POSTERN_DELIVERY_CONNECTION_USES" => &mut self.connection_uses,
            "POSTERN_DELIVERY_RETRY_FIRST" => &mut self.retry_first,
            "POSTERN_DELIVERY_RETRY_MAX" => &mut self.retry_max,
            "POSTERN_DELIVERY_GIVE_UP" => &mut self.give_up,
            "POSTERN_DELIVERY_DELAY_WARNING" => &mut self.delay_warning,
            _ => return,
        };
        *field = Some(Scalar::Text(value));
    }
}

/// Outbound delivery limits and the retry schedule. The defaults are Postfix's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Deliveries in progress at once, over all destinations.
    pub concurrency: usize,
    /// Sessions one destination gets at once (Postfix's `default_destination_concurrency_limit`);
    /// lowered for a while when the destination throttles us.
    pub per_destination: usize,
    /// How long an outbound session waits idle for the next message before it is closed.
    pub connection_idle: Duration,
    /// Messages one outbound session carries before it is closed.
    pub connection_uses: u32,
    /// The wait before the first retry (`minimal_backoff_time`).
    pub retry_first: Duration,
    /// The longest wait between retries (`maximal_backoff_time`).
    pub retry_max: Duration,
    /// A recipient still deferred this long after the message arrived fails
    /// (`maximal_queue_lifetime`).
    pub give_up: Duration,
    /// A recipient still deferred this long after the message arrived gets its sender one
    /// delay notice (`delay_warning_time`); `None`, the default, sends none.
    pub delay_warning: Option<Duration>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            concurrency: 100,
            per_destination: 20,
            connection_idle: Duration::from_secs(5),
            connection_uses: 100,
            retry_first: Duration::from_secs(300),
            retry_max: Duration::from_secs(4000),
            give_up: Duration::from_secs(5 * DAY),
            delay_warning: None,
        }
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// How durations are written, for error messages.
const DURATION_FORMAT: &str =
    "must be a whole number and a unit: s, m, h or d (like \"300s\", \"1h\" or \"5d\")";

/// Parses a duration written as a whole number and a unit (`"300s"`, `"90m"`, `"4h"`, `"5d"`).
/// One format for every duration, with the unit always written: a bare number would leave
/// the reader guessing whether it means seconds or hours.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "s" => 1,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return Err(DURATION_FORMAT.into()),
    };
    let n: u64 = number.parse().map_err(|_| DURATION_FORMAT.to_string())?;
    n.checked_mul(scale).map(Duration::from_secs).ok_or_else(|| "is too long".into())
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.is_multiple_of(DAY) => format!("{}d", s / DAY),
        _ if s.is_multiple_of(HOUR) => format!("{}h", s / HOUR),
        _ if s.is_multiple_of(MINUTE) => format!("{}m", s / MINUTE),
        _ => format!("{s}s"),
    }
}

impl DeliveryConfig {
    pub(super) fn build(raw: RawDelivery, origin: &str) -> Result<DeliveryConfig, BootError> {
        let invalid = |field: &str, value: &Scalar, message: String| BootError::Invalid {
            origin: origin.to_string(),
            field: format!("delivery.{field}"),
            value: value.shown(),
            message,
        };
        let count = |field: &str, given: Option<Scalar>, default: u64, max: u64| {
            let Some(value) = given else { return Ok(default) };
            let n = match &value {
                Scalar::Number(n) => u64::try_from(*n).ok(),
                Scalar::Text(t) => t.trim().parse::<u64>().ok(),
            };
            match n {
                Some(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(invalid(field, &value, format!("must be a whole number from 1 to {max}"))),
            }
        };
        let duration = |field: &str, given: Option<Scalar>, default: Duration| {
            let Some(value) = given else { return Ok(default) };
            match &value {
                Scalar::Text(t) => parse_duration(t).map_err(|m| invalid(field, &value, m)),
                Scalar::Number(_) => Err(invalid(field, &value, DURATION_FORMAT.into())),
            }
        };
        let d = DeliveryConfig::default();
        let concurrency = count("concurrency", raw.concurrency, d.concurrency as u64, 10_000)?;
        let per_destination =
            count("per_destination", raw.per_destination, d.per_destination as u64, 10_000)?;
        let connection_uses =
            count("connection_uses", raw.connection_uses, d.connection_uses.into(), 100_000)?;
        let connection_idle = duration("connection_idle", raw.connection_idle, d.connection_idle)?;
        // RFC 5321 §4.5.3.2.7: a server waits 5 minutes for the next command; an idle session
        // kept longer would be closed under us anyway.
        if connection_idle > Duration::from_secs(5 * MINUTE) {
            let shown = Scalar::Text(format_duration(connection_idle));
            return Err(invalid("connection_idle", &shown, "must be at most 5m".into()));
        }
        let retry_first = duration("retry_first", raw.retry_first, d.retry_first)?;
        let retry_max = duration("retry_max", raw.retry_max, d.retry_max)?;
        let give_up = duration("give_up", raw.give_up, d.give_up)?;
        let shown = |d: Duration| Scalar::Text(format_duration(d));
        if retry_first.is_zero() {
            return Err(invalid("retry_first", &shown(retry_first), "must be at least 1s".into()));
        }
        if retry_max < retry_first {
            let message =
                format!("must not be shorter than retry_first ({})", shown(retry_first).shown());
            return Err(invalid("retry_max", &shown(retry_max), message));
        }
        if give_up.is_zero() {
            return Err(invalid("give_up", &shown(give_up), "must be at least 1s".into()));
        }
        // Postfix's `delay_warning_time = 0` turns warnings off; "0h" does the same here.
        let delay_warning = duration("delay_warning", raw.delay_warning, Duration::ZERO)?;
        let delay_warning = (!delay_warning.is_zero()).then_some(delay_warning);
        if let Some(warning) = delay_warning
            && warning >= give_up
        {
            let message = format!(
                "must be shorter than give_up ({}), or no warning would ever be sent",
                shown(give_up).shown()
            );
            return Err(invalid("delay_warning", &shown(warning), message));
        }
        Ok(DeliveryConfig {
            concurrency: concurrency as usize,
            per_destination: per_destination as usize,
            connection_idle,
            connection_uses: connection_uses as u32,
            retry_first,
            retry_max,
            give_up,
            delay_warning,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BootConfig, Profile};
    use super::*;

    fn delivery(text: &str) -> Result<DeliveryConfig, String> {
        BootConfig::from_toml(&format!("[delivery]\n{text}"), Profile::Standard)
            .map(|c| c.delivery)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_take_one_format_with_a_unit() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("5d"), Ok(Duration::from_secs(5 * 86400)));
        for bad in ["300", "5 days", "1.5h", "-1h", "h", "", "5w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was taken");
        }
        for d in [0, 5, 300, 4000, 3600, 5 * 86400, 90 * 60] {
            let d = Duration::from_secs(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn the_section_is_read_and_validated() {
        let c = delivery(
            "concurrency = 50\nper_destination = 5\nconnection_idle = \"2s\"\n\
             connection_uses = 10\nretry_first = \"1m\"\nretry_max = \"30m\"\ngive_up = \"2d\"\n\
             delay_warning = \"4h\"",
        )
        .unwrap();
        assert_eq!(
            c,
            DeliveryConfig {
                concurrency: 50,
                per_destination: 5,
                connection_idle: Duration::from_secs(2),
                connection_uses: 10,
                retry_first: Duration::from_secs(60),
                retry_max: Duration::from_secs(1800),
                give_up: Duration::from_secs(2 * 86400),
                delay_warning: Some(Duration::from_secs(4 * 3600)),
            }
        );
        assert_eq!(delivery("delay_warning = \"0h\"").unwrap().delay_warning, None);
        let cases = [
            ("give_up = 5", "delivery.give_up = \"5\": must be a whole number and a unit"),
            ("give_up = \"5 days\"", "delivery.give_up = \"5 days\": must be a whole number"),
            ("concurrency = 0", "delivery.concurrency = \"0\": must be a whole number from 1"),
            ("per_destination = \"x\"", "delivery.per_destination = \"x\""),
            ("retry_first = \"10m\"\nretry_max = \"5m\"", "delivery.retry_max = \"5m\": must not"),
            ("connection_idle = \"1h\"", "delivery.connection_idle = \"1h\": must be at most 5m"),
            ("delay_warning = \"6d\"", "delivery.delay_warning = \"6d\": must be shorter"),
        ];
        for (text, expected) in cases {
            let err = delivery(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = delivery("retries = 3").unwrap_err();
        assert!(err.contains("unknown field `retries`"), "{err}");
    }

    #[test]
    fn the_environment_overrides_the_section() {
        let c = BootConfig::load(
            None,
            Profile::Standard,
            [
                ("POSTERN_DELIVERY_PER_DESTINATION".to_string(), "7".to_string()),
                ("POSTERN_DELIVERY_GIVE_UP".to_string(), "3d".to_string()),
                ("POSTERN_DELIVERY_DELAY_WARNING".to_string(), "4h".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(c.delivery.per_destination, 7);
        assert_eq!(c.delivery.give_up, Duration::from_secs(3 * 86400));
        assert_eq!(c.delivery.delay_warning, Some(Duration::from_secs(4 * 3600)));
        let err = BootConfig::load(
            None,
            Profile::Standard,
            [("POSTERN_DELIVERY_RETRY_MAX".to_string(), "soon".to_string())],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("delivery.retry_max = \"soon\""), "{err}");
    }
}
