//! Semantic checks over a loaded configuration. Every check adds to one list, so an
//! operator fixes everything in one pass; production adds the refusals of R-52.

use crate::{Config, DEV_JWT_SECRET, DatabaseConfig};
use assay_store::{Backend, DatabaseUrl, DbSettings};
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::time::Duration;

/// One problem with one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted setting path, e.g. `database.url`.
    pub setting: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

fn problem(setting: &str, message: impl Into<String>) -> Problem {
    Problem {
        setting: setting.into(),
        message: message.into(),
    }
}

pub(crate) fn problems(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();

    if let Err(e) = c.server.addr.parse::<SocketAddr>() {
        out.push(problem(
            "server.addr",
            format!("'{}' is not HOST:PORT ({e})", c.server.addr),
        ));
    }
    if let Some(addr) = &c.server.metrics_addr {
        match addr.parse::<SocketAddr>() {
            Err(e) => out.push(problem(
                "server.metrics_addr",
                format!("'{addr}' is not HOST:PORT ({e})"),
            )),
            Ok(m) if Some(m) == c.server.addr.parse().ok() => out.push(problem(
                "server.metrics_addr",
                "must differ from server.addr (metrics are never on the public port)",
            )),
            Ok(_) => {}
        }
    }
    if c.server.body_limit_bytes == 0 {
        out.push(problem("server.body_limit_bytes", "must be greater than 0"));
    }
    if c.server.request_timeout_secs == 0 {
        out.push(problem(
            "server.request_timeout_secs",
            "must be greater than 0",
        ));
    }

    if let Err(mut errs) = db_settings(&c.database) {
        out.append(&mut errs);
    }

    if let Some(url) = &c.redis.url {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {}
            Ok(u) => out.push(problem(
                "redis.url",
                format!(
                    "scheme '{}' is not redis:// or rediss://, or the host is missing",
                    u.scheme()
                ),
            )),
            Err(e) => out.push(problem("redis.url", format!("is not a valid URL ({e})"))),
        }
    }

    match (&c.tls.cert, &c.tls.key) {
        (Some(_), None) => out.push(problem("tls.key", "tls.cert is set but tls.key is not")),
        (None, Some(_)) => out.push(problem("tls.cert", "tls.key is set but tls.cert is not")),
        (Some(cert), Some(key)) => {
            for (name, path) in [("tls.cert", cert), ("tls.key", key)] {
                if !path.is_file() {
                    out.push(problem(
                        name,
                        format!("file {} does not exist", path.display()),
                    ));
                }
            }
        }
        (None, None) => {}
    }

    let wildcard = c.cors.allowed_origins.iter().any(|o| o == "*");
    for origin in c.cors.allowed_origins.iter().filter(|o| *o != "*") {
        match url::Url::parse(origin) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.path() == "/" => {}
            _ => out.push(problem(
                "cors.allowed_origins",
                format!("'{origin}' is not an origin like https://app.example.com (scheme, host, optional port; no path)"),
            )),
        }
    }
    if wildcard && c.cors.allow_credentials {
        out.push(problem(
            "cors.allow_credentials",
            "cannot be true while cors.allowed_origins contains '*' (any site could act as the user); list the origins",
        ));
    }

    if c.auth.access_token_ttl_secs == 0 || c.auth.access_token_ttl_secs > 24 * 3600 {
        out.push(problem(
            "auth.access_token_ttl_secs",
            "must be between 1 and 86400",
        ));
    }
    if c.rate_limits.auth_per_minute == 0 {
        out.push(problem("rate_limits.auth_per_minute", "must be at least 1"));
    }
    if c.rate_limits.api_per_minute == 0 {
        out.push(problem("rate_limits.api_per_minute", "must be at least 1"));
    }
    for (i, s) in c.auth.previous_jwt_secrets.iter().enumerate() {
        if s.expose_secret().len() < 32 {
            out.push(problem(
                &format!("auth.previous_jwt_secrets[{i}]"),
                "is shorter than 32 bytes",
            ));
        }
    }
    if c.auth.issuer.trim().is_empty() {
        out.push(problem("auth.issuer", "must not be empty"));
    }
    if c.auth.audience.trim().is_empty() {
        out.push(problem("auth.audience", "must not be empty"));
    }
    if let Some(key) = &c.security.encryption_key
        && decode_key(key.expose_secret()).is_none()
    {
        {
            out.push(problem(
                "security.encryption_key",
                "must be 32 bytes as 64 hex characters or base64",
            ));
        }
    }

    for p in c.ai.problems() {
        let (setting, message) = p.split_once(": ").unwrap_or(("ai", p.as_str()));
        out.push(problem(setting, message));
    }
    for (setting, message) in c.ai_limits.problems() {
        out.push(problem(setting, message));
    }
    for (setting, message) in c.ai_tasks.problems() {
        out.push(problem(setting, message));
    }

    if c.is_production() {
        let secret = c.auth.jwt_secret.expose_secret();
        if secret == DEV_JWT_SECRET {
            out.push(problem(
                "auth.jwt_secret",
                "is the built-in development secret; set ASSAY_AUTH__JWT_SECRET",
            ));
        } else if secret.len() < 32 {
            out.push(problem("auth.jwt_secret", "is shorter than 32 bytes"));
        }
        if c.security.encryption_key.is_none() {
            out.push(problem(
                "security.encryption_key",
                "is required in production (integration credentials are encrypted with it); set ASSAY_SECURITY__ENCRYPTION_KEY",
            ));
        }
        if wildcard {
            out.push(problem(
                "cors.allowed_origins",
                "'*' is not allowed in production; list the origins",
            ));
        }
        if !c.tls.enabled() && !c.server.behind_proxy {
            out.push(problem(
                "tls.cert",
                "production serves HTTPS: set tls.cert and tls.key, or server.behind_proxy = true when a trusted proxy terminates TLS",
            ));
        }
    }
    out
}

