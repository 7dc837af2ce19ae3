//! Findings: what a rule matched, where in the caller's original text, and a masked
//! preview that is safe to log (never the matched secret itself).

use crate::rule::{Category, Rule, Severity};
use serde::Serialize;

/// A byte range `[start, end)` in the ORIGINAL text handed to the scanner. Always on
/// `char` boundaries, so `&text[span.start..span.end]` never panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        debug_assert!(start <= end);
        Self { start, end }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, other: &Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub(crate) fn shifted(self, by: usize) -> Self {
        Self::new(self.start + by, self.end + by)
    }
}

/// One rule match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub category: Category,
    pub severity: Severity,
    pub span: Span,
    /// Safe to store and show: a masked form for PII and secrets (`AKIA…MPLE`), the
    /// normalised phrase for injection and disallowed content, a code-point summary for
    /// invisible characters.
    pub preview: String,
    /// The match was found inside decoded base64/hex or hidden tag text; the span then
    /// covers the whole encoded run.
    pub encoded: bool,
}

impl Finding {
    pub(crate) fn new(rule: Rule, span: Span, preview: String) -> Self {
        Self {
            rule,
            category: rule.category(),
            severity: rule.severity(),
            span,
            preview,
            encoded: false,
        }
    }

    /// Whether redaction replaces this finding with a typed placeholder.
    pub fn is_redactable(&self) -> bool {
        self.rule.placeholder_label().is_some()
    }
}

/// A preview of a matched value that reveals at most a few characters at each end:
/// secrets keep 4+4 only when long enough that 8 characters are a small part of them,
/// PII keeps 2+2; anything short is fully masked.
pub(crate) fn masked_preview(rule: Rule, value: &str) -> String {
    let visible = || value.chars().filter(|c| !c.is_whitespace());
    let len = visible().count();
    let keep = match rule.category() {
        Category::Secret if len >= 20 => 4,
        Category::Pii if len >= 10 => 2,
        _ => 0,
    };
    if keep == 0 {
        return format!("…({len} chars)");
    }
    let mut out = String::with_capacity(2 * keep * 4 + '…'.len_utf8());
    out.extend(visible().take(keep));
    out.push('…');
    out.extend(visible().skip(len - keep));
    out
}

/// A preview of a matched phrase (injection, disallowed): short and single-line.
pub(crate) fn phrase_preview(phrase: &str) -> String {
    const MAX: usize = 48;
    let mut out: String = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_previews_keep_only_the_ends() {
        assert_eq!(
            masked_preview(Rule::SecretAwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
            "AKIA…MPLE"
        );
        let short = masked_preview(Rule::SecretSlackToken, "xoxb-12345");
        assert!(!short.contains("xoxb"), "{short}");
        assert_eq!(
            masked_preview(Rule::PiiEmail, "jane.doe@example.com"),
            "ja…om"
        );
    }

    #[test]
    fn previews_skip_whitespace_and_count_characters() {
        assert_eq!(masked_preview(Rule::PiiPhone, "+44 20 7946 0958"), "+4…58");
        assert_eq!(
            masked_preview(Rule::PiiCard, "４１１１ １１１１ １１１１ １１１１"),
            "４１…１１"
        );
        assert_eq!(masked_preview(Rule::PiiEmail, "a@b.io"), "…(6 chars)");
    }

    #[test]
    fn phrase_previews_are_bounded() {
        let p = phrase_preview(&"ignore ".repeat(30));
        assert!(p.chars().count() <= 49);
        assert!(p.ends_with('…'));
    }
}
