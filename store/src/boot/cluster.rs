//! Several engines on one Postgres: the node's name (top-level `node`), `[cluster] dead_after`
//! and `[roles]` (what this node runs).

use std::time::Duration;

use serde::Deserialize;

use super::BootError;
use super::delivery::{Scalar, parse_duration};

/// The silence after which a node counts as dead and the others take its queue, unless
/// configured: long enough that a busy database or a garbage-collecting VM does not pass for a
/// death, short enough that mail waits at most a minute.
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    dead_after: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoles {
    smtp: Option<bool>,
    console: Option<bool>,
}

/// What one node runs and how the cluster treats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The node's name in the store (its queue, heartbeat and rate counters): the top-level
    /// `node`, else the host name. Stable across restarts, unique per machine.
    pub node: String,
    /// No heartbeat for this long: dead. The heartbeat runs every third of it.
    pub dead_after: Duration,
    /// Runs the SMTP listeners and delivers the queue (`[roles] smtp`).
    pub smtp: bool,
    /// Serves the console and the API (`[roles] console`).
    pub console: bool,
}

impl ClusterConfig {
    /// How often the node renews its lease and looks for lapsed ones to claim.
    pub fn heartbeat(&self) -> Duration {
        (self.dead_after / 3).max(Duration::from_millis(500))
    }

    pub(super) fn build(
        node: Option<String>,
        hostname: &str,
        cluster: RawCluster,
        roles: RawRoles,
        origin: &str,
    ) -> Result<ClusterConfig, BootError> {
        let invalid = |field: &str, value: &str, message: &str| BootError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            message: message.to_string(),
        };
        let node = match node {
            None => hostname.to_string(),
            Some(n) => {
                let n = n.trim().to_string();
                let ok = !n.is_empty()
                    && n.len() <= 255
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
                if !ok {
                    return Err(invalid(
                        "node",
                        &n,
                        "must be 1 to 255 letters, digits, '-', '.' or '_'",
                    ));
                }
                n
            }
        };
        let dead_after = match &cluster.dead_after {
            None => DEFAULT_DEAD_AFTER,
            Some(given) => {
                let parsed = match given {
                    Scalar::Text(t) => parse_duration(t),
                    Scalar::Number(_) => parse_duration(""),
                };
                match parsed {
                    Ok(d) if d >= Duration::from_secs(2) && d <= Duration::from_secs(3600) => d,
                    Ok(_) => {
                        return Err(invalid(
                            "cluster.dead_after",
                            &given.shown(),
                            "must be between 2s and 1h",
                        ));
                    }
                    Err(m) => return Err(invalid("cluster.dead_after", &given.shown(), &m)),
                }
            }
        };
        let smtp = roles.smtp.unwrap_or(true);
        let console = roles.console.unwrap_or(true);
        if !smtp && !console {
            return Err(invalid("roles", "smtp = false, console = false", "a node must run one"));
        }
        Ok(ClusterConfig { node, dead_after, smtp, console })
    }
}

impl RawCluster {
    pub(super) fn set_dead_after(&mut self, value: String) {
        self.dead_after = Some(Scalar::Text(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(node: Option<&str>, dead: Option<&str>) -> Result<ClusterConfig, BootError> {
        let cluster = RawCluster { dead_after: dead.map(|d| Scalar::Text(d.into())) };
        ClusterConfig::build(
            node.map(String::from),
            "mx1.example.com",
            cluster,
            RawRoles::default(),
            "t",
        )
    }

    #[test]
    fn defaults_to_the_host_name_and_a_minute() {
        let c = build(None, None).unwrap();
        assert_eq!(c.node, "mx1.example.com");
        assert_eq!(c.dead_after, DEFAULT_DEAD_AFTER);
        assert_eq!(c.heartbeat(), Duration::from_secs(20));
        assert!(c.smtp && c.console);
    }

    #[test]
    fn refuses_bad_names_and_times() {
        assert!(build(Some("a b"), None).is_err());
        assert!(build(Some(""), None).is_err());
        assert!(build(None, Some("1s")).is_err());
        assert!(build(None, Some("3")).is_err());
        assert_eq!(build(Some("n-2"), Some("3s")).unwrap().dead_after, Duration::from_secs(3));
    }

    #[test]
    fn a_node_runs_something() {
        let roles = RawRoles { smtp: Some(false), console: Some(false) };
        assert!(ClusterConfig::build(None, "h", RawCluster::default(), roles, "t").is_err());
    }
}
