//! Roles an organisation member can hold. The role -> permission table lives here too,
//! so the API, the CLI and the docs all read one source of truth.
//!
//! `docs/permissions.md` is generated from this module by [`permissions_markdown`]; a unit
//! test fails when the committed file differs, so the documentation cannot drift.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A member's role in one organisation, most powerful first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    ComplianceManager,
    Auditor,
    Member,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Owner,
        Role::Admin,
        Role::ComplianceManager,
        Role::Auditor,
        Role::Member,
        Role::Viewer,
    ];

    /// The stable name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::ComplianceManager => "compliance_manager",
            Role::Auditor => "auditor",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Everything this role may do.
    pub fn permissions(self) -> PermissionSet {
        match self {
            Role::Owner => OWNER,
            Role::Admin => ADMIN,
            Role::ComplianceManager => COMPLIANCE_MANAGER,
            Role::Auditor => AUDITOR,
            Role::Member => MEMBER,
            Role::Viewer => VIEWER,
        }
    }

    /// Whether this role holds `permission`.
    pub fn can(self, permission: Permission) -> bool {
        self.permissions().contains(permission)
    }

    /// Whether a member with this role may give `role` to someone (invite with it, or
    /// change a member to it). Only owners grant `owner`; admins grant up to `admin`;
    /// other roles grant nothing.
    pub fn can_grant(self, role: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => role != Role::Owner,
            _ => false,
        }
    }

    /// Whether a member with this role may change or remove a member who currently holds
    /// `target`. Only owners manage owners (demote, remove); admins manage everyone else,
    /// other admins included. The "last owner stays" rule needs the store and is checked
    /// there.
    pub fn can_manage_member(self, target: Role) -> bool {
        // Same rule as granting: you may touch a member only if you could have given them
        // their role.
        self.can_grant(target)
    }

    /// Whether this role may move a member from `from` to `to`.
    pub fn can_change_role(self, from: Role, to: Role) -> bool {
        self.can_manage_member(from) && self.can_grant(to)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the six role names.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown role '{0}' (expected one of owner, admin, compliance_manager, auditor, member, viewer)"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Declares [`Permission`] with its stable name and description in one table, so the
/// enum, `ALL`, the names and the docs cannot disagree.
macro_rules! permissions {
    ($($variant:ident => $name:literal, $desc:literal;)+) => {
        /// One thing a member may do in an organisation. Handlers ask for a permission,
        /// never for a role, so the table below is the only place that maps the two.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $($variant,)+
        }

        impl Permission {
            /// Every permission, in documentation order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)+];

            /// The stable name used in the API and the docs, e.g. `evidence.approve`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)+
                }
            }

            /// What the permission allows, in one line.
            pub fn description(self) -> &'static str {
                match self {
                    $(Permission::$variant => $desc,)+
                }
            }
        }
    };
}

permissions! {
    OrgRead => "org.read", "See the organisation and its business profile";
    OrgUpdate => "org.update", "Rename the organisation, edit its business profile";
    OrgDelete => "org.delete", "Delete the organisation and all its data";
    MembersRead => "members.read", "List members and their roles";
    MembersManage => "members.manage", "Change members' roles, remove members";
    InvitationsManage => "invitations.manage", "Invite people, list and revoke invitations";
    ApiKeysManage => "api_keys.manage", "Create, list and revoke organisation API keys";
    AuditRead => "audit.read", "Read and verify the audit log";
    SettingsManage => "settings.manage", "Change organisation settings and feature flags";
    FrameworksRead => "frameworks.read", "See frameworks, requirements and readiness";
    FrameworksAdopt => "frameworks.adopt", "Adopt or drop a framework for the organisation";
    FrameworksImport => "frameworks.import", "Import framework packs (OSCAL, Prowler, YAML)";
    ControlsRead => "controls.read", "See controls, their status, owners and due dates";
    ControlsWrite => "controls.write", "Set control status, owners, due dates, N/A";
    EvidenceRead => "evidence.read", "See and download evidence";
    EvidenceWrite => "evidence.write", "Upload evidence and link it to controls";
    EvidenceReview => "evidence.review", "Comment on evidence and mark it under review";
    EvidenceApprove => "evidence.approve", "Approve or reject evidence";
    PoliciesRead => "policies.read", "See policies and their versions";
    PoliciesWrite => "policies.write", "Draft and edit policies";
    PoliciesApprove => "policies.approve", "Approve and publish policy versions";
    AssessmentsRead => "assessments.read", "See assessments, answers and results";
    AssessmentsWrite => "assessments.write", "Start assessments and answer questions";
    IntegrationsRead => "integrations.read", "See connected integrations and their health";
    IntegrationsManage => "integrations.manage", "Connect, configure and remove integrations";
    CollectionRun => "collection.run", "Trigger evidence collection";
    ReportsExport => "reports.export", "Export reports and the auditor evidence bundle";
    AiUse => "ai.use", "Use the AI assistant and AI drafting";
    AiAdmin => "ai.admin", "Set AI budgets, quotas and safety settings";
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a permission name.
#[derive(Debug, thiserror::Error)]
#[error("unknown permission '{0}'")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let name = String::deserialize(de)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of permissions (a bit set: there are fewer than 64). Serialises as the sorted
/// list of names, which is what `GET /me` shows per membership.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u64);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    /// The set of the given permissions.
    pub const fn of(permissions: &[Permission]) -> Self {
        PermissionSet::EMPTY.with(permissions)
    }

    /// This set plus the given permissions.
    pub const fn with(self, permissions: &[Permission]) -> Self {
        let mut bits = self.0;
        let mut i = 0;
        while i < permissions.len() {
            bits |= 1 << (permissions[i] as u64);
            i += 1;
        }
        PermissionSet(bits)
    }

    /// This set less the given permissions.
    pub const fn without(self, permissions: &[Permission]) -> Self {
        let mut bits = self.0;
        let mut i = 0;
        while i < permissions.len() {
            bits &= !(1 << (permissions[i] as u64));
            i += 1;
        }
        PermissionSet(bits)
    }

    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & (1 << (permission as u64)) != 0
    }

    pub const fn is_superset_of(self, other: PermissionSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions in documentation order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|p| p.as_str()))
            .finish()
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.iter())
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter()
            .fold(PermissionSet::EMPTY, |set, p| set.with(&[p]))
    }
}

