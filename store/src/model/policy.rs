//! Access rules (Postfix's `smtpd_*_restrictions` with access maps): ordered rules, each for one
//! stage of the SMTP dialog, with matchers on what is known by then and one action. The first
//! rule that matches at a stage decides for that stage.
//!
//! Rules are parsed once when the configuration is loaded, patterns included, so a snapshot
//! evaluates them without compiling anything; the same code answers the test form, the CLI's
//! `policy test` and the SMTP session.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Address;
use crate::error::StoreError;

/// Where in the dialog a rule is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyStage {
    /// The client connected, before the greeting.
    Connect,
    /// HELO or EHLO.
    Helo,
    /// MAIL FROM.
    Mail,
    /// Each RCPT TO.
    Rcpt,
    /// The DATA command (or the first BDAT), once the envelope is complete.
    Data,
}

impl PolicyStage {
    pub const ALL: [PolicyStage; 5] = [
        PolicyStage::Connect,
        PolicyStage::Helo,
        PolicyStage::Mail,
        PolicyStage::Rcpt,
        PolicyStage::Data,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyStage::Connect => "connect",
            PolicyStage::Helo => "helo",
            PolicyStage::Mail => "mail",
            PolicyStage::Rcpt => "rcpt",
            PolicyStage::Data => "data",
        }
    }
}

impl fmt::Display for PolicyStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyStage {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        PolicyStage::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                StoreError::invalid(
                    "stage",
                    format!("{s:?} is not a stage: use connect, helo, mail, rcpt or data"),
                )
            })
    }
}

/// How a rule matches a name or an address, written as text:
/// `/regex/` (a pattern, case-insensitive), `@example.com` (an address in that domain),
/// `.example.com` (that name or address domain and every name below it), or anything else for
/// the exact name or address (case-insensitive).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Domain(String),
    Suffix(String),
    Pattern(regex::Regex),
}

/// Longest pattern accepted, and the compiled size bound: a rule is evaluated for every
/// command of every session.
const MAX_PATTERN: usize = 1000;
const MAX_COMPILED: usize = 1 << 20;

impl Matcher {
    pub fn parse(field: &'static str, text: &str) -> Result<Matcher, StoreError> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_PATTERN || text.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                field,
                format!("must be one line of 1 to {MAX_PATTERN} characters"),
            ));
        }
        if let Some(inner) = text.strip_prefix('/').and_then(|t| t.strip_suffix('/')) {
            let regex = regex::RegexBuilder::new(inner)
                .case_insensitive(true)
                .size_limit(MAX_COMPILED)
                .build()
                .map_err(|e| {
                    StoreError::invalid(field, format!("{text} is not a valid pattern: {e}"))
                })?;
            return Ok(Matcher::Pattern(regex));
        }
        let lower = text.to_ascii_lowercase();
        if let Some(domain) = lower.strip_prefix('@') {
            check_name(field, text, domain)?;
            return Ok(Matcher::Domain(domain.to_string()));
        }
        if let Some(suffix) = lower.strip_prefix('.') {
            check_name(field, text, suffix)?;
            return Ok(Matcher::Suffix(suffix.to_string()));
        }
        if lower.contains(char::is_whitespace) {
            return Err(StoreError::invalid(
                field,
                format!("{text:?} has spaces: write a pattern as /regex/"),
            ));
        }
        Ok(Matcher::Exact(lower))
    }

    /// Whether `value` (a name, or an address for sender and recipient) matches.
    pub fn matches(&self, value: &str) -> bool {
        let domain = value.rsplit_once('@').map_or(value, |(_, d)| d);
        match self {
            Matcher::Exact(e) => value.eq_ignore_ascii_case(e),
            Matcher::Domain(d) => value.contains('@') && domain.eq_ignore_ascii_case(d),
            Matcher::Suffix(s) => {
                domain.eq_ignore_ascii_case(s)
                    || (domain.len() > s.len()
                        && domain.is_char_boundary(domain.len() - s.len() - 1)
                        && domain[domain.len() - s.len() - 1..]
                            .eq_ignore_ascii_case(&format!(".{s}")))
            }
            Matcher::Pattern(r) => r.is_match(value),
        }
    }
}

