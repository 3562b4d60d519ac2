//! Reading Postfix's `main.cf` as postconf(5) describes it: `name = value` lines, a line that
//! starts with white space continues the one before, a line whose first non-space character is
//! `#` is a comment (a `#` inside a value is not), and `$name`, `${name}`, `$(name)` expand to
//! another parameter's value, recursively, with `${name?text}` (text when name is set and not
//! empty) and `${name:text}` (text when it is not).

use std::collections::BTreeMap;

/// The parameters of one `main.cf`, as written (not expanded).
#[derive(Debug, Default, Clone)]
pub struct MainCf {
    params: BTreeMap<String, String>,
}

/// Postfix's own defaults for the parameters the import reads, where they matter. `myhostname`
/// and `mydomain` come from the machine when unset.
const DEFAULTS: &[(&str, &str)] = &[
    ("mydestination", "$myhostname, localhost.$mydomain, localhost"),
    ("alias_maps", "hash:/etc/aliases"),
    ("myorigin", "$myhostname"),
    ("virtual_alias_domains", "$virtual_alias_maps"),
];

impl MainCf {
    pub fn parse(text: &str) -> MainCf {
        let mut params = BTreeMap::new();
        let mut logical: Vec<String> = Vec::new();
        for line in text.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                // A comment or blank line does not end a continued line in postconf(5)'s
                // reading only when it is indented; a plain one ends nothing either.
                continue;
            }
            if line.starts_with(char::is_whitespace) {
                if let Some(last) = logical.last_mut() {
                    last.push(' ');
                    last.push_str(trimmed.trim_end());
                }
                continue;
            }
            logical.push(line.trim_end().to_string());
        }
        for line in logical {
            if let Some((name, value)) = line.split_once('=') {
                let name = name.trim();
                if !name.is_empty() && !name.contains(char::is_whitespace) {
                    params.insert(name.to_string(), value.trim().to_string());
                }
            }
        }
        MainCf { params }
    }

    /// Sets a parameter (the machine's host name, a test's value).
    pub fn set(&mut self, name: &str, value: &str) {
        self.params.insert(name.to_string(), value.to_string());
    }

    /// Whether `main.cf` sets `name` itself.
    pub fn is_set(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }

    fn raw(&self, name: &str) -> Option<String> {
        if let Some(v) = self.params.get(name) {
            return Some(v.clone());
        }
        match name {
            "mydomain" => {
                let host = self.raw("myhostname")?;
                let host = self.expand_text(&host, 0);
                Some(host.split_once('.').map(|(_, rest)| rest.to_string()).unwrap_or(host))
            }
            _ => DEFAULTS.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()),
        }
    }

    /// The value of `name`, `$`-expanded; empty when unset.
    pub fn get(&self, name: &str) -> String {
        self.raw(name).map(|v| self.expand_text(&v, 0)).unwrap_or_default()
    }

    /// The value of `name` as a list: items separated by commas and/or white space.
    pub fn list(&self, name: &str) -> Vec<String> {
        split_list(&self.get(name))
    }

    fn expand_text(&self, text: &str, depth: usize) -> String {
        if depth > 20 {
            // A parameter that refers to itself: postconf stops too.
            return text.to_string();
        }
        let mut out = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            let rest = &text[i + 1..];
            let (name, extra, used) = match rest.chars().next() {
                Some('$') => {
                    chars.next();
                    out.push('$');
                    continue;
                }
                Some(open @ ('{' | '(')) => {
                    let close = if open == '{' { '}' } else { ')' };
                    match rest.find(close) {
                        Some(end) => {
                            let inner = &rest[1..end];
                            match inner.find(['?', ':']) {
                                Some(at) => (
                                    inner[..at].to_string(),
                                    Some((inner.as_bytes()[at], inner[at + 1..].to_string())),
                                    end + 1,
                                ),
                                None => (inner.to_string(), None, end + 1),
                            }
                        }
                        None => {
                            out.push('$');
                            continue;
                        }
                    }
                }
                _ => {
                    let len = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    if len == 0 {
                        out.push('$');
                        continue;
                    }
                    (rest[..len].to_string(), None, len)
                }
            };
            for _ in 0..used {
                chars.next();
            }
            let value =
                self.raw(&name).map(|v| self.expand_text(&v, depth + 1)).unwrap_or_default();
            match extra {
                Some((b'?', text)) if !value.is_empty() => {
                    out.push_str(&self.expand_text(&text, depth + 1))
                }
                Some((b':', text)) if value.is_empty() => {
                    out.push_str(&self.expand_text(&text, depth + 1))
                }
                Some(_) => {}
                None => out.push_str(&value),
            }
        }
        out
    }
}

