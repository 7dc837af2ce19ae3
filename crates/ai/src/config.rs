//! `[ai]` configuration: providers, the model registry, breaker/retry tuning, cache TTLs.
//!
//! Deserialises from assay.toml / `ASSAY_AI__...` with every field defaulted, then picks up
//! the customary `OPENAI_*` / `GEMINI_*` variables, then `problems()` explains everything
//! wrong at once. Serialising redacts API keys.

use crate::cost::Price;
use crate::types::{TaskKind, Tier};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// Answer from the catalogue when no model is configured or all have failed.
    pub offline_fallback: bool,
    pub providers: Vec<ProviderConfig>,
    pub models: Vec<ModelConfig>,
    pub breaker: BreakerConfig,
    pub retry: RetryConfig,
    pub cache: CacheTtlConfig,
    /// Usage records waiting to be written; past this they are dropped (and counted).
    pub usage_queue_capacity: usize,
    /// Upper bound on one gateway call, across retries and fallbacks (milliseconds).
    pub request_deadline_ms: u64,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            offline_fallback: true,
            providers: Vec::new(),
            models: Vec::new(),
            breaker: BreakerConfig::default(),
            retry: RetryConfig::default(),
            cache: CacheTtlConfig::default(),
            usage_queue_capacity: 10_000,
            request_deadline_ms: 120_000,
        }
    }
}

/// One endpoint: an OpenAI-compatible server (OpenAI, Azure, vLLM, Ollama) or Gemini.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// What models refer to (`openai`, `gemini`, `local-vllm`...). `offline` is reserved.
    pub name: String,
    /// `openai` (any Chat Completions server) or `gemini`.
    pub kind: String,
    /// Including the version path: `https://api.openai.com/v1`,
    /// `https://generativelanguage.googleapis.com/v1beta`, `http://127.0.0.1:11434/v1`.
    pub base_url: Option<String>,
    #[serde(serialize_with = "assay_infra::secret::redacted_opt")]
    pub api_key: Option<SecretString>,
    /// Azure OpenAI: the `api-version`; makes the model name a deployment name and sends
    /// the key as `api-key`.
    pub azure_api_version: Option<String>,
    /// Gemini `safetySettings` sent with every request.
    pub safety_settings: Vec<SafetySetting>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: "openai".into(),
            base_url: None,
            api_key: None,
            azure_api_version: None,
            safety_settings: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SafetySetting {
    /// e.g. `HARM_CATEGORY_DANGEROUS_CONTENT`.
    pub category: String,
    /// e.g. `BLOCK_MEDIUM_AND_ABOVE`.
    pub threshold: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Registry id, unique (defaults to `provider/model` when empty).
    pub id: String,
    /// A provider's `name`, or `offline`.
    pub provider: String,
    /// The provider's model (or Azure deployment) name.
    pub model: String,
    /// `fast`, `balanced` or `deep`.
    pub tier: String,
    pub context_window: u32,
    pub timeouts: ModelTimeouts,
    pub price: Price,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            provider: String::new(),
            model: String::new(),
            tier: "balanced".into(),
            context_window: 128_000,
            timeouts: ModelTimeouts::default(),
            price: Price::default(),
        }
    }
}

impl ModelConfig {
    pub fn registry_id(&self) -> String {
        if self.id.is_empty() {
            format!("{}/{}", self.provider, self.model)
        } else {
            self.id.clone()
        }
    }

