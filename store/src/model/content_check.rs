//! Header and body checks (Postfix's `header_checks` and `body_checks`): ordered regex rules on
//! the message once it is whole. A header rule is matched against each header field of the
//! message, unfolded (RFC 5322 §2.2.3) and written `Name: value`; a body rule against each line
//! of the message's decoded text parts (quoted-printable and base64 undone, charsets converted,
//! by mail-parser). For each field or line the first rule that matches decides, as in Postfix.
//!
//! Patterns are compiled when the configuration is loaded, once per snapshot, with a size bound;
//! a bad one is refused when it is saved. The same [`ContentChecks::check`] answers the
//! console's live test, `postern checks test` and the SMTP session.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{PolicyAction, PolicyReply};
use crate::error::StoreError;

/// What a rule is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckPart {
    /// Each header field, unfolded, as `Name: value`.
    Header,
    /// Each line of the decoded text parts.
    Body,
}

impl CheckPart {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckPart::Header => "header",
            CheckPart::Body => "body",
        }
    }
}

impl fmt::Display for CheckPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckPart {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "header" | "headers" => Ok(CheckPart::Header),
            "body" => Ok(CheckPart::Body),
            _ => {
                Err(StoreError::invalid("part", format!("{s:?} is not a part: use header or body")))
            }
        }
    }
}

/// Longest pattern accepted, and the compiled size bound: a header rule runs on every header
/// field of every message, a body rule on every line.
const MAX_PATTERN: usize = 1000;
const MAX_COMPILED: usize = 1 << 20;

/// A rule's regex, case-insensitive (as Postfix's regexp tables are by default). Written bare or
/// as `/regex/`.
#[derive(Debug, Clone)]
pub struct CheckPattern(regex::Regex);

impl CheckPattern {
    pub fn parse(text: &str) -> Result<CheckPattern, StoreError> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_PATTERN || text.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                "pattern",
                format!("must be one line of 1 to {MAX_PATTERN} characters"),
            ));
        }
        let inner = text
            .strip_prefix('/')
            .and_then(|t| t.strip_suffix('/'))
            .filter(|t| !t.is_empty())
            .unwrap_or(text);
        regex::RegexBuilder::new(inner)
            .case_insensitive(true)
            .size_limit(MAX_COMPILED)
            .build()
            .map(CheckPattern)
            .map_err(|e| {
                StoreError::invalid("pattern", format!("{text} is not a valid pattern: {e}"))
            })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl fmt::Display for CheckPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl PartialEq for CheckPattern {
    fn eq(&self, other: &CheckPattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}
impl Eq for CheckPattern {}

impl Serialize for CheckPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CheckPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CheckPattern::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a matching rule does (Postfix's header_checks(5) actions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckAction {
    /// Refuse the message (default `550 5.7.1`).
    Reject(PolicyReply),
    /// Accept the message and drop it (logged).
    Discard,
    /// Accept the message and hold it in the queue.
    Hold,
    /// Log the match only, with this text.
    Warn(String),
    /// Remove the header field (header rules only).
    Ignore,
    /// Put this header field in place of the one that matched (header rules only).
    Replace(String),
}

impl CheckAction {
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckAction::Reject(_) => "REJECT",
            CheckAction::Discard => "DISCARD",
            CheckAction::Hold => "HOLD",
            CheckAction::Warn(_) => "WARN",
            CheckAction::Ignore => "IGNORE",
            CheckAction::Replace(_) => "REPLACE",
        }
    }

    /// True for the actions that only make sense on a header field.
    pub fn headers_only(&self) -> bool {
        matches!(self, CheckAction::Ignore | CheckAction::Replace(_))
    }
}

/// Longest header field a REPLACE may put in (RFC 5322 §2.1.1's 998, less room to fold).
const MAX_FIELD: usize = 900;

