//! `postern`: the mail appliance's one binary. `serve` runs the engine (and later the console);
//! the other commands administer the store, also while `serve` runs elsewhere.

mod backup;
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "postern", version, about = "A web-managed mail appliance", long_about = None)]
struct Cli {
    /// The boot configuration file. Default: ./postern.toml, then /etc/postern/postern.toml;
    /// without either, built-in defaults.
    #[arg(long, global = true, env = "POSTERN_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server: SMTP listeners and the live configuration.
    Serve(cli::serve::Args),
    /// Print an example boot configuration, or check the configuration and store.
    #[command(subcommand)]
    Config(cli::config::Command),
    /// Domains we accept mail for.
    #[command(subcommand)]
    Domain(cli::domain::Command),
    /// Mailboxes: addresses that store mail and can log in.
    #[command(subcommand)]
    Mailbox(cli::mailbox::Command),
    /// Aliases and catch-alls.
    #[command(subcommand)]
    Alias(cli::alias::Command),
    /// How mail for a destination leaves: local, lmtp:, smtp:, mx, discard, error:.
    #[command(subcommand)]
    Transport(cli::transport::Command),
    /// Networks allowed to relay without authenticating.
    #[command(subcommand)]
    Network(cli::network::Command),
    /// The mail queue: list, show, flush, retry, hold, release, delete, bounce.
    #[command(subcommand)]
    Queue(cli::queue::Command),
    /// Console administrators.
    #[command(subcommand)]
    Admin(cli::admin::Command),
    /// API tokens for scripts.
    #[command(subcommand)]
    Token(cli::token::Command),
    /// Access rules: which clients and envelopes are refused, deferred, held or redirected.
    #[command(subcommand)]
    Policy(cli::policy::Command),
    /// Milters (mail filters such as OpenDKIM or ClamAV): add, list, remove, move, test.
    #[command(subcommand)]
    Milter(cli::milter::Command),
    /// A domain's LDAP / Active Directory: set, show, remove, test, lookup.
    #[command(subcommand)]
    Directory(cli::directory::Command),
    /// TLS certificates: list, import, remove, and ACME order and renew.
    #[command(subcommand)]
    Cert(cli::cert::Command),
    /// DKIM keys: generate, list, rotate, activate; the records to publish.
    #[command(subcommand)]
    Dkim(cli::dkim::Command),
    /// A domain's DNS health: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, with what to publish.
    #[command(subcommand)]
    Dns(cli::dns::Command),
    /// Inbound mail authentication: what SPF and DMARC failures and DNS failures lead to.
    #[command(subcommand)]
    Mailauth(cli::mailauth::Command),
    /// Rate limits: connections, messages, recipients, AUTH failures per address, network,
    /// user or sender domain; the counters nearest their limits.
    #[command(subcommand)]
    Limit(cli::limit::Command),
    /// The engines sharing this store: list them, drain one, forget a dead one.
    #[command(subcommand)]
    Node(cli::node::Command),
    /// DNS blocklists: add, list, remove, the threshold, the whitelist, and a live test.
    #[command(subcommand)]
    Dnsbl(cli::dnsbl::Command),
    /// Built-in greylisting: on or off per domain, the delays.
    #[command(subcommand)]
    Greylist(cli::greylist::Command),
    /// Header and body checks: regex rules on every message once it is whole.
    #[command(subcommand)]
    Checks(cli::checks::Command),
    /// Dovecot logs IMAP/POP3 users in with Postern's mailboxes: the checkpassword program and
    /// the configuration to paste.
    #[command(subcommand)]
    Dovecot(cli::dovecot::Command),
    /// Send a message read from standard input, like Sendmail's and Postfix's `sendmail`
    /// (`-t`, `-i`, `-f`, `-F`); linked as /usr/sbin/sendmail it answers to that name.
    Sendmail(cli::sendmail::Args),
    /// Write a backup of the store (and the spool, the Maildirs) while `serve` runs; `backup
    /// show|schedule|now` for the scheduled backups.
    Backup(cli::backup::Args),
    /// Restore a backup into an empty data directory (and an empty database).
    Restore(cli::backup::RestoreArgs),
    /// Import another mail server's configuration: `import postfix [DIR] [--dry-run]`.
    #[command(subcommand)]
    Import(cli::import::Command),
}

fn main() -> ExitCode {
    let cli = match invoked_as_sendmail() {
        Some(args) => Cli {
            config: std::env::var_os("POSTERN_CONFIG").map(PathBuf::from),
            command: Command::Sendmail(args),
        },
        None => Cli::parse(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async move {
        let config = cli.config.as_deref();
        match cli.command {
            Command::Serve(args) => cli::serve::run(config, args).await,
            Command::Config(cmd) => cli::config::run(config, cmd).await,
            Command::Domain(cmd) => cli::domain::run(config, cmd).await,
            Command::Mailbox(cmd) => cli::mailbox::run(config, cmd).await,
            Command::Alias(cmd) => cli::alias::run(config, cmd).await,
            Command::Transport(cmd) => cli::transport::run(config, cmd).await,
            Command::Network(cmd) => cli::network::run(config, cmd).await,
            Command::Admin(cmd) => cli::admin::run(config, cmd).await,
            Command::Token(cmd) => cli::token::run(config, cmd).await,
            Command::Cert(cmd) => cli::cert::run(config, cmd).await,
            Command::Queue(cmd) => cli::queue::run(config, cmd).await,
            Command::Policy(cmd) => cli::policy::run(config, cmd).await,
            Command::Milter(cmd) => cli::milter::run(config, cmd).await,
            Command::Directory(cmd) => cli::directory::run(config, cmd).await,
            Command::Dkim(cmd) => cli::dkim::run(config, cmd).await,
            Command::Dns(cmd) => cli::dns::run(config, cmd).await,
            Command::Mailauth(cmd) => cli::mailauth::run(config, cmd).await,
            Command::Limit(cmd) => cli::limit::run(config, cmd).await,
            Command::Node(cmd) => cli::node::run(config, cmd).await,
            Command::Dnsbl(cmd) => cli::dnsbl::run(config, cmd).await,
            Command::Greylist(cmd) => cli::greylist::run(config, cmd).await,
            Command::Checks(cmd) => cli::checks::run(config, cmd).await,
            Command::Dovecot(cmd) => cli::dovecot::run(config, cmd).await,
            Command::Sendmail(args) => cli::sendmail::run(config, args).await,
            Command::Backup(args) => cli::backup::run(config, args).await,
            Command::Restore(args) => cli::backup::restore(config, args).await,
            Command::Import(cmd) => cli::import::run(config, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postern: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: many errors already include their
/// source in their own text (sqlx's migration error names the database's), and `{:#}` would
/// repeat it for every level of the chain.
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// Run through a link named `sendmail` (as /usr/sbin/sendmail is, for cron and `mail`), the
/// binary takes Sendmail's arguments; the boot config then comes from `POSTERN_CONFIG` or the
/// usual places.
fn invoked_as_sendmail() -> Option<cli::sendmail::Args> {
    let argv0 = std::env::args_os().next()?;
    let name = std::path::Path::new(&argv0).file_name()?.to_str()?.to_string();
    (name == "sendmail").then(|| cli::sendmail::AsSendmail::parse().args)
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("duplicate column name: x")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "while executing migration 2: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn says_each_cause_once() {
        let e = anyhow::Error::new(Outer(Inner)).context("cannot open the store");
        assert_eq!(
            describe(&e),
            "cannot open the store: while executing migration 2: duplicate column name: x"
        );
    }
}
