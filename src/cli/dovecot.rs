//! `postern dovecot checkpassword|config`: Dovecot logs IMAP and POP3 users in with the
//! mailboxes and passwords Postern holds.
//!
//! The mechanism is Dovecot's checkpassword interface (passdb and userdb), calling this binary.
//! Tried against Dovecot 2.3 from Debian, it is the one that follows every change at once with
//! nothing to keep in step: each login reads the store (SQLite or Postgres) as it is now, so a new
//! mailbox logs in at once and a disabled one or an old password is refused at once; the
//! password is checked by Postern's own argon2 code, so no hash format has to match Dovecot's;
//! and it needs no extra Dovecot package or a running `serve`. What it costs is a process per
//! login (tens of milliseconds, most of it the argon2 check any passdb would pay). The other
//! candidates: an SQL passdb on a read-only view works (Dovecot 2.3 verifies `{ARGON2ID}`), but
//! needs `dovecot-sqlite`/`dovecot-pgsql`, the store's credentials in Dovecot's config, and read
//! access to the SQLite file from Dovecot's user; Lua needs `dovecot-auth-lua` and a script to
//! keep in step. Dovecot 2.4 removes checkpassword: there, Lua is the way (not built yet).
//!
//! The protocol (qmail's checkpassword with Dovecot's extensions): the user name and password
//! arrive NUL-terminated on file descriptor 3; on success we run the program named in our
//! arguments (Dovecot's `checkpassword-reply`) with `USER`, `HOME` and the `EXTRA` fields in the
//! environment; exit 1 is a wrong password, 3 an unknown user, 111 a temporary failure. A userdb
//! lookup (LMTP, doveadm) sets `AUTHORIZED=1` and sends no password; we answer `AUTHORIZED=2`.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use postern_store::model::{Address, PasswordHash};

use super::{load_boot, open_store};
use postern_store::boot::Profile;

/// The checkpassword exit codes Dovecot reads (`db-checkpassword.c`).
const WRONG_PASSWORD: u8 = 1;
const UNKNOWN_USER: u8 = 3;
const TEMPORARY_FAILURE: u8 = 111;