/// Checks that `text` is one header field, `Name: value` (RFC 5322 §2.2: a name of printable
/// ASCII but the colon).
pub fn check_header_field(field: &'static str, text: &str) -> Result<(), StoreError> {
    let bad = || {
        StoreError::invalid(
            field,
            format!("a header field is one line `Name: value` of at most {MAX_FIELD} characters"),
        )
    };
    if text.len() > MAX_FIELD || text.chars().any(char::is_control) {
        return Err(bad());
    }
    let (name, _) = text.split_once(':').ok_or_else(bad)?;
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(bad());
    }
    Ok(())
}

impl FromStr for CheckAction {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let s = s.trim();
        let (keyword, rest) = s.split_once(' ').unwrap_or((s, ""));
        let rest = rest.trim();
        let bare = |action: CheckAction| {
            if rest.is_empty() {
                Ok(action)
            } else {
                Err(StoreError::invalid(
                    "action",
                    format!("{} takes nothing after it", keyword.to_ascii_uppercase()),
                ))
            }
        };
        if rest.len() > 200 && !keyword.eq_ignore_ascii_case("REPLACE") {
            return Err(StoreError::invalid("action", "the text must be at most 200 characters"));
        }
        match keyword.to_ascii_uppercase().as_str() {
            "REJECT" => {
                // The access rules' parser, with header_checks' defaults: 550 5.7.1.
                let coded = rest.len() >= 3 && rest.as_bytes()[..3].iter().all(u8::is_ascii_digit);
                let text = match (coded, rest.is_empty()) {
                    (true, _) => format!("REJECT {rest}"),
                    (false, true) => "REJECT 550 5.7.1 Message content rejected".to_string(),
                    (false, false) => format!("REJECT 550 5.7.1 {rest}"),
                };
                match text.parse::<PolicyAction>()? {
                    PolicyAction::Reject(reply) => Ok(CheckAction::Reject(reply)),
                    _ => unreachable!("REJECT parses as a rejection"),
                }
            }
            "DISCARD" => bare(CheckAction::Discard),
            "HOLD" => bare(CheckAction::Hold),
            "WARN" => {
                if rest.chars().any(char::is_control) {
                    return Err(StoreError::invalid("action", "the text must be one line"));
                }
                Ok(CheckAction::Warn(rest.to_string()))
            }
            "IGNORE" => bare(CheckAction::Ignore),
            "REPLACE" => {
                check_header_field("action", rest)
                    .map_err(|_| StoreError::invalid("action", format!("REPLACE needs the header field to put in, one line `Name: value` of at most {MAX_FIELD} characters, like REPLACE X-Spam: yes")))?;
                Ok(CheckAction::Replace(rest.to_string()))
            }
            _ => Err(StoreError::invalid(
                "action",
                format!(
                    "{keyword:?} is not an action: use REJECT [5xx 5.x.x] [text], DISCARD, HOLD, WARN [text], IGNORE or REPLACE Name: value"
                ),
            )),
        }
    }
}

impl fmt::Display for CheckAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckAction::Reject(r) => write!(f, "REJECT {} {} {}", r.code, r.enhanced, r.text),
            CheckAction::Warn(t) if !t.is_empty() => write!(f, "WARN {t}"),
            CheckAction::Replace(t) => write!(f, "REPLACE {t}"),
            _ => f.write_str(self.keyword()),
        }
    }
}

impl Serialize for CheckAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CheckAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A rule as it is added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewContentCheck {
    pub part: CheckPart,
    pub pattern: CheckPattern,
    pub action: CheckAction,
    #[serde(default)]
    pub description: String,
}

impl NewContentCheck {
    /// Parses a rule from text fields, as the CLI, the API and the console's form give it.
    pub fn parse(
        part: &str,
        pattern: &str,
        action: &str,
        description: &str,
    ) -> Result<NewContentCheck, StoreError> {
        let new = NewContentCheck {
            part: part.parse()?,
            pattern: CheckPattern::parse(pattern)?,
            action: action.parse()?,
            description: description.trim().to_string(),
        };
        new.check()?;
        Ok(new)
    }

