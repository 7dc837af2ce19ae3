//! Organisation API keys: `assay_<id>_<secret>`.
//!
//! - `id`: 12 characters of `[0-9a-z]`, public, the store's lookup key (shown in lists).
//! - `secret`: 43 characters of `[0-9A-Za-z]` (about 256 bits), shown once at creation.
//!
//! The store keeps the SHA-256 hex of the whole key. A presented key is parsed, looked up
//! by id, and its hash compared in constant time. A fast hash is right here (unlike for
//! passwords): the secret is random and long, so there is nothing to brute-force.
//!
//! Scopes: `read`, `write`, `ai`, `admin`. `admin` implies `write`, which implies `read`;
//! `admin` also implies `ai`; `ai` implies nothing else. See [`ApiScopes::permits`] for
//! what each allows in terms of [`Permission`]s.

use crate::error::{ApiKeyError, UnknownScope};
use crate::random::sha256_hex;
use assay_core::access::Permission;
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

pub const API_KEY_PREFIX: &str = "assay_";
pub const API_KEY_ID_CHARS: usize = 12;
pub const API_KEY_SECRET_CHARS: usize = 43;
const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A new key: the full text for the user (once) and what the store keeps.
#[derive(Debug)]
pub struct NewApiKey {
    /// Public id, e.g. `k3v9x0q2m7ab`.
    pub id: String,
    /// The whole key, `assay_<id>_<secret>`, shown to the user once.
    pub key: SecretString,
    /// SHA-256 hex of the whole key.
    pub key_hash: String,
}

impl NewApiKey {
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let id: String = (0..API_KEY_ID_CHARS)
            .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
            .collect();
        let secret: String = (&mut rng)
            .sample_iter(Alphanumeric)
            .take(API_KEY_SECRET_CHARS)
            .map(char::from)
            .collect();
        let key = format!("{API_KEY_PREFIX}{id}_{secret}");
        let key_hash = sha256_hex(&key);
        Self {
            id,
            key: SecretString::from(key),
            key_hash,
        }
    }
}

/// Whether a bearer credential is meant to be an API key (rather than a JWT).
pub fn is_api_key(bearer: &str) -> bool {
    bearer.starts_with(API_KEY_PREFIX)
}

/// A well-formed key presented by a client.
pub struct PresentedApiKey {
    id: String,
    key: SecretString,
}

impl fmt::Debug for PresentedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PresentedApiKey {
    pub fn parse(text: &str) -> Result<Self, ApiKeyError> {
        let rest = text
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(ApiKeyError::MissingPrefix)?;
        let (id, secret) = rest.split_once('_').ok_or(ApiKeyError::BadId)?;
        if id.len() != API_KEY_ID_CHARS || !id.bytes().all(|b| ID_ALPHABET.contains(&b)) {
            return Err(ApiKeyError::BadId);
        }
        if secret.len() != API_KEY_SECRET_CHARS
            || !secret.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ApiKeyError::BadSecret);
        }
        Ok(Self {
            id: id.to_owned(),
            key: SecretString::from(text),
        })
    }

    /// The public id to look the key up by.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 hex of the whole key.
    pub fn hash(&self) -> String {
        sha256_hex(self.key.expose_secret())
    }

    /// Whether this key is the one whose hash is stored, compared in constant time.
    pub fn matches(&self, stored_hash_hex: &str) -> bool {
        let Ok(stored) = hex::decode(stored_hash_hex) else {
            return false;
        };
        let Ok(presented) = hex::decode(self.hash()) else {
            return false;
        };
        stored.ct_eq(&presented).into()
    }
}

/// One API key scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiScope {
    Read,
    Write,
    Ai,
    Admin,
}

