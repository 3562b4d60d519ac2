//! The boot configuration, `postern.toml`: what needs a restart (listen addresses, the data
//! directory, the database, logging, delivery limits). Optional: defaults work with no file at
//! all.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::database::Database;
use crate::model::DomainName;

mod acme;
mod auth;
mod cluster;
mod connections;
mod delivery;
mod metrics;
mod sizes;

pub use acme::{
    AcmeConfig, DEFAULT_HTTP_LISTEN, DEFAULT_RETRY_FIRST, DEFAULT_RETRY_MAX, EabKey,
    ExternalAccount, LETSENCRYPT, LETSENCRYPT_STAGING,
};
pub use auth::{DEFAULT_DOVECOT_SOCKET, SmtpAuthBackend};
pub use cluster::{ClusterConfig, DEFAULT_DEAD_AFTER};
pub use connections::{ConsoleOptions, SmtpClientLimits};
pub use delivery::{DeliveryConfig, format_duration, parse_duration};
pub use metrics::{EXAMPLE_LISTEN as METRICS_EXAMPLE_LISTEN, MetricsConfig, MetricsRefusal};
pub use sizes::{DEFAULT_MAX_MESSAGE_SIZE, parse_size};

/// The documented example printed by `postern config example`.
pub const EXAMPLE: &str = include_str!("example.toml");

/// Where a config file is looked for when none is named.
pub const SEARCH_PATH: [&str; 2] = ["postern.toml", "/etc/postern/postern.toml"];

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: {field} = {value:?}: {message}")]
    Invalid { origin: String, field: String, value: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The file as written, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    hostname: Option<String>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    secret_key_file: Option<PathBuf>,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    console: RawConsole,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    delivery: delivery::RawDelivery,
    /// Present (even empty) turns ACME on.
    acme: Option<acme::RawAcme>,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    auth: auth::RawAuth,
    #[serde(default)]
    store: RawStore,
    /// This engine's name among several on one store (default: the host name).
    node: Option<String>,
    #[serde(default)]
    cluster: cluster::RawCluster,
    #[serde(default)]
    roles: cluster::RawRoles,
    /// Present (even empty) turns `/metrics` on.
    metrics: Option<metrics::RawMetrics>,
    #[serde(default)]
    serve: RawServe,
}

/// `[serve]`: how `postern serve` runs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    user: Option<String>,
    allow_root: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    log_retention: Option<delivery::Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    servers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    listen: Option<Vec<String>>,
    submission: Option<Vec<String>>,
    submissions: Option<Vec<String>>,
    max_sessions: Option<usize>,
    max_sessions_per_address: Option<delivery::Scalar>,
    max_sessions_per_network: Option<delivery::Scalar>,
    idle_timeout: Option<delivery::Scalar>,
    max_message_size: Option<delivery::Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    listen: Option<Vec<String>>,
    tls_listen: Option<Vec<String>>,
    max_connections: Option<delivery::Scalar>,
    max_connections_per_address: Option<delivery::Scalar>,
    header_timeout: Option<delivery::Scalar>,
    idle_timeout: Option<delivery::Scalar>,
    hosts: Option<Vec<String>>,
    redirect_http: Option<connections::Flag>,
    session_idle: Option<delivery::Scalar>,
    session_lifetime: Option<delivery::Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

