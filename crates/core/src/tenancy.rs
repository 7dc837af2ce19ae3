//! The tenant scope every org-owned operation runs in.
//!
//! `OrgCtx` is what the API's auth extractor produces after it has verified the caller's
//! token and looked up their membership. Repositories of org-owned data take it as their
//! first argument, so a query without a tenant cannot be written by mistake.

use crate::{OrgId, Role, UserId};

/// A verified (organisation, acting user, role) triple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrgCtx {
    org_id: OrgId,
    user_id: Option<UserId>,
    role: Role,
}

impl OrgCtx {
    /// Build the scope for a member whose membership has just been verified against the store.
    /// Only the auth layer (and tests, and trusted CLI/worker code acting for an org) call this.
    pub fn for_verified_member(org_id: OrgId, user_id: UserId, role: Role) -> Self {
        Self {
            org_id,
            user_id: Some(user_id),
            role,
        }
    }

    /// The scope of an organisation API key. There is no human actor; `role` is the role
    /// the key's scopes correspond to (permissions are still checked against the scopes).
    pub fn for_api_key(org_id: OrgId, role: Role) -> Self {
        Self {
            org_id,
            user_id: None,
            role,
        }
    }

    /// The scope of the platform itself acting for an org (a scheduled job, the CLI):
    /// no human actor, owner-level rights.
    pub fn for_system(org_id: OrgId) -> Self {
        Self {
            org_id,
            user_id: None,
            role: Role::Owner,
        }
    }

    pub fn org_id(&self) -> OrgId {
        self.org_id
    }

    /// The acting person, or `None` when the platform itself acts.
    pub fn user_id(&self) -> Option<UserId> {
        self.user_id
    }

    pub fn role(&self) -> Role {
        self.role
    }
}
