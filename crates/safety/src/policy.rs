//! Policy: which action each finding calls for, by profile, direction and role.
//!
//! The table itself is documented on the crate root; [`action_for`] is its only
//! implementation, so the docs and the code cannot drift apart silently (a test walks
//! every rule through every profile).

use crate::error::SafetyError;
use crate::rule::{Category, Rule, Severity};
use assay_core::Role;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// How much an organisation lets through. Ordered from least to most strict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    Permissive,
    #[default]
    Standard,
    Strict,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Permissive, Profile::Standard, Profile::Strict];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Permissive => "permissive",
            Profile::Standard => "standard",
            Profile::Strict => "strict",
        }
    }

    /// The least strict profile a role may run under. Read-only viewers get the strictest:
    /// they have no business sending credentials or personal data to a model.
    pub fn floor_for(role: Role) -> Profile {
        match role {
            Role::Owner | Role::Admin | Role::ComplianceManager => Profile::Permissive,
            Role::Auditor | Role::Member => Profile::Standard,
            Role::Viewer => Profile::Strict,
        }
    }

    /// This profile capped for `role`: the cap only ever makes it stricter.
    pub fn for_role(self, role: Role) -> Profile {
        self.max(Profile::floor_for(role))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = SafetyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| SafetyError::UnknownProfile(s.to_owned()))
    }
}

/// Whether the text goes to the model or comes back from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Input,
    Output,
}

/// What to do with a text, ordered by how much it interferes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Pass it on unchanged (findings may still be reported).
    Allow,
    /// Pass it on with matches redacted (typed placeholders) or invisible characters removed.
    Modify,
    /// Pass it on (modified where needed) and flag the exchange for human review.
    Escalate,
    /// Do not pass it on.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Modify => "modify",
            Action::Escalate => "escalate",
            Action::Block => "block",
        }
    }
}

/// The policy a text is judged under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub profile: Profile,
    /// Keep a map from PII placeholders to the original values so the answer can be
    /// restored for the caller. Secrets are never restorable.
    pub restore_pii: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new(Profile::Standard)
    }
}

impl Policy {
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            restore_pii: false,
        }
    }

    /// The organisation's profile capped for the caller's role.
    pub fn for_role(org_profile: Profile, role: Role) -> Self {
        Self::new(org_profile.for_role(role))
    }

    pub fn with_restore_pii(mut self, restore: bool) -> Self {
        self.restore_pii = restore;
        self
    }

    /// The action one finding calls for under this policy.
    pub fn action_for(&self, rule: Rule, direction: Direction) -> Action {
        action_for(rule, self.profile, direction)
    }
}

/// The decision table (see the crate docs).
pub fn action_for(rule: Rule, profile: Profile, direction: Direction) -> Action {
    use Action::*;
    use Profile::*;
    let by_profile = |permissive, standard, strict| match profile {
        Permissive => permissive,
        Standard => standard,
        Strict => strict,
    };
    match rule.category() {
        Category::Secret => by_profile(Modify, Modify, Block),
        Category::Pii => match rule.severity() {
            Severity::Critical | Severity::High => Modify,
            Severity::Medium => by_profile(Allow, Modify, Modify),
            Severity::Low => by_profile(Allow, Allow, Modify),
        },
        Category::Injection => match direction {
            Direction::Input => by_profile(Escalate, Block, Block),
            // A model repeating an injection phrase is a symptom worth a look, not an attack
            // on this exchange.
            Direction::Output => by_profile(Allow, Escalate, Block),
        },
        Category::Obfuscation => match rule {
            Rule::ObfuscationZeroWidth | Rule::ObfuscationBidiOverride => {
                by_profile(Allow, Modify, Modify)
            }
            Rule::ObfuscationTagCharacters => by_profile(Modify, Escalate, Block),
            Rule::ObfuscationEncodedText => by_profile(Allow, Escalate, Block),
            _ => by_profile(Allow, Allow, Escalate),
        },
        Category::Disallowed => match rule {
            Rule::DisallowedSexualMinors => Block,
            // A person in crisis should reach a human and a safe answer, not an error.
            Rule::DisallowedSelfHarm => Escalate,
            _ => by_profile(Escalate, Block, Block),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_always_gets_strict_and_caps_never_loosen() {
        for p in Profile::ALL {
            assert_eq!(p.for_role(Role::Viewer), Profile::Strict);
            for role in Role::ALL {
                assert!(p.for_role(role) >= p, "{role} loosened {p}");
            }
        }
        assert_eq!(
            Profile::Permissive.for_role(Role::Owner),
            Profile::Permissive
        );
        assert_eq!(
            Profile::Permissive.for_role(Role::Member),
            Profile::Standard
        );
    }

    #[test]
    fn stricter_profiles_never_act_less() {
        for &rule in Rule::ALL {
            for dir in [Direction::Input, Direction::Output] {
                let a: Vec<Action> = Profile::ALL
                    .iter()
                    .map(|&p| action_for(rule, p, dir))
                    .collect();
                assert!(a.windows(2).all(|w| w[0] <= w[1]), "{rule} {dir:?}: {a:?}");
            }
        }
    }

    #[test]
    fn headline_rows() {
        use Action::*;
        assert_eq!(
            action_for(
                Rule::SecretAwsAccessKey,
                Profile::Standard,
                Direction::Input
            ),
            Modify
        );
        assert_eq!(
            action_for(Rule::SecretAwsAccessKey, Profile::Strict, Direction::Input),
            Block
        );
        assert_eq!(
            action_for(Rule::PiiEmail, Profile::Permissive, Direction::Input),
            Allow
        );
        assert_eq!(
            action_for(Rule::PiiEmail, Profile::Standard, Direction::Output),
            Modify
        );
        assert_eq!(
            action_for(
                Rule::InjectionInstructionOverride,
                Profile::Standard,
                Direction::Input
            ),
            Block
        );
        assert_eq!(
            action_for(
                Rule::InjectionInstructionOverride,
                Profile::Standard,
                Direction::Output
            ),
            Escalate
        );
        assert_eq!(
            action_for(
                Rule::DisallowedSexualMinors,
                Profile::Permissive,
                Direction::Input
            ),
            Block
        );
    }

    #[test]
    fn profile_names_round_trip() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>().unwrap(), p);
        }
        assert!("lenient".parse::<Profile>().is_err());
    }
}
