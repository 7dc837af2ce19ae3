//! The catalogue of rules: stable ids, categories, severities and redaction labels.
//!
//! Rule ids are part of the public contract (they reach audit records and API errors), so
//! they are spelled out here once and never derived from Rust names.

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// What kind of risk a finding represents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Pii,
    Secret,
    Injection,
    Obfuscation,
    Disallowed,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pii => "pii",
            Category::Secret => "secret",
            Category::Injection => "injection",
            Category::Obfuscation => "obfuscation",
            Category::Disallowed => "disallowed",
        }
    }
}

/// How serious a finding is; ordered, so policies can use thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

macro_rules! rules {
    ($( $variant:ident => $id:literal, $cat:ident, $sev:ident, $label:expr; )*) => {
        /// One detection rule. Its [`Rule::id`] is stable across releases.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule { $( $variant, )* }

        impl Rule {
            /// Every rule, in catalogue order.
            pub const ALL: &'static [Rule] = &[ $( Rule::$variant, )* ];

            /// The stable id, e.g. `pii.email`.
            pub fn id(self) -> &'static str {
                match self { $( Rule::$variant => $id, )* }
            }

            pub fn category(self) -> Category {
                match self { $( Rule::$variant => Category::$cat, )* }
            }

            pub fn severity(self) -> Severity {
                match self { $( Rule::$variant => Severity::$sev, )* }
            }

            /// The typed placeholder stem used when this rule's match is redacted
            /// (`EMAIL` gives `[EMAIL_1]`); `None` for rules whose matches are not replaced
            /// by a placeholder.
            pub fn placeholder_label(self) -> Option<&'static str> {
                match self { $( Rule::$variant => $label, )* }
            }
        }
    };
}

rules! {
    PiiEmail => "pii.email", Pii, Medium, Some("EMAIL");
    PiiPhone => "pii.phone", Pii, Medium, Some("PHONE");
    PiiCard => "pii.card", Pii, High, Some("CARD");
    PiiIban => "pii.iban", Pii, High, Some("IBAN");
    PiiUkNino => "pii.uk_nino", Pii, High, Some("NINO");
    PiiNhsNumber => "pii.nhs_number", Pii, High, Some("NHS_NUMBER");
    PiiUsSsn => "pii.us_ssn", Pii, High, Some("SSN");
    PiiIpv4 => "pii.ipv4", Pii, Low, Some("IP_ADDRESS");
    PiiIpv6 => "pii.ipv6", Pii, Low, Some("IP_ADDRESS");
    SecretAwsAccessKey => "secret.aws_access_key", Secret, Critical, Some("AWS_ACCESS_KEY");
    SecretAwsSecretKey => "secret.aws_secret_key", Secret, Critical, Some("AWS_SECRET_KEY");
    SecretGithubToken => "secret.github_token", Secret, Critical, Some("GITHUB_TOKEN");
    SecretOpenaiKey => "secret.openai_key", Secret, Critical, Some("OPENAI_KEY");
    SecretGoogleApiKey => "secret.google_api_key", Secret, Critical, Some("GOOGLE_API_KEY");
    SecretSlackToken => "secret.slack_token", Secret, Critical, Some("SLACK_TOKEN");
    SecretStripeKey => "secret.stripe_key", Secret, Critical, Some("STRIPE_KEY");
    SecretPrivateKey => "secret.private_key", Secret, Critical, Some("PRIVATE_KEY");
    SecretJwt => "secret.jwt", Secret, High, Some("JWT");
    InjectionInstructionOverride => "injection.instruction_override", Injection, High, None;
    InjectionSystemPromptExtraction => "injection.system_prompt_extraction", Injection, High, None;
    InjectionRoleSwitch => "injection.role_switch", Injection, High, None;
    InjectionChatTemplate => "injection.chat_template", Injection, High, None;
    ObfuscationZeroWidth => "obfuscation.zero_width", Obfuscation, Low, None;
    ObfuscationBidiOverride => "obfuscation.bidi_override", Obfuscation, Medium, None;
    ObfuscationTagCharacters => "obfuscation.tag_characters", Obfuscation, High, None;
    ObfuscationEncodedText => "obfuscation.encoded_text", Obfuscation, Medium, None;
    ObfuscationBase64Blob => "obfuscation.base64_blob", Obfuscation, Low, None;
    ObfuscationHexBlob => "obfuscation.hex_blob", Obfuscation, Low, None;
    DisallowedMalware => "disallowed.malware", Disallowed, High, None;
    DisallowedCredentialTheft => "disallowed.credential_theft", Disallowed, High, None;
    DisallowedViolence => "disallowed.violence", Disallowed, High, None;
    DisallowedSelfHarm => "disallowed.self_harm", Disallowed, High, None;
    DisallowedSexualMinors => "disallowed.sexual_minors", Disallowed, Critical, None;
}

impl Rule {
    /// Invisible characters are removed (not replaced by a placeholder) when the policy
    /// modifies the text.
    pub fn is_strippable(self) -> bool {
        matches!(
            self,
            Rule::ObfuscationZeroWidth
                | Rule::ObfuscationBidiOverride
                | Rule::ObfuscationTagCharacters
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl FromStr for Rule {
    type Err = crate::SafetyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL
            .iter()
            .copied()
            .find(|r| r.id() == s)
            .ok_or_else(|| crate::SafetyError::UnknownRule(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_prefixed_by_category_and_round_trip() {
        let mut seen = HashSet::new();
        for &rule in Rule::ALL {
            assert!(seen.insert(rule.id()), "duplicate id {}", rule.id());
            assert!(
                rule.id()
                    .starts_with(&format!("{}.", rule.category().as_str()))
            );
            assert_eq!(rule.id().parse::<Rule>().unwrap(), rule);
        }
        assert!("pii.nothing".parse::<Rule>().is_err());
    }

    #[test]
    fn only_pii_and_secrets_get_placeholders() {
        for &rule in Rule::ALL {
            let redactable = matches!(rule.category(), Category::Pii | Category::Secret);
            assert_eq!(rule.placeholder_label().is_some(), redactable, "{rule}");
        }
    }
}