use Permission as P;

/// Read-only access to the organisation's compliance data. The audit log is not in it:
/// it records who did what, which is for owners, admins and auditors.
const VIEWER: PermissionSet = PermissionSet::of(&[
    P::OrgRead,
    P::MembersRead,
    P::FrameworksRead,
    P::ControlsRead,
    P::EvidenceRead,
    P::PoliciesRead,
    P::AssessmentsRead,
    P::IntegrationsRead,
]);

/// A contributor: answers assessments, uploads evidence, works on controls, asks the
/// assistant.
const MEMBER: PermissionSet = VIEWER.with(&[
    P::ControlsWrite,
    P::EvidenceWrite,
    P::AssessmentsWrite,
    P::AiUse,
]);

/// Runs the programme: frameworks, reviews and approvals, policies, collection, reports.
/// Connecting integrations (credentials) and people management stay with admins.
const COMPLIANCE_MANAGER: PermissionSet = MEMBER.with(&[
    P::FrameworksAdopt,
    P::FrameworksImport,
    P::EvidenceReview,
    P::EvidenceApprove,
    P::PoliciesWrite,
    P::PoliciesApprove,
    P::CollectionRun,
    P::ReportsExport,
]);

/// Everything except deleting the organisation; admins cannot grant or touch `owner`
/// (see [`Role::can_grant`]).
const ADMIN: PermissionSet = PermissionSet::of(Permission::ALL).without(&[P::OrgDelete]);

const OWNER: PermissionSet = PermissionSet::of(Permission::ALL);

/// Read everything including the audit log, review evidence, export the bundle; change
/// nothing.
const AUDITOR: PermissionSet = VIEWER.with(&[P::AuditRead, P::EvidenceReview, P::ReportsExport]);

