//! Redaction: typed placeholders (`[EMAIL_1]`, `[AWS_ACCESS_KEY_1]`), removal of invisible
//! characters, and the optional map that puts personal data back into an answer.

use crate::finding::{Finding, Span};
use crate::rule::{Category, Rule};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

/// Numbers placeholders per label; the same value always gets the same placeholder, so a
/// model can still tell that two mentions are the same person. Values are remembered by
/// hash only.
#[derive(Default)]
pub(crate) struct Placeholders {
    counters: HashMap<&'static str, usize>,
    seen: HashMap<[u8; 32], String>,
}

impl Placeholders {
    fn placeholder(&mut self, label: &'static str, value: &str) -> String {
        let key: [u8; 32] = Sha256::new()
            .chain_update(label)
            .chain_update([0])
            .chain_update(value)
            .finalize()
            .into();
        self.seen
            .entry(key)
            .or_insert_with(|| {
                let n = self.counters.entry(label).or_insert(0);
                *n += 1;
                format!("[{label}_{n}]")
            })
            .clone()
    }
}

/// One edit made to the caller's text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Replacement {
    pub rule: Rule,
    /// The edited range of the original text.
    pub span: Span,
    /// The placeholder written instead; empty when invisible characters were removed.
    pub placeholder: String,
}

/// Placeholder -> original value, for personal data only (never secrets). Its `Debug`
/// shows placeholders, not values, so it cannot leak through a log line.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RestorationMap {
    entries: Vec<(String, String)>,
}

impl fmt::Debug for RestorationMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(p, _)| p))
            .finish()
    }
}

impl RestorationMap {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(p, _)| p.as_str())
    }

    /// The original value behind a placeholder, if it is restorable.
    pub fn original(&self, placeholder: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(p, _)| p == placeholder)
            .map(|(_, v)| v.as_str())
    }

    fn insert(&mut self, placeholder: &str, value: &str) {
        if self.original(placeholder).is_none() {
            self.entries
                .push((placeholder.to_owned(), value.to_owned()));
        }
    }

    pub(crate) fn merge(&mut self, other: &RestorationMap) {
        for (p, v) in &other.entries {
            self.insert(p, v);
        }
    }

    /// Put the original values back into `answer` wherever the model repeated a
    /// placeholder. Unknown placeholders (including every secret) stay as they are.
    pub fn restore(&self, answer: &str) -> String {
        if self.entries.is_empty() {
            return answer.to_owned();
        }
        let mut out = String::with_capacity(answer.len());
        let mut rest = answer;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let tail = &rest[open..];
            let close = tail.find(']').filter(|&c| c <= 40);
            match close.and_then(|c| self.original(&tail[..=c]).map(|v| (c, v))) {
                Some((c, value)) => {
                    out.push_str(value);
                    rest = &tail[c + 1..];
                }
                None => {
                    out.push('[');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The edited text and what was done to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    pub text: String,
    pub replacements: Vec<Replacement>,
    /// Present when the policy asks for restorable personal data.
    pub restoration: Option<RestorationMap>,
}

/// Rewrite `text`, replacing the redactable `findings` with placeholders and removing
/// strippable ones. `findings` must come from one scan of `text` (redactable spans do not
/// overlap each other).
pub(crate) fn apply(
    text: &str,
    findings: &[&Finding],
    placeholders: &mut Placeholders,
    mut restoration: Option<&mut RestorationMap>,
) -> (String, Vec<Replacement>) {
    let redactable: Vec<&Finding> = findings
        .iter()
        .copied()
        .filter(|f| f.is_redactable())
        .collect();
    let mut edits: Vec<&Finding> = redactable.clone();
    edits.extend(findings.iter().copied().filter(|f| {
        f.rule.is_strippable() && !redactable.iter().any(|r| r.span.overlaps(&f.span))
    }));
    edits.sort_by_key(|f| f.span.start);
    let mut out = String::with_capacity(text.len());
    let mut replacements = Vec::with_capacity(edits.len());
    let mut at = 0;
    for f in edits {
        if f.span.start < at {
            continue;
        }
        out.push_str(&text[at..f.span.start]);
        let placeholder = match f.rule.placeholder_label() {
            Some(label) => {
                let value = &text[f.span.start..f.span.end];
                let p = placeholders.placeholder(label, value);
                if f.category == Category::Pii
                    && let Some(map) = restoration.as_deref_mut()
                {
                    map.insert(&p, value);
                }
                p
            }
            None => String::new(),
        };
        out.push_str(&placeholder);
        replacements.push(Replacement {
            rule: f.rule,
            span: f.span,
            placeholder,
        });
        at = f.span.end;
    }
    out.push_str(&text[at..]);
    (out, replacements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_placeholder() {
        let mut p = Placeholders::default();
        assert_eq!(p.placeholder("EMAIL", "a@b.io"), "[EMAIL_1]");
        assert_eq!(p.placeholder("EMAIL", "c@d.io"), "[EMAIL_2]");
        assert_eq!(p.placeholder("EMAIL", "a@b.io"), "[EMAIL_1]");
        assert_eq!(p.placeholder("PHONE", "a@b.io"), "[PHONE_1]");
    }

    #[test]
    fn restore_replaces_known_placeholders_only() {
        let mut m = RestorationMap::default();
        m.insert("[EMAIL_1]", "jane@example.com");
        let answer = "Write to [EMAIL_1] and [EMAIL_2], [not a placeholder] [";
        assert_eq!(
            m.restore(answer),
            "Write to jane@example.com and [EMAIL_2], [not a placeholder] ["
        );
        assert!(!format!("{m:?}").contains("jane"));
    }
}