fn check_name(field: &'static str, text: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.contains(['@', '/', ' ']) {
        return Err(StoreError::invalid(field, format!("{text:?} does not name a domain")));
    }
    Ok(())
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(e) => f.write_str(e),
            Matcher::Domain(d) => write!(f, "@{d}"),
            Matcher::Suffix(s) => write!(f, ".{s}"),
            Matcher::Pattern(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.to_string() == other.to_string()
    }
}
impl Eq for Matcher {}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Matcher::parse("matcher", &text).map_err(serde::de::Error::custom)
    }
}

/// A refusal's reply: code, enhanced status code (RFC 3463) and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReply {
    pub code: u16,
    pub enhanced: String,
    pub text: String,
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    /// Stop evaluating this stage's rules: what follows at this stage does not apply.
    Ok,
    /// Refuse with a 5xx reply.
    Reject(PolicyReply),
    /// Refuse for now with a 4xx reply.
    Defer(PolicyReply),
    /// Accept the message and drop it (logged).
    Discard,
    /// Accept the message and hold it in the queue until an administrator releases it.
    Hold,
    /// Deliver the message to this address instead of its recipients.
    Redirect(Address),
    /// Deliver a copy to this address too.
    Bcc(Address),
}

impl PolicyAction {
    /// The action's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            PolicyAction::Ok => "OK",
            PolicyAction::Reject(_) => "REJECT",
            PolicyAction::Defer(_) => "DEFER",
            PolicyAction::Discard => "DISCARD",
            PolicyAction::Hold => "HOLD",
            PolicyAction::Redirect(_) => "REDIRECT",
            PolicyAction::Bcc(_) => "BCC",
        }
    }

    /// True for REJECT and DEFER: the command is refused.
    pub fn refuses(&self) -> bool {
        matches!(self, PolicyAction::Reject(_) | PolicyAction::Defer(_))
    }
}

/// Parses `REJECT [code enhanced] [text]` and its kin (`DEFER`) with the reply's rules.
fn refusal(rest: &str, class: char) -> Result<PolicyReply, StoreError> {
    let (default_code, default_enh, default_text) = match class {
        '5' => (554, "5.7.1", "Access denied"),
        _ => (450, "4.7.1", "Try again later"),
    };
    let mut words = rest.splitn(3, ' ');
    let first = words.next().unwrap_or("");
    let (code, enhanced, text) = if first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit()) {
        let code: u16 = first.parse().unwrap_or(0);
        let enhanced = words.next().unwrap_or("");
        let text = words.next().unwrap_or("").trim();
        (code, enhanced.to_string(), text.to_string())
    } else {
        (default_code, default_enh.to_string(), rest.trim().to_string())
    };
    let kind = if class == '5' { "REJECT" } else { "DEFER" };
    if code / 100 != class.to_digit(10).unwrap_or(0) as u16 || code % 100 > 59 {
        return Err(StoreError::invalid(
            "action",
            format!("{kind} needs a {class}xx code (like {default_code}), not {code}"),
        ));
    }
    let parts: Vec<&str> = enhanced.split('.').collect();
    let good = parts.len() == 3
        && parts[0] == class.to_string()
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if !good {
        return Err(StoreError::invalid(
            "action",
            format!(
                "{kind} needs an enhanced status code {class}.x.x after the code (like {default_code} {default_enh}), not {enhanced:?}"
            ),
        ));
    }
    if text.len() > 200 || text.chars().any(|c| c.is_control()) {
        return Err(StoreError::invalid(
            "action",
            "the reply text must be one line of at most 200 characters",
        ));
    }
    let text = if text.is_empty() { default_text.to_string() } else { text };
    Ok(PolicyReply { code, enhanced, text })
}

impl FromStr for PolicyAction {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let s = s.trim();
        let (keyword, rest) = s.split_once(' ').unwrap_or((s, ""));
        let rest = rest.trim();
        let address = |what: &str| -> Result<Address, StoreError> {
            rest.parse::<Address>().map_err(|_| {
                StoreError::invalid(
                    "action",
                    format!("{what} needs one address, like {what} postmaster@example.com"),
                )
            })
        };
        let bare = |action: PolicyAction| {
            if rest.is_empty() {
                Ok(action)
            } else {
                Err(StoreError::invalid(
                    "action",
                    format!("{} takes nothing after it", keyword.to_ascii_uppercase()),
                ))
            }
        };
        match keyword.to_ascii_uppercase().as_str() {
            "OK" => bare(PolicyAction::Ok),
            "REJECT" => Ok(PolicyAction::Reject(refusal(rest, '5')?)),
            "DEFER" => Ok(PolicyAction::Defer(refusal(rest, '4')?)),
            "DISCARD" => bare(PolicyAction::Discard),
            "HOLD" => bare(PolicyAction::Hold),
            "REDIRECT" => Ok(PolicyAction::Redirect(address("REDIRECT")?)),
            "BCC" => Ok(PolicyAction::Bcc(address("BCC")?)),
            _ => Err(StoreError::invalid(
                "action",
                format!(
                    "{keyword:?} is not an action: use OK, REJECT, DEFER, DISCARD, HOLD, REDIRECT address or BCC address"
                ),
            )),
        }
    }
}