impl ApiScope {
    pub const ALL: [ApiScope; 4] = [
        ApiScope::Read,
        ApiScope::Write,
        ApiScope::Ai,
        ApiScope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::Read => "read",
            ApiScope::Write => "write",
            ApiScope::Ai => "ai",
            ApiScope::Admin => "admin",
        }
    }

    /// This scope and every scope it implies.
    pub fn implied(self) -> &'static [ApiScope] {
        match self {
            ApiScope::Read => &[ApiScope::Read],
            ApiScope::Write => &[ApiScope::Write, ApiScope::Read],
            ApiScope::Ai => &[ApiScope::Ai],
            ApiScope::Admin => &ApiScope::ALL,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Whether this scope, on its own, allows `permission`.
    fn allows(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            // Reading everything but the audit log (an admin matter).
            ApiScope::Read => permission.as_str().ends_with(".read") && permission != P::AuditRead,
            // Automation of the compliance work; approvals stay with people or admin keys.
            ApiScope::Write => matches!(
                permission,
                P::ControlsWrite
                    | P::EvidenceWrite
                    | P::EvidenceReview
                    | P::AssessmentsWrite
                    | P::PoliciesWrite
                    | P::FrameworksAdopt
                    | P::FrameworksImport
                    | P::CollectionRun
                    | P::ReportsExport
            ),
            ApiScope::Ai => permission == P::AiUse,
            // What an admin can do; deleting the organisation needs its owner.
            ApiScope::Admin => permission != P::OrgDelete,
        }
    }
}

impl fmt::Display for ApiScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApiScope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApiScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

impl Serialize for ApiScope {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ApiScope {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        String::deserialize(de)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The scopes granted to a key, with implications applied.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ApiScopes(u8);

impl ApiScopes {
    /// The granted scopes and everything they imply.
    pub fn new(granted: impl IntoIterator<Item = ApiScope>) -> Self {
        let bits = granted
            .into_iter()
            .flat_map(|s| s.implied().iter().copied())
            .fold(0, |bits, s| bits | s.bit());
        Self(bits)
    }

    /// Parses stored or requested scope names (e.g. `["read", "ai"]`).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownScope> {
        let scopes: Vec<ApiScope> = names
            .into_iter()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self::new(scopes))
    }

