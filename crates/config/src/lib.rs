//! Assay's configuration (R-50..R-52).
//!
//! Layers, later ones win: built-in defaults -> `assay.toml` (`--config` or `ASSAY_CONFIG`)
//! -> `ASSAY_*` environment variables (`__` separates nesting: `ASSAY_SERVER__ADDR`) -> the
//! customary names other tools use (`DATABASE_URL`, `READ_DATABASE_URL`, `REDIS_URL`).
//! Loading never panics: type errors come back as [`ConfigError`], and [`Config::problems`]
//! lists every semantic problem at once, each naming its setting. Secrets are
//! `SecretString` and print as `[redacted]`; URLs print with their password masked.

mod ai_limits;
mod ai_tasks;
mod readiness;
mod validate;

pub use ai_limits::AiLimitsConfig;
pub use ai_tasks::AiTasksConfig;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
pub use readiness::ReadinessConfig;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use validate::Problem;

/// The JWT secret a development build uses when none is configured; production refuses it.
pub const DEV_JWT_SECRET: &str = "assay-development-only-jwt-secret-change-me";

/// Top-level sections; only `ASSAY_<SECTION>...` variables are read, so unrelated
/// `ASSAY_*` variables (e.g. the test suite's) never collide with configuration.
const SECTIONS: &[&str] = &[
    "env",
    "server",
    "tls",
    "database",
    "redis",
    "log",
    "cors",
    "auth",
    "security",
    "rate_limits",
    "features",
    "ai",
    "ai_limits",
    "ai_tasks",
    "readiness",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub env: Environment,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub log: LogConfig,
    pub cors: CorsConfig,
    pub auth: AuthConfig,
    pub security: SecurityConfig,
    pub rate_limits: RateLimitConfig,
    pub features: FeatureFlags,
    /// AI providers, models, selection, resilience and cache (`assay-ai`).
    pub ai: assay_ai::AiConfig,
    /// AI rate limits per caller and task class, and organisation budgets.
    pub ai_limits: AiLimitsConfig,
    /// How the AI task endpoints treat answers (the classification threshold).
    pub ai_tasks: AiTasksConfig,
    /// When readiness snapshots (score history) are taken.
    pub readiness: ReadinessConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, `HOST:PORT`.
    pub addr: String,
    /// Largest accepted request body; larger ones get 413.
    pub body_limit_bytes: usize,
    /// A request still running after this long gets 408.
    pub request_timeout_secs: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub drain_timeout_secs: u64,
    /// On shutdown, how long readiness reports 503 before the listener stops accepting
    /// (time for a load balancer to take the node out; 0 locally).
    pub shutdown_delay_secs: u64,
    /// TLS ends at a trusted reverse proxy in front of Assay (allows plain HTTP in production).
    pub behind_proxy: bool,
    /// Where Prometheus metrics are served (`GET /metrics`), on a listener of their own so
    /// they are never exposed on the public port. Unset: metrics are not served.
    pub metrics_addr: Option<String>,
    /// How the bookkeeping thread (audit batches, AI usage ledger) is scheduled: `idle`
    /// (default; SCHED_IDLE on Linux, so request handling always comes first) or `normal`.
    pub background_priority: assay_infra::background::BackgroundPriority,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout_secs: 30,
            drain_timeout_secs: 30,
            shutdown_delay_secs: 0,
            behind_proxy: false,
            metrics_addr: None,
            background_priority: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`, Assay serves HTTPS itself (rustls).
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(serialize_with = "assay_infra::secret::redacted_url")]
    pub url: String,
    /// Read replicas; `READ_DATABASE_URL` may list several, comma-separated.
    #[serde(serialize_with = "redacted_urls")]
    pub read_urls: Vec<String>,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub sqlite_busy_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://./data/assay.db".into(),
            read_urls: Vec::new(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_secs: 5,
            idle_timeout_secs: 300,
            sqlite_busy_timeout_ms: 5000,
        }
    }
}

fn redacted_urls<S: serde::Serializer>(urls: &[String], ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_seq(urls.iter().map(|u| assay_infra::secret::redact_url(u)))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// When set, rate limits, cache and token revocation are shared through Redis.
    #[serde(
        serialize_with = "redacted_opt_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// Prefix of every key Assay writes, so several deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "assay:".into(),
        }
    }
}

fn redacted_opt_url<S: serde::Serializer>(url: &Option<String>, ser: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => ser.serialize_str(&assay_infra::secret::redact_url(u)),
        None => ser.serialize_none(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `assay=debug,tower_http=info`, ... (`RUST_LOG` overrides).
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Human,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser (`https://app.example.com`), or `*`.
    /// Empty: no cross-origin access.
    pub allowed_origins: Vec<String>,
    pub allow_credentials: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC key for access tokens; at least 32 bytes in production.
    #[serde(serialize_with = "assay_infra::secret::redacted")]
    pub jwt_secret: SecretString,
    pub issuer: String,
    pub audience: String,
    /// Earlier signing secrets, still accepted for verification while tokens signed with
    /// them expire (key rotation: move the old secret here, put the new one in jwt_secret).
    #[serde(serialize_with = "redacted_secrets")]
    pub previous_jwt_secrets: Vec<SecretString>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// How long an invitation stays usable.
    pub invitation_ttl_secs: u64,
    /// Concurrent password hashes (Argon2id is deliberately expensive); 0 = number of CPUs.
    pub password_hash_concurrency: usize,
}

