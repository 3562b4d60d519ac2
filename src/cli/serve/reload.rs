//! SIGHUP: the boot configuration read again. What is read live takes effect at once (the log
//! filter, who may scrape `/metrics`); every other change is logged as needing a restart, and
//! the running values stay.

use std::path::PathBuf;

use postern_store::boot::{BootConfig, Profile};
use tracing_subscriber::EnvFilter;

/// Replaces the log filter (see `init_logging`).
pub type ReloadFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

pub struct Reloader {
    pub path: Option<PathBuf>,
    pub profile: Profile,
    pub running: BootConfig,
    pub filter: ReloadFilter,
    pub metrics: postern_web::MetricsAccess,
}

impl Reloader {
    /// Reads the file again and applies what can be applied.
    pub fn reload(&mut self) {
        let fresh = match BootConfig::load(self.path.as_deref(), self.profile, std::env::vars()) {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the boot configuration is not valid; nothing changed");
                return;
            }
        };
        let mut applied = Vec::new();
        if fresh.log_level != self.running.log_level {
            if std::env::var_os("RUST_LOG").is_some() {
                tracing::warn!("SIGHUP: log.level changed, but RUST_LOG is set and wins");
            } else {
                match EnvFilter::try_new(&fresh.log_level)
                    .map_err(|e| e.to_string())
                    .and_then(|f| (self.filter)(f))
                {
                    Ok(()) => applied.push("log.level"),
                    Err(e) => {
                        tracing::error!(error = %e, level = %fresh.log_level, "SIGHUP: cannot apply log.level")
                    }
                }
            }
        }
        let access = |c: &BootConfig| {
            c.metrics.clone().map(|mut m| {
                m.listen = None;
                m
            })
        };
        if access(&fresh) != access(&self.running) {
            *self.metrics.write().unwrap_or_else(|p| p.into_inner()) = access(&fresh);
            applied.push("metrics (token, allow; on or off on the console)");
        }
        let restart = needs_restart(&self.running, &fresh);
        tracing::info!(
            applied = ?applied,
            needs_restart = ?restart,
            "SIGHUP: boot configuration reloaded"
        );
        if !restart.is_empty() {
            tracing::warn!(
                fields = ?restart,
                "SIGHUP: these changed and take effect only after a restart (systemctl restart postern)"
            );
        }
        let (level, metrics) = (fresh.log_level.clone(), fresh.metrics.clone());
        // What is applied is now running; the rest keeps its old value until a restart.
        self.running.log_level = level;
        self.running.metrics = metrics.map(|mut m| {
            m.listen = self.running.metrics.as_ref().and_then(|r| r.listen);
            m
        });
    }
}

/// The fields that differ and are read only at start-up.
fn needs_restart(old: &BootConfig, new: &BootConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, a: String, b: String| {
        if a != b {
            changed.push(name);
        }
    };
    check("hostname", old.hostname.to_string(), new.hostname.to_string());
    check("data_dir", format!("{:?}", old.data_dir), format!("{:?}", new.data_dir));
    check("database", format!("{:?}", old.database), format!("{:?}", new.database));
    check(
        "secret_key_file",
        format!("{:?}", old.secret_key_file),
        format!("{:?}", new.secret_key_file),
    );
    check("smtp.listen", format!("{:?}", old.smtp), format!("{:?}", new.smtp));
    check("smtp.submission", format!("{:?}", old.submission), format!("{:?}", new.submission));
    check("smtp.submissions", format!("{:?}", old.submissions), format!("{:?}", new.submissions));
    check("smtp.max_sessions", old.max_sessions.to_string(), new.max_sessions.to_string());
    check(
        "smtp (client limits)",
        format!("{:?}", old.smtp_clients),
        format!("{:?}", new.smtp_clients),
    );
    check(
        "smtp.max_message_size",
        old.max_message_size.to_string(),
        new.max_message_size.to_string(),
    );
    check("console.listen", format!("{:?}", old.console), format!("{:?}", new.console));
    check("console.tls_listen", format!("{:?}", old.console_tls), format!("{:?}", new.console_tls));
    check(
        "console (options)",
        format!("{:?}", old.console_options),
        format!("{:?}", new.console_options),
    );
    check("log.format", format!("{:?}", old.log_format), format!("{:?}", new.log_format));
    check("delivery", format!("{:?}", old.delivery), format!("{:?}", new.delivery));
    check("dns.servers", format!("{:?}", old.dns_servers), format!("{:?}", new.dns_servers));
    check("acme", format!("{:?}", old.acme), format!("{:?}", new.acme));
    check("auth", format!("{:?}", old.smtp_auth), format!("{:?}", new.smtp_auth));
    check(
        "store.log_retention",
        format!("{:?}", old.log_retention),
        format!("{:?}", new.log_retention),
    );
    check(
        "metrics.listen",
        format!("{:?}", old.metrics.as_ref().and_then(|m| m.listen)),
        format!("{:?}", new.metrics.as_ref().and_then(|m| m.listen)),
    );
    check("serve.user", format!("{:?}", old.serve_user), format!("{:?}", new.serve_user));
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_need_a_restart_and_the_log_level_does_not() {
        let a = BootConfig::from_toml("[log]\nlevel = \"info\"", Profile::Dev).unwrap();
        let b = BootConfig::from_toml(
            "[log]\nlevel = \"debug\"\n[smtp]\nlisten = [\"127.0.0.1:2626\"]",
            Profile::Dev,
        )
        .unwrap();
        assert_eq!(needs_restart(&a, &b), vec!["smtp.listen"]);
        assert!(needs_restart(&a, &a).is_empty());
    }
}
