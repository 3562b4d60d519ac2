//! `postern sendmail`: the command-line mail submission interface of Sendmail and Postfix
//! (`sendmail(1)`), for scripts, cron and `mail(1)`. Linked as `/usr/sbin/sendmail`, the binary
//! answers to that name too.
//!
//! The message goes to the running engine over SMTP on its relay listener from the loopback
//! address, which is a trusted network: it then passes through the same policy, signing and
//! queue as any other mail, and `250` means it is queued durably. Unlike Postfix's maildrop,
//! nothing is kept when `serve` is not running: the command fails with exit status 75
//! (EX_TEMPFAIL) and says so, and the caller (cron, a script) keeps the message.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use postern_store::boot::{BootConfig, Profile};

use super::load_boot;

/// The largest message read from standard input; the engine has its own limit too.
const MAX_INPUT: u64 = 64 * 1024 * 1024;

/// sysexits.h, which callers of sendmail read.
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_UNAVAILABLE: u8 = 69;
const EX_TEMPFAIL: u8 = 75;

/// Send a message read from standard input, as Sendmail's and Postfix's `sendmail` do.
#[derive(clap::Args, Debug, Default)]
#[command(disable_version_flag = true)]
pub struct Args {
    /// Take the recipients from the To:, Cc: and Bcc: headers as well (Bcc: is then removed).
    #[arg(short = 't')]
    read_recipients: bool,
    /// A line with a single dot does not end the message (also `-oi`).
    #[arg(short = 'i')]
    ignore_dots: bool,
    /// The envelope sender (`<>` for none). Default: the user running the command @ hostname.
    #[arg(short = 'f', short_alias = 'r', value_name = "SENDER")]
    from: Option<String>,
    /// The sender's full name, for a From: header the message lacks.
    #[arg(short = 'F', value_name = "NAME")]
    full_name: Option<String>,
    /// Sendmail options: `-oi` is `-i`; the others are accepted and ignored.
    #[arg(short = 'o', value_name = "OPTION")]
    options: Vec<String>,
    /// Mode: only `-bm` (deliver mail, the default) is supported.
    #[arg(short = 'b', value_name = "MODE")]
    mode: Option<String>,
    /// Accepted for compatibility and ignored: -B type, -N dsn, -R ret, -V envid, -L label,
    /// -X log, -C file, -v, -m, -U.
    #[arg(short = 'B', hide = true)]
    body_type: Option<String>,
    #[arg(short = 'N', hide = true)]
    notify: Option<String>,
    #[arg(short = 'R', hide = true)]
    ret: Option<String>,
    #[arg(short = 'V', hide = true)]
    envid: Option<String>,
    #[arg(short = 'L', hide = true)]
    label: Option<String>,
    #[arg(short = 'X', hide = true)]
    log: Option<String>,
    #[arg(short = 'C', hide = true)]
    sendmail_config: Option<String>,
    #[arg(short = 'v', hide = true)]
    verbose: bool,
    #[arg(short = 'm', hide = true)]
    me_too: bool,
    #[arg(short = 'U', hide = true)]
    initial_submission: bool,
    /// Recipients.
    recipients: Vec<String>,
}

/// How the binary is run as `sendmail`: `postern sendmail`'s arguments, with the program name.
#[derive(clap::Parser)]
#[command(name = "sendmail", about = "Send a message read from standard input (Postern)")]
pub struct AsSendmail {
    #[command(flatten)]
    pub args: Args,
}

pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(mode) = args.mode.as_deref().filter(|m| *m != "m") {
        eprintln!(
            "sendmail: -b{mode} is not supported by Postern (use `postern queue list` for the \
             queue, `postern alias` for aliases)"
        );
        return Ok(ExitCode::from(EX_USAGE));
    }
    let boot = load_boot(config, Profile::Standard)?;
    let mut input = Vec::new();
    std::io::stdin().take(MAX_INPUT + 1).read_to_end(&mut input)?;
    if input.len() as u64 > MAX_INPUT {
        eprintln!("sendmail: the message is larger than {} MiB", MAX_INPUT >> 20);
        return Ok(ExitCode::from(EX_DATAERR));
    }
    let ignore_dots = args.ignore_dots || args.options.iter().any(|o| o == "i");
    let sender = match args.from.as_deref() {
        Some("<>" | "") => None,
        Some(from) => Some(from.trim_matches(['<', '>']).to_string()),
        None => Some(format!("{}@{}", login_name(), boot.hostname)),
    };
    let message = Message::read(&input, ignore_dots);
    let mut recipients = args.recipients.clone();
    let message = if args.read_recipients {
        recipients.extend(message.header_recipients());
        message.without_bcc()
    } else {
        message
    };
    let message = message.completed(sender.as_deref(), args.full_name.as_deref(), &boot);
    if recipients.is_empty() {
        eprintln!("sendmail: no recipients (name them, or use -t to read To:, Cc: and Bcc:)");
        return Ok(ExitCode::from(EX_USAGE));
    }
    let envelope = match envelope(sender.as_deref(), &recipients) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return Ok(ExitCode::from(EX_DATAERR));
        }
    };
    let target = engine_address(&boot);
    let transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target.ip().to_string())
            .port(target.port())
            .tls(Tls::None)
            .hello_name(lettre::transport::smtp::extension::ClientId::Domain("localhost".into()))
            .timeout(Some(std::time::Duration::from_secs(60)))
            .build();
    match transport.send_raw(&envelope, &message.0).await {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_permanent() => {
            eprintln!("sendmail: the engine refused the message: {e}");
            Ok(ExitCode::from(EX_UNAVAILABLE))
        }
        Err(e) => {
            eprintln!(
                "sendmail: cannot hand the message to the engine at {target} ({e}); is `postern \
                 serve` running? The message was not sent."
            );
            Ok(ExitCode::from(EX_TEMPFAIL))
        }
    }
}

/// The name of the user running the command, as mail from them is addressed.
fn login_name() -> String {
    for var in ["LOGNAME", "USER"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return name;
        }
    }
    "root".into()
}

fn envelope(sender: Option<&str>, recipients: &[String]) -> anyhow::Result<Envelope> {
    let from = sender
        .map(|s| s.parse().with_context(|| format!("{s:?} is not a sender address")))
        .transpose()?;
    let to = recipients
        .iter()
        .map(|r| r.trim().parse().with_context(|| format!("{r:?} is not a recipient address")))
        .collect::<anyhow::Result<Vec<lettre::Address>>>()?;
    Ok(Envelope::new(from, to)?)
}

/// Where the running engine's relay listener is: what `serve` wrote in `<data_dir>/listening`,
/// else the first `[smtp] listen` address; an unspecified address means this machine.
fn engine_address(boot: &BootConfig) -> SocketAddr {
    let written = std::fs::read_to_string(boot.data_dir.join(crate::cli::serve::LISTENING_FILE))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| match l.split_once(' ') {
                Some(("smtp", addr)) => addr.trim().parse().ok(),
                _ => None,
            })
        });
    let mut addr = written
        .or_else(|| boot.smtp.first().copied())
        .unwrap_or(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 25));
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// The message as read, with CRLF line ends.
struct Message(Vec<u8>);

impl Message {
    /// Reads the input up to its end, or (without -i) up to a line with a single dot.
    fn read(input: &[u8], ignore_dots: bool) -> Message {
        let mut out = Vec::with_capacity(input.len() + input.len() / 32);
        for line in input.split_inclusive(|&b| b == b'\n') {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if !ignore_dots && bare == b"." {
                break;
            }
            out.extend_from_slice(bare);
            out.extend_from_slice(b"\r\n");
        }
        Message(out)
    }

    /// The header block's end (the offset of the empty line), or the whole when there is none.
    fn header_end(&self) -> usize {
        if self.0.starts_with(b"\r\n") {
            return 0;
        }
        self.0.windows(4).position(|w| w == b"\r\n\r\n").map_or(self.0.len(), |p| p + 2)
    }

    /// The header fields, unfolded: (name, value).
    fn fields(&self) -> Vec<(String, String)> {
        let head = String::from_utf8_lossy(&self.0[..self.header_end()]).into_owned();
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n").filter(|l| !l.is_empty()) {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        fields
    }

    /// Whether the first line is a header field (RFC 5322 §2.2: printable name, colon).
    fn starts_with_header(&self) -> bool {
        let first = self.0.split(|&b| b == b'\r').next().unwrap_or_default();
        first.iter().position(|&b| b == b':').is_some_and(|colon| {
            colon > 0 && first[..colon].iter().all(|&b| (33..=126).contains(&b))
        })
    }

    fn has(&self, name: &str) -> bool {
        if !self.starts_with_header() {
            return false;
        }
        self.fields().iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The addresses in To:, Cc: and Bcc: (RFC 5322 §3.6.3), groups and display names
    /// understood by mail-parser.
    fn header_recipients(&self) -> Vec<String> {
        let Some(parsed) = mail_parser::MessageParser::default().parse_headers(&self.0) else {
            return Vec::new();
        };
        [parsed.to(), parsed.cc(), parsed.bcc()]
            .into_iter()
            .flatten()
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address().map(str::to_string))
            .collect()
    }