    /// Refuses IGNORE and REPLACE on body lines, and a bad description.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.part == CheckPart::Body && self.action.headers_only() {
            return Err(StoreError::invalid(
                "action",
                format!(
                    "{} acts on a header field: body rules may REJECT, DISCARD, HOLD or WARN",
                    self.action.keyword()
                ),
            ));
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

/// A stored rule. `position` orders every rule (1 is tried first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentCheck {
    pub id: i64,
    pub position: i64,
    pub part: CheckPart,
    pub pattern: CheckPattern,
    pub action: CheckAction,
    pub description: String,
    pub created_at: i64,
}

/// Postfix's `body_checks_size_limit`: how much of each decoded text part of a MIME message
/// body rules see (a plain message, one text part with no transfer encoding, is seen whole).
pub const BODY_PART_LIMIT: usize = 51_200;
/// How much of a MIME message is parsed for body rules at all, and how many text parts are
/// looked at: a 25 MiB message of attachments costs no more than this.
pub const BODY_SCAN_LIMIT: usize = 2 * 1024 * 1024;
const MAX_TEXT_PARTS: usize = 50;
/// How much of a matched field or line is kept for the log and the test's answer.
const SHOWN: usize = 200;

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentHit {
    pub rule: i64,
    pub part: CheckPart,
    /// The field or line that matched, cut to 200 characters.
    pub line: String,
    pub action: String,
}

impl fmt::Display for ContentHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule {} ({}) matched {:?}", self.part, self.rule, self.action, self.line)
    }
}

/// What the rules decide for the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentDecision {
    /// Go on (possibly held, possibly with header fields removed or replaced).
    Accept,
    /// Refuse the message with this rule's reply.
    Reject { rule: i64, reply: PolicyReply },
    /// Accept and drop it, by this rule.
    Discard { rule: i64 },
}

/// The answer of [`ContentChecks::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentVerdict {
    /// Every rule that matched, in the order met; the last one decided when the message is
    /// refused or dropped.
    pub hits: Vec<ContentHit>,
    pub decision: ContentDecision,
    /// Hold the message in the queue, by this rule.
    pub hold: Option<i64>,
    /// The message with IGNORE and REPLACE applied, when a header field changed.
    pub rewritten: Option<Vec<u8>>,
}

/// Every rule, in order, as one snapshot applies them.
#[derive(Debug, Clone, Default)]
pub struct ContentChecks {
    pub rules: Vec<ContentCheck>,
    headers: bool,
    body: bool,
}

/// One header field: where it is in the message (with its line ending) and its text unfolded.
struct Field {
    start: usize,
    end: usize,
    unfolded: String,
}

/// The header fields of `message` and where its body starts. Folding (a line ending followed
/// by a space or tab, RFC 5322 §2.2.3) is undone; a line that is not a field and not a
/// continuation ends the header block, as mail-parser and Postfix treat it.
fn fields(message: &[u8]) -> (Vec<Field>, usize) {
    let mut out: Vec<Field> = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let end =
            message[at..].iter().position(|&b| b == b'\n').map_or(message.len(), |i| at + i + 1);
        let line = &message[at..end];
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            return (out, end);
        }
        if matches!(text[0], b' ' | b'\t') {
            if let Some(field) = out.last_mut() {
                field.unfolded.push_str(&String::from_utf8_lossy(text));
                field.end = end;
                at = end;
                continue;
            }
        } else if !text.contains(&b':') {
            return (out, at);
        }
        out.push(Field { start: at, end, unfolded: String::from_utf8_lossy(text).into_owned() });
        at = end;
    }
    (out, message.len())
}

