//! MTA-STS texts (RFC 8461): the `_mta-sts` TXT record (§3.1), the policy file (§3.2), and
//! the match of an MX host name against the policy's `mx` patterns (§4.1).

use std::fmt;
use std::time::Duration;

/// §3.2: the longest `max_age` a policy may give, about one year.
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// What a policy asks of senders (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to matching MX hosts, over TLS with a valid certificate.
    Enforce,
    /// Deliver as without a policy, and report what `Enforce` would have refused.
    Testing,
    /// The domain withdrew its policy (§8.3): no policy applies.
    None,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        })
    }
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Lower case, without a trailing dot: `mail.example.com` or `*.example.com`.
    pub mx: Vec<String>,
    pub max_age: Duration,
}

impl Policy {
    /// Whether the MX host `host` is one this policy names (§4.1).
    pub fn allows(&self, host: &str) -> bool {
        let host = normal(host);
        self.mx.iter().any(|pattern| matches(pattern, &host))
    }
}

/// §4.1: a pattern is a host name, or `*.` and a domain; the wildcard stands for exactly one
/// label, the leftmost: `*.example.com` matches `mail.example.com`, but neither
/// `example.com` nor `a.mail.example.com`. Both sides are lower case without a trailing dot.
pub fn matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => {
            host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent)
        }
        None => host == pattern,
    }
}

fn normal(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    name.strip_suffix('.').map(str::to_string).unwrap_or(name)
}

/// The policy id of a domain's `_mta-sts` TXT records (§3.1). Records that do not start with
/// `v=STSv1` are someone else's and ignored; anything but exactly one remaining valid record
/// means no policy is announced.
pub fn txt_id(records: &[String]) -> Result<String, String> {
    let ours: Vec<&String> = records
        .iter()
        .filter(|r| {
            r.strip_prefix("v=STSv1")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([';', ' ', '\t']))
        })
        .collect();
    let record = match ours.as_slice() {
        [one] => one.as_str(),
        [] => return Err("no v=STSv1 record".into()),
        _ => return Err(format!("{} v=STSv1 records, where one is allowed", ours.len())),
    };
    // sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim], where
    // the delimiter is ";" with optional spaces around it.
    let mut fields = record.split(';').map(|f| f.trim_matches([' ', '\t']));
    if fields.next() != Some("v=STSv1") {
        return Err(format!("malformed version in {record:?}"));
    }
    let mut id = None;
    for field in fields.filter(|f| !f.is_empty()) {
        let Some((name, value)) = field.split_once('=') else {
            return Err(format!("field without '=' in {record:?}"));
        };
        // Extension fields are allowed and mean nothing to us; only the first id counts.
        if name == "id" && id.is_none() {
            let valid =
                (1..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric());
            if !valid {
                return Err(format!("invalid id {value:?}"));
            }
            id = Some(value.to_string());
        }
    }
    id.ok_or_else(|| format!("no id in {record:?}"))
}

/// Parses a policy file (§3.2). Lines end with CRLF or, leniently, LF; each is `key: value`;
/// unknown keys are ignored (extensions) and the first of a repeated key counts (`mx` may
/// repeat). Any error makes the whole policy invalid, which means no policy (§3.3).
pub fn parse(body: &str) -> Result<Policy, String> {
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("line without ':': {line:?}"));
        };
        let value = value.trim_matches([' ', '\t']);
        match key {
            "version" if version.is_none() => version = Some(value),
            "mode" if mode.is_none() => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {other:?}")),
                })
            }
            "max_age" if max_age.is_none() => {
                // 1*10DIGIT; a larger value than the limit is read as the limit.
                if value.is_empty()
                    || value.len() > 10
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(format!("invalid max_age {value:?}"));
                }
                let seconds: u64 =
                    value.parse().map_err(|_| format!("invalid max_age {value:?}"))?;
                max_age = Some(seconds.min(MAX_AGE_LIMIT));
            }
            "mx" => mx.push(pattern(value)?),
            _ => {}
        }
    }
    match version {
        Some("STSv1") => {}
        Some(other) => return Err(format!("unsupported version {other:?}")),
        None => return Err("no version".into()),
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    // An `mx` line is required; a `none` policy names no hosts to check, so it may lack one.
    if mx.is_empty() && mode != Mode::None {
        return Err("no mx".into());
    }
    Ok(Policy { mode, mx, max_age: Duration::from_secs(max_age) })
}

