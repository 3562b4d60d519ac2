//! Connection limits of the `[smtp]` and `[console]` sections, and the console's HTTPS and
//! Host-name settings: how many connections one client may hold, how long an idle or
//! half-sent one is kept, and which names the console answers to.

use std::time::Duration;

use super::BootError;
use super::delivery::Scalar;
use super::parse_duration;
use crate::model::DomainName;

/// SMTP sessions one client may hold, and how long a session may idle before MAIL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpClientLimits {
    /// Sessions at once from one IP address, per service (Postfix's
    /// `smtpd_client_connection_count_limit`, 50); 0 turns the limit off.
    pub per_address: usize,
    /// Sessions at once from one network, per service: a /24 for IPv4, a /64 for IPv6 (one
    /// IPv6 host often has a whole /64 to choose addresses from); 0 turns the limit off.
    pub per_network: usize,
    /// How long a session without a mail transaction may wait for its next command. Inside a
    /// transaction the 5 minutes of RFC 5321 §4.5.3.2.7 apply.
    pub idle_timeout: Duration,
}

impl Default for SmtpClientLimits {
    fn default() -> SmtpClientLimits {
        SmtpClientLimits {
            per_address: 50,
            per_network: 200,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How the console's listeners hold connections, and what they answer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Connections at once over every console listener (HTTP and HTTPS), counted apart from
    /// SMTP's `max_sessions`. When all are taken, the one that has waited longest without a
    /// request in progress gives way; with every one busy, a newcomer is refused at once.
    pub max_connections: usize,
    /// Connections at once from one IP address; 0 turns the limit off (behind a reverse proxy
    /// every connection comes from the proxy).
    pub max_connections_per_address: usize,
    /// A request's headers must arrive in full this soon after its first byte.
    pub header_timeout: Duration,
    /// A connection with no request in progress (new, or kept alive after a response) is
    /// closed after this long; so is one whose client stops reading a response.
    pub idle_timeout: Duration,
    /// Host names the console answers to besides `hostname`, the listener's own address and,
    /// on loopback, `localhost`: any other `Host:` is refused (DNS rebinding).
    pub hosts: Vec<DomainName>,
    /// With `tls_listen` set, the plain HTTP listener redirects every request to HTTPS; false
    /// keeps it serving the console (for a reverse proxy that terminates TLS in front of it).
    pub redirect_http: bool,
    /// A console session unused for this long ends (the administrator signs in again).
    pub session_idle: Duration,
    /// A console session ends this long after its sign-in, however busy.
    pub session_lifetime: Duration,
}

impl Default for ConsoleOptions {
    fn default() -> ConsoleOptions {
        ConsoleOptions {
            max_connections: 256,
            max_connections_per_address: 64,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            hosts: Vec::new(),
            redirect_http: true,
            session_idle: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// A yes-or-no setting as written: a TOML boolean, or text from the environment.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum Flag {
    Bool(bool),
    Text(String),
}

/// The new settings as written, before validation.
#[derive(Debug, Default)]
pub(super) struct RawConnections {
    pub smtp_per_address: Option<Scalar>,
    pub smtp_per_network: Option<Scalar>,
    pub smtp_idle_timeout: Option<Scalar>,
    pub console_max: Option<Scalar>,
    pub console_per_address: Option<Scalar>,
    pub console_header_timeout: Option<Scalar>,
    pub console_idle_timeout: Option<Scalar>,
    pub console_hosts: Option<Vec<String>>,
    pub console_redirect_http: Option<Flag>,
    pub console_session_idle: Option<Scalar>,
    pub console_session_lifetime: Option<Scalar>,
}

impl RawConnections {
    /// Takes a `POSTERN_SMTP_*` or `POSTERN_CONSOLE_*` override of these settings; returns
    /// false for any other key.
    pub(super) fn set_from_env(&mut self, key: &str, value: String) -> bool {
        let field = match key {
            "POSTERN_SMTP_MAX_SESSIONS_PER_ADDRESS" => &mut self.smtp_per_address,
            "POSTERN_SMTP_MAX_SESSIONS_PER_NETWORK" => &mut self.smtp_per_network,
            "POSTERN_SMTP_IDLE_TIMEOUT" => &mut self.smtp_idle_timeout,
            "POSTERN_CONSOLE_MAX_CONNECTIONS" => &mut self.console_max,
            "POSTERN_CONSOLE_MAX_CONNECTIONS_PER_ADDRESS" => &mut self.console_per_address,
            "POSTERN_CONSOLE_HEADER_TIMEOUT" => &mut self.console_header_timeout,
            "POSTERN_CONSOLE_IDLE_TIMEOUT" => &mut self.console_idle_timeout,
            "POSTERN_CONSOLE_SESSION_IDLE" => &mut self.console_session_idle,
            "POSTERN_CONSOLE_SESSION_LIFETIME" => &mut self.console_session_lifetime,
            "POSTERN_CONSOLE_REDIRECT_HTTP" => {
                self.console_redirect_http = Some(Flag::Text(value));
                return true;
            }
            "POSTERN_CONSOLE_HOSTS" => {
                let names = value.split(',').map(str::trim).filter(|s| !s.is_empty());
                self.console_hosts = Some(names.map(String::from).collect());
                return true;
            }
            _ => return false,
        };
        *field = Some(Scalar::Text(value));
        true
    }

    pub(super) fn build(
        self,
        origin: &str,
    ) -> Result<(SmtpClientLimits, ConsoleOptions), BootError> {
        let invalid = |field: &str, value: &Scalar, message: String| BootError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            value: value.shown(),
            message,
        };
        let count = |field: &str, given: Option<Scalar>, default: usize, min: u64| {
            let Some(value) = given else { return Ok(default) };
            let n = match &value {
                Scalar::Number(n) => u64::try_from(*n).ok(),
                Scalar::Text(t) => t.trim().parse::<u64>().ok(),
            };
            match n {
                Some(n) if (min..=1_000_000).contains(&n) => Ok(n as usize),
                _ => Err(invalid(
                    field,
                    &value,
                    format!("must be a whole number from {min} to 1000000"),
                )),
            }
        };
        let duration = |field: &str, given: Option<Scalar>, default: Duration| {
            let Some(value) = given else { return Ok(default) };
            let d = match &value {
                Scalar::Text(t) => parse_duration(t).map_err(|m| invalid(field, &value, m))?,
                Scalar::Number(_) => {
                    return Err(invalid(
                        field,
                        &value,
                        "must be a whole number and a unit, like \"30s\"".into(),
                    ));
                }
            };
            if d.is_zero() {
                return Err(invalid(field, &value, "must be at least 1s".into()));
            }
            Ok(d)
        };

        let s = SmtpClientLimits::default();
        let per_address =
            count("smtp.max_sessions_per_address", self.smtp_per_address, s.per_address, 0)?;
        let per_network =
            count("smtp.max_sessions_per_network", self.smtp_per_network, s.per_network, 0)?;
        let idle_timeout = duration("smtp.idle_timeout", self.smtp_idle_timeout, s.idle_timeout)?;
        // Inside a transaction RFC 5321 §4.5.3.2.7 gives 5 minutes; outside one a client is
        // given less, never more.
        if idle_timeout > Duration::from_secs(300) {
            let shown = Scalar::Text(super::format_duration(idle_timeout));
            return Err(invalid("smtp.idle_timeout", &shown, "must be at most 5m".into()));
        }
        let smtp = SmtpClientLimits { per_address, per_network, idle_timeout };

        let c = ConsoleOptions::default();
        let max_connections =
            count("console.max_connections", self.console_max, c.max_connections, 1)?;
        let max_connections_per_address = count(
            "console.max_connections_per_address",
            self.console_per_address,
            c.max_connections_per_address,
            0,
        )?;
        let header_timeout =
            duration("console.header_timeout", self.console_header_timeout, c.header_timeout)?;
        let idle_timeout =
            duration("console.idle_timeout", self.console_idle_timeout, c.idle_timeout)?;
        let hosts = self
            .console_hosts
            .unwrap_or_default()
            .iter()
            .map(|h| {
                h.parse::<DomainName>().map_err(|e| {
                    invalid(
                        "console.hosts",
                        &Scalar::Text(h.clone()),
                        format!("{e}; list host names like \"mail.example.com\""),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let redirect_http = match self.console_redirect_http {
            None => c.redirect_http,
            Some(Flag::Bool(b)) => b,
            Some(Flag::Text(t)) if t.trim() == "true" => true,
            Some(Flag::Text(t)) if t.trim() == "false" => false,
            Some(Flag::Text(t)) => {
                let value = Scalar::Text(t);
                return Err(invalid(
                    "console.redirect_http",
                    &value,
                    "must be true or false".into(),
                ));
            }
        };
        let session_idle =
            duration("console.session_idle", self.console_session_idle, c.session_idle)?;
        let session_lifetime = duration(
            "console.session_lifetime",
            self.console_session_lifetime,
            c.session_lifetime,
        )?;
        // Below a minute the once-a-minute record of use would end busy sessions.
        if session_idle < Duration::from_secs(60) {
            let shown = Scalar::Text(super::format_duration(session_idle));
            return Err(invalid("console.session_idle", &shown, "must be at least 1m".into()));
        }
        let console = ConsoleOptions {
            max_connections,
            max_connections_per_address,
            header_timeout,
            idle_timeout,
            hosts,
            redirect_http,
            session_idle,
            session_lifetime,
        };
        Ok((smtp, console))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BootConfig, Profile};
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_settings_are_read_from_the_file_and_the_environment() {
        let c = BootConfig::from_toml(
            "[smtp]\nmax_sessions_per_address = 5\nmax_sessions_per_network = 0\n\
             idle_timeout = \"20s\"\n[console]\nmax_connections = 40\n\
             max_connections_per_address = 0\nheader_timeout = \"5s\"\nidle_timeout = \"1m\"\n\
             hosts = [\"Console.Example.com\"]\nredirect_http = false\n\
             session_idle = \"10m\"\nsession_lifetime = \"8h\"",
            Profile::Standard,
        )
        .unwrap();
        assert_eq!(
            c.smtp_clients,
            SmtpClientLimits {
                per_address: 5,
                per_network: 0,
                idle_timeout: Duration::from_secs(20)
            }
        );
        let o = &c.console_options;
        assert_eq!((o.max_connections, o.max_connections_per_address), (40, 0));
        assert_eq!(
            (o.header_timeout, o.idle_timeout),
            (Duration::from_secs(5), Duration::from_secs(60))
        );
        assert_eq!(o.hosts, vec!["console.example.com".parse::<DomainName>().unwrap()]);
        assert!(!o.redirect_http);
        assert_eq!(
            (o.session_idle, o.session_lifetime),
            (Duration::from_secs(600), Duration::from_secs(8 * 3600))
        );

        let c = BootConfig::load(
            None,
            Profile::Dev,
            env(&[
                ("POSTERN_SMTP_MAX_SESSIONS_PER_ADDRESS", "7"),
                ("POSTERN_SMTP_MAX_SESSIONS_PER_NETWORK", "70"),
                ("POSTERN_SMTP_IDLE_TIMEOUT", "2m"),
                ("POSTERN_CONSOLE_MAX_CONNECTIONS", "9"),
                ("POSTERN_CONSOLE_MAX_CONNECTIONS_PER_ADDRESS", "3"),
                ("POSTERN_CONSOLE_HEADER_TIMEOUT", "3s"),
                ("POSTERN_CONSOLE_IDLE_TIMEOUT", "4s"),
                ("POSTERN_CONSOLE_HOSTS", "a.example.com, b.example.com"),
                ("POSTERN_CONSOLE_REDIRECT_HTTP", "false"),
                ("POSTERN_CONSOLE_SESSION_IDLE", "5m"),
                ("POSTERN_CONSOLE_SESSION_LIFETIME", "1d"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.smtp_clients,
            SmtpClientLimits {
                per_address: 7,
                per_network: 70,
                idle_timeout: Duration::from_secs(120)
            }
        );
        let o = &c.console_options;
        assert_eq!((o.max_connections, o.max_connections_per_address), (9, 3));
        assert_eq!(
            (o.header_timeout, o.idle_timeout),
            (Duration::from_secs(3), Duration::from_secs(4))
        );
        assert_eq!(o.hosts.len(), 2);
        assert!(!o.redirect_http);
        assert_eq!(o.session_idle, Duration::from_secs(300));
        assert_eq!(o.session_lifetime, Duration::from_secs(86400));
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            ("[smtp]\nmax_sessions_per_address = -1", "smtp.max_sessions_per_address = \"-1\""),
            ("[smtp]\nidle_timeout = \"10m\"", "at most 5m"),
            ("[smtp]\nidle_timeout = 30", "smtp.idle_timeout = \"30\""),
            ("[console]\nmax_connections = 0", "console.max_connections = \"0\""),
            ("[console]\nheader_timeout = \"0s\"", "at least 1s"),
            ("[console]\nhosts = [\"bad host\"]", "console.hosts = \"bad host\""),
            ("[console]\nredirect_http = \"yes\"", "console.redirect_http"),
            ("[console]\nsession_idle = \"30s\"", "at least 1m"),
            ("[console]\nsession_lifetime = \"0s\"", "console.session_lifetime"),
        ];
        for (text, expected) in cases {
            let err = BootConfig::from_toml(text, Profile::Standard).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