/// Splits a Postfix list: commas and white space separate; `{ … }` keeps an inline map whole.
pub fn split_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            c if depth == 0 && (c == ',' || c.is_whitespace()) => {
                if !current.is_empty() {
                    items.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_continuations_comments_and_expands_variables() {
        let cf = MainCf::parse(
            "# a comment\n\
             myhostname = mx.example.com\n\
             mydestination = $myhostname, localhost.$mydomain,\n\
             \tlocalhost   ${mydomain}\n\
             \n\
             virtual_alias_maps = hash:/etc/postfix/virtual\n\
             relay_domains = $(mydomain)x\n\
             smtpd_banner = $myhostname ESMTP # not a comment\n\
             cond = ${relay_domains?yes} ${unset_thing:fallback} ${unset_thing?no}\n\
             loop = $loop\n\
             dollar = a$$b\n",
        );
        assert_eq!(cf.get("mydomain"), "example.com");
        assert_eq!(
            cf.list("mydestination"),
            ["mx.example.com", "localhost.example.com", "localhost", "example.com"]
        );
        assert_eq!(cf.get("relay_domains"), "example.comx");
        assert_eq!(cf.get("smtpd_banner"), "mx.example.com ESMTP # not a comment");
        assert_eq!(cf.get("cond"), "yes fallback ");
        assert_eq!(cf.get("dollar"), "a$b");
        assert!(!cf.get("loop").is_empty() || cf.get("loop").is_empty(), "terminates");
        // Unset: Postfix's defaults.
        assert_eq!(cf.list("alias_maps"), ["hash:/etc/aliases"]);
        assert_eq!(cf.list("virtual_alias_domains"), ["hash:/etc/postfix/virtual"]);
        assert_eq!(cf.get("nothing"), "");
    }

    #[test]
    fn lists_keep_inline_maps_whole() {
        assert_eq!(
            split_list("hash:/a, inline:{ a=b, { c = d e } }  texthash:/c"),
            ["hash:/a", "inline:{ a=b, { c = d e } }", "texthash:/c"]
        );
    }

    /// Postfix's own `postconf -x` as the oracle for expansion and continuation lines.
    #[test]
    fn expands_as_postconf_does() {
        if !std::path::Path::new("/usr/sbin/postconf").exists() {
            postern_store::testing::missing_peer(
                "main_cf::expands_as_postconf_does",
                "postfix (postconf) is not installed",
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let text = "myhostname = mx.example.com\n\
                    mydomain = example.com\n\
                    mydestination = $myhostname, localhost.$mydomain,\n  localhost, ${mydomain}\n\
                    relay_domains = $(mydomain)\n\
                    # comment\n\
                    relayhost = [smarthost.$mydomain]:587\n\
                    smtpd_banner = $myhostname ESMTP ${relay_domains?relays} ${nope:none}\n";
        std::fs::write(dir.path().join("main.cf"), text).unwrap();
        let cf = MainCf::parse(text);
        for param in ["mydestination", "relay_domains", "relayhost", "smtpd_banner", "myorigin"] {
            let out = std::process::Command::new("/usr/sbin/postconf")
                .args(["-c", dir.path().to_str().unwrap(), "-h", "-x", param])
                .output()
                .unwrap();
            let postfix = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(cf.list(param), split_list(&postfix), "{param}");
        }
    }
}
