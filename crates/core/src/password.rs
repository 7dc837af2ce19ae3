//! Password policy (length, not containing the e-mail local part, not a common password).
//!
//! The policy follows NIST SP 800-63B: length and a block list matter; composition rules
//! ("one digit, one symbol") do not, so there are none. Every violation is reported at
//! once so the API can answer one field-level 422 that names them all.

use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

/// Fewest characters (Unicode scalar values, not bytes) a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have; also bounds the work a hash costs.
pub const MAX_CHARS: usize = 128;
/// The e-mail local part is only checked when it is at least this long, so that a short
/// one ("al@example.com") does not forbid every password containing "al".
pub const MIN_LOCAL_PART_CHARS: usize = 3;

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// One way a password breaks the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum PasswordViolation {
    TooShort { min: usize, actual: usize },
    TooLong { max: usize, actual: usize },
    ContainsEmail,
    Common,
}

impl PasswordViolation {
    /// A stable machine-readable code for the API's `details`.
    pub fn code(&self) -> &'static str {
        match self {
            PasswordViolation::TooShort { .. } => "too_short",
            PasswordViolation::TooLong { .. } => "too_long",
            PasswordViolation::ContainsEmail => "contains_email",
            PasswordViolation::Common => "common",
        }
    }
}

impl fmt::Display for PasswordViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordViolation::TooShort { min, actual } => {
                write!(f, "must be at least {min} characters (has {actual})")
            }
            PasswordViolation::TooLong { max, actual } => {
                write!(f, "must be at most {max} characters (has {actual})")
            }
            PasswordViolation::ContainsEmail => {
                f.write_str("must not contain your e-mail address's name part")
            }
            PasswordViolation::Common => {
                f.write_str("is one of the most commonly used passwords; choose another")
            }
        }
    }
}

/// The password breaks the policy; every reason is listed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("password {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct WeakPassword(pub Vec<PasswordViolation>);

impl WeakPassword {
    pub fn violations(&self) -> &[PasswordViolation] {
        &self.0
    }
}

/// Checks `password` for the account `email`. `Ok(())` when it meets the policy.
pub fn check_password(password: &str, email: &str) -> Result<(), WeakPassword> {
    let mut violations = Vec::new();
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        violations.push(PasswordViolation::TooShort {
            min: MIN_CHARS,
            actual: chars,
        });
    }
    if chars > MAX_CHARS {
        violations.push(PasswordViolation::TooLong {
            max: MAX_CHARS,
            actual: chars,
        });
    }

    let lowered = password.to_lowercase();
    if let Some(local) = email_local_part(email)
        && local.chars().count() >= MIN_LOCAL_PART_CHARS
        && lowered.contains(&local)
    {
        violations.push(PasswordViolation::ContainsEmail);
    }
    if is_common_password(password) {
        violations.push(PasswordViolation::Common);
    }

    if violations.is_empty() {
        Ok(())
    } else {
        Err(WeakPassword(violations))
    }
}

/// Whether `password` (compared case-insensitively) is in the built-in list.
pub fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().as_str())
}