    /// Whether `name` is this model's [`registry_id`](Self::registry_id) (without building it:
    /// requests name models on every call).
    pub fn is_named(&self, name: &str) -> bool {
        if self.id.is_empty() {
            let (p, m) = (self.provider.as_str(), self.model.as_str());
            name.len() == p.len() + 1 + m.len()
                && name.starts_with(p)
                && name[p.len()..].starts_with('/')
                && name.ends_with(m)
        } else {
            self.id == name
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelTimeouts {
    pub total_ms: u64,
    /// Until the first token (streaming) or the whole answer's headers (non-streaming).
    pub first_token_ms: u64,
    /// Longest silence between two streamed chunks.
    pub idle_ms: u64,
}

impl Default for ModelTimeouts {
    fn default() -> Self {
        Self {
            total_ms: 60_000,
            first_token_ms: 15_000,
            idle_ms: 10_000,
        }
    }
}

impl ModelTimeouts {
    pub fn total(&self) -> Duration {
        Duration::from_millis(self.total_ms)
    }
    pub fn first_token(&self) -> Duration {
        Duration::from_millis(self.first_token_ms)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }
}

/// Per-model circuit breaker: opens after `failure_threshold` failures within `window_ms`,
/// stays open `open_ms`, then lets probes through and closes after `half_open_successes`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub window_ms: u64,
    pub open_ms: u64,
    pub half_open_successes: u32,
    /// Probes allowed in flight at once while half-open.
    pub half_open_max_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window_ms: 60_000,
            open_ms: 60_000,
            half_open_successes: 3,
            half_open_max_probes: 1,
        }
    }
}

/// Retries of retryable outcomes on one model, before moving down the chain.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per model, the first included.
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// The longest provider-requested wait honoured; a longer one moves to the next model.
    pub max_retry_after_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay_ms: 200,
            max_delay_ms: 5_000,
            max_retry_after_ms: 60_000,
        }
    }
}

/// Response cache lifetimes per task, in seconds; 0 turns caching off for that task.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheTtlConfig {
    pub enabled: bool,
    pub help_secs: u64,
    pub chat_secs: u64,
    pub analysis_secs: u64,
    pub gap_analysis_secs: u64,
    pub recommendations_secs: u64,
    pub policy_draft_secs: u64,
    pub classification_secs: u64,
}

impl Default for CacheTtlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            help_secs: 2 * 3600,
            chat_secs: 0,
            analysis_secs: 3600,
            gap_analysis_secs: 3600,
            recommendations_secs: 2 * 3600,
            policy_draft_secs: 24 * 3600,
            classification_secs: 24 * 3600,
        }
    }
}

impl CacheTtlConfig {
    pub fn ttl(&self, task: TaskKind) -> Duration {
        if !self.enabled {
            return Duration::ZERO;
        }
        Duration::from_secs(match task {
            TaskKind::Help => self.help_secs,
            TaskKind::Chat => self.chat_secs,
            TaskKind::Analysis => self.analysis_secs,
            TaskKind::GapAnalysis => self.gap_analysis_secs,
            TaskKind::Recommendations => self.recommendations_secs,
            TaskKind::PolicyDraft => self.policy_draft_secs,
            TaskKind::Classification => self.classification_secs,
        })
    }
}

/// Default models per provider when only a key is given. Prices are list prices in USD per
/// million tokens when this was written; set `price` in the config to keep them current.
fn default_models(provider: &str, kind: &str) -> Vec<ModelConfig> {
    let m = |model: &str, tier: &str, ctx: u32, p: (f64, f64, f64)| ModelConfig {
        id: format!("{provider}/{model}"),
        provider: provider.to_owned(),
        model: model.to_owned(),
        tier: tier.to_owned(),
        context_window: ctx,
        timeouts: ModelTimeouts::default(),
        price: Price {
            input_per_million: p.0,
            output_per_million: p.1,
            cached_input_per_million: Some(p.2),
        },
    };
    match kind {
        "gemini" => vec![
            m(
                "gemini-2.5-flash-lite",
                "fast",
                1_048_576,
                (0.10, 0.40, 0.025),
            ),
            m(
                "gemini-2.5-flash",
                "balanced",
                1_048_576,
                (0.30, 2.50, 0.075),
            ),
            m("gemini-2.5-pro", "deep", 1_048_576, (1.25, 10.0, 0.31)),
        ],
        _ => vec![
            m("gpt-4.1-mini", "fast", 1_047_576, (0.40, 1.60, 0.10)),
            m("gpt-4.1", "balanced", 1_047_576, (2.00, 8.00, 0.50)),
            m("o4-mini", "deep", 200_000, (1.10, 4.40, 0.275)),
        ],
    }
}

