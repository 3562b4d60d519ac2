//! Postfix's `regexp:` and `pcre:` tables read from their files (regexp_table(5), pcre_table(5)):
//! `/pattern/flags result` lines, in order, the first match deciding. Postern's patterns are
//! Rust regular expressions, case-insensitive as Postfix's are by default; the `i` flag (which
//! makes a Postfix pattern case-sensitive) becomes `(?-i)`, and `x`, `m`, `s` their inline
//! forms. Negated patterns (`!/…/`) and `if`/`endif` blocks have no counterpart in a list of
//! rules and are reported.

use std::path::Path;

/// One `/pattern/flags result` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexpEntry {
    /// Where it is in the file (1-based), for the report.
    pub line: usize,
    /// The pattern as Postern writes it: `/regex/`, flags inlined.
    pub pattern: String,
    /// The result text (an action, for access maps and content checks).
    pub result: String,
}

/// A table's entries and the lines that cannot be read as one, with why.
#[derive(Debug, Default)]
pub struct RegexpTable {
    pub entries: Vec<RegexpEntry>,
    pub unreadable: Vec<String>,
}

/// Reads the table file `path` (with `/etc/postfix` standing for `config_dir`, as maps do).
pub fn read(path: &Path, config_dir: &Path) -> Result<RegexpTable, String> {
    let mut candidate = path.to_path_buf();
    if !candidate.exists()
        && let Ok(rest) = path.strip_prefix("/etc/postfix")
    {
        candidate = config_dir.join(rest);
    }
    let text = std::fs::read_to_string(&candidate)
        .map_err(|e| format!("cannot read {}: {e}", candidate.display()))?;
    Ok(parse(&text))
}

/// Parses a table's text: comments and blank lines skipped, an indented line continues the one
/// before it.
pub fn parse(text: &str) -> RegexpTable {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace)
            && let Some((_, last)) = lines.last_mut()
        {
            last.push(' ');
            last.push_str(trimmed);
            continue;
        }
        lines.push((n + 1, trimmed.to_string()));
    }
    let mut table = RegexpTable::default();
    let mut depth = 0usize;
    for (line, text) in lines {
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("if ") || lower.starts_with("if!") || lower.starts_with("if\t") {
            depth += 1;
            table.unreadable.push(format!(
                "line {line} {text:?}: an if/endif block (a rule that applies only inside another \
                 match) has no counterpart in Postern's rule list; its rules are left out"
            ));
            continue;
        }
        if lower == "endif" {
            depth = depth.saturating_sub(1);
            continue;
        }
        if depth > 0 {
            continue;
        }
        match entry(&text) {
            Ok((pattern, result)) => table.entries.push(RegexpEntry { line, pattern, result }),
            Err(why) => table.unreadable.push(format!("line {line} {text:?}: {why}")),
        }
    }
    table
}

/// `/pattern/flags result` as Postern's `/regex/` and the result.
fn entry(text: &str) -> Result<(String, String), String> {
    if text.starts_with('!') {
        return Err("a negated pattern (matches what does not match) cannot be written as one \
                    of Postern's patterns"
            .into());
    }
    let mut chars = text.char_indices();
    let Some((_, delim)) = chars.next() else {
        return Err("empty".into());
    };
    if delim.is_alphanumeric() || delim.is_whitespace() {
        return Err("a pattern is written between delimiters, like /pattern/".into());
    }
    let mut escaped = false;
    let mut end = None;
    for (i, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            end = Some(i);
            break;
        }
    }
    let end = end.ok_or_else(|| format!("the pattern has no closing {delim}"))?;
    let inner = &text[delim.len_utf8()..end];
    let rest = &text[end + delim.len_utf8()..];
    let flag_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (flags, result) = rest.split_at(flag_len);
    let mut inline = String::new();
    for f in flags.chars() {
        match f {
            // Postfix's patterns are case-insensitive unless `i` is given.
            'i' => inline.push_str("(?-i)"),
            'x' => inline.push_str("(?x)"),
            'm' => inline.push_str("(?m)"),
            's' => inline.push_str("(?s)"),
            // pcre's "ungreedy" and the like have no inline form here.
            other => return Err(format!("the pattern flag {other:?} has no counterpart")),
        }
    }
    let result = result.trim();
    if result.is_empty() {
        return Err("the pattern has no result".into());
    }
    // A `/` inside is fine: the matchers strip only the outer pair.
    Ok((format!("/{inline}{inner}/"), result.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_patterns_flags_and_results() {
        let t = parse(
            "# header checks\n/^Subject:.*viagra/ REJECT no spam\n/^X-Mailer: bulk/i\n  DISCARD\n\
             !/^From:/ WARN odd\nif /^Received:/\n/foo/ HOLD\nendif
|a/b|  WARN slash
/open
",
        );
        assert_eq!(
            t.entries,
            [
                RegexpEntry {
                    line: 2,
                    pattern: "/^Subject:.*viagra/".into(),
                    result: "REJECT no spam".into()
                },
                RegexpEntry {
                    line: 3,
                    pattern: "/(?-i)^X-Mailer: bulk/".into(),
                    result: "DISCARD".into()
                },
                RegexpEntry { line: 9, pattern: "/a/b/".into(), result: "WARN slash".into() },
            ]
        );
        assert_eq!(t.unreadable.len(), 3, "{:?}", t.unreadable);
        assert!(t.unreadable[0].contains("negated"), "{:?}", t.unreadable);
        assert!(t.unreadable[1].contains("if/endif"), "{:?}", t.unreadable);
        assert!(t.unreadable[2].contains("no closing"), "{:?}", t.unreadable);
    }
}