impl fmt::Display for PolicyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyAction::Reject(r) | PolicyAction::Defer(r) => {
                write!(f, "{} {} {} {}", self.keyword(), r.code, r.enhanced, r.text)
            }
            PolicyAction::Redirect(a) | PolicyAction::Bcc(a) => write!(f, "{} {a}", self.keyword()),
            _ => f.write_str(self.keyword()),
        }
    }
}

impl Serialize for PolicyAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PolicyAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What a rule matches; every matcher given must match (none given: every client).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyMatch {
    /// The client's address is in this network.
    pub client: Option<IpNet>,
    /// The client's reverse DNS name (`.example.net` for a suffix).
    pub rdns: Option<Matcher>,
    /// The HELO/EHLO name.
    pub helo: Option<Matcher>,
    /// The MAIL FROM address (`<>` is the empty string).
    pub sender: Option<Matcher>,
    /// The RCPT TO address (at the data stage: any recipient).
    pub recipient: Option<Matcher>,
    /// Whether the client authenticated.
    pub authenticated: Option<bool>,
}

impl fmt::Display for PolicyMatch {
    /// `client=192.0.2.0/24 to=@example.com auth=no`, or `any` with no matcher.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(c) = &self.client {
            parts.push(format!("client={c}"));
        }
        for (key, m) in [
            ("rdns", &self.rdns),
            ("helo", &self.helo),
            ("from", &self.sender),
            ("to", &self.recipient),
        ] {
            if let Some(m) = m {
                parts.push(format!("{key}={m}"));
            }
        }
        if let Some(a) = self.authenticated {
            parts.push(format!("auth={}", if a { "yes" } else { "no" }));
        }
        if parts.is_empty() { f.write_str("any") } else { f.write_str(&parts.join(" ")) }
    }
}

/// A rule as it is added: its stage, matchers and action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPolicyRule {
    pub stage: PolicyStage,
    #[serde(flatten)]
    pub matches: PolicyMatch,
    pub action: PolicyAction,
    #[serde(default)]
    pub description: String,
}

/// A stored rule. `position` orders every rule (1 is evaluated first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    pub id: i64,
    pub position: i64,
    pub stage: PolicyStage,
    #[serde(flatten)]
    pub matches: PolicyMatch,
    pub action: PolicyAction,
    pub description: String,
    pub created_at: i64,
}

impl NewPolicyRule {
    /// Refuses matchers on what is not known yet at the rule's stage, and a bad description.
    pub fn check(&self) -> Result<(), StoreError> {
        let m = &self.matches;
        let stage = self.stage;
        let too_early = |field: &'static str, known_from: PolicyStage| {
            Err(StoreError::invalid(
                field,
                format!(
                    "the {field} is not known yet at the {stage} stage (only from {known_from} on)"
                ),
            ))
        };
        if m.helo.is_some() && stage < PolicyStage::Helo {
            return too_early("helo", PolicyStage::Helo);
        }
        if m.sender.is_some() && stage < PolicyStage::Mail {
            return too_early("sender", PolicyStage::Mail);
        }
        if m.recipient.is_some() && stage < PolicyStage::Rcpt {
            return too_early("recipient", PolicyStage::Rcpt);
        }
        if self.description.chars().count() > 200 || self.description.chars().any(char::is_control)
        {
            return Err(StoreError::invalid(
                "description",
                "must be one line of at most 200 characters",
            ));
        }
        Ok(())
    }
}