    /// The message without its Bcc: fields (their continuation lines too).
    fn without_bcc(self) -> Message {
        let end = self.header_end();
        let mut out = Vec::with_capacity(self.0.len());
        let mut skipping = false;
        for line in self.0[..end].split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b" ") || line.starts_with(b"\t") {
                if !skipping {
                    out.extend_from_slice(line);
                }
                continue;
            }
            skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
            if !skipping {
                out.extend_from_slice(line);
            }
        }
        out.extend_from_slice(&self.0[end..]);
        Message(out)
    }

    /// Adds the From:, Date: and Message-ID: a message must have (RFC 5322 §3.6) when the
    /// caller left them out, as Postfix's cleanup does for local submissions.
    fn completed(
        self,
        sender: Option<&str>,
        full_name: Option<&str>,
        boot: &BootConfig,
    ) -> Message {
        let mut head = String::new();
        if !self.has("From") {
            let address =
                sender.map_or_else(|| format!("MAILER-DAEMON@{}", boot.hostname), str::to_string);
            match full_name.map(|n| n.replace(['"', '\\', '\r', '\n'], "")) {
                Some(name) if !name.is_empty() => {
                    head.push_str(&format!("From: \"{name}\" <{address}>\r\n"))
                }
                _ => head.push_str(&format!("From: {address}\r\n")),
            }
        }
        if !self.has("Date") {
            let now = time::OffsetDateTime::now_utc();
            if let Ok(date) = now.format(&time::format_description::well_known::Rfc2822) {
                head.push_str(&format!("Date: {date}\r\n"));
            }
        }
        if !self.has("Message-ID") {
            let id: u128 = rand::random();
            head.push_str(&format!("Message-ID: <{id:032x}@{}>\r\n", boot.hostname));
        }
        let mut out = head.into_bytes();
        // Text that does not start with a header field is all body: the new header block
        // needs the empty line that ends it.
        if !self.starts_with_header() {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.0);
        Message(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_dot_ends_the_message_unless_told_otherwise() {
        let input = b"Subject: x\n\nbody\n.\nafter\n";
        assert_eq!(Message::read(input, false).0, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(Message::read(input, true).0, b"Subject: x\r\n\r\nbody\r\n.\r\nafter\r\n");
    }

    #[test]
    fn recipients_come_from_to_cc_and_bcc_and_bcc_goes() {
        let m = Message::read(
            b"To: Ann <ann@example.test>, bob@example.test\nCc: undisclosed: ;\nBcc: carl@example.test,\n dora@example.test\nSubject: hi\n\nBcc: not a header\n",
            false,
        );
        let mut r = m.header_recipients();
        r.sort();
        assert_eq!(
            r,
            ["ann@example.test", "bob@example.test", "carl@example.test", "dora@example.test"]
        );
        let m = m.without_bcc();
        let text = String::from_utf8(m.0).unwrap();
        assert!(!text.to_lowercase().contains("bcc: carl") && !text.contains("dora"), "{text}");
        assert!(text.contains("Subject: hi\r\n\r\nBcc: not a header\r\n"), "{text}");
    }

    #[test]
    fn missing_headers_are_added_and_present_ones_kept() {
        let boot = BootConfig::load(None, Profile::Standard, std::iter::empty()).unwrap();
        let m = Message::read(b"Subject: s\n\nhello\n", false).completed(
            Some("ann@example.test"),
            Some("Ann \"A\" Example"),
            &boot,
        );
        let text = String::from_utf8(m.0).unwrap();
        assert!(text.starts_with("From: \"Ann A Example\" <ann@example.test>\r\nDate: "), "{text}");
        assert!(text.contains("Message-ID: <") && text.ends_with("Subject: s\r\n\r\nhello\r\n"));
        let m = Message::read(b"From: x@y.test\nDate: today\nMessage-ID: <a@b>\n\nhi\n", false)
            .completed(Some("ann@example.test"), None, &boot);
        assert!(m.0.starts_with(b"From: x@y.test\r\n"));
        // Text without headers becomes the body of a message that has them.
        let m = Message::read(b"just a line\n", false).completed(Some("a@b.test"), None, &boot);
        let text = String::from_utf8(m.0).unwrap();
        assert!(text.contains("\r\n\r\njust a line\r\n"), "{text}");
    }
}
