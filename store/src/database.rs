//! Which database the store lives in, from the boot config's `database` setting.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Where the store is. Its `Debug` and `Display` never show a password from the URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded default: one file, WAL, `synchronous=FULL`.
    Sqlite { path: PathBuf },
    /// Shared by several machines.
    Postgres { url: String },
}

impl Database {
    /// Reads the boot config's `database` value: empty or `sqlite` for `<data_dir>/postern.db`,
    /// `sqlite:PATH` for another file, `postgres://…` or `postgresql://…` for Postgres.
    pub fn parse(value: &str, data_dir: &Path) -> Result<Self, StoreError> {
        let value = value.trim();
        if value.is_empty() || value == "sqlite" {
            return Ok(Database::Sqlite { path: data_dir.join("postern.db") });
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Ok(Database::Postgres { url: value.to_string() });
        }
        if let Some(rest) = value.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(StoreError::invalid("database", "sqlite: needs a file path"));
            }
            let path = PathBuf::from(path);
            let path = if path.is_relative() { data_dir.join(path) } else { path };
            return Ok(Database::Sqlite { path });
        }
        Err(StoreError::invalid(
            "database",
            format!(
                "{:?} is not a database (use \"sqlite\", \"sqlite:/path/to/file.db\" or \
                 \"postgres://user@host/dbname\")",
                redact_url(value)
            ),
        ))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            Database::Postgres { url } => f.write_str(&redact_url(url)),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_hides_passwords() {
        let dir = Path::new("/var/lib/postern");
        assert_eq!(
            Database::parse("", dir).unwrap(),
            Database::Sqlite { path: dir.join("postern.db") }
        );
        assert_eq!(
            Database::parse("sqlite:other.db", dir).unwrap(),
            Database::Sqlite { path: dir.join("other.db") }
        );
        assert_eq!(
            Database::parse("sqlite:///tmp/x.db", dir).unwrap(),
            Database::Sqlite { path: "/tmp/x.db".into() }
        );
        let pg = Database::parse("postgres://postern:s3cret@db.example/postern", dir).unwrap();
        assert_eq!(pg.to_string(), "postgres://postern:***@db.example/postern");
        assert!(!format!("{pg:?}").contains("s3cret"));
        let err = Database::parse("mysql://root:pw@x/y", dir).unwrap_err().to_string();
        assert!(err.starts_with("database:") && !err.contains("pw@"), "{err}");
    }
}
