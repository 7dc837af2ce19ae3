//! The model registry: configured models bound to their provider clients and breakers,
//! plus the built-in offline model.

use crate::AiError;
use crate::breaker::CircuitBreaker;
use crate::config::{AiConfig, DEFAULT_GEMINI_BASE_URL, DEFAULT_OPENAI_BASE_URL, ModelTimeouts};
use crate::cost::Price;
use crate::http::HttpClient;
use crate::knowledge::KnowledgeSource;
use crate::provider::Provider;
use crate::provider::gemini::Gemini;
use crate::provider::offline::Offline;
use crate::provider::openai::OpenAiCompatible;
use crate::types::{ProviderKind, Tier};
use std::collections::HashMap;
use std::sync::Arc;

pub const OFFLINE_MODEL_ID: &str = "offline";

pub struct ModelEntry {
    /// Registry id (`openai/gpt-4.1-mini`).
    pub id: String,
    /// Configured provider name.
    pub provider_name: String,
    pub kind: ProviderKind,
    /// The provider's model name.
    pub model: String,
    pub tier: Tier,
    pub context_window: u32,
    pub timeouts: ModelTimeouts,
    pub price: Price,
    pub provider: Arc<dyn Provider>,
    pub breaker: Arc<CircuitBreaker>,
    pub metrics: crate::telemetry::ModelMetrics,
}

pub struct Registry {
    pub models: Vec<Arc<ModelEntry>>,
    pub offline: Arc<ModelEntry>,
}

impl Registry {
    pub fn build(cfg: &AiConfig, knowledge: Arc<dyn KnowledgeSource>) -> Result<Self, AiError> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(AiError::Config(problems.join("; ")));
        }
        // One pooled client for every provider (crate::http: timeouts are the gateway's, per
        // phase; no redirects).
        let http = HttpClient::new()?;
        let offline_provider: Arc<dyn Provider> = Arc::new(Offline::new(knowledge));
        let mut providers: HashMap<&str, Arc<dyn Provider>> = HashMap::new();
        for p in &cfg.providers {
            let client: Arc<dyn Provider> = match p.kind.as_str() {
                "gemini" => Arc::new(Gemini::new(
                    &http,
                    p.base_url.as_deref().unwrap_or(DEFAULT_GEMINI_BASE_URL),
                    p.api_key.clone(),
                    p.safety_settings.clone(),
                )),
                _ => Arc::new(OpenAiCompatible::new(
                    &http,
                    p.base_url.as_deref().unwrap_or(DEFAULT_OPENAI_BASE_URL),
                    p.api_key.clone(),
                    p.azure_api_version.clone(),
                )),
            };
            providers.insert(p.name.as_str(), client);
        }
        let models = cfg
            .models
            .iter()
            .map(|m| {
                let provider = if m.provider == OFFLINE_MODEL_ID {
                    offline_provider.clone()
                } else {
                    providers[m.provider.as_str()].clone()
                };
                let id = m.registry_id();
                Arc::new(ModelEntry {
                    breaker: CircuitBreaker::new(id.clone(), cfg.breaker),
                    id,
                    provider_name: m.provider.clone(),
                    kind: provider.kind(),
                    model: m.model.clone(),
                    tier: m.tier.parse().unwrap_or(Tier::Balanced),
                    context_window: m.context_window,
                    timeouts: m.timeouts,
                    price: m.price,
                    provider,
                    metrics: Default::default(),
                })
            })
            .collect();
        let offline = Arc::new(ModelEntry {
            id: OFFLINE_MODEL_ID.into(),
            provider_name: OFFLINE_MODEL_ID.into(),
            kind: ProviderKind::Offline,
            model: OFFLINE_MODEL_ID.into(),
            tier: Tier::Fast,
            context_window: u32::MAX,
            timeouts: ModelTimeouts::default(),
            price: Price::default(),
            breaker: CircuitBreaker::new(OFFLINE_MODEL_ID, cfg.breaker),
            provider: offline_provider,
            metrics: Default::default(),
        });
        Ok(Self { models, offline })
    }
}