/// The validated boot configuration.
#[derive(Clone)]
pub struct BootConfig {
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    pub hostname: DomainName,
    /// True when the host name was not configured and the machine's own is not fully qualified.
    pub hostname_is_fallback: bool,
    pub data_dir: PathBuf,
    pub database: Database,
    /// The key that seals stored secrets: `<data_dir>/secret.key` unless configured.
    pub secret_key_file: PathBuf,
    pub smtp: Vec<SocketAddr>,
    pub submission: Vec<SocketAddr>,
    pub submissions: Vec<SocketAddr>,
    /// SMTP sessions at once over every listener; more get `421 4.3.2`.
    pub max_sessions: usize,
    /// SMTP sessions one client (address, network) may hold, and the idle limit before MAIL.
    pub smtp_clients: SmtpClientLimits,
    /// The largest message the SMTP listeners take (`[smtp] max_message_size`), announced in
    /// EHLO's SIZE and checked at MAIL's SIZE= and while the body arrives (RFC 1870).
    pub max_message_size: u64,
    pub console: Vec<SocketAddr>,
    /// The console over HTTPS, with the appliance's certificate; none unless configured.
    pub console_tls: Vec<SocketAddr>,
    /// The console listeners' connection cap and timeouts, Host names and HTTPS redirect.
    pub console_options: ConsoleOptions,
    pub log_format: LogFormat,
    pub log_level: String,
    pub delivery: DeliveryConfig,
    /// The DNS servers every lookup goes to (MX, MTA-STS, DKIM, SPF, DMARC); empty means the
    /// system's (/etc/resolv.conf).
    pub dns_servers: Vec<SocketAddr>,
    /// Certificates from an ACME CA; `None` (no `[acme]` section) keeps ACME off.
    pub acme: Option<AcmeConfig>,
    /// Who checks SMTP AUTH passwords (`[auth]`).
    pub smtp_auth: SmtpAuthBackend,
    /// How many wrong passwords and API tokens are allowed before attempts are slowed
    /// (`[auth] failures_per_account`, `failures_per_address`).
    pub password_attempts: crate::auth::Policy,
    /// How long the delivery log is kept (`[store] log_retention`); queue events are kept at
    /// most a day, and no longer than this.
    pub log_retention: std::time::Duration,
    /// The node's name, dead time and roles (`node`, `[cluster]`, `[roles]`).
    pub cluster: ClusterConfig,
    /// Who may scrape `/metrics`, and its own listener; `None` (no `[metrics]`) keeps it off.
    pub metrics: Option<MetricsConfig>,
    /// The user `serve` runs as once its ports are bound, when started as root (`[serve] user`).
    pub serve_user: Option<String>,
    /// Lets `serve` go on as root without a user to become (`[serve] allow_root`).
    pub allow_root: bool,
}

/// What `[store] log_retention` is unless configured: a month, as Postfix sites often keep
/// their maillog.
pub const DEFAULT_LOG_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

impl fmt::Debug for BootConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Database`'s own Debug hides a password in the URL.
        f.debug_struct("BootConfig")
            .field("source", &self.source)
            .field("hostname", &self.hostname)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database)
            .field("secret_key_file", &self.secret_key_file)
            .field("smtp", &self.smtp)
            .field("submission", &self.submission)
            .field("submissions", &self.submissions)
            .field("max_sessions", &self.max_sessions)
            .field("smtp_clients", &self.smtp_clients)
            .field("max_message_size", &self.max_message_size)
            .field("console", &self.console)
            .field("console_tls", &self.console_tls)
            .field("console_options", &self.console_options)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("delivery", &self.delivery)
            .field("dns_servers", &self.dns_servers)
            .field("acme", &self.acme)
            .field("smtp_auth", &self.smtp_auth)
            .field("password_attempts", &self.password_attempts)
            .field("log_retention", &self.log_retention)
            .field("cluster", &self.cluster)
            .field("metrics", &self.metrics)
            .field("serve_user", &self.serve_user)
            .field("allow_root", &self.allow_root)
            .finish()
    }
}

/// About 18 KB each when idle (bench/throughput.sh --full): 10,000 take some 180 MB.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// Defaults that differ between a production install and `--dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Standard ports.
    Standard,
    /// Unprivileged ports on loopback (2525, 2587, 2465; console 8080).
    Dev,
}

impl Profile {
    fn listeners(self) -> [(&'static str, &'static str); 4] {
        match self {
            Profile::Standard => [
                ("smtp", "0.0.0.0:25"),
                ("submission", "0.0.0.0:587"),
                ("submissions", "0.0.0.0:465"),
                ("console", "127.0.0.1:8080"),
            ],
            Profile::Dev => [
                ("smtp", "127.0.0.1:2525"),
                ("submission", "127.0.0.1:2587"),
                ("submissions", "127.0.0.1:2465"),
                ("console", "127.0.0.1:8080"),
            ],
        }
    }
}