/// The lower-cased part before the last `@`, or `None` when there is no `@` or nothing
/// before it.
fn email_local_part(email: &str) -> Option<String> {
    let (local, _domain) = email.trim().rsplit_once('@')?;
    (!local.is_empty()).then(|| local.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "Jane.Doe@example.com";

    fn violations(password: &str, email: &str) -> Vec<PasswordViolation> {
        match check_password(password, email) {
            Ok(()) => vec![],
            Err(e) => e.0,
        }
    }

    #[test]
    fn accepts_a_long_uncommon_password() {
        assert_eq!(
            check_password("correct horse battery staple", EMAIL),
            Ok(())
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 12 characters, 24+ bytes: allowed.
        assert_eq!(violations("ééééééééééé1", EMAIL), vec![]);
        // 11 characters but more than 12 bytes: too short.
        assert_eq!(
            violations("ééééééééééé", EMAIL),
            vec![PasswordViolation::TooShort {
                min: 12,
                actual: 11
            }]
        );
        let at_max = "ß".repeat(MAX_CHARS);
        assert_eq!(violations(&at_max, EMAIL), vec![]);
        let over = "x7".repeat(65);
        assert_eq!(
            violations(&over, EMAIL),
            vec![PasswordViolation::TooLong {
                max: 128,
                actual: 130
            }]
        );
    }

    #[test]
    fn rejects_the_email_local_part_case_insensitively() {
        assert_eq!(
            violations("my JANE.DOE secret pass", EMAIL),
            vec![PasswordViolation::ContainsEmail]
        );
        // Short local parts are not checked.
        assert_eq!(violations("no albatross today", "al@example.com"), vec![]);
        // The domain is not the local part.
        assert_eq!(violations("example.com is my home", EMAIL), vec![]);
        assert_eq!(violations("whatever works here", "not-an-email"), vec![]);
    }

    #[test]
    fn rejects_common_passwords_case_insensitively() {
        assert_eq!(
            violations("Password1234", EMAIL),
            vec![PasswordViolation::Common]
        );
        assert_eq!(
            violations("QWERTYUIOP123", EMAIL),
            vec![PasswordViolation::Common]
        );
        assert!(is_common_password("Iloveyou"));
        assert!(!is_common_password("correct horse battery staple"));
    }

    #[test]
    fn reports_every_violation_at_once() {
        let v = violations("Jane.doe1", EMAIL);
        assert_eq!(
            v,
            vec![
                PasswordViolation::TooShort { min: 12, actual: 9 },
                PasswordViolation::ContainsEmail
            ]
        );
        let short_common = violations("dragon", "dragon@example.com");
        assert_eq!(
            short_common.iter().map(|v| v.code()).collect::<Vec<_>>(),
            vec!["too_short", "contains_email", "common"]
        );
        let err = check_password("abc", EMAIL).unwrap_err();
        assert!(err.to_string().contains("at least 12 characters"));
    }

    #[test]
    fn the_list_is_lower_case_and_large() {
        let list = include_str!("common_passwords.txt");
        let entries: Vec<&str> = list.lines().collect();
        assert!(entries.len() >= 300, "{} entries", entries.len());
        for e in &entries {
            assert_eq!(*e, e.to_lowercase(), "entry {e:?} must be lower-case");
            assert_eq!(*e, e.trim());
            assert!(!e.is_empty());
        }
        // Enough of them are long enough to matter once the length rule has passed.
        assert!(
            entries
                .iter()
                .filter(|e| e.chars().count() >= MIN_CHARS)
                .count()
                >= 50
        );
    }

    #[test]
    fn violations_serialise_with_a_code() {
        let json =
            serde_json::to_value(PasswordViolation::TooShort { min: 12, actual: 3 }).unwrap();
        assert_eq!(json["code"], "too_short");
        assert_eq!(json["min"], 12);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn length_rule_follows_the_character_count(password in "\\PC{0,140}") {
            let chars = password.chars().count();
            let v = match check_password(&password, "someone@example.com") {
                Ok(()) => vec![],
                Err(e) => e.0,
            };
            let too_short = v.iter().any(|v| matches!(v, PasswordViolation::TooShort { .. }));
            let too_long = v.iter().any(|v| matches!(v, PasswordViolation::TooLong { .. }));
            prop_assert_eq!(too_short, chars < MIN_CHARS);
            prop_assert_eq!(too_long, chars > MAX_CHARS);
        }

        #[test]
        fn any_case_of_the_local_part_is_caught(local in "[a-z]{3,20}", pad in "[0-9]{12}") {
            let email = format!("{local}@example.com");
            let password = format!("{pad}{}", local.to_uppercase());
            let v = check_password(&password, &email).unwrap_err();
            prop_assert!(v.violations().contains(&PasswordViolation::ContainsEmail));
        }
    }
}