fn redacted_secrets<S: serde::Serializer>(
    secrets: &[SecretString],
    ser: S,
) -> Result<S::Ok, S::Error> {
    ser.collect_seq(secrets.iter().map(|_| assay_infra::secret::REDACTED))
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: SecretString::from(DEV_JWT_SECRET),
            issuer: "assay".into(),
            audience: "assay-api".into(),
            previous_jwt_secrets: Vec::new(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            invitation_ttl_secs: 7 * 24 * 3600,
            password_hash_concurrency: 0,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// 32-byte key (64 hex characters or base64) encrypting integration credentials at rest.
    #[serde(
        serialize_with = "assay_infra::secret::redacted_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub encryption_key: Option<SecretString>,
}

/// Request rate limits, per client IP unless noted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute to `/api/v1/auth/*` (login, register, refresh) per IP.
    pub auth_per_minute: u32,
    /// Requests per minute to the rest of the API, per IP or per API key.
    pub api_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            auth_per_minute: 10,
            api_per_minute: 600,
        }
    }
}

/// Features that can be switched per environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureFlags {
    /// Anyone may create an account and organisation (otherwise invitation only).
    pub open_registration: bool,
    /// The AI assistant and AI features.
    pub ai: bool,
    /// Automated evidence collection from integrations.
    pub evidence_collection: bool,
}

impl Default for FeatureFlags {
    fn default() -> Self {
        Self {
            open_registration: true,
            ai: true,
            evidence_collection: true,
        }
    }
}

/// The configuration could not be read at all (a file that is not TOML, a value of the
/// wrong type). The message names the setting and where its value came from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Where to read from. `file` falls back to `ASSAY_CONFIG`, then `./assay.toml` if present.
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
}

impl Config {
    /// Read every layer. Variables are read from the process environment.
    pub fn load(sources: Sources<'_>) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        let env_file = std::env::var_os("ASSAY_CONFIG").map(PathBuf::from);
        match sources.file.map(Path::to_path_buf).or(env_file) {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                fig = fig.merge(Toml::file_exact(path));
            }
            None if Path::new("assay.toml").is_file() => {
                fig = fig.merge(Toml::file_exact("assay.toml"))
            }
            None => {}
        }
        fig = fig.merge(
            Env::prefixed("ASSAY_")
                .split("__")
                .filter(|key| is_config_section(key.as_str())),
        );
        if let Some(v) = non_empty_env("DATABASE_URL") {
            fig = fig.merge(("database.url", v));
        }
        if let Some(v) = non_empty_env("READ_DATABASE_URL") {
            let urls: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            fig = fig.merge(("database.read_urls", urls));
        }
        if let Some(v) = non_empty_env("REDIS_URL") {
            fig = fig.merge(("redis.url", v));
        }
        let mut config = fig.extract::<Config>().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| describe(&e))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        // OPENAI_API_KEY, GEMINI_API_KEY and their base URLs add providers and default models.
        config
            .ai
            .apply_customary_env(&|name| std::env::var(name).ok());
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted (for `assay config check`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    /// Every problem, each naming its setting; empty when the configuration is usable.
    pub fn problems(&self) -> Vec<Problem> {
        validate::problems(self)
    }

    /// Database settings for the store, or the problems that prevent them.
    pub fn db_settings(&self) -> Result<assay_store::DbSettings, Vec<Problem>> {
        validate::db_settings(&self.database)
    }
}

/// `SERVER__ADDR` or `server.addr` -> is `server` a section? (figment may show either form.)
fn is_config_section(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let first = key
        .split("__")
        .next()
        .unwrap_or_default()
        .split('.')
        .next()
        .unwrap_or_default();
    SECTIONS.contains(&first)
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// One figment error as a line naming the setting and the layer it came from.
fn describe(e: &figment::Error) -> String {
    let key = if e.path.is_empty() {
        String::from("(top level)")
    } else {
        e.path.join(".")
    };
    let origin = e
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(figment::Source::File(p)) => format!(" (from {})", p.display()),
            _ if m.name.contains("environment") => {
                format!(" (from the environment: {})", env_name_for(&key))
            }
            _ => String::new(),
        })
        .unwrap_or_default();
    format!("{key}: {}{origin}", e.kind)
}

fn env_name_for(key: &str) -> String {
    match key {
        "database.url" => "DATABASE_URL or ASSAY_DATABASE__URL".into(),
        "redis.url" => "REDIS_URL or ASSAY_REDIS__URL".into(),
        _ => format!("ASSAY_{}", key.to_uppercase().replace('.', "__")),
    }
}