/// What is known about a client and its message when a stage is evaluated.
#[derive(Debug, Clone, Default)]
pub struct PolicyEnvelope<'a> {
    pub client: Option<IpAddr>,
    pub rdns: Option<&'a str>,
    pub helo: Option<&'a str>,
    pub sender: Option<&'a str>,
    /// At RCPT the one recipient; at DATA every accepted one.
    pub recipients: Vec<&'a str>,
    /// The authenticated user, if any.
    pub auth: Option<&'a str>,
}

/// The rule that decided a stage, and why it matched.
#[derive(Debug, Clone)]
pub struct PolicyHit<'a> {
    pub rule: &'a PolicyRule,
    pub why: String,
}

impl PolicyRule {
    /// Why this rule matches `env`, or `None` when one of its matchers does not.
    pub fn explain(&self, env: &PolicyEnvelope<'_>) -> Option<String> {
        let m = &self.matches;
        let mut why = Vec::new();
        if let Some(net) = &m.client {
            let ip = env.client?;
            if !net.contains(&ip) {
                return None;
            }
            why.push(format!("client {ip} is in {net}"));
        }
        let text =
            |name: &str, matcher: &Option<Matcher>, value: Option<&str>, why: &mut Vec<String>| {
                match matcher {
                    None => Some(()),
                    Some(matcher) => {
                        let value = value?;
                        matcher
                            .matches(value)
                            .then(|| why.push(format!("{name} {value:?} matches {matcher}")))
                    }
                }
            };
        text("reverse DNS name", &m.rdns, env.rdns, &mut why)?;
        text("HELO name", &m.helo, env.helo, &mut why)?;
        text("sender", &m.sender, env.sender, &mut why)?;
        if let Some(matcher) = &m.recipient {
            let hit = env.recipients.iter().find(|r| matcher.matches(r))?;
            why.push(format!("recipient {hit:?} matches {matcher}"));
        }
        if let Some(wanted) = m.authenticated {
            if env.auth.is_some() != wanted {
                return None;
            }
            why.push(match env.auth {
                Some(user) => format!("authenticated as {user}"),
                None => "not authenticated".to_string(),
            });
        }
        if why.is_empty() {
            why.push("the rule matches every client".into());
        }
        Some(why.join("; "))
    }
}

/// Every rule, in order, as one snapshot evaluates them.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub rules: Vec<PolicyRule>,
    /// Which stages have rules at all: a stage without any costs one load.
    stages: [bool; 5],
    rdns: bool,
}

impl Policy {
    pub fn new(mut rules: Vec<PolicyRule>) -> Policy {
        rules.sort_by_key(|r| r.position);
        let mut stages = [false; 5];
        for r in &rules {
            stages[r.stage as usize] = true;
        }
        let rdns = rules.iter().any(|r| r.matches.rdns.is_some());
        Policy { rules, stages, rdns }
    }

    pub fn has(&self, stage: PolicyStage) -> bool {
        self.stages[stage as usize]
    }

    /// Whether any rule needs the client's reverse DNS name.
    pub fn needs_rdns(&self) -> bool {
        self.rdns
    }

    /// The first rule of `stage` that matches, in order.
    pub fn evaluate<'p>(
        &'p self,
        stage: PolicyStage,
        env: &PolicyEnvelope<'_>,
    ) -> Option<PolicyHit<'p>> {
        if !self.has(stage) {
            return None;
        }
        self.rules
            .iter()
            .filter(|r| r.stage == stage)
            .find_map(|rule| rule.explain(env).map(|why| PolicyHit { rule, why }))
    }

    /// What each stage decides for a whole envelope, as a client sending it would meet them:
    /// connect, HELO (if given), MAIL (if given), RCPT for each recipient, DATA. Stops at the
    /// first refusal.
    pub fn trace(&self, env: &PolicyEnvelope<'_>) -> Vec<PolicyStep> {
        let mut steps = Vec::new();
        let mut stages: Vec<(PolicyStage, PolicyEnvelope<'_>)> = Vec::new();
        let mut e = PolicyEnvelope {
            client: env.client,
            rdns: env.rdns,
            auth: env.auth,
            ..Default::default()
        };
        stages.push((PolicyStage::Connect, e.clone()));
        if env.helo.is_some() {
            e.helo = env.helo;
            stages.push((PolicyStage::Helo, e.clone()));
        }
        if env.sender.is_some() {
            e.sender = env.sender;
            stages.push((PolicyStage::Mail, e.clone()));
            for r in &env.recipients {
                stages
                    .push((PolicyStage::Rcpt, PolicyEnvelope { recipients: vec![r], ..e.clone() }));
            }
            if !env.recipients.is_empty() {
                stages.push((
                    PolicyStage::Data,
                    PolicyEnvelope { recipients: env.recipients.clone(), ..e.clone() },
                ));
            }
        }
        for (stage, e) in stages {
            let hit = self.evaluate(stage, &e);
            let subject = match stage {
                PolicyStage::Rcpt => e.recipients.first().map(|r| r.to_string()),
                _ => None,
            };
            let refused = hit.as_ref().is_some_and(|h| h.rule.action.refuses());
            steps.push(PolicyStep {
                stage,
                subject,
                rule: hit.as_ref().map(|h| h.rule.id),
                action: hit.as_ref().map(|h| h.rule.action.to_string()),
                why: hit.map(|h| h.why),
            });
            if refused {
                break;
            }
        }
        steps
    }
}