    pub fn contains(self, scope: ApiScope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The effective scopes, in order.
    pub fn iter(self) -> impl Iterator<Item = ApiScope> {
        ApiScope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Whether a request made with this key may use `permission`.
    pub fn permits(self, permission: Permission) -> bool {
        self.iter().any(|s| s.allows(permission))
    }
}

impl fmt::Debug for ApiScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match_their_hash() {
        let new = NewApiKey::generate();
        let text = new.key.expose_secret();
        assert!(text.starts_with("assay_"));
        assert_eq!(text.len(), 6 + 12 + 1 + 43);
        assert!(is_api_key(text));
        let presented = PresentedApiKey::parse(text).unwrap();
        assert_eq!(presented.id(), new.id);
        assert_eq!(presented.hash(), new.key_hash);
        assert!(presented.matches(&new.key_hash));

        let other = NewApiKey::generate();
        assert_ne!(other.id, new.id);
        assert!(!presented.matches(&other.key_hash));
        assert!(!presented.matches("not hex"));
        assert!(!presented.matches(""));
    }

    #[test]
    fn a_changed_secret_does_not_match() {
        let new = NewApiKey::generate();
        let text = new.key.expose_secret();
        let last = text.chars().last().unwrap();
        let changed = format!(
            "{}{}",
            &text[..text.len() - 1],
            if last == 'a' { 'b' } else { 'a' }
        );
        assert!(
            !PresentedApiKey::parse(&changed)
                .unwrap()
                .matches(&new.key_hash)
        );
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good_id = "abcdefghij12";
        let good_secret = "A".repeat(43);
        let cases = [
            ("", ApiKeyError::MissingPrefix),
            ("eyJhbGciOiJIUzI1NiJ9.e30.sig", ApiKeyError::MissingPrefix),
            (
                &format!("Assay_{good_id}_{good_secret}"),
                ApiKeyError::MissingPrefix,
            ),
            ("assay_", ApiKeyError::BadId),
            (&format!("assay_{good_id}{good_secret}"), ApiKeyError::BadId),
            (
                &format!("assay_ABCDEFGHIJ12_{good_secret}"),
                ApiKeyError::BadId,
            ),
            (&format!("assay_abc_{good_secret}"), ApiKeyError::BadId),
            (&format!("assay_{good_id}_"), ApiKeyError::BadSecret),
            (
                &format!("assay_{good_id}_{}", "A".repeat(42)),
                ApiKeyError::BadSecret,
            ),
            (
                &format!("assay_{good_id}_{}", "A".repeat(44)),
                ApiKeyError::BadSecret,
            ),
            (
                &format!("assay_{good_id}_{}-", "A".repeat(42)),
                ApiKeyError::BadSecret,
            ),
            (
                &format!("assay_{good_id}_{}_", "A".repeat(42)),
                ApiKeyError::BadSecret,
            ),
            (
                &format!("assay_{good_id}_{good_secret} "),
                ApiKeyError::BadSecret,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                PresentedApiKey::parse(text).unwrap_err(),
                expected,
                "{text:?}"
            );
        }
        assert!(PresentedApiKey::parse(&format!("assay_{good_id}_{good_secret}")).is_ok());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let new = NewApiKey::generate();
        assert!(!format!("{new:?}").contains(new.key.expose_secret()));
        let presented = PresentedApiKey::parse(new.key.expose_secret()).unwrap();
        let debug = format!("{presented:?}");
        assert!(debug.contains(&new.id));
        assert!(!debug.contains(new.key.expose_secret()));
    }

    #[test]
    fn scope_implications() {
        let admin = ApiScopes::new([ApiScope::Admin]);
        assert_eq!(admin.iter().collect::<Vec<_>>(), ApiScope::ALL.to_vec());
        let write = ApiScopes::new([ApiScope::Write]);
        assert!(write.contains(ApiScope::Read) && !write.contains(ApiScope::Ai));
        assert!(!write.contains(ApiScope::Admin));
        let ai = ApiScopes::parse(["ai"]).unwrap();
        assert_eq!(ai.iter().collect::<Vec<_>>(), vec![ApiScope::Ai]);
        assert!(ApiScopes::parse(["read", "root"]).is_err());
        assert_eq!(
            serde_json::to_value(ApiScope::Admin).unwrap(),
            serde_json::json!("admin")
        );
        assert_eq!(
            serde_json::from_value::<ApiScope>(serde_json::json!("write")).unwrap(),
            ApiScope::Write
        );
    }

    #[test]
    fn scopes_map_to_permissions() {
        let read = ApiScopes::new([ApiScope::Read]);
        assert!(read.permits(Permission::EvidenceRead));
        assert!(!read.permits(Permission::EvidenceWrite));
        assert!(!read.permits(Permission::AuditRead));
        assert!(!read.permits(Permission::AiUse));

        let write = ApiScopes::new([ApiScope::Write]);
        assert!(
            write.permits(Permission::EvidenceRead),
            "write implies read"
        );
        assert!(write.permits(Permission::EvidenceWrite));
        assert!(write.permits(Permission::CollectionRun));
        assert!(!write.permits(Permission::EvidenceApprove));
        assert!(!write.permits(Permission::MembersManage));

        let ai = ApiScopes::new([ApiScope::Ai]);
        assert!(ai.permits(Permission::AiUse));
        assert!(!ai.permits(Permission::OrgRead));

        let admin = ApiScopes::new([ApiScope::Admin]);
        for p in Permission::ALL {
            assert_eq!(admin.permits(*p), *p != Permission::OrgDelete, "{p}");
        }
        // Every scope's permissions are a subset of admin's.
        for scope in ApiScope::ALL {
            for p in Permission::ALL {
                if ApiScopes::new([scope]).permits(*p) {
                    assert!(admin.permits(*p));
                }
            }
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_any_text_never_panics_and_accepts_only_the_format(text in "\\PC{0,80}") {
            if let Ok(key) = PresentedApiKey::parse(&text) {
                prop_assert!(text.starts_with("assay_"));
                prop_assert_eq!(text.len(), 62);
                prop_assert_eq!(key.id(), &text[6..18]);
            }
        }

        #[test]
        fn near_misses_of_the_format_are_rejected(
            id in "[0-9a-z]{12}",
            secret in "[0-9A-Za-z]{43}",
            junk in "[^0-9A-Za-z]",
            at in 0usize..62,
        ) {
            let good = format!("assay_{id}_{secret}");
            prop_assert!(PresentedApiKey::parse(&good).is_ok());
            // Replacing any character after the prefix with a foreign one breaks it,
            // except the separator, which must stay '_'.
            let pos = 6 + at % 56;
            let mut bad: Vec<char> = good.chars().collect();
            if bad[pos] != '_' {
                bad[pos] = junk.chars().next().unwrap();
                let bad: String = bad.into_iter().collect();
                prop_assert!(PresentedApiKey::parse(&bad).is_err(), "{}", bad);
            }
        }
    }
}
