//! Keeping every node's caches in step with changes made on any node.
//!
//! A change that a cache on the request path may hold (a revoked API key, a role change,
//! control states, AI settings, an imported framework) is described once as a [`Change`].
//! [`crate::state::AppState::changed`] drops the affected entries on this node and, when
//! Redis is configured, announces the change so every other node drops them too
//! (`assay_infra::invalidation`: pub/sub, with a full flush whenever a node (re)subscribes).
//! Without Redis there is one node and the announcement is a no-op; each cache's own
//! lifetime remains the bound whenever an announcement is lost.

use assay_core::{OrgId, UserId};
use assay_infra::invalidation::InvalidationBus;
use serde::{Deserialize, Serialize};

/// A change some node made, naming what cached entries it makes stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// An API key was revoked (or otherwise changed).
    ApiKey { id: String },
    /// A person's role in an organisation changed, or they joined or left it.
    Membership { org: OrgId, user: UserId },
    /// An account's state changed (active or not, profile).
    User { user: UserId },
    /// An organisation's own details changed (its name, shown in every member's profile).
    Organisation { org: OrgId },
    /// An organisation's adopted frameworks or control states changed.
    Posture { org: OrgId },
    /// An organisation's AI settings changed.
    AiSettings { org: OrgId },
    /// A framework was imported or deleted: an organisation's own (`org`), or a
    /// platform-wide one, which is in every organisation's view (`None`).
    Catalogue { org: Option<OrgId> },
}

/// Announces this node's changes to the others (a no-op without Redis). Cheap to clone.
#[derive(Clone, Default)]
pub struct Announcer {
    bus: Option<InvalidationBus>,
}

impl Announcer {
    pub fn new(bus: Option<InvalidationBus>) -> Self {
        Self { bus }
    }

    /// For a process that changes what nodes cache without being a node (the CLI): its own
    /// Redis connection when `redis.url` is set, else a no-op.
    pub fn for_config(config: &assay_config::Config) -> Result<Self, crate::StartupError> {
        let Some(url) = &config.redis.url else {
            return Ok(Self::default());
        };
        let conn = assay_infra::redis_conn::connect_lazy(url)
            .map_err(|e| crate::StartupError::Redis(e.to_string()))?;
        crate::invalidation_bus(config, Some(&conn)).map(Self::new)
    }

    /// Tell the other nodes (the change is already applied on this one). Never fails the
    /// caller: a lost announcement leaves the other nodes to their caches' lifetimes.
    pub async fn announce(&self, change: &Change) {
        if let Some(bus) = &self.bus {
            match serde_json::to_string(change) {
                Ok(payload) => {
                    bus.publish(&payload).await;
                }
                Err(e) => tracing::error!(error = %e, "a cache change could not be encoded"),
            }
        }
    }

    pub(crate) fn bus(&self) -> Option<&InvalidationBus> {
        self.bus.as_ref()
    }
}

/// Read an announcement; `None` (logged) for one this version does not know, which a node
/// of a newer version may send during a rolling upgrade.
pub(crate) fn decode(payload: &str) -> Option<Change> {
    match serde_json::from_str(payload) {
        Ok(change) => Some(change),
        Err(e) => {
            tracing::warn!(error = %e, "ignored a cache change announced in an unknown shape");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_as_tagged_json_and_come_back_equal() {
        let org = OrgId::new();
        let changes = [
            Change::ApiKey { id: "k1".into() },
            Change::Membership {
                org,
                user: UserId::new(),
            },
            Change::User {
                user: UserId::new(),
            },
            Change::Organisation { org },
            Change::Posture { org },
            Change::AiSettings { org },
            Change::Catalogue { org: Some(org) },
            Change::Catalogue { org: None },
        ];
        for change in changes {
            let text = serde_json::to_string(&change).unwrap();
            assert_eq!(decode(&text), Some(change));
        }
        assert_eq!(
            serde_json::to_value(Change::ApiKey { id: "k1".into() }).unwrap(),
            serde_json::json!({ "kind": "api_key", "id": "k1" })
        );
        assert_eq!(decode(r#"{"kind":"something_newer"}"#), None);
        assert_eq!(decode("not json"), None);
    }
}