/// Whether the body after these header fields is one text part with no transfer encoding
/// (RFC 2045 §6.1: 7bit, 8bit and binary mean none): no `Content-Type`, or a `text/` one, and
/// no `Content-Transfer-Encoding` or an identity one.
fn plain_body(fields: &[Field]) -> bool {
    let value = |name: &str| {
        fields.iter().find_map(|f| {
            let (field, value) = f.unfolded.split_once(':')?;
            field.trim_end().eq_ignore_ascii_case(name).then(|| value.trim().to_ascii_lowercase())
        })
    };
    let text = value("Content-Type").is_none_or(|t| t.starts_with("text/"));
    let identity = value("Content-Transfer-Encoding")
        .is_none_or(|e| matches!(e.as_str(), "7bit" | "8bit" | "binary"));
    text && identity
}

fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

impl ContentChecks {
    pub fn new(mut rules: Vec<ContentCheck>) -> ContentChecks {
        rules.sort_by_key(|r| r.position);
        let headers = rules.iter().any(|r| r.part == CheckPart::Header);
        let body = rules.iter().any(|r| r.part == CheckPart::Body);
        ContentChecks { rules, headers, body }
    }

    /// No rule at all: a message costs nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn first(&self, part: CheckPart, text: &str) -> Option<&ContentCheck> {
        self.rules.iter().filter(|r| r.part == part).find(|r| r.pattern.is_match(text))
    }

    /// Applies the rules to `message` (header block, empty line, body).
    pub fn check(&self, message: &[u8]) -> ContentVerdict {
        let mut verdict = ContentVerdict {
            hits: Vec::new(),
            decision: ContentDecision::Accept,
            hold: None,
            rewritten: None,
        };
        if self.headers {
            let (fields, _) = fields(message);
            // (start, end, replacement) for the fields IGNORE or REPLACE changes.
            let mut edits: Vec<(usize, usize, Option<&str>)> = Vec::new();
            for field in &fields {
                let Some(rule) = self.first(CheckPart::Header, &field.unfolded) else { continue };
                if self.decide(rule, &field.unfolded, &mut verdict) {
                    return verdict;
                }
                match &rule.action {
                    CheckAction::Ignore => edits.push((field.start, field.end, None)),
                    CheckAction::Replace(with) => edits.push((field.start, field.end, Some(with))),
                    _ => {}
                }
            }
            if !edits.is_empty() {
                let mut out = Vec::with_capacity(message.len());
                let mut at = 0;
                for (start, end, with) in edits {
                    out.extend_from_slice(&message[at..start]);
                    if let Some(with) = with {
                        out.extend_from_slice(with.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    at = end;
                }
                out.extend_from_slice(&message[at..]);
                verdict.rewritten = Some(out);
            }
        }
        if self.body {
            let (fields, body_at) = fields(message);
            if plain_body(&fields) {
                // One text part with no transfer encoding: its lines as they are are its
                // decoded lines, and every one of them is looked at, however large the message.
                for line in message[body_at.min(message.len())..].split_inclusive(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\n").unwrap_or(line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let line = String::from_utf8_lossy(line);
                    let Some(rule) = self.first(CheckPart::Body, &line) else { continue };
                    if self.decide(rule, &line, &mut verdict) {
                        return verdict;
                    }
                }
                return verdict;
            }
            let scanned = &message[..message.len().min(BODY_SCAN_LIMIT)];
            if let Some(parsed) = mail_parser::MessageParser::default().parse(scanned) {
                let texts = parsed.parts.iter().filter_map(|p| match &p.body {
                    mail_parser::PartType::Text(t) | mail_parser::PartType::Html(t) => Some(t),
                    _ => None,
                });
                for text in texts.take(MAX_TEXT_PARTS) {
                    let mut cut = text.len().min(BODY_PART_LIMIT);
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    for line in text[..cut].lines() {
                        let Some(rule) = self.first(CheckPart::Body, line) else { continue };
                        if self.decide(rule, line, &mut verdict) {
                            return verdict;
                        }
                    }
                }
            }
        }
        verdict
    }

    /// Records a hit; true when it ends the checks (REJECT, DISCARD).
    fn decide(&self, rule: &ContentCheck, line: &str, verdict: &mut ContentVerdict) -> bool {
        verdict.hits.push(ContentHit {
            rule: rule.id,
            part: rule.part,
            line: shown(line),
            action: rule.action.to_string(),
        });
        match &rule.action {
            CheckAction::Reject(reply) => {
                verdict.decision = ContentDecision::Reject { rule: rule.id, reply: reply.clone() };
                verdict.rewritten = None;
                true
            }
            CheckAction::Discard => {
                verdict.decision = ContentDecision::Discard { rule: rule.id };
                verdict.rewritten = None;
                true
            }
            CheckAction::Hold => {
                verdict.hold.get_or_insert(rule.id);
                false
            }
            CheckAction::Warn(_) | CheckAction::Ignore | CheckAction::Replace(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: i64, part: &str, pattern: &str, action: &str) -> ContentCheck {
        let new = NewContentCheck::parse(part, pattern, action, "").unwrap();
        ContentCheck {
            id,
            position: id,
            part: new.part,
            pattern: new.pattern,
            action: new.action,
            description: String::new(),
            created_at: 0,
        }
    }

    const MESSAGE: &[u8] = b"From: a@b.test\r\nSubject: cheap\r\n\tpills today\r\nX-Mailer: Spam\r\n 2000\r\nTo: c@d.test\r\n\r\nHello\r\n";

    #[test]
    fn unfolds_headers() {
        let (found, body) = fields(MESSAGE);
        let texts: Vec<&str> = found.iter().map(|f| f.unfolded.as_str()).collect();
        assert_eq!(
            texts,
            [
                "From: a@b.test",
                "Subject: cheap\tpills today",
                "X-Mailer: Spam 2000",
                "To: c@d.test"
            ]
        );
        assert_eq!(&MESSAGE[body..], b"Hello\r\n");
        // A body without a blank line before it: the first non-field line ends the headers.
        let (found, body) = fields(b"Subject: x\nnot a field\n");
        assert_eq!(found.len(), 1);
        assert_eq!(body, 11);
    }

    #[test]
    fn actions_parse_and_validate() {
        let a: CheckAction = "reject".parse().unwrap();
        assert_eq!(a.to_string(), "REJECT 550 5.7.1 Message content rejected");
        let a: CheckAction = "REJECT no pills".parse().unwrap();
        assert_eq!(a.to_string(), "REJECT 550 5.7.1 no pills");
        let a: CheckAction = "REJECT 554 5.7.0 go".parse().unwrap();
        assert_eq!(a.to_string(), "REJECT 554 5.7.0 go");
        assert!("REJECT 450 4.7.1 x".parse::<CheckAction>().is_err());
        assert_eq!("warn".parse::<CheckAction>().unwrap(), CheckAction::Warn(String::new()));
        assert_eq!(
            "REPLACE X-Spam: yes".parse::<CheckAction>().unwrap().to_string(),
            "REPLACE X-Spam: yes"
        );
        assert!("REPLACE nothing".parse::<CheckAction>().is_err());
        assert!("IGNORE x".parse::<CheckAction>().is_err());
        assert!("SHRUG".parse::<CheckAction>().is_err());
        let err = NewContentCheck::parse("body", "x", "IGNORE", "").unwrap_err().to_string();
        assert!(err.contains("body rules"), "{err}");
        let err =
            NewContentCheck::parse("header", "/(unclosed/", "WARN", "").unwrap_err().to_string();
        assert!(err.contains("not a valid pattern"), "{err}");
        assert!(NewContentCheck::parse("header", "a{100000}{100000}", "WARN", "").is_err());
        assert!(NewContentCheck::parse("footer", "x", "WARN", "").is_err());
    }

    #[test]
    fn header_rules_match_unfolded_fields() {
        let checks = ContentChecks::new(vec![
            rule(1, "header", "^Subject:.*cheap\\s+pills", "REJECT 550 5.7.1 no pills"),
            rule(2, "header", "^Subject:", "WARN"),
        ]);
        let v = checks.check(MESSAGE);
        assert_eq!(v.hits.len(), 1);
        assert_eq!(v.hits[0].rule, 1);
        assert_eq!(v.hits[0].line, "Subject: cheap\tpills today");
        match v.decision {
            ContentDecision::Reject { rule, reply } => {
                assert_eq!(rule, 1);
                assert_eq!((reply.code, reply.enhanced.as_str()), (550, "5.7.1"));
            }
            other => panic!("{other:?}"),
        }
        // Case-insensitive, and first match per field.
        let checks = ContentChecks::new(vec![rule(1, "header", "/^x-mailer: spam/", "HOLD")]);
        let v = checks.check(MESSAGE);
        assert_eq!((v.decision, v.hold), (ContentDecision::Accept, Some(1)));
        assert!(v.rewritten.is_none());
    }

    #[test]
    fn ignore_and_replace_rewrite_the_header_block() {
        let checks = ContentChecks::new(vec![
            rule(1, "header", "^X-Mailer:", "IGNORE"),
            rule(2, "header", "^Subject:", "REPLACE Subject: [checked]"),
            rule(3, "header", "^To:", "WARN looked"),
        ]);
        let v = checks.check(MESSAGE);
        assert_eq!(v.decision, ContentDecision::Accept);
        assert_eq!(v.hits.iter().map(|h| h.rule).collect::<Vec<_>>(), [2, 1, 3]);
        let out = String::from_utf8(v.rewritten.unwrap()).unwrap();
        assert_eq!(out, "From: a@b.test\r\nSubject: [checked]\r\nTo: c@d.test\r\n\r\nHello\r\n");
    }

    #[test]
    fn body_rules_see_decoded_text() {
        let message = b"From: a@b.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbuy v=\r\niagra now=3D\r\n--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nc2Vjb25kIHBhcnQgc2VjcmV0\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nc2VjcmV0\r\n--XX--\r\n";
        let checks = ContentChecks::new(vec![rule(1, "body", "^buy viagra now=$", "DISCARD")]);
        let v = checks.check(message);
        assert_eq!(v.decision, ContentDecision::Discard { rule: 1 });
        let checks = ContentChecks::new(vec![rule(1, "body", "part secret", "REJECT")]);
        assert!(matches!(checks.check(message).decision, ContentDecision::Reject { rule: 1, .. }));
        // Attachments are not text: their content is not looked at; headers are not body.
        let checks = ContentChecks::new(vec![
            rule(1, "body", "^secret$", "REJECT"),
            rule(2, "body", "^From:", "REJECT"),
        ]);
        assert_eq!(checks.check(message).decision, ContentDecision::Accept);
    }

    #[test]
    fn body_work_is_bounded() {
        let mut message = b"Subject: big\r\n\r\n".to_vec();
        message.extend(std::iter::repeat_n(b"line of text\r\n".as_slice(), 10_000).flatten());
        message.extend_from_slice(b"needle\r\n");
        let checks = ContentChecks::new(vec![rule(1, "body", "needle", "REJECT")]);
        // A plain text body is looked at whole, to its last line.
        assert!(matches!(checks.check(&message).decision, ContentDecision::Reject { .. }));
        // An encoded one is decoded: past BODY_PART_LIMIT of a text part, not seen.
        let mut encoded =
            b"Subject: big\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".to_vec();
        encoded.extend(std::iter::repeat_n(b"line of text\r\n".as_slice(), 10_000).flatten());
        encoded.extend_from_slice(b"needle\r\n");
        assert_eq!(checks.check(&encoded).decision, ContentDecision::Accept);
        assert!(ContentChecks::default().is_empty());
    }
}