#[derive(Subcommand)]
pub enum Command {
    /// Dovecot's checkpassword program (passdb and userdb): reads the user and password on
    /// descriptor 3, then runs REPLY (Dovecot's checkpassword-reply) when they are right.
    Checkpassword {
        /// Where Dovecot reads the mail: `postern` (Postern's own Maildirs, the default) or
        /// `dovecot` (delivered over LMTP into Dovecot's own mail_home: no home is returned).
        #[arg(long, value_enum, default_value_t = Mailstore::Postern)]
        mail: Mailstore,
        /// The system user (name or UID) Dovecot reads and writes mail as. Default: with
        /// `--mail postern`, the owner of Postern's Maildirs; with `--mail dovecot`, required
        /// (Dovecot's checkpassword-reply would otherwise name the auth service's own user).
        #[arg(long, value_name = "USER")]
        mail_owner: Option<String>,
        /// The program to run on success, and its arguments (Dovecot appends it).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        reply: Vec<String>,
    },
    /// Print the Dovecot configuration to paste (conf.d/auth-postern.conf.ext and the rest),
    /// with this server's paths.
    Config {
        #[arg(long, value_enum, default_value_t = Mailstore::Postern)]
        mail: Mailstore,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mailstore {
    /// Dovecot reads the Maildirs Postern delivers to (`<data_dir>/mail/<domain>/<user>`).
    Postern,
    /// Postern delivers to Dovecot over LMTP; Dovecot keeps the mail where it likes.
    Dovecot,
}

pub async fn run(config: Option<&Path>, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Checkpassword { mail, mail_owner, reply } => {
            Ok(checkpassword(config, mail, mail_owner.as_deref(), reply).await)
        }
        Command::Config { mail } => {
            print!("{}", snippet(config, mail)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What Dovecot sent on descriptor 3: the user and the password (empty for a userdb lookup).
struct Credentials {
    user: String,
    password: String,
}

fn read_credentials() -> std::io::Result<Credentials> {
    // Dovecot writes at most 512 octets (user, password, timestamp); read a little more to
    // notice anything longer rather than cut it.
    let mut input = Vec::new();
    std::fs::File::open("/dev/fd/3")?.take(4096).read_to_end(&mut input)?;
    let mut fields = input.split(|&b| b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
    let user = fields.next().unwrap_or_default();
    let password = fields.next().unwrap_or_default();
    Ok(Credentials { user, password })
}

async fn checkpassword(
    config: Option<&Path>,
    mail: Mailstore,
    mail_owner: Option<&str>,
    reply: Vec<String>,
) -> ExitCode {
    let Some((program, args)) = reply.split_first() else {
        eprintln!("postern dovecot checkpassword: no reply program given (Dovecot passes one)");
        return ExitCode::from(TEMPORARY_FAILURE);
    };
    let credentials = match read_credentials() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postern dovecot checkpassword: cannot read descriptor 3: {e}");
            return ExitCode::from(TEMPORARY_FAILURE);
        }
    };
    let lookup_only = std::env::var("AUTHORIZED").is_ok_and(|v| v == "1");
    let answer = match decide(config, &credentials, lookup_only).await {
        Ok(answer) => answer,
        Err(e) => {
            // Dovecot logs our stderr: the user sees a temporary failure, never "unknown".
            eprintln!("postern dovecot checkpassword: {e:#}");
            return ExitCode::from(TEMPORARY_FAILURE);
        }
    };
    let Answer::Accept(user) = answer else {
        return ExitCode::from(match answer {
            Answer::Unknown => UNKNOWN_USER,
            _ => WRONG_PASSWORD,
        });
    };
    // Dovecot's mail processes run as this user: for Postern's Maildirs, the one that owns them.
    let owner = match mail_owner {
        Some(name) => system_user(name),
        None if mail == Mailstore::Postern => user.owner,
        None => None,
    };
    let Some((uid, gid)) = owner.filter(|(uid, _)| *uid != 0) else {
        eprintln!(
            "postern dovecot checkpassword: no user to read mail as: Dovecot never reads mail as \
             root; run `postern serve` as a dedicated user (it then owns the Maildirs), or pass \
             --mail-owner (`postern dovecot config` writes it)"
        );
        return ExitCode::from(TEMPORARY_FAILURE);
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).env("USER", user.address.to_string());
    cmd.env("userdb_uid", uid.to_string()).env("userdb_gid", gid.to_string());
    let mut extra = vec!["userdb_uid", "userdb_gid"];
    if mail == Mailstore::Postern {
        cmd.env("HOME", &user.home).env("userdb_mail", "maildir:~");
        extra.push("userdb_mail");
    }
    if let Some(bytes) = user.quota {
        cmd.env("userdb_quota_rule", format!("*:bytes={bytes}"));
        extra.push("userdb_quota_rule");
    }
    cmd.env("EXTRA", extra.join(" "));
    if lookup_only {
        cmd.env("AUTHORIZED", "2");
    }
    let error = cmd.exec();
    eprintln!("postern dovecot checkpassword: cannot run {program}: {error}");
    ExitCode::from(TEMPORARY_FAILURE)
}

enum Answer {
    Accept(User),
    Unknown,
    Refused,
}

struct User {
    address: Address,
    home: PathBuf,
    owner: Option<(u32, u32)>,
    quota: Option<u64>,
}

async fn decide(
    config: Option<&Path>,
    credentials: &Credentials,
    lookup_only: bool,
) -> anyhow::Result<Answer> {
    let boot = load_boot(config, Profile::Standard)?;
    let store = open_store(config).await?;
    let Ok(address) = credentials.user.trim().parse::<Address>() else {
        return Ok(Answer::Unknown);
    };
    let mailbox = store.get_mailbox(&address).await?;
    store.close().await;
    let Some(mailbox) = mailbox else {
        // As long as a wrong password: whether an account exists is not told by timing.
        if !lookup_only {
            let password = credentials.password.clone();
            tokio::task::spawn_blocking(move || PasswordHash::decoy().verify(&password)).await?;
        }
        return Ok(Answer::Unknown);
    };
    if !lookup_only {
        let (hash, password) = (mailbox.password_hash.clone(), credentials.password.clone());
        if !tokio::task::spawn_blocking(move || hash.verify(&password)).await? {
            return Ok(Answer::Refused);
        }
    }
    if !mailbox.enabled {
        return Ok(if lookup_only { Answer::Unknown } else { Answer::Refused });
    }
    let root = boot.data_dir.join("mail");
    let home =
        root.join(mailbox.address.domain().as_str()).join(mailbox.address.local().to_lowercase());
    let owner = std::fs::metadata(&root).ok().map(|m| (m.uid(), m.gid()));
    Ok(Answer::Accept(User { address: mailbox.address, home, owner, quota: mailbox.quota_bytes }))
}

/// A system user's UID and primary GID, by name or number (from /etc/passwd).
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let found = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let (uid, gid) = (fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?);
        (fields[0] == name || fields[2] == name).then_some((uid, gid))
    });
    found.or_else(|| name.parse().ok().map(|uid| (uid, uid)))
}

/// The name of the user owning `path` (from /etc/passwd), or `postern` when unknown.
fn owner_name(path: &Path) -> String {
    let Ok(uid) = std::fs::metadata(path).map(|m| m.uid()) else {
        return "postern".into();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse() == Ok(uid)).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// The Dovecot configuration for this server, with its paths filled in.
fn snippet(config: Option<&Path>, mail: Mailstore) -> anyhow::Result<String> {
    let boot = load_boot(config, Profile::Standard)?;
    let exe = std::env::current_exe()?;
    let config_arg = match boot.source.as_deref() {
        Some(path) => format!(" --config {}", std::path::absolute(path)?.display()),
        None => String::new(),
    };
    let mail_arg = match mail {
        Mailstore::Postern => "",
        Mailstore::Dovecot => " --mail dovecot --mail-owner vmail",
    };
    let command = format!("{}{config_arg} dovecot checkpassword{mail_arg}", exe.display());
    let mut out = format!(
        "# Dovecot authenticates IMAP/POP3 users against Postern's mailboxes.\n\
         # Generated by `postern dovecot config`. In /etc/dovecot/conf.d/10-auth.conf, comment\n\
         # out `!include auth-system.conf.ext` and add `!include auth-postern.conf.ext`; put\n\
         # this in /etc/dovecot/conf.d/auth-postern.conf.ext, then `systemctl reload dovecot`.\n\
         # Every login reads the store as it is now: no cache to flush after a change.\n\
         auth_mechanisms = plain login\n\
         passdb {{\n  driver = checkpassword\n  args = {command}\n}}\n\
         userdb {{\n  driver = prefetch\n}}\n\
         # Lookups without a login (LMTP, doveadm) ask the same program.\n\
         userdb {{\n  driver = checkpassword\n  args = {command}\n}}\n\
         # checkpassword runs as Dovecot's auth service, which must be able to open the store:\n\
         # the user that owns {data}.\n\
         service auth {{\n  user = {owner}\n}}\n",
        data = boot.data_dir.display(),
        owner = owner_name(&boot.data_dir),
    );
    match mail {
        Mailstore::Postern => {
            let root = boot.data_dir.join("mail");
            out.push_str(&format!(
                "# Mail is read where Postern delivers it ({root}/<domain>/<user>), as the user\n\
                 # that owns {root}: run `postern serve` as a dedicated user (not root), which\n\
                 # Dovecot's first_valid_uid must allow.\n",
                root = root.display()
            ));
        }
        Mailstore::Dovecot => out.push_str(
            "# Mail is delivered by Postern over LMTP (`postern transport set DOMAIN\n\
             # lmtp:unix:/var/run/dovecot/lmtp`) and kept where Dovecot's own settings say:\n\
             mail_home = /var/vmail/%d/%n\n\
             mail_location = maildir:~/Maildir\n\
             mail_uid = vmail\n\
             mail_gid = vmail\n",
        ),
    }
    Ok(out)
}