/// One stage of [`Policy::trace`]: which rule decided (if any), its action and why it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStep {
    pub stage: PolicyStage,
    /// The recipient, at the rcpt stage.
    pub subject: Option<String>,
    /// The id of the rule that decided; none when no rule matched (the stage goes on as usual).
    pub rule: Option<i64>,
    pub action: Option<String>,
    pub why: Option<String>,
}

impl fmt::Display for PolicyStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stage)?;
        if let Some(s) = &self.subject {
            write!(f, " <{s}>")?;
        }
        match (&self.rule, &self.action, &self.why) {
            (Some(id), Some(action), Some(why)) => {
                write!(f, ": rule {id} ({action}) because {why}")
            }
            _ => write!(f, ": no rule matched"),
        }
    }
}

/// A rule as text fields, as the CLI, the API and the console's form give it; empty fields
/// match anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyRuleText {
    pub stage: String,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub rdns: Option<String>,
    #[serde(default)]
    pub helo: Option<String>,
    #[serde(default)]
    pub sender: Option<String>,
    #[serde(default)]
    pub recipient: Option<String>,
    /// `yes`, `no`, or empty for either.
    #[serde(default)]
    pub authenticated: Option<String>,
    pub action: String,
    #[serde(default)]
    pub description: String,
}