/// Decode a 32-byte key given as hex or base64.
fn decode_key(raw: &str) -> Option<[u8; 32]> {
    let raw = raw.trim();
    let bytes = if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        base64_decode(raw)?
    };
    bytes.try_into().ok()
}

/// Standard or URL-safe base64, padded or not. Written here to keep the config crate free
/// of a dependency for one 20-line check.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

pub(crate) fn db_settings(d: &DatabaseConfig) -> Result<DbSettings, Vec<Problem>> {
    let mut out = Vec::new();
    let primary = DatabaseUrl::parse(&d.url)
        .map_err(|e| out.push(problem("database.url", e.to_string())))
        .ok();
    let mut replicas = Vec::new();
    for (i, raw) in d.read_urls.iter().enumerate() {
        match DatabaseUrl::parse(raw) {
            Ok(u) if u.backend() == Backend::Postgres => replicas.push(u),
            Ok(_) => out.push(problem(
                &format!("database.read_urls[{i}]"),
                "read replicas must be PostgreSQL",
            )),
            Err(e) => out.push(problem(&format!("database.read_urls[{i}]"), e.to_string())),
        }
    }
    if let Some(p) = &primary
        && p.backend() == Backend::Sqlite
        && !replicas.is_empty()
    {
        {
            out.push(problem(
                "database.read_urls",
                "read replicas need a PostgreSQL primary",
            ));
        }
    }
    if d.max_connections == 0 {
        out.push(problem("database.max_connections", "must be at least 1"));
    }
    if d.min_connections > d.max_connections {
        out.push(problem(
            "database.min_connections",
            "must not exceed database.max_connections",
        ));
    }
    if d.acquire_timeout_secs == 0 {
        out.push(problem(
            "database.acquire_timeout_secs",
            "must be at least 1",
        ));
    }
    match primary {
        Some(url) if out.is_empty() => Ok(DbSettings {
            url,
            read_urls: replicas,
            max_connections: d.max_connections,
            min_connections: d.min_connections,
            acquire_timeout: Duration::from_secs(d.acquire_timeout_secs),
            idle_timeout: Duration::from_secs(d.idle_timeout_secs),
            sqlite_busy_timeout: Duration::from_millis(d.sqlite_busy_timeout_ms),
        }),
        _ => Err(out),
    }
}

