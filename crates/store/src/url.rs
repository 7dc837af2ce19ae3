//! Database URL normalisation: every spelling operators and other tools use for the same
//! database (`postgres://`, `postgresql://`, SQLAlchemy's `postgresql+asyncpg://` and
//! `postgresql+psycopg://`, `sqlite://PATH`, `sqlite::memory:`) becomes one `DatabaseUrl`.

use std::fmt;
use std::path::PathBuf;

/// Which engine a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A validated, normalised database location.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file, created with its folder when missing.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database (tests, throwaway runs).
    SqliteMemory,
    /// A PostgreSQL server, as a `postgres://` URL.
    Postgres(url::Url),
}

/// Why a database URL was refused; the message is shown to operators as-is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("is empty")]
    Empty,
    #[error(
        "unknown scheme '{0}' (expected postgres://, postgresql://, postgresql+asyncpg://, postgresql+psycopg:// or sqlite://)"
    )]
    UnknownScheme(String),
    #[error("is not a valid URL: {0}")]
    Malformed(String),
    #[error("names no host")]
    NoHost,
    #[error("names no database (add /DBNAME)")]
    NoDatabase,
    #[error("sqlite:// URL names no file")]
    NoSqlitePath,
}

impl DatabaseUrl {
    /// Parse and normalise. The error never echoes the URL (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(UrlError::Empty);
        }
        if raw == "sqlite::memory:" || raw == "sqlite://:memory:" {
            return Ok(DatabaseUrl::SqliteMemory);
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            // "sqlite:path" without slashes is what sqlx also accepts.
            if let Some(path) = raw.strip_prefix("sqlite:") {
                return sqlite_path(path);
            }
            return Err(UrlError::Malformed("expected SCHEME://...".into()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => sqlite_path(rest),
            "postgres"
            | "postgresql"
            | "postgresql+asyncpg"
            | "postgresql+psycopg"
            | "postgresql+psycopg2"
            | "postgres+asyncpg" => {
                let normalised = format!("postgres://{rest}");
                let url =
                    url::Url::parse(&normalised).map_err(|e| UrlError::Malformed(e.to_string()))?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(UrlError::NoHost);
                }
                if url.path().trim_start_matches('/').is_empty() {
                    return Err(UrlError::NoDatabase);
                }
                Ok(DatabaseUrl::Postgres(url))
            }
            other => Err(UrlError::UnknownScheme(other.to_owned())),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::SqliteFile(_) | DatabaseUrl::SqliteMemory => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL database name, if this is a PostgreSQL URL.
    pub fn postgres_database(&self) -> Option<&str> {
        match self {
            DatabaseUrl::Postgres(u) => Some(u.path().trim_start_matches('/')),
            _ => None,
        }
    }

    /// The same server with another database name (used to create test databases).
    pub fn with_postgres_database(&self, name: &str) -> Option<DatabaseUrl> {
        match self {
            DatabaseUrl::Postgres(u) => {
                let mut u = u.clone();
                u.set_path(&format!("/{name}"));
                Some(DatabaseUrl::Postgres(u))
            }
            _ => None,
        }
    }

    /// The URL with its password in clear, for the driver only. Never log this.
    pub(crate) fn expose(&self) -> String {
        match self {
            DatabaseUrl::SqliteFile(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::SqliteMemory => "sqlite::memory:".into(),
            DatabaseUrl::Postgres(u) => u.to_string(),
        }
    }
}

fn sqlite_path(rest: &str) -> Result<DatabaseUrl, UrlError> {
    // Drop query parameters (mode=rwc etc.): Assay sets its own SQLite options.
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(UrlError::NoSqlitePath);
    }
    if path == ":memory:" {
        return Ok(DatabaseUrl::SqliteMemory);
    }
    Ok(DatabaseUrl::SqliteFile(PathBuf::from(path)))
}

/// Prints with the password redacted, so a `DatabaseUrl` is safe in logs and `config check`.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Postgres(u) if u.password().is_some() => {
                let mut u = u.clone();
                let _ = u.set_password(Some("***"));
                write!(f, "{u}")
            }
            other => f.write_str(&other.expose()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_spellings_normalise_to_one_form() {
        for raw in [
            "postgres://u:p@db:5432/assay",
            "postgresql://u:p@db:5432/assay",
            "postgresql+asyncpg://u:p@db:5432/assay",
            "postgresql+psycopg://u:p@db:5432/assay",
        ] {
            let url = DatabaseUrl::parse(raw).unwrap();
            assert_eq!(url.backend(), Backend::Postgres);
            assert_eq!(url.expose(), "postgres://u:p@db:5432/assay");
            assert_eq!(url.to_string(), "postgres://u:***@db:5432/assay");
            assert_eq!(url.postgres_database(), Some("assay"));
        }
    }

    #[test]
    fn sqlite_spellings() {
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap(),
            DatabaseUrl::SqliteMemory
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://./data/assay.db").unwrap(),
            DatabaseUrl::SqliteFile("./data/assay.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/assay.db?mode=rwc").unwrap(),
            DatabaseUrl::SqliteFile("/var/lib/assay.db".into())
        );
    }

    #[test]
    fn bad_urls_are_named_without_echoing_secrets() {
        assert!(
            matches!(DatabaseUrl::parse("mysql://u:secret@h/db"), Err(UrlError::UnknownScheme(s)) if s == "mysql")
        );
        assert_eq!(DatabaseUrl::parse(""), Err(UrlError::Empty));
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@h:5432/"),
            Err(UrlError::NoDatabase)
        );
        let err = DatabaseUrl::parse("postgres://u:secret@h:99999/db").unwrap_err();
        assert!(matches!(err, UrlError::Malformed(_)));
        assert!(!err.to_string().contains("secret"));
        assert_eq!(DatabaseUrl::parse("sqlite://"), Err(UrlError::NoSqlitePath));
    }
}