impl AiConfig {
    /// Pick up `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `GEMINI_API_KEY`, `GEMINI_BASE_URL`.
    /// A key adds the provider (named `openai` / `gemini`) if absent, fills its key if unset,
    /// and adds default models when no model uses that provider yet. A base URL alone (a
    /// keyless vLLM or Ollama) adds the provider but no models: their names are local.
    pub fn apply_customary_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        for (name, key_var, url_var) in [
            ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
            ("gemini", "GEMINI_API_KEY", "GEMINI_BASE_URL"),
        ] {
            let key = non_empty(key_var);
            let url = non_empty(url_var);
            if key.is_none() && url.is_none() {
                continue;
            }
            let idx = match self.providers.iter().position(|p| p.name == name) {
                Some(i) => i,
                None => {
                    self.providers.push(ProviderConfig {
                        name: name.into(),
                        kind: name.into(),
                        ..ProviderConfig::default()
                    });
                    self.providers.len() - 1
                }
            };
            let p = &mut self.providers[idx];
            if p.api_key.is_none() {
                p.api_key = key.clone().map(SecretString::from);
            }
            if p.base_url.is_none() {
                p.base_url = url;
            }
            if key.is_some() && !self.models.iter().any(|m| m.provider == name) {
                let kind = self.providers[idx].kind.clone();
                self.models.extend(default_models(name, &kind));
            }
        }
    }

    /// Every problem with this configuration, each starting with the setting's path.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = format!("ai.providers[{i}]");
            if p.name.trim().is_empty() {
                out.push(format!("{at}.name: must not be empty"));
            } else if p.name == "offline" {
                out.push(format!(
                    "{at}.name: \"offline\" is reserved for the built-in offline provider"
                ));
            } else if self.providers[..i].iter().any(|q| q.name == p.name) {
                out.push(format!("{at}.name: duplicate provider name \"{}\"", p.name));
            }
            if p.kind != "openai" && p.kind != "gemini" {
                out.push(format!(
                    "{at}.kind: unknown provider kind \"{}\" (expected openai or gemini)",
                    p.kind
                ));
            }
            if let Some(u) = &p.base_url {
                match url::Url::parse(u) {
                    Ok(parsed) if parsed.scheme() == "http" || parsed.scheme() == "https" => {}
                    _ => out.push(format!(
                        "{at}.base_url: \"{}\" is not an http(s) URL",
                        assay_infra::secret::redact_url(u)
                    )),
                }
            }
            let hosted = p.base_url.is_none();
            if p.api_key.is_none() && (p.kind == "gemini" || hosted) {
                out.push(format!(
                    "{at}.api_key: required for {} (set it or the customary {}_API_KEY)",
                    p.name,
                    p.kind.to_uppercase()
                ));
            }
            if p.kind != "gemini" && !p.safety_settings.is_empty() {
                out.push(format!(
                    "{at}.safety_settings: only Gemini providers take safety settings"
                ));
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("ai.models[{i}]");
            if m.tier.parse::<Tier>().is_err() {
                out.push(format!(
                    "{at}.tier: unknown tier \"{}\" (expected fast, balanced or deep)",
                    m.tier
                ));
            }
            if m.provider != "offline" && !self.providers.iter().any(|p| p.name == m.provider) {
                out.push(format!(
                    "{at}.provider: no provider named \"{}\" (configured: {})",
                    m.provider,
                    self.provider_names()
                ));
            }
            if m.model.trim().is_empty() && m.provider != "offline" {
                out.push(format!("{at}.model: must not be empty"));
            }
            let id = m.registry_id();
            if self.models[..i].iter().any(|o| o.registry_id() == id) {
                out.push(format!("{at}.id: duplicate model id \"{id}\""));
            }
            let t = m.timeouts;
            if t.total_ms == 0 || t.first_token_ms == 0 || t.idle_ms == 0 {
                out.push(format!(
                    "{at}.timeouts: every timeout must be greater than 0"
                ));
            } else if t.first_token_ms > t.total_ms {
                out.push(format!(
                    "{at}.timeouts.first_token_ms: {} exceeds total_ms {}",
                    t.first_token_ms, t.total_ms
                ));
            }
            for (field, v) in [
                ("input_per_million", Some(m.price.input_per_million)),
                ("output_per_million", Some(m.price.output_per_million)),
                ("cached_input_per_million", m.price.cached_input_per_million),
            ] {
                if let Some(v) = v
                    && !(v.is_finite() && v >= 0.0)
                {
                    out.push(format!("{at}.price.{field}: must be a non-negative number"));
                }
            }
            if m.context_window == 0 {
                out.push(format!("{at}.context_window: must be greater than 0"));
            }
        }
        let b = &self.breaker;
        if b.failure_threshold == 0 {
            out.push("ai.breaker.failure_threshold: must be at least 1".into());
        }
        if b.half_open_successes == 0 {
            out.push("ai.breaker.half_open_successes: must be at least 1".into());
        }
        if b.half_open_max_probes == 0 {
            out.push("ai.breaker.half_open_max_probes: must be at least 1".into());
        }
        if b.window_ms == 0 || b.open_ms == 0 {
            out.push("ai.breaker: window_ms and open_ms must be greater than 0".into());
        }
        if self.retry.max_attempts == 0 {
            out.push("ai.retry.max_attempts: must be at least 1".into());
        }
        if self.retry.base_delay_ms > self.retry.max_delay_ms {
            out.push("ai.retry.base_delay_ms: exceeds max_delay_ms".into());
        }
        if self.usage_queue_capacity == 0 {
            out.push("ai.usage_queue_capacity: must be at least 1".into());
        }
        if self.request_deadline_ms == 0 {
            out.push("ai.request_deadline_ms: must be greater than 0".into());
        }
        if self.models.is_empty() && !self.offline_fallback {
            out.push("ai.offline_fallback: with no models configured, turning the offline fallback off leaves no way to answer".into());
        }
        out
    }

    fn provider_names(&self) -> String {
        let mut names: Vec<&str> = self.providers.iter().map(|p| p.name.as_str()).collect();
        names.push("offline");
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_named_by_its_registry_id_only() {
        let m = |provider: &str, model: &str, id: &str| ModelConfig {
            provider: provider.into(),
            model: model.into(),
            id: id.into(),
            ..ModelConfig::default()
        };
        for (cfg, name, named) in [
            (m("openai", "gpt-4.1-mini", ""), "openai/gpt-4.1-mini", true),
            (m("openai", "gpt-4.1-mini", ""), "openai/gpt-4.1", false),
            (m("openai", "gpt-4.1-mini", ""), "gpt-4.1-mini", false),
            (
                m("openai", "gpt-4.1-mini", ""),
                "openaix/gpt-4.1-mini",
                false,
            ),
            (m("a/b", "c", ""), "a/b/c", true),
            (m("a", "b/c", ""), "a/b/c", true),
            (m("a", "b", ""), "a/b/c", false),
            (m("openai", "gpt-4.1-mini", "fast"), "fast", true),
            (
                m("openai", "gpt-4.1-mini", "fast"),
                "openai/gpt-4.1-mini",
                false,
            ),
        ] {
            assert_eq!(cfg.is_named(name), named, "{name}");
            assert_eq!(cfg.registry_id() == name, named, "{name}");
        }
    }

    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn bare_default_is_valid_and_offline() {
        let c = AiConfig::default();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert!(c.offline_fallback && c.models.is_empty());
    }

    #[test]
    fn customary_keys_bring_providers_and_default_models() {
        let mut c = AiConfig::default();
        c.apply_customary_env(&env(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("GEMINI_API_KEY", "g-test"),
            ("GEMINI_BASE_URL", "http://127.0.0.1:9/v1beta"),
        ]));
        assert_eq!(c.providers.len(), 2);
        assert_eq!(
            c.providers[1].base_url.as_deref(),
            Some("http://127.0.0.1:9/v1beta")
        );
        for tier in ["fast", "balanced", "deep"] {
            assert!(
                c.models
                    .iter()
                    .any(|m| m.provider == "openai" && m.tier == tier)
            );
            assert!(
                c.models
                    .iter()
                    .any(|m| m.provider == "gemini" && m.tier == tier)
            );
        }
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        // Serialising never shows the key.
        let shown = serde_json::to_string(&c).unwrap();
        assert!(!shown.contains("sk-test") && shown.contains("[redacted]"));
    }

    #[test]
    fn explicit_models_are_not_overridden_by_defaults() {
        let mut c: AiConfig = serde_json::from_value(serde_json::json!({
            "providers": [{"name": "openai", "kind": "openai"}],
            "models": [{"provider": "openai", "model": "my-model", "tier": "fast"}]
        }))
        .unwrap();
        c.apply_customary_env(&env(&[("OPENAI_API_KEY", "k")]));
        assert_eq!(c.models.len(), 1);
        assert!(c.providers[0].api_key.is_some());
    }

    #[test]
    fn base_url_alone_adds_a_keyless_provider_without_models() {
        let mut c = AiConfig::default();
        c.apply_customary_env(&env(&[("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")]));
        assert_eq!(c.providers.len(), 1);
        assert!(c.models.is_empty());
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn problems_name_the_setting_path() {
        let c: AiConfig = serde_json::from_value(serde_json::json!({
            "providers": [{"name": "p", "kind": "anthropic", "base_url": "ftp://x"}],
            "models": [
                {"provider": "p", "model": "a", "tier": "fast"},
                {"provider": "nowhere", "model": "b", "tier": "fast"},
                {"provider": "p", "model": "c", "tier": "huge", "timeouts": {"total_ms": 10, "first_token_ms": 20, "idle_ms": 5}},
                {"provider": "p", "model": "a", "tier": "fast", "price": {"input_per_million": -1.0, "output_per_million": 1.0}}
            ],
            "retry": {"max_attempts": 0}
        }))
        .unwrap();
        let p = c.problems();
        let has = |s: &str| p.iter().any(|x| x.starts_with(s));
        assert!(
            has("ai.providers[0].kind: unknown provider kind \"anthropic\""),
            "{p:?}"
        );
        assert!(has("ai.providers[0].base_url:"), "{p:?}");
        assert!(
            has("ai.models[1].provider: no provider named \"nowhere\""),
            "{p:?}"
        );
        assert!(
            p.contains(
                &"ai.models[2].tier: unknown tier \"huge\" (expected fast, balanced or deep)"
                    .to_string()
            ),
            "{p:?}"
        );
        assert!(has("ai.models[2].timeouts.first_token_ms:"), "{p:?}");
        assert!(has("ai.models[3].id: duplicate model id \"p/a\""), "{p:?}");
        assert!(has("ai.models[3].price.input_per_million:"), "{p:?}");
        assert!(has("ai.retry.max_attempts:"), "{p:?}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r: Result<AiConfig, _> = serde_json::from_value(serde_json::json!({"modles": []}));
        assert!(r.is_err());
    }

    #[test]
    fn chat_is_not_cached_by_default() {
        let c = CacheTtlConfig::default();
        assert_eq!(c.ttl(TaskKind::Chat), Duration::ZERO);
        assert_eq!(c.ttl(TaskKind::Help), Duration::from_secs(7200));
        assert_eq!(c.ttl(TaskKind::PolicyDraft), Duration::from_secs(86400));
    }
}
