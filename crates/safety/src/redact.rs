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
///
/// One numbering can span several texts of one exchange ([`Scanner::assess_with`] for each
/// message, then [`StreamScanner::with_placeholders`] for the answer), so `[EMAIL_1]` means
/// one value throughout; [`Placeholders::after_those_in`] starts past the placeholders
/// earlier turns already left in the texts.
///
/// [`Scanner::assess_with`]: crate::Scanner::assess_with
/// [`StreamScanner::with_placeholders`]: crate::StreamScanner::with_placeholders
#[derive(Clone, Default)]
pub struct Placeholders {
    counters: HashMap<&'static str, usize>,
    seen: HashMap<[u8; 32], String>,
}

impl fmt::Debug for Placeholders {
    /// The counters only: the hashes of values stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.counters.iter()).finish()
    }
}

impl Placeholders {
    /// A numbering whose new placeholders come after every `[LABEL_N]` already present in
    /// `texts` (e.g. earlier turns of a conversation, stored redacted): a new value never
    /// takes a number an older, different value has.
    pub fn after_those_in<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        for text in texts {
            let mut rest = text;
            while let Some(open) = rest.find('[') {
                rest = &rest[open + 1..];
                let Some(close) = rest.find(']').filter(|&c| c <= 40) else {
                    continue;
                };
                if let Some((label, n)) = rest[..close].rsplit_once('_')
                    && let Ok(n) = n.parse::<usize>()
                    && let Some(label) = known_label(label)
                {
                    let at = out.counters.entry(label).or_insert(0);
                    *at = (*at).max(n);
                }
            }
        }
        out
    }

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

/// The `'static` label equal to `label`, if it is one of the rules' placeholder labels.
fn known_label(label: &str) -> Option<&'static str> {
    Rule::ALL
        .iter()
        .filter_map(|r| r.placeholder_label())
        .find(|l| *l == label)
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

    /// Add `other`'s entries (an entry already here wins).
    pub fn merge(&mut self, other: &RestorationMap) {
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

/// The longest placeholder [`RestorationMap::restore`] recognises, in bytes.
const MAX_PLACEHOLDER: usize = 41;

impl RestorationMap {
    /// Restore an answer that arrives in pieces: see [`StreamRestorer`].
    pub fn into_stream(self) -> StreamRestorer {
        StreamRestorer {
            map: self,
            held: String::new(),
        }
    }
}

/// [`RestorationMap::restore`] over a text that arrives in chunks: a tail that may be the
/// start of a placeholder (an `[` with no `]` after it, at most 41 bytes back) is held
/// until the next chunk, so the output equals restoring the whole text at once however it
/// is cut.
#[derive(Debug)]
pub struct StreamRestorer {
    map: RestorationMap,
    held: String,
}

impl StreamRestorer {
    /// Add a chunk; returns the restored text that can be released.
    pub fn push(&mut self, chunk: &str) -> String {
        self.held.push_str(chunk);
        let cut = match self.held.rfind('[') {
            Some(open)
                if self.held.len() - open < MAX_PLACEHOLDER && !self.held[open..].contains(']') =>
            {
                open
            }
            _ => self.held.len(),
        };
        let ready: String = self.held.drain(..cut).collect();
        self.map.restore(&ready)
    }

    /// Release whatever is still held.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.held);
        self.map.restore(&rest)
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
    fn numbering_continues_after_placeholders_already_in_the_texts() {
        let mut p = Placeholders::after_those_in([
            "earlier: [EMAIL_1] and [EMAIL_3], [PHONE_2]",
            "[NOT_A_LABEL_9] [EMAIL_x] [CARD_1",
        ]);
        assert_eq!(p.placeholder("EMAIL", "new@b.io"), "[EMAIL_4]");
        assert_eq!(p.placeholder("PHONE", "+44 20 7946 0000"), "[PHONE_3]");
        assert_eq!(p.placeholder("CARD", "4111"), "[CARD_1]");
        assert!(!format!("{p:?}").contains("new@b.io"));
    }

    #[test]
    fn restoring_in_pieces_equals_restoring_the_whole() {
        let mut m = RestorationMap::default();
        m.insert("[EMAIL_1]", "jane@example.com");
        m.insert("[PHONE_2]", "+44 20 7946 0000");
        let answer =
            "Hi [EMAIL_1]; [[EMAIL_1]] call [PHONE_2] or [PHONE_3] [x [ ]EMAIL_1] [EMAIL_1]";
        let whole = m.restore(answer);
        assert!(whole.contains("jane@example.com") && whole.contains("+44 20 7946 0000"));
        let cuts: Vec<usize> = (0..=answer.len()).collect();
        for &a in &cuts {
            for &b in &cuts[a..] {
                let mut r = m.clone().into_stream();
                let mut out = r.push(&answer[..a]);
                out.push_str(&r.push(&answer[a..b]));
                out.push_str(&r.push(&answer[b..]));
                out.push_str(&r.finish());
                assert_eq!(out, whole, "cut at {a} and {b}");
            }
        }
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
