//! A domain's DNS health report, as rows: each record other mail servers look up (MX, SPF, DKIM,
//! DMARC, MTA-STS, TLS-RPT, the sending address's reverse DNS), found, missing or wrong, with
//! the exact record to publish. The engine makes the report (`postern_server::mailauth::health`,
//! it has the resolver); the console, the API and the CLI show it, so the plain types live here.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Found,
    Missing,
    Wrong,
    /// The lookup failed (SERVFAIL, timeout): nothing is known.
    Failed,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Found => "found",
            Health::Missing => "missing",
            Health::Wrong => "wrong",
            Health::Failed => "failed",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthRow {
    /// `MX`, `SPF`, `DKIM`, `DMARC`, `MTA-STS`, `TLS-RPT`, `rDNS`.
    pub check: &'static str,
    /// The name looked up.
    pub name: String,
    pub status: Health,
    /// What was found, when it is wrong (or the error).
    pub found: Option<String>,
    /// The record to publish (type and value), when something is to be done.
    pub publish: Option<String>,
    /// Whether a missing record is only advice (MTA-STS, TLS-RPT).
    pub optional: bool,
}

impl HealthRow {
    /// A required record that is missing or wrong: something to fix.
    pub fn to_fix(&self) -> bool {
        !self.optional && matches!(self.status, Health::Missing | Health::Wrong)
    }
}

/// A report in a few words, as the domain list shows it: `ok`, `2 to fix`, or the lookups that
/// failed when nothing is known to be wrong.
pub fn health_summary(rows: &[HealthRow]) -> String {
    let to_fix = rows.iter().filter(|r| r.to_fix()).count();
    let failed = rows.iter().filter(|r| r.status == Health::Failed).count();
    match (to_fix, failed) {
        (0, 0) => "ok".into(),
        (0, 1) => "1 lookup failed".into(),
        (0, n) => format!("{n} lookups failed"),
        (n, _) => format!("{n} to fix"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: Health, optional: bool) -> HealthRow {
        HealthRow {
            check: "SPF",
            name: "example.test".into(),
            status,
            found: None,
            publish: None,
            optional,
        }
    }

    #[test]
    fn summaries_count_what_is_to_fix() {
        assert_eq!(health_summary(&[row(Health::Found, false), row(Health::Missing, true)]), "ok");
        assert_eq!(
            health_summary(&[row(Health::Missing, false), row(Health::Wrong, false)]),
            "2 to fix"
        );
        assert_eq!(health_summary(&[row(Health::Failed, false)]), "1 lookup failed");
        assert_eq!(
            health_summary(&[row(Health::Failed, false), row(Health::Wrong, false)]),
            "1 to fix"
        );
    }
}