/// `/var/lib/postern` for root, `./postern-data` for anyone else: so that `postern serve --dev`
/// and a `postern domain add` typed in another terminal by the same user find the same store.
pub fn default_data_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root { PathBuf::from("/var/lib/postern") } else { PathBuf::from("postern-data") }
}

/// Finds the file to read: the one named, else the first of [`SEARCH_PATH`] that exists.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => SEARCH_PATH.iter().map(PathBuf::from).find(|p| p.exists()),
    }
}

impl BootConfig {
    /// Reads `path` (if any), applies `POSTERN_*` overrides from `env`, fills in the profile's
    /// defaults and validates everything.
    pub fn load(
        path: Option<&Path>,
        profile: Profile,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BootConfig, BootError> {
        let raw = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| BootError::Read { path: path.to_path_buf(), source })?;
                toml::from_str::<RawFile>(&text).map_err(|e| BootError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => RawFile::default(),
        };
        let origin = path.map_or_else(|| "defaults".to_string(), |p| p.display().to_string());
        Self::build(raw, path, &origin, profile, env)
    }

    /// Parses a config from text (for tests and `config check` of a string).
    pub fn from_toml(text: &str, profile: Profile) -> Result<BootConfig, BootError> {
        let raw = toml::from_str::<RawFile>(text).map_err(|e| BootError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        Self::build(raw, None, "<text>", profile, std::iter::empty())
    }

    fn build(
        mut raw: RawFile,
        path: Option<&Path>,
        origin: &str,
        profile: Profile,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BootConfig, BootError> {
        let mut connections = connections::RawConnections {
            smtp_per_address: raw.smtp.max_sessions_per_address.take(),
            smtp_per_network: raw.smtp.max_sessions_per_network.take(),
            smtp_idle_timeout: raw.smtp.idle_timeout.take(),
            console_max: raw.console.max_connections.take(),
            console_per_address: raw.console.max_connections_per_address.take(),
            console_header_timeout: raw.console.header_timeout.take(),
            console_idle_timeout: raw.console.idle_timeout.take(),
            console_hosts: raw.console.hosts.take(),
            console_redirect_http: raw.console.redirect_http.take(),
            console_session_idle: raw.console.session_idle.take(),
            console_session_lifetime: raw.console.session_lifetime.take(),
        };
        let split = |v: &str| -> Vec<String> {
            v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
        };
        for (key, value) in env {
            match key.as_str() {
                "POSTERN_HOSTNAME" => raw.hostname = Some(value),
                "POSTERN_NODE" => raw.node = Some(value),
                "POSTERN_CLUSTER_DEAD_AFTER" => raw.cluster.set_dead_after(value),
                "POSTERN_DATA_DIR" => raw.data_dir = Some(value.into()),
                "POSTERN_DATABASE" => raw.database = Some(value),
                "POSTERN_SECRET_KEY_FILE" => raw.secret_key_file = Some(value.into()),
                "POSTERN_SMTP_LISTEN" => raw.smtp.listen = Some(split(&value)),
                "POSTERN_SUBMISSION_LISTEN" => raw.smtp.submission = Some(split(&value)),
                "POSTERN_SUBMISSIONS_LISTEN" => raw.smtp.submissions = Some(split(&value)),
                "POSTERN_SMTP_MAX_SESSIONS" => {
                    let n = value.trim().parse().map_err(|_| BootError::Invalid {
                        origin: "POSTERN_SMTP_MAX_SESSIONS".into(),
                        field: "smtp.max_sessions".into(),
                        value: value.clone(),
                        message: "must be a whole number".into(),
                    })?;
                    raw.smtp.max_sessions = Some(n);
                }
                "POSTERN_SMTP_MAX_MESSAGE_SIZE" => {
                    raw.smtp.max_message_size = Some(delivery::Scalar::Text(value));
                }
                "POSTERN_CONSOLE_LISTEN" => raw.console.listen = Some(split(&value)),
                "POSTERN_CONSOLE_TLS_LISTEN" => raw.console.tls_listen = Some(split(&value)),
                "POSTERN_LOG_FORMAT" => raw.log.format = Some(value),
                "POSTERN_LOG_LEVEL" => raw.log.level = Some(value),
                "POSTERN_DNS_SERVERS" => raw.dns.servers = Some(split(&value)),
                "POSTERN_STORE_LOG_RETENTION" => {
                    raw.store.log_retention = Some(delivery::Scalar::Text(value));
                }
                "POSTERN_SERVE_USER" => raw.serve.user = Some(value),
                _ if key.starts_with("POSTERN_METRICS_") => {
                    raw.metrics.get_or_insert_default().set_from_env(&key, value);
                }
                _ if connections.set_from_env(&key, value.clone()) => {}
                _ if acme::is_acme_var(&key) => {
                    raw.acme.get_or_insert_default().set_from_env(&key, value);
                }
                _ => {
                    raw.delivery.set_from_env(&key, value);
                }
            }
        }
        let invalid = |field: &str, value: &str, message: String| BootError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            message,
        };

        let (hostname, hostname_is_fallback) = match raw.hostname {
            Some(h) => (
                h.parse::<DomainName>().map_err(|e| {
                    invalid("hostname", &h, format!("{e}; use the server's fully qualified name"))
                })?,
                false,
            ),
            None => match system_hostname().and_then(|h| h.parse::<DomainName>().ok()) {
                Some(h) => (h, false),
                None => ("localhost.localdomain".parse().expect("constant is a valid name"), true),
            },
        };

        let data_dir = raw.data_dir.unwrap_or_else(default_data_dir);
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "", "is empty".into()));
        }
        // Relative paths are taken from the config file's folder, so a config works from anywhere.
        let data_dir = match (data_dir.is_relative(), path.and_then(Path::parent)) {
            (true, Some(dir)) if !dir.as_os_str().is_empty() => dir.join(data_dir),
            _ => data_dir,
        };
        let data_dir = std::path::absolute(&data_dir)
            .map_err(|e| invalid("data_dir", &data_dir.display().to_string(), e.to_string()))?;

        let database_text = raw.database.unwrap_or_default();
        let database = Database::parse(&database_text, &data_dir).map_err(|e| {
            invalid("database", &crate::database::redact_url(&database_text), e.to_string())
        })?;

        // Relative to the data directory, like a relative SQLite file.
        let secret_key_file = match raw.secret_key_file {
            Some(path) if path.as_os_str().is_empty() => {
                return Err(invalid("secret_key_file", "", "is empty".into()));
            }
            Some(path) => data_dir.join(path),
            None => data_dir.join(crate::secrets::KEY_FILE_NAME),
        };

        let defaults = profile.listeners();
        let listen = |field: &'static str, given: Option<Vec<String>>, default: &str| {
            let list = given.unwrap_or_else(|| vec![default.to_string()]);
            list.iter()
                .map(|s| {
                    s.parse::<SocketAddr>().map_err(|_| {
                        invalid(
                            field,
                            s,
                            "is not a socket address (like 0.0.0.0:25 or [::]:25)".into(),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let smtp = listen("smtp.listen", raw.smtp.listen, defaults[0].1)?;
        let submission = listen("smtp.submission", raw.smtp.submission, defaults[1].1)?;
        let submissions = listen("smtp.submissions", raw.smtp.submissions, defaults[2].1)?;
        let console = listen("console.listen", raw.console.listen, defaults[3].1)?;
        let max_sessions = raw.smtp.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
        if max_sessions == 0 {
            return Err(invalid("smtp.max_sessions", "0", "must be at least 1".into()));
        }
        let max_message_size = match &raw.smtp.max_message_size {
            None => DEFAULT_MAX_MESSAGE_SIZE,
            Some(given) => {
                let size = match given {
                    delivery::Scalar::Number(n) => {
                        u64::try_from(*n).map_err(|_| "must not be negative".to_string())
                    }
                    delivery::Scalar::Text(t) => parse_size(t),
                };
                // Below a few KB not even the headers of ordinary mail fit: a typo, surely.
                match size {
                    Ok(size) if size >= 1024 => size,
                    Ok(_) => {
                        let m = "must be at least 1K".to_string();
                        return Err(invalid("smtp.max_message_size", &given.shown(), m));
                    }
                    Err(m) => return Err(invalid("smtp.max_message_size", &given.shown(), m)),
                }
            }
        };
        // Off unless asked for: plain HTTP on loopback is the safe default.
        let console_tls =
            listen("console.tls_listen", Some(raw.console.tls_listen.unwrap_or_default()), "")?;

        let log_format = match raw.log.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid("log.format", other, "must be \"text\" or \"json\"".into()));
            }
        };
        let log_level = raw.log.level.unwrap_or_else(|| "info".into());
        let delivery = DeliveryConfig::build(raw.delivery, origin)?;
        let dns_servers = raw
            .dns
            .servers
            .unwrap_or_default()
            .iter()
            .map(|s| {
                parse_dns_server(s).ok_or_else(|| {
                    invalid(
                        "dns.servers",
                        s,
                        "is not a DNS server address (like 127.0.0.1:53, [::1]:53 or 192.0.2.1)"
                            .into(),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let log_retention = match &raw.store.log_retention {
            None => DEFAULT_LOG_RETENTION,
            Some(given) => {
                let parsed = match given {
                    delivery::Scalar::Text(t) => parse_duration(t),
                    delivery::Scalar::Number(_) => parse_duration(""),
                };
                match parsed {
                    Ok(d) if d.as_secs() >= 3600 => d,
                    Ok(_) => {
                        let m = "must be at least 1h".to_string();
                        return Err(invalid("store.log_retention", &given.shown(), m));
                    }
                    Err(m) => return Err(invalid("store.log_retention", &given.shown(), m)),
                }
            }
        };
        let (smtp_clients, console_options) = connections.build(origin)?;
        let base = path.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty());
        let acme = raw.acme.map(|a| AcmeConfig::build(a, base, origin)).transpose()?;
        let password_attempts = raw.auth.attempts(origin)?;
        let smtp_auth = raw.auth.build(origin)?;
        let cluster =
            ClusterConfig::build(raw.node, hostname.as_str(), raw.cluster, raw.roles, origin)?;
        let metrics = raw.metrics.map(|m| m.build(origin)).transpose()?;
        let serve_user = raw.serve.user.filter(|u| !u.trim().is_empty());
        if let Some(user) = &serve_user
            && (user.contains(char::is_whitespace) || user.contains(':') || user.contains('/'))
        {
            return Err(invalid("serve.user", user, "is not a user name".into()));
        }
        let allow_root = raw.serve.allow_root.unwrap_or(false);

        let config = BootConfig {
            source: path.map(Path::to_path_buf),
            hostname,
            hostname_is_fallback,
            data_dir,
            database,
            secret_key_file,
            smtp,
            submission,
            submissions,
            max_sessions,
            smtp_clients,
            max_message_size,
            console,
            console_tls,
            console_options,
            log_format,
            log_level,
            delivery,
            dns_servers,
            acme,
            smtp_auth,
            password_attempts,
            log_retention,
            cluster,
            metrics,
            serve_user,
            allow_root,
        };
        config.check_unique_listeners(origin)?;
        Ok(config)
    }

    /// The SMTP listeners by name, in the order they are started.
    pub fn listeners(&self) -> [(&'static str, &[SocketAddr]); 3] {
        [("smtp", &self.smtp), ("submission", &self.submission), ("submissions", &self.submissions)]
    }

    fn check_unique_listeners(&self, origin: &str) -> Result<(), BootError> {
        let mut seen: Vec<(&str, SocketAddr)> = Vec::new();
        let all = self.listeners().into_iter().chain([("console", self.console.as_slice())]);
        let all = all.chain([("console-tls", self.console_tls.as_slice())]);
        let acme_http = self.acme.as_ref().and_then(|a| a.http_listen);
        let all = all.chain([("acme.http_listen", acme_http.as_slice())]);
        let metrics_listen = self.metrics.as_ref().and_then(|m| m.listen);
        let all = all.chain([("metrics.listen", metrics_listen.as_slice())]);
        for (name, addrs) in all {
            for addr in addrs {
                // Port 0 asks the kernel for a free port: several listeners may ask for one.
                if addr.port() == 0 {
                    continue;
                }
                if let Some((other, _)) = seen.iter().find(|(_, a)| a == addr) {
                    return Err(BootError::Invalid {
                        origin: origin.to_string(),
                        field: name.to_string(),
                        value: addr.to_string(),
                        message: format!(
                            "is also the {other} listener; each needs its own address"
                        ),
                    });
                }
                seen.push((name, *addr));
            }
        }
        Ok(())
    }
}

/// `IP:PORT`, `[IPv6]:PORT`, or a bare address on port 53. Port 0 is nobody's.
fn parse_dns_server(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    let addr = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => SocketAddr::new(text.parse::<std::net::IpAddr>().ok()?, 53),
    };
    (addr.port() != 0).then_some(addr)
}

fn system_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_work_without_a_file() {
        let c = BootConfig::load(None, Profile::Standard, env(&[])).unwrap();
        let dir = std::path::absolute(default_data_dir()).unwrap();
        assert_eq!(c.data_dir, dir);
        assert_eq!(c.database, Database::Sqlite { path: dir.join("postern.db") });
        assert_eq!(c.secret_key_file, dir.join("secret.key"));
        assert_eq!(c.smtp, vec!["0.0.0.0:25".parse().unwrap()]);
        let dev = BootConfig::load(None, Profile::Dev, env(&[])).unwrap();
        assert_eq!(dev.smtp, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(dev.submission, vec!["127.0.0.1:2587".parse().unwrap()]);
        assert_eq!(dev.submissions, vec!["127.0.0.1:2465".parse().unwrap()]);
        assert_eq!(dev.console, vec!["127.0.0.1:8080".parse().unwrap()]);
    }

    /// The password-attempt allowances: the defaults unless set; a fuzzing instance raises
    /// them (`.ci/fuzz-api`); zero is refused.
    #[test]
    fn the_password_attempt_allowances_can_be_raised() {
        let defaults = BootConfig::from_toml("", Profile::Standard).unwrap().password_attempts;
        assert_eq!((defaults.pair.free, defaults.address.free), (5, 20));
        let toml = "[auth]\nfailures_per_account = 1000\nfailures_per_address = 100000\n";
        let raised = BootConfig::from_toml(toml, Profile::Standard).unwrap().password_attempts;
        assert_eq!((raised.pair.free, raised.address.free), (1000, 100_000));
        assert_eq!(raised.pair.base, defaults.pair.base, "only the allowance moves");
        let err = BootConfig::from_toml("[auth]\nfailures_per_address = 0\n", Profile::Standard)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("auth.failures_per_address"), "{err}");
    }

    #[test]
    fn the_example_is_valid_and_matches_the_defaults() {
        let example = BootConfig::from_toml(EXAMPLE, Profile::Standard).unwrap();
        let defaults = BootConfig::load(None, Profile::Standard, env(&[])).unwrap();
        assert_eq!(example.hostname.as_str(), "mail.example.com");
        assert_eq!(example.data_dir, PathBuf::from("/var/lib/postern"));
        assert_eq!(example.listeners(), defaults.listeners());
        assert_eq!(example.console, defaults.console);
        assert_eq!((example.max_sessions, defaults.max_sessions), (10_000, DEFAULT_MAX_SESSIONS));
        assert_eq!(example.console_tls, defaults.console_tls);
        assert!(defaults.console_tls.is_empty(), "HTTPS is off unless configured");
        assert_eq!(example.log_format, defaults.log_format);
        assert_eq!(example.log_level, defaults.log_level);
        assert_eq!(example.delivery, defaults.delivery);
        assert_eq!(example.delivery, DeliveryConfig::default());
        assert_eq!(example.smtp_clients, defaults.smtp_clients);
        assert_eq!(example.smtp_clients, SmtpClientLimits::default());
        assert_eq!(example.max_message_size, defaults.max_message_size);
        assert_eq!(example.log_retention, defaults.log_retention);
        assert_eq!(example.console_options, defaults.console_options);
        assert_eq!(example.console_options, ConsoleOptions::default());
        assert_eq!(example.dns_servers, defaults.dns_servers);
        assert!(defaults.dns_servers.is_empty(), "the system's resolvers unless configured");
        assert_eq!((&example.acme, &defaults.acme), (&None, &None), "ACME is off unless asked");
        // The commented-out [acme] section, uncommented, is valid and says the defaults.
        let start = EXAMPLE.find("# [acme]").expect("the example documents [acme]");
        let acme: String = EXAMPLE[start..]
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .filter(|l| !l.starts_with("ca_file") && !l.starts_with("eab_"))
            .map(|l| format!("{l}\n"))
            .collect();
        let acme = BootConfig::from_toml(&acme, Profile::Standard).unwrap().acme.unwrap();
        assert_eq!(acme.directory, LETSENCRYPT);
        assert_eq!(acme.http_listen, Some(DEFAULT_HTTP_LISTEN.parse().unwrap()));
        assert_eq!((acme.retry_first, acme.retry_max), (DEFAULT_RETRY_FIRST, DEFAULT_RETRY_MAX));
    }

    #[test]
    fn dns_servers_are_addresses_with_a_port() {
        let c = BootConfig::from_toml(
            "[dns]\nservers = [\"127.0.0.1:5353\", \"[::1]:53\", \"192.0.2.1\"]",
            Profile::Standard,
        )
        .unwrap();
        let expected: Vec<SocketAddr> = ["127.0.0.1:5353", "[::1]:53", "192.0.2.1:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(c.dns_servers, expected);
        let c = BootConfig::load(
            None,
            Profile::Dev,
            env(&[("POSTERN_DNS_SERVERS", "10.0.0.1:53, 10.0.0.2")]),
        )
        .unwrap();
        assert_eq!(c.dns_servers.len(), 2);
        for bad in ["ns.example.com", "127.0.0.1:0", "1.2.3.4:99999"] {
            let err = BootConfig::from_toml(&format!("[dns]\nservers = [\"{bad}\"]"), Profile::Dev)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("dns.servers = \"{bad}\"")), "{err}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(&path, "hostname = \"a.example.com\"\ndata_dir = \"data\"\n[smtp]\nlisten = [\"127.0.0.1:25\"]\n").unwrap();
        let c = BootConfig::load(
            Some(&path),
            Profile::Standard,
            env(&[
                ("POSTERN_HOSTNAME", "b.example.com"),
                ("POSTERN_SMTP_LISTEN", "127.0.0.1:0, [::1]:0"),
                ("POSTERN_SUBMISSIONS_LISTEN", ""),
                ("POSTERN_LOG_FORMAT", "json"),
                ("POSTERN_DATABASE", "postgres://u:pw@h/db"),
                ("POSTERN_SECRET_KEY_FILE", "/etc/postern/secret.key"),
            ]),
        )
        .unwrap();
        assert_eq!(c.hostname.as_str(), "b.example.com");
        assert_eq!(c.data_dir, dir.path().join("data"), "relative to the file");
        assert_eq!(c.smtp.len(), 2);
        assert!(c.submissions.is_empty());
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.secret_key_file, PathBuf::from("/etc/postern/secret.key"));
        assert!(!format!("{c:?}").contains(":pw@"), "the password stays out of Debug");
        let c = BootConfig::from_toml("data_dir = \"/d\"\nsecret_key_file = \"k\"", Profile::Dev);
        assert_eq!(c.unwrap().secret_key_file, PathBuf::from("/d/k"), "relative to data_dir");
    }

    #[test]
    fn the_console_over_https_is_configured_like_the_others() {
        let c = BootConfig::from_toml(
            "[console]\ntls_listen = [\"127.0.0.1:8443\", \"[::1]:8443\"]",
            Profile::Standard,
        )
        .unwrap();
        assert_eq!(c.console_tls.len(), 2);
        let env = env(&[("POSTERN_CONSOLE_TLS_LISTEN", "127.0.0.1:9443")]);
        let c = BootConfig::load(None, Profile::Standard, env).unwrap();
        assert_eq!(c.console_tls, vec!["127.0.0.1:9443".parse().unwrap()]);
        let err = BootConfig::from_toml(
            "[console]\nlisten = [\"127.0.0.1:8080\"]\ntls_listen = [\"127.0.0.1:8080\"]",
            Profile::Standard,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("console-tls = \"127.0.0.1:8080\"") && err.contains("console"),
            "{err}"
        );
        let err = BootConfig::from_toml("[console]\ntls_listen = [\"x\"]", Profile::Standard)
            .unwrap_err()
            .to_string();
        assert!(err.contains("console.tls_listen = \"x\""), "{err}");
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let cases = [
            ("hostname = \"bad host\"", "hostname = \"bad host\""),
            ("[smtp]\nlisten = [\"0.0.0.0:99999\"]", "smtp.listen = \"0.0.0.0:99999\""),
            ("[log]\nformat = \"xml\"", "log.format = \"xml\""),
            ("database = \"mysql://x\"", "database = \"mysql://x\""),
            (
                "[smtp]\nlisten = [\"127.0.0.1:25\"]\nsubmission = [\"127.0.0.1:25\"]",
                "submission = \"127.0.0.1:25\"",
            ),
        ];
        for (text, expected) in cases {
            let err = BootConfig::from_toml(text, Profile::Standard).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err =
            BootConfig::from_toml("hostnme = \"x\"", Profile::Standard).unwrap_err().to_string();
        assert!(err.contains("unknown field `hostnme`"), "{err}");
        let err = BootConfig::from_toml("hostname = ", Profile::Standard).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn unreadable_file_is_a_clear_error() {
        let err = BootConfig::load(
            Some(Path::new("/nonexistent/postern.toml")),
            Profile::Standard,
            env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("cannot read /nonexistent/postern.toml"), "{err}");
    }

    #[test]
    fn the_message_size_limit_takes_units() {
        let size =
            |text: &str| BootConfig::from_toml(text, Profile::Dev).map(|c| c.max_message_size);
        assert_eq!(size("").unwrap(), DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(size("[smtp]\nmax_message_size = 2048").unwrap(), 2048);
        assert_eq!(size("[smtp]\nmax_message_size = \"10M\"").unwrap(), 10 << 20);
        let env = env(&[("POSTERN_SMTP_MAX_MESSAGE_SIZE", "1G")]);
        assert_eq!(BootConfig::load(None, Profile::Dev, env).unwrap().max_message_size, 1 << 30);
        for (bad, why) in [("-5", "negative"), ("100", "at least 1K"), ("\"5T\"", "unit")] {
            let err = size(&format!("[smtp]\nmax_message_size = {bad}")).unwrap_err().to_string();
            assert!(err.contains("smtp.max_message_size") && err.contains(why), "{err}");
        }
    }

    #[test]
    fn the_log_retention_is_a_duration() {
        let keep = |text: &str| BootConfig::from_toml(text, Profile::Dev).map(|c| c.log_retention);
        assert_eq!(keep("").unwrap(), DEFAULT_LOG_RETENTION);
        assert_eq!(keep("[store]\nlog_retention = \"90d\"").unwrap().as_secs(), 90 * 86_400);
        let env = env(&[("POSTERN_STORE_LOG_RETENTION", "12h")]);
        assert_eq!(
            BootConfig::load(None, Profile::Dev, env).unwrap().log_retention.as_secs(),
            43_200
        );
        for (bad, why) in [("30", "unit"), ("\"5m\"", "at least 1h"), ("\"soon\"", "unit")] {
            let err = keep(&format!("[store]\nlog_retention = {bad}")).unwrap_err().to_string();
            assert!(err.contains("store.log_retention") && err.contains(why), "{err}");
        }
    }

    #[test]
    fn the_session_limit_is_a_positive_number() {
        let load = |value: &str| {
            BootConfig::load(None, Profile::Dev, env(&[("POSTERN_SMTP_MAX_SESSIONS", value)]))
        };
        assert_eq!(load("500").unwrap().max_sessions, 500);
        let err = load("many").unwrap_err().to_string();
        assert!(err.contains("smtp.max_sessions") && err.contains("whole number"), "{err}");
        assert!(load("0").unwrap_err().to_string().contains("at least 1"));
    }
}
