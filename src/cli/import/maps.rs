//! Postfix lookup tables read from their source text, as `postmap` reads them: a file map
//! (`hash:`, `lmdb:`, `btree:`, `cdb:`, `dbm:`, `texthash:`) is read from the file it was
//! built from (`hash:/etc/postfix/virtual` reads `/etc/postfix/virtual`), an `inline:{…}` map
//! from its text. Other kinds (regular expressions, databases, directories, services) have no
//! list of keys to import: they are reported with the reason.

use std::path::{Path, PathBuf};

/// One table's entries, in file order.
pub type Entries = Vec<(String, String)>;

/// Why a map could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub spec: String,
    pub why: String,
}

/// Whether entries are `key value` (postmap) or `name: value` (aliases(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Postmap,
    Aliases,
}

const FILE_KINDS: &[&str] = &["hash", "lmdb", "btree", "cdb", "dbm", "sdbm", "texthash"];

/// Reads the map `spec` (`type:name`); `config_dir` is where the import was pointed, which
/// stands in for `/etc/postfix` in the map's path when the two differ.
pub fn read(spec: &str, config_dir: &Path, format: Format) -> Result<Entries, Unreadable> {
    let fail = |why: String| Unreadable { spec: spec.to_string(), why };
    let Some((kind, name)) = spec.split_once(':') else {
        // A bare path is a file of the default type (hash).
        return read_file(Path::new(spec), config_dir, format).map_err(fail);
    };
    match kind {
        k if FILE_KINDS.contains(&k) => {
            read_file(Path::new(name), config_dir, format).map_err(fail)
        }
        "inline" => parse_inline(name).map_err(fail),
        "regexp" | "pcre" => Err(fail(
            "a regular-expression map matches patterns, not a list of keys: Postern's access \
             rules and content checks take regular expressions, enter them there"
                .into(),
        )),
        "mysql" | "pgsql" | "sqlite" | "ldap" | "memcache" => Err(fail(format!(
            "a {kind} map asks a database at each lookup: export its rows to a file and import that"
        ))),
        "proxy" => read(name, config_dir, format),
        "static" => Err(fail("a static map answers every key the same: set it by hand".into())),
        "cidr" => {
            Err(fail("a cidr map is a list of networks with actions: use access rules".into()))
        }
        "unix" | "nis" | "nisplus" | "netinfo" => Err(fail(format!(
            "{kind} maps are the system's users and hosts, which Postern does not deliver to"
        ))),
        _ => Err(fail(format!("Postern cannot read {kind} maps"))),
    }
}

fn read_file(path: &Path, config_dir: &Path, format: Format) -> Result<Entries, String> {
    let mut candidate: PathBuf = path.to_path_buf();
    if !candidate.exists()
        && let Ok(rest) = path.strip_prefix("/etc/postfix")
    {
        candidate = config_dir.join(rest);
    }
    let text = std::fs::read_to_string(&candidate)
        .map_err(|e| format!("cannot read {}: {e}", candidate.display()))?;
    Ok(match format {
        Format::Postmap => parse_postmap(&text),
        Format::Aliases => parse_aliases(&text),
    })
}

/// Logical lines: comments and blank lines dropped, indented lines joined to the line before.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace)
            && let Some(last) = lines.last_mut()
        {
            last.push(' ');
            last.push_str(trimmed);
            continue;
        }
        lines.push(trimmed.to_string());
    }
    lines
}

/// postmap(1)'s source: `key whitespace value`.
pub fn parse_postmap(text: &str) -> Entries {
    logical_lines(text)
        .into_iter()
        .map(|line| match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k.to_string(), v.trim().to_string()),
            None => (line, String::new()),
        })
        .collect()
}

/// aliases(5): `name: value, value…`; a name may be quoted.
pub fn parse_aliases(text: &str) -> Entries {
    logical_lines(text)
        .into_iter()
        .filter_map(|line| {
            let (name, value) = if let Some(rest) = line.strip_prefix('"') {
                let end = rest.find('"')?;
                (
                    rest[..end].to_string(),
                    rest[end + 1..].trim_start().strip_prefix(':')?.to_string(),
                )
            } else {
                let (n, v) = line.split_once(':')?;
                (n.trim().to_string(), v.to_string())
            };
            Some((name, value.trim().to_string()))
        })
        .collect()
}

/// `{ key=value, { key = text with, commas } }`.
pub fn parse_inline(text: &str) -> Result<Entries, String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| "an inline map is written inline:{ key=value, … }".to_string())?;
    let mut entries = Vec::new();
    for item in super::main_cf::split_list(inner) {
        let item = item.trim();
        let item = item.strip_prefix('{').and_then(|i| i.strip_suffix('}')).unwrap_or(item);
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("{item:?} is not key=value"));
        };
        entries.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sources_as_postmap_and_newaliases_do() {
        let entries = parse_postmap(
            "# virtual\nsales@example.com  ann@example.com,\n   bob@example.com\n\n@example.org  ann@example.com\n",
        );
        assert_eq!(
            entries,
            [
                ("sales@example.com".to_string(), "ann@example.com, bob@example.com".to_string()),
                ("@example.org".to_string(), "ann@example.com".to_string()),
            ]
        );
        let aliases =
            parse_aliases("postmaster: root\n\"odd name\": a@b.c\nroot: ann,\n  |/bin/prog\n");
        assert_eq!(aliases[0], ("postmaster".into(), "root".into()));
        assert_eq!(aliases[1], ("odd name".into(), "a@b.c".into()));
        assert_eq!(aliases[2], ("root".into(), "ann, |/bin/prog".into()));
        assert_eq!(
            parse_inline("{ a.example=smtp:[h]:25, { b.example = error:gone away } }").unwrap(),
            [
                ("a.example".to_string(), "smtp:[h]:25".to_string()),
                ("b.example".to_string(), "error:gone away".to_string()),
            ]
        );
        let dir = Path::new("/nonexistent");
        let err = read("pcre:/etc/postfix/x", dir, Format::Postmap).unwrap_err();
        assert!(err.why.contains("regular-expression"), "{err:?}");
        assert!(read("mysql:/etc/postfix/m.cf", dir, Format::Postmap).is_err());
    }
}
