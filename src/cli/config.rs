//! `postern config example|check`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use postern_store::Store;
use postern_store::boot::{self, Profile};

use super::load_boot;

#[derive(Subcommand)]
pub enum Command {
    /// Print a documented example postern.toml.
    Example,
    /// Check the boot configuration, the store and the configuration in it; print each problem
    /// with its fix (like `postfix check`). Exits non-zero when there is a problem.
    Check,
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Example => {
            print!("{}", boot::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check(config).await,
    }
}

struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: &str) {
        println!("ok       {what}");
    }

    fn problem(&mut self, what: &str, fix: &str) {
        self.problems += 1;
        println!("PROBLEM  {what}\n         fix: {fix}");
    }

    fn warn(&self, what: &str, fix: &str) {
        println!("warning  {what}\n         fix: {fix}");
    }
}

async fn check(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut report = Report { problems: 0 };
    let path = boot::locate(config);
    let boot = match load_boot(config, Profile::Standard) {
        Ok(boot) => boot,
        Err(e) => {
            report.problem(
                &format!("{e:#}"),
                "correct the file; `postern config example` shows every setting",
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    match &path {
        Some(p) => report.ok(&format!("boot configuration {}", p.display())),
        None => report.ok("boot configuration: none found, using defaults"),
    }
    if boot.hostname_is_fallback {
        report.warn(
            "hostname is not set and the machine's name is not fully qualified",
            "set hostname = \"mail.example.com\" (this server's public name) in postern.toml",
        );
    } else {
        report.ok(&format!("hostname {}", boot.hostname));
    }

    let d = &boot.delivery;
    let warning = d.delay_warning.map_or("off".into(), boot::format_duration);
    report.ok(&format!(
        "delivery: {} at once, {} per destination; retries {} to {}, give up after {}, delay warning {warning}",
        d.concurrency,
        d.per_destination,
        boot::format_duration(d.retry_first),
        boot::format_duration(d.retry_max),
        boot::format_duration(d.give_up),
    ));

    check_data_dir(&mut report, &boot.data_dir);
    check_ports(&report, &boot.listeners());

    match Store::open(&boot.database, &boot.secret_key_file).await {
        Err(e @ postern_store::StoreError::SecretKey { .. }) => report.problem(
            &format!("store {}: {e}", boot.database),
            "restore the key file backed up with this database, or point secret_key_file at it",
        ),
        Err(e) => report.problem(
            &format!("store {}: {e}", boot.database),
            "check `database` in postern.toml, that the server is reachable and the credentials work",
        ),
        Ok(store) => {
            let config = store.load_config().await?;
            report.ok(&format!(
                "store {} at revision {}: {} domain(s), {} mailbox(es), {} alias(es)",
                boot.database,
                config.revision,
                config.domains.len(),
                config.mailboxes.len(),
                config.aliases.len()
            ));
            for problem in config.problems() {
                report.problem(&format!("{}: {}", problem.object, problem.message), &problem.fix);
            }
            for problem in config.open_relay_problems() {
                report.problem(&format!("{}: {}", problem.object, problem.message), &problem.fix);
            }
            for warning in config.warnings(boot.hostname.as_str()) {
                report.warn(&format!("{}: {}", warning.object, warning.message), &warning.fix);
            }
            if config.domains.is_empty() {
                report.warn("no domains: this server accepts no mail yet", "postern domain add example.com");
            }
            store.close().await;
        }
    }

    if report.problems == 0 {
        println!("no problems found");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s) found", report.problems);
        Ok(ExitCode::FAILURE)
    }
}

fn check_data_dir(report: &mut Report, dir: &Path) {
    let probe = dir.join(".postern-check");
    let existing = dir.exists();
    let result = postern_store::files::private_dir(dir)
        .and_then(|()| std::fs::write(&probe, b"check"))
        .and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) if existing => report.ok(&format!("data directory {} is writable", dir.display())),
        Ok(()) => report.ok(&format!("data directory {} created", dir.display())),
        Err(e) => report.problem(
            &format!("data directory {}: {e}", dir.display()),
            "create it and give the user that runs postern write access, or set data_dir",
        ),
    }
}

fn check_ports(report: &Report, listeners: &[(&str, &[SocketAddr])]) {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    for (name, addrs) in listeners {
        for addr in addrs.iter() {
            if addr.port() != 0 && addr.port() < 1024 && !root {
                report.warn(
                    &format!("{name} listens on privileged port {addr} and postern is not running as root"),
                    "run `postern serve` as root, grant cap_net_bind_service, or use ports above 1023",
                );
            }
        }
    }
}
