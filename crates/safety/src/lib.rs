//! The safety manager: a deterministic scanner for everything sent to and received from
//! an AI model (R-34). It finds personal data, credentials, prompt injection, obfuscation
//! and disallowed content, and decides per text whether to **allow**, **modify**
//! (redact), **escalate** (allow and flag for review) or **block**.
//!
//! Pure and synchronous: no I/O, no clock, no randomness. All patterns are compiled once
//! into a [`Scanner`] (`Send + Sync`, share it or use [`Scanner::shared`]); matching is
//! linear-time (`regex`, `aho-corasick`).
//!
//! ```
//! use assay_safety::{Direction, Policy, Profile, Scanner};
//! use assay_core::Role;
//!
//! let policy = Policy::for_role(Profile::Standard, Role::Member).with_restore_pii(true);
//! let prompt = "Draft a reply to jane@example.com about key AKIAIOSFODNN7EXAMPLE";
//! let input = Scanner::shared().assess(prompt, &policy, Direction::Input);
//! assert_eq!(
//!     input.forwarded(prompt).unwrap(),
//!     "Draft a reply to [EMAIL_1] about key [AWS_ACCESS_KEY_1]"
//! );
//! // The model answers with placeholders; personal data (never secrets) can be put back.
//! let answer = "Dear [EMAIL_1], please rotate [AWS_ACCESS_KEY_1].";
//! let restored = input.restoration().unwrap().restore(answer);
//! assert_eq!(restored, "Dear jane@example.com, please rotate [AWS_ACCESS_KEY_1].");
//! ```
//!
//! # How text is examined
//!
//! 1. **Normalisation** ([`view`](crate) internals): NFKC per character cluster; zero-width
//!    characters, bidi controls and Unicode tag characters are removed from the view (and
//!    reported); common Cyrillic/Greek look-alikes are folded to Latin. A second "words"
//!    view lower-cases and collapses punctuation for phrase rules (built only when a
//!    phrase rule's key word may occur, so ordinary prose skips it). Every view keeps an
//!    offset map, so each [`Finding::span`] is a byte range of the **original** text on
//!    char boundaries, and redaction edits exactly what the caller sent.
//! 2. **Detectors** (rule ids in [`Rule`]): PII validated by checksum or number plan
//!    (Luhn, IBAN mod-97, NHS mod-11, NINO prefixes, SSN ranges), secrets by their issuer
//!    formats (JWT headers must decode to JSON with `alg`), injection and disallowed
//!    content by curated phrases and shapes. Base64/hex runs that decode to text, and
//!    text smuggled in tag characters, are decoded and scanned again (two layers).
//! 3. **Reconciliation**: PII and secret findings never overlap (secret first, then the
//!    more severe, then the longer match).
//! 4. **Decision** by [`Policy`] (profile capped by role) and [`Direction`].
//!
//! # Decision table
//!
//! Each finding maps to an action; the text's decision is the strictest one
//! (`allow < modify < escalate < block`). Under `escalate` the redactions that apply are
//! still made. Redaction replaces PII/secrets with typed placeholders (`[EMAIL_1]`, the
//! same value always gets the same number) and removes invisible characters.
//!
//! | finding | permissive | standard | strict |
//! |---|---|---|---|
//! | `secret.*` | modify | modify | **block** |
//! | PII, high (`pii.card`, `pii.iban`, `pii.uk_nino`, `pii.nhs_number`, `pii.us_ssn`) | modify | modify | modify |
//! | PII, medium (`pii.email`, `pii.phone`) | allow | modify | modify |
//! | PII, low (`pii.ipv4`, `pii.ipv6`) | allow | allow | modify |
//! | `injection.*` on input | escalate | **block** | **block** |
//! | `injection.*` on output | allow | escalate | **block** |
//! | `obfuscation.zero_width`, `obfuscation.bidi_override` | allow | modify (stripped) | modify (stripped) |
//! | `obfuscation.tag_characters` | modify (stripped) | escalate (stripped) | **block** |
//! | `obfuscation.encoded_text` | allow | escalate | **block** |
//! | `obfuscation.base64_blob`, `obfuscation.hex_blob` | allow | allow | escalate |
//! | `disallowed.malware`, `disallowed.credential_theft`, `disallowed.violence` | escalate | **block** | **block** |
//! | `disallowed.self_harm` | escalate | escalate | escalate |
//! | `disallowed.sexual_minors` | **block** | **block** | **block** |
//!
//! Role caps ([`Profile::for_role`]) can only make a profile stricter: owner, admin and
//! compliance_manager keep the organisation's profile; auditor and member get at least
//! `standard`; a viewer always gets `strict`.
//!
//! Self-harm is escalated rather than blocked at every profile so the person reaches a
//! human and a safe answer instead of an error.
//!
//! # Reports
//!
//! [`Assessment::report`] gives a serialisable [`SafetyReport`]: action, rule ids, spans
//! and masked previews (`AKIA…MPLE` at most). Matched secrets never appear in it, and the
//! [`RestorationMap`] (personal data only, never secrets) is not part of it.
//!
//! # Streaming
//!
//! [`StreamScanner`] judges an answer chunk by chunk and releases only text that can no
//! longer be part of a match (see its module docs); its output equals the whole-text
//! redaction for any chunking, which the property tests check.

mod assess;
mod checks;
mod detect;
mod error;
mod finding;
#[doc(hidden)]
pub mod fuzzing;
mod policy;
mod redact;
mod rule;
mod scanner;
mod stream;
mod view;

pub use assess::{Assessment, Decision, SafetyReport};
pub use detect::encoded::EncodedThresholds;
pub use error::SafetyError;
pub use finding::{Finding, Span};
pub use policy::{Action, Direction, Policy, Profile, action_for};
pub use redact::{Placeholders, Redaction, Replacement, RestorationMap, StreamRestorer};
pub use rule::{Category, Rule, Severity};
pub use scanner::{ScanOptions, Scanner};
pub use stream::{StreamChunk, StreamConfig, StreamEnd, StreamScanner};
