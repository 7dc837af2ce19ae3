//! Keeping secrets out of output: serde helpers that print `[redacted]` in place of a
//! secret, and URL redaction for connection strings.

use secrecy::SecretString;
use serde::Serializer;

/// What a secret prints as in `assay config check` and in logs.
pub const REDACTED: &str = "[redacted]";

/// What a password inside a URL prints as (brackets would be percent-encoded there).
pub const URL_PASSWORD_MASK: &str = "***";

/// `#[serde(serialize_with = "assay_infra::secret::redacted")]` for a `SecretString`.
pub fn redacted<S: Serializer>(_secret: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(REDACTED)
}

/// Like [`redacted`] for an optional secret: `None` stays `null`, so an operator can see
/// whether it is set without seeing it.
pub fn redacted_opt<S: Serializer>(
    secret: &Option<SecretString>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => ser.serialize_str(REDACTED),
        None => ser.serialize_none(),
    }
}

/// A connection string with its password (if any) replaced, safe to print or log.
/// Text that does not parse as a URL is returned unchanged only when it cannot carry a
/// password (no `@`); otherwise it is redacted whole.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, excluded above.
            let _ = u.set_password(Some(URL_PASSWORD_MASK));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) if raw.contains('@') => REDACTED.to_owned(),
        Err(_) => raw.to_owned(),
    }
}

/// [`redact_url`] as a serde helper.
pub fn redacted_url<S: Serializer>(url: &str, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&redact_url(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/assay"),
            "postgres://app:***@db:5432/assay"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("sqlite://./data/assay.db"),
            "sqlite://./data/assay.db"
        );
        assert_eq!(redact_url("not a url but:pw@host"), REDACTED);
    }
}