#[cfg(test)]
// figment::Jail dictates the closures' (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::{Config, Sources};
    use figment::Jail;

    fn settings(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.setting.as_str()).collect()
    }

    #[test]
    fn defaults_are_valid_and_use_embedded_sqlite() {
        Jail::expect_with(|_| {
            let c = Config::load(Sources { file: None }).unwrap();
            assert!(c.problems().is_empty(), "{:?}", c.problems());
            assert_eq!(c.server.addr, "127.0.0.1:8080");
            let db = c.db_settings().unwrap();
            assert_eq!(db.url, DatabaseUrl::SqliteFile("./data/assay.db".into()));
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file("custom.toml", "[server]\naddr = \"0.0.0.0:9000\"\nrequest_timeout_secs = 5\n[database]\nurl = \"sqlite://./from-file.db\"\n")?;
            jail.set_env("ASSAY_SERVER__REQUEST_TIMEOUT_SECS", "7");
            jail.set_env("ASSAY_DATABASE__URL", "sqlite://./from-assay-env.db");
            jail.set_env("DATABASE_URL", "postgresql+asyncpg://app:pw@db:5432/assay");
            jail.set_env(
                "READ_DATABASE_URL",
                "postgres://r1/assay, postgres://r2/assay",
            );
            jail.set_env("ASSAY_TEST_POSTGRES_URL", "postgres://ignored/x");
            let c = Config::load(Sources {
                file: Some(std::path::Path::new("custom.toml")),
            })
            .unwrap();
            assert_eq!(c.server.addr, "0.0.0.0:9000");
            assert_eq!(c.server.request_timeout_secs, 7);
            let db = c.db_settings().unwrap();
            assert_eq!(db.url.backend(), Backend::Postgres);
            assert_eq!(db.read_urls.len(), 2);
            Ok(())
        });
    }

    #[test]
    fn ai_gateway_settings_come_from_the_environment_too() {
        Jail::expect_with(|jail| {
            jail.set_env("ASSAY_AI__REQUEST_DEADLINE_MS", "4321");
            jail.set_env("ASSAY_AI__OFFLINE_FALLBACK", "false");
            let c = Config::load(Sources { file: None }).unwrap();
            assert_eq!(c.ai.request_deadline_ms, 4321);
            assert!(!c.ai.offline_fallback);
            Ok(())
        });
    }

    #[test]
    fn production_lists_every_problem() {
        Jail::expect_with(|jail| {
            jail.set_env("ASSAY_ENV", "production");
            jail.set_env("ASSAY_CORS__ALLOWED_ORIGINS", "[\"*\"]");
            jail.set_env("ASSAY_CORS__ALLOW_CREDENTIALS", "true");
            let c = Config::load(Sources { file: None }).unwrap();
            let p = c.problems();
            let names = settings(&p);
            for expected in [
                "auth.jwt_secret",
                "security.encryption_key",
                "cors.allow_credentials",
                "cors.allowed_origins",
                "tls.cert",
            ] {
                assert!(names.contains(&expected), "{expected} missing from {p:?}");
            }
            Ok(())
        });
    }

    #[test]
    fn malformed_values_name_their_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "mysql://root:hunter2@db/assay");
            jail.set_env("ASSAY_SERVER__ADDR", "127.0.0.1:99999");
            jail.set_env("REDIS_URL", "http://cache");
            let c = Config::load(Sources { file: None }).unwrap();
            let p = c.problems();
            assert_eq!(settings(&p), ["server.addr", "database.url", "redis.url"]);
            assert!(p.iter().all(|p| !p.message.contains("hunter2")));
            Ok(())
        });
    }

    #[test]
    fn type_errors_and_typos_are_errors_not_panics() {
        Jail::expect_with(|jail| {
            jail.set_env("ASSAY_SERVER__BODY_LIMIT_BYTES", "lots");
            let err = Config::load(Sources { file: None })
                .unwrap_err()
                .to_string();
            assert!(err.contains("server.body_limit_bytes"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("assay.toml", "[server]\nadress = \"x\"\n")?;
            let err = Config::load(Sources { file: None })
                .unwrap_err()
                .to_string();
            assert!(err.contains("adress"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn printing_redacts_secrets() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://app:hunter2@db:5432/assay");
            jail.set_env("REDIS_URL", "redis://:redispw@cache:6379/0");
            jail.set_env(
                "ASSAY_AUTH__JWT_SECRET",
                "a-very-long-and-very-secret-signing-key-123",
            );
            let out = Config::load(Sources { file: None })
                .unwrap()
                .to_redacted_toml();
            for secret in ["hunter2", "redispw", "very-secret"] {
                assert!(!out.contains(secret), "{secret} leaked:\n{out}");
            }
            assert!(out.contains("[redacted]") && out.contains("***"));
            Ok(())
        });
    }

    #[test]
    fn ai_keys_from_customary_names_add_providers_and_stay_secret() {
        Jail::expect_with(|jail| {
            jail.set_env("OPENAI_API_KEY", "sk-test-secret-value");
            jail.set_env("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1");
            let c = Config::load(Sources { file: None }).unwrap();
            assert!(c.problems().is_empty(), "{:?}", c.problems());
            assert!(c.ai.providers.iter().any(|p| p.name == "openai"));
            assert!(!c.ai.models.is_empty());
            assert!(!c.to_redacted_toml().contains("sk-test-secret-value"));
            Ok(())
        });
    }

    #[test]
    fn encryption_keys_decode() {
        assert!(decode_key(&"ab".repeat(32)).is_some());
        assert!(decode_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").is_some());
        assert!(decode_key("too-short").is_none());
    }
}