/// The content of `docs/permissions.md`.
pub fn permissions_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Roles and permissions\n\n");
    out.push_str(
        "Generated from `crates/core/src/access.rs` (`assay_core::access::permissions_markdown`);\n\
         a unit test fails when this file differs from the code. To regenerate:\n\
         `ASSAY_UPDATE_DOCS=1 cargo test -p assay-core access`.\n\n",
    );
    out.push_str(
        "Handlers require a permission, never a role. The role is read from the membership in\n\
         the store on every request (never from the token).\n\n",
    );

    out.push_str("| Permission | Allows |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push('\n');
    out.push_str("| --- | --- |");
    for _ in Role::ALL {
        out.push_str(" :-: |");
    }
    out.push('\n');
    for permission in Permission::ALL {
        out.push_str(&format!(
            "| `{}` | {} |",
            permission.as_str(),
            permission.description()
        ));
        for role in Role::ALL {
            out.push_str(if role.can(*permission) {
                " ✓ |"
            } else {
                " |"
            });
        }
        out.push('\n');
    }

    out.push_str("\n## Granting roles\n\n");
    out.push_str(
        "Inviting someone with a role, or changing a member's role, needs `members.manage` (or\n\
         `invitations.manage` for invitations) and the right to grant both the member's current\n\
         and new role. The last owner of an organisation can be neither removed nor demoted.\n\n",
    );
    out.push_str("| Acting role | May grant, change and remove |\n| --- | --- |\n");
    for actor in Role::ALL {
        let grantable: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| actor.can_grant(*r))
            .map(Role::as_str)
            .collect();
        let text = if grantable.is_empty() {
            "nobody".to_owned()
        } else {
            grantable.join(", ")
        };
        out.push_str(&format!("| {actor} | {text} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!("superuser".parse::<Role>().is_err());
    }

    #[test]
    fn permission_names_are_unique_and_round_trip() {
        let mut names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len());
        assert!(Permission::ALL.len() < 64, "PermissionSet is a u64 bit set");
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), *p);
            let json = serde_json::to_value(p).unwrap();
            assert_eq!(json, p.as_str());
            assert_eq!(serde_json::from_value::<Permission>(json).unwrap(), *p);
        }
        assert!("org.own".parse::<Permission>().is_err());
    }

    #[test]
    fn roles_nest_from_owner_down_to_viewer() {
        let chain = [
            Role::Owner,
            Role::Admin,
            Role::ComplianceManager,
            Role::Member,
            Role::Viewer,
        ];
        for pair in chain.windows(2) {
            let (higher, lower) = (pair[0].permissions(), pair[1].permissions());
            assert!(
                higher.is_superset_of(lower) && higher != lower,
                "{} must strictly include {}",
                pair[0],
                pair[1]
            );
        }
        assert!(
            Role::Admin
                .permissions()
                .is_superset_of(Role::Auditor.permissions())
        );
        assert!(
            Role::Auditor
                .permissions()
                .is_superset_of(Role::Viewer.permissions())
        );
    }

    #[test]
    fn owner_alone_deletes_the_org_and_holds_everything() {
        assert_eq!(Role::Owner.permissions().len(), Permission::ALL.len());
        for role in Role::ALL {
            assert_eq!(
                role.can(Permission::OrgDelete),
                role == Role::Owner,
                "{role}"
            );
        }
    }

    #[test]
    fn viewer_is_read_only_and_auditor_only_reviews_and_exports() {
        for p in Role::Viewer.permissions().iter() {
            assert!(p.as_str().ends_with(".read"), "viewer holds {p}");
        }
        let auditor_extra: Vec<Permission> = Role::Auditor
            .permissions()
            .iter()
            .filter(|p| !p.as_str().ends_with(".read"))
            .collect();
        assert_eq!(
            auditor_extra,
            vec![Permission::EvidenceReview, Permission::ReportsExport]
        );
        assert!(Role::Auditor.can(Permission::AuditRead));
        assert!(!Role::Auditor.can(Permission::EvidenceApprove));
        assert!(!Role::Auditor.can(Permission::AiUse));
    }

    #[test]
    fn issue_rules_for_specific_permissions() {
        // Audit log: owner, admin, auditor only.
        let audit: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.can(Permission::AuditRead))
            .collect();
        assert_eq!(audit, vec![Role::Owner, Role::Admin, Role::Auditor]);
        // People, keys and integration credentials are admin business.
        for p in [
            Permission::MembersManage,
            Permission::InvitationsManage,
            Permission::ApiKeysManage,
            Permission::IntegrationsManage,
            Permission::AiAdmin,
            Permission::SettingsManage,
        ] {
            assert!(Role::Admin.can(p));
            assert!(!Role::ComplianceManager.can(p), "{p}");
        }
        assert!(Role::Member.can(Permission::EvidenceWrite));
        assert!(!Role::Member.can(Permission::EvidenceApprove));
        assert!(Role::ComplianceManager.can(Permission::EvidenceApprove));
    }

    #[test]
    fn only_owners_grant_or_touch_owner() {
        assert!(Role::Owner.can_grant(Role::Owner));
        assert!(Role::Owner.can_change_role(Role::Owner, Role::Admin));
        assert!(!Role::Admin.can_grant(Role::Owner));
        assert!(!Role::Admin.can_change_role(Role::Owner, Role::Viewer));
        assert!(!Role::Admin.can_manage_member(Role::Owner));
        assert!(Role::Admin.can_change_role(Role::Admin, Role::Member));
        assert!(Role::Admin.can_change_role(Role::Viewer, Role::Admin));
        for actor in [
            Role::ComplianceManager,
            Role::Auditor,
            Role::Member,
            Role::Viewer,
        ] {
            for target in Role::ALL {
                assert!(!actor.can_grant(target), "{actor} granting {target}");
            }
        }
        // Granting is consistent with permissions: whoever can grant holds members.manage.
        for actor in Role::ALL {
            if Role::ALL.into_iter().any(|r| actor.can_grant(r)) {
                assert!(actor.can(Permission::MembersManage), "{actor}");
            }
        }
    }

    #[test]
    fn permission_set_serialises_as_names() {
        let set = PermissionSet::of(&[Permission::EvidenceRead, Permission::OrgRead]);
        assert_eq!(
            serde_json::to_value(set).unwrap(),
            serde_json::json!(["org.read", "evidence.read"])
        );
        let collected: PermissionSet = set.iter().collect();
        assert_eq!(collected, set);
    }

    #[test]
    fn committed_permissions_doc_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/permissions.md");
        let generated = permissions_markdown();
        if std::env::var_os("ASSAY_UPDATE_DOCS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/permissions.md is out of date; run `ASSAY_UPDATE_DOCS=1 cargo test -p assay-core access`"
        );
    }
}