/// An `mx` value: a host name, or `*.` and a domain of at least two labels.
fn pattern(value: &str) -> Result<String, String> {
    let pattern = normal(value);
    let name = pattern.strip_prefix("*.").unwrap_or(&pattern);
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!("invalid mx pattern {value:?}"));
    }
    Ok(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENFORCE: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n";

    #[test]
    fn parses_a_policy_with_crlf_lines() {
        let policy = parse(ENFORCE).unwrap();
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.mx, ["mail.example.com", "*.example.net"]);
        assert_eq!(policy.max_age, Duration::from_secs(604_800));
    }

    #[test]
    fn parses_lf_lines_spaces_and_unknown_keys() {
        let body =
            "version:STSv1\nmode:   testing  \nfoo: bar\nmx: MAIL.Example.COM.\nmax_age: 86400";
        let policy = parse(body).unwrap();
        assert_eq!(policy.mode, Mode::Testing);
        assert_eq!(policy.mx, ["mail.example.com"]);
        assert_eq!(policy.max_age, Duration::from_secs(86_400));
    }

    #[test]
    fn refuses_a_bad_version_and_missing_fields() {
        for (body, why) in [
            ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "unsupported version"),
            ("mode: enforce\nmx: a.example\nmax_age: 1\n", "no version"),
            ("version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age"),
            ("version: STSv1\nmx: a.example\nmax_age: 1\n", "no mode"),
            ("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
            ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "unknown mode"),
            ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -5\n", "invalid max_age"),
            ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", "invalid"),
            ("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", "invalid mx"),
            ("version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", "without ':'"),
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.contains(why), "{body:?}: {error}");
        }
    }

    #[test]
    fn a_none_policy_needs_no_mx_and_a_long_max_age_is_capped() {
        let policy = parse("version: STSv1\nmode: none\nmax_age: 9999999999\n").unwrap();
        assert_eq!(policy.mode, Mode::None);
        assert_eq!(policy.max_age, Duration::from_secs(MAX_AGE_LIMIT));
    }

    #[test]
    fn a_wildcard_matches_exactly_one_label() {
        let policy = parse(ENFORCE).unwrap();
        assert!(policy.allows("mail.example.com"));
        assert!(policy.allows("Mail.Example.Com."));
        assert!(!policy.allows("other.example.com"));
        assert!(policy.allows("a.example.net"));
        assert!(!policy.allows("a.b.example.net"));
        assert!(!policy.allows("example.net"));
        assert!(!policy.allows("aexample.net"));
        assert!(!policy.allows(".example.net"));
    }

    #[test]
    fn reads_the_id_of_the_one_sts_record() {
        let records = |texts: &[&str]| texts.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let id = txt_id(&records(&["v=spf1 -all", "v=STSv1; id=20160831085700Z;"])).unwrap();
        assert_eq!(id, "20160831085700Z");
        assert_eq!(txt_id(&records(&["v=STSv1;id=abc ; ext=1"])).unwrap(), "abc");
        assert!(txt_id(&records(&["v=spf1 -all"])).is_err());
        assert!(txt_id(&records(&["v=STSv1; id=a", "v=STSv1; id=b"])).is_err());
        assert!(txt_id(&records(&["v=STSv1; id=not-alnum"])).is_err());
        assert!(txt_id(&records(&["v=STSv1;"])).is_err());
        assert!(txt_id(&records(&["v=STSv10; id=a"])).is_err());
        let id = txt_id(&records(&["v=STSv10; id=a", "v=STSv1; id=b"])).unwrap();
        assert_eq!(id, "b", "a record of another version is someone else's");
    }
}