impl PolicyRuleText {
    pub fn parse(&self) -> Result<NewPolicyRule, StoreError> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let text = |field: &'static str, v: &Option<String>| {
            given(v).map(|t| Matcher::parse(field, t)).transpose()
        };
        let authenticated = match given(&self.authenticated).map(str::to_ascii_lowercase).as_deref()
        {
            None | Some("any") => None,
            Some("yes" | "true") => Some(true),
            Some("no" | "false") => Some(false),
            Some(other) => {
                return Err(StoreError::invalid(
                    "authenticated",
                    format!("{other:?}: use yes, no or any"),
                ));
            }
        };
        let rule = NewPolicyRule {
            stage: self.stage.parse()?,
            matches: PolicyMatch {
                client: given(&self.client).map(super::parse_cidr).transpose()?,
                rdns: text("rdns", &self.rdns)?,
                helo: text("helo", &self.helo)?,
                sender: text("sender", &self.sender)?,
                recipient: text("recipient", &self.recipient)?,
                authenticated,
            },
            action: self.action.parse()?,
            description: self.description.trim().to_string(),
        };
        rule.check()?;
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: i64, stage: PolicyStage, matches: PolicyMatch, action: &str) -> PolicyRule {
        PolicyRule {
            id,
            position: id,
            stage,
            matches,
            action: action.parse().unwrap(),
            description: String::new(),
            created_at: 0,
        }
    }

    #[test]
    fn actions_parse_and_validate() {
        let a: PolicyAction = "reject 550 5.7.1 go away".parse().unwrap();
        assert_eq!(a.to_string(), "REJECT 550 5.7.1 go away");
        assert_eq!(
            "REJECT".parse::<PolicyAction>().unwrap().to_string(),
            "REJECT 554 5.7.1 Access denied"
        );
        assert_eq!(
            "DEFER not now".parse::<PolicyAction>().unwrap().to_string(),
            "DEFER 450 4.7.1 not now"
        );
        let err = "REJECT 450 4.7.1 x".parse::<PolicyAction>().unwrap_err().to_string();
        assert!(err.contains("5xx"), "{err}");
        let err = "REJECT 550 4.7.1 x".parse::<PolicyAction>().unwrap_err().to_string();
        assert!(err.contains("5.x.x"), "{err}");
        let err = "DEFER 550 5.7.1 x".parse::<PolicyAction>().unwrap_err().to_string();
        assert!(err.contains("4xx"), "{err}");
        assert!("REDIRECT".parse::<PolicyAction>().is_err());
        assert_eq!("bcc Archive@Example.com".parse::<PolicyAction>().unwrap().keyword(), "BCC");
        assert!("HOLD now".parse::<PolicyAction>().is_err());
        assert!("SHRUG".parse::<PolicyAction>().is_err());
    }

    #[test]
    fn matchers() {
        let m = |t: &str| Matcher::parse("sender", t).unwrap();
        assert!(m("@example.com").matches("Ann@EXAMPLE.com"));
        assert!(!m("@example.com").matches("ann@sub.example.com"));
        assert!(m(".example.com").matches("ann@sub.example.com"));
        assert!(m(".example.com").matches("mx.example.com"));
        assert!(m(".example.com").matches("example.com"));
        assert!(!m(".example.com").matches("badexample.com"));
        assert!(m("ann@example.com").matches("ANN@example.com"));
        assert!(m("/^spam[0-9]+@/").matches("Spam12@x.test"));
        let err = Matcher::parse("sender", "/(unclosed/").unwrap_err().to_string();
        assert!(err.contains("not a valid pattern"), "{err}");
        assert!(Matcher::parse("sender", "two words").is_err());
    }

    #[test]
    fn first_match_decides_and_says_why() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        let policy = Policy::new(vec![
            rule(
                1,
                PolicyStage::Rcpt,
                PolicyMatch {
                    client: Some(net),
                    recipient: Some(Matcher::parse("r", "@example.test").unwrap()),
                    ..Default::default()
                },
                "OK",
            ),
            rule(
                2,
                PolicyStage::Rcpt,
                PolicyMatch { client: Some(net), ..Default::default() },
                "REJECT 550 5.7.1 no",
            ),
            rule(
                3,
                PolicyStage::Mail,
                PolicyMatch { authenticated: Some(true), ..Default::default() },
                "BCC audit@example.test",
            ),
        ]);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let env = PolicyEnvelope {
            client: Some(ip),
            recipients: vec!["ann@example.test"],
            ..Default::default()
        };
        let hit = policy.evaluate(PolicyStage::Rcpt, &env).unwrap();
        assert_eq!(hit.rule.id, 1);
        assert!(
            hit.why.contains("192.0.2.0/24") && hit.why.contains("@example.test"),
            "{}",
            hit.why
        );
        let env = PolicyEnvelope {
            client: Some(ip),
            recipients: vec!["x@other.test"],
            ..Default::default()
        };
        assert_eq!(policy.evaluate(PolicyStage::Rcpt, &env).unwrap().rule.id, 2);
        assert!(policy.evaluate(PolicyStage::Mail, &env).is_none());
        assert!(policy.evaluate(PolicyStage::Connect, &env).is_none());

        let steps = policy.trace(&PolicyEnvelope {
            client: Some(ip),
            helo: Some("c.test"),
            sender: Some("a@b.test"),
            recipients: vec!["ann@example.test", "x@other.test", "y@other.test"],
            auth: Some("bob@example.test"),
            ..Default::default()
        });
        let text: Vec<String> = steps.iter().map(ToString::to_string).collect();
        assert_eq!(steps.len(), 5, "{text:?}");
        assert_eq!(steps[2].rule, Some(3));
        assert_eq!(steps[4].rule, Some(2));
        assert!(
            text[4].starts_with("rcpt <x@other.test>: rule 2 (REJECT 550 5.7.1 no)"),
            "{text:?}"
        );
    }

    #[test]
    fn matchers_must_be_known_at_their_stage() {
        let new = NewPolicyRule {
            stage: PolicyStage::Mail,
            matches: PolicyMatch {
                recipient: Some(Matcher::parse("r", "@x.test").unwrap()),
                ..Default::default()
            },
            action: PolicyAction::Ok,
            description: String::new(),
        };
        let err = new.check().unwrap_err().to_string();
        assert!(err.contains("not known yet at the mail stage"), "{err}");
    }
}
