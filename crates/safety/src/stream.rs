//! Streaming: judge a model's answer (or any text) as it arrives, chunk by chunk, and
//! release only text that can no longer become part of a match.
//!
//! The scanner keeps a pending tail of at least `window` bytes (the longest multi-word
//! match it must see whole), never releases a token that touches the end of what has
//! arrived (keys and e-mails contain no whitespace, so they are held until one follows),
//! and holds a private-key block from its BEGIN line until its END line. Text already
//! released is kept as left context so word boundaries are judged as in the whole text.
//! Every release rescans context + pending, so cost per byte is bounded by the window,
//! and rescans only happen once `window / 4` new bytes have arrived.

use crate::assess::judge;
use crate::error::SafetyError;
use crate::finding::Finding;
use crate::policy::{Action, Direction, Policy};
use crate::redact::{Placeholders, Replacement, RestorationMap, StreamRestorer};
use crate::rule::Rule;
use crate::scanner::Scanner;

/// Limits of a [`StreamScanner`], in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Bytes always held back: at least the longest match that may contain whitespace.
    pub window: usize,
    /// A single whitespace-free run (or an unterminated key block) longer than this is
    /// released anyway, so a hostile stream cannot make the scanner buffer forever.
    pub max_hold: usize,
}

impl StreamConfig {
    pub const MIN_WINDOW: usize = 64;
    pub const MAX_WINDOW: usize = 64 * 1024;

    pub fn new(window: usize) -> Result<Self, SafetyError> {
        if !(Self::MIN_WINDOW..=Self::MAX_WINDOW).contains(&window) {
            return Err(SafetyError::InvalidWindow {
                got: window,
                min: Self::MIN_WINDOW,
                max: Self::MAX_WINDOW,
            });
        }
        Ok(Self {
            window,
            max_hold: (window * 64).max(64 * 1024),
        })
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self::new(256).expect("default window is valid")
    }
}

/// What one `push` released.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamChunk {
    /// Safe text to forward (redacted, with PII restored when a map was given).
    pub text: String,
    /// Findings in the released text, with spans in bytes of the whole stream so far.
    pub findings: Vec<Finding>,
    pub replacements: Vec<Replacement>,
    /// The stream hit a blocking rule: nothing more will be released.
    pub blocked: bool,
}

/// The end of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEnd {
    /// The last text released by `finish`.
    pub chunk: StreamChunk,
    /// The strictest action any part of the stream called for.
    pub action: Action,
    /// The rules behind that action.
    pub rules: Vec<Rule>,
    /// Every finding of the stream.
    pub findings: Vec<Finding>,
    /// PII placeholders introduced in this stream, when the policy keeps them.
    pub restoration: Option<RestorationMap>,
}

/// Scans a text that arrives in chunks. See the module docs for the hold-back rules.
pub struct StreamScanner<'s> {
    scanner: &'s Scanner,
    policy: Policy,
    direction: Direction,
    config: StreamConfig,
    /// Released context followed by pending text.
    buf: String,
    /// Bytes at the start of `buf` that were already released.
    released: usize,
    /// Offset of `buf[0]` in the whole stream.
    base: usize,
    placeholders: Placeholders,
    restoration: RestorationMap,
    restore_answer: Option<StreamRestorer>,
    findings: Vec<Finding>,
    action: Action,
    rules: Vec<(Action, Rule)>,
    blocked: bool,
}

impl<'s> StreamScanner<'s> {
    pub fn new(scanner: &'s Scanner, policy: Policy, direction: Direction) -> Self {
        Self::with_config(scanner, policy, direction, StreamConfig::default())
    }

    pub fn with_config(
        scanner: &'s Scanner,
        policy: Policy,
        direction: Direction,
        config: StreamConfig,
    ) -> Self {
        Self {
            scanner,
            policy,
            direction,
            config,
            buf: String::new(),
            released: 0,
            base: 0,
            placeholders: Placeholders::default(),
            restoration: RestorationMap::default(),
            restore_answer: None,
            findings: Vec::new(),
            action: Action::Allow,
            rules: Vec::new(),
            blocked: false,
        }
    }

    /// Restore these placeholders (from the input's assessment) in the released answer.
    /// Restoration happens after the answer's own scan, so restored values are not
    /// redacted again.
    pub fn restoring(mut self, map: RestorationMap) -> Self {
        self.restore_answer = Some(map.into_stream());
        self
    }

    /// Number the answer's placeholders after the input's (pass the numbering the input's
    /// messages were assessed with): a value the caller sent keeps its placeholder, and a
    /// new one in the answer never takes an input placeholder's number.
    pub fn with_placeholders(mut self, placeholders: Placeholders) -> Self {
        self.placeholders = placeholders;
        self
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Add a chunk; returns whatever became safe to release.
    pub fn push(&mut self, chunk: &str) -> StreamChunk {
        if self.blocked {
            return StreamChunk {
                blocked: true,
                ..StreamChunk::default()
            };
        }
        self.buf.push_str(chunk);
        let pending = self.buf.len() - self.released;
        if pending < self.config.window + self.config.window / 4 {
            return StreamChunk::default();
        }
        self.release(false)
    }

    /// Flush everything still held and summarise the stream.
    pub fn finish(mut self) -> StreamEnd {
        let chunk = if self.blocked {
            StreamChunk {
                blocked: true,
                ..StreamChunk::default()
            }
        } else {
            self.release(true)
        };
        let rules = {
            let mut r: Vec<Rule> = self
                .rules
                .iter()
                .filter(|(a, _)| *a == self.action)
                .map(|(_, r)| *r)
                .collect();
            r.sort();
            r.dedup();
            r
        };
        StreamEnd {
            chunk,
            action: self.action,
            rules,
            findings: self.findings,
            restoration: self.policy.restore_pii.then_some(self.restoration),
        }
    }

    fn release(&mut self, last: bool) -> StreamChunk {
        let outcome = self.scanner.scan_outcome(&self.buf);
        let Some(cut) = self.cut_point(&outcome.findings, outcome.open_block, last) else {
            return StreamChunk::default();
        };
        let start = self.released;
        let region: Vec<Finding> = outcome
            .findings
            .into_iter()
            .filter(|f| f.span.start >= start && f.span.end <= cut)
            .map(|f| Finding {
                span: crate::finding::Span::new(f.span.start - start, f.span.end - start),
                ..f
            })
            .collect();
        let text = &self.buf[start..cut];
        let (decision, action) = judge(
            text,
            &region,
            &self.policy,
            self.direction,
            &mut self.placeholders,
        );
        self.action = self.action.max(action);
        for f in &region {
            self.rules
                .push((self.policy.action_for(f.rule, self.direction), f.rule));
        }
        let offset = self.base + start;
        let findings: Vec<Finding> = region
            .into_iter()
            .map(|f| Finding {
                span: f.span.shifted(offset),
                ..f
            })
            .collect();
        self.findings.extend(findings.iter().cloned());
        let mut out = StreamChunk {
            findings,
            ..StreamChunk::default()
        };
        match decision {
            crate::Decision::Block { .. } => {
                self.blocked = true;
                out.blocked = true;
                self.buf.clear();
                return out;
            }
            crate::Decision::Modify { redaction }
            | crate::Decision::Escalate {
                redaction: Some(redaction),
                ..
            } => {
                if let Some(map) = &redaction.restoration {
                    self.restoration.merge(map);
                }
                out.replacements = redaction
                    .replacements
                    .into_iter()
                    .map(|r| Replacement {
                        span: r.span.shifted(offset),
                        ..r
                    })
                    .collect();
                out.text = redaction.text;
            }
            _ => out.text = text.to_owned(),
        }
        if let Some(restorer) = self.restore_answer.as_mut() {
            let mut text = restorer.push(&out.text);
            if last {
                text.push_str(&restorer.finish());
            }
            out.text = text;
        }
        self.keep_context(cut);
        out
    }

    /// Where released text may end this time, or `None` to wait for more.
    fn cut_point(
        &self,
        findings: &[Finding],
        open_block: Option<usize>,
        last: bool,
    ) -> Option<usize> {
        let buf = &self.buf;
        if last {
            return Some(buf.len());
        }
        let floor = self.released;
        let mut cut = floor_char_boundary(buf, buf.len().saturating_sub(self.config.window));
        if cut <= floor {
            return None;
        }
        // Never split a token: back off to just after whitespace.
        let bytes = buf.as_bytes();
        let mut c = cut;
        while c > floor && !bytes[c - 1].is_ascii_whitespace() {
            c -= 1;
        }
        let forced = buf.len() - floor > self.config.max_hold;
        if c > floor {
            cut = c;
        } else if !forced {
            return None;
        }
        if let Some(open) = open_block
            && open >= floor
            && !forced
        {
            cut = cut.min(open);
        }
        // Never split a finding.
        loop {
            let crossing = findings
                .iter()
                .filter(|f| f.span.start >= floor && f.span.start < cut && f.span.end > cut)
                .map(|f| f.span.start)
                .min();
            match crossing {
                Some(s) => cut = s,
                None => break,
            }
        }
        (cut > floor).then_some(cut)
    }

    /// Drop released text except a tail kept as left context (starting after whitespace so
    /// it does not begin mid-token).
    fn keep_context(&mut self, cut: usize) {
        let want = floor_char_boundary(&self.buf, cut.saturating_sub(self.config.window));
        let bytes = self.buf.as_bytes();
        let mut from = want;
        while from > 0 && !bytes[from - 1].is_ascii_whitespace() {
            from -= 1;
        }
        if cut - from > self.config.max_hold {
            from = want;
        }
        self.buf.drain(..from);
        self.base += from;
        self.released = cut - from;
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    fn stream(text: &str, splits: &[usize], policy: Policy) -> (String, StreamEnd) {
        let scanner = Scanner::shared();
        let cfg = StreamConfig::new(64).unwrap();
        let mut s = StreamScanner::with_config(scanner, policy, Direction::Output, cfg);
        let mut out = String::new();
        let mut at = 0;
        for &cut in splits.iter().chain([text.len()].iter()) {
            out.push_str(&s.push(&text[at..cut]).text);
            at = cut;
        }
        let end = s.finish();
        out.push_str(&end.chunk.text);
        (out, end)
    }

    fn whole(text: &str, policy: Policy) -> String {
        let a = Scanner::shared().assess(text, &policy, Direction::Output);
        a.forwarded(text)
            .map(|c| c.into_owned())
            .unwrap_or_default()
    }

    const SAMPLE: &str = "Hello team, the rotation report is attached. Contact jane.doe@example.com \
        or call +44 20 7946 0958. Old key AKIAIOSFODNN7EXAMPLE was revoked; card 4111 1111 1111 1111 \
        was on file. Pay GB82 WEST 1234 5698 7654 32. More text to push the window along so the \
        scanner has to release some of it before the end. Thanks, Jane (jane.doe@example.com).";

    #[test]
    fn every_split_point_redacts_like_the_whole_text() {
        let policy = Policy::new(Profile::Standard);
        let expected = whole(SAMPLE, policy);
        assert!(
            expected.contains("[AWS_ACCESS_KEY_1]") && expected.contains("[EMAIL_1])"),
            "{expected}"
        );
        for i in (0..=SAMPLE.len()).filter(|&i| SAMPLE.is_char_boundary(i)) {
            let (out, end) = stream(SAMPLE, &[i], policy);
            assert_eq!(out, expected, "split at {i}");
            assert_eq!(end.action, Action::Modify);
        }
    }

    #[test]
    fn token_sized_chunks_match_the_whole_text() {
        let policy = Policy::new(Profile::Standard);
        let splits: Vec<usize> = (1..SAMPLE.len())
            .filter(|i| i % 3 == 0 && SAMPLE.is_char_boundary(*i))
            .collect();
        let (out, _) = stream(SAMPLE, &splits, policy);
        assert_eq!(out, whole(SAMPLE, policy));
    }

    #[test]
    fn unterminated_private_key_is_held_until_its_end() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+XQgo9\n";
        let mut s = StreamScanner::new(Scanner::shared(), Policy::default(), Direction::Output);
        let mut released = s
            .push(&format!("{}Here it is:\n{key}", "filler words ".repeat(40)))
            .text;
        for _ in 0..20 {
            released.push_str(
                &s.push("ZmFrZWtleWJvZHlsaW5lZmFrZWtleWJvZHlsaW5lZmFrZWtleWJvZHlsaW5l\n")
                    .text,
            );
        }
        assert!(
            !released.contains("MIIBVQ"),
            "key body released early: {released}"
        );
        released.push_str(&s.push("-----END PRIVATE KEY-----\nbye ").text);
        let end = s.finish();
        released.push_str(&end.chunk.text);
        assert!(released.contains("[PRIVATE_KEY_1]"), "{released}");
        assert!(!released.contains("ZmFrZW"));
    }

    #[test]
    fn blocking_rule_stops_the_stream() {
        let policy = Policy::new(Profile::Strict);
        let text = format!(
            "{} the key is AKIAIOSFODNN7EXAMPLE {}",
            "intro ".repeat(30),
            "tail ".repeat(60)
        );
        let (out, end) = stream(&text, &[10, 200, 250], policy);
        assert_eq!(end.action, Action::Block);
        assert_eq!(end.rules, vec![Rule::SecretAwsAccessKey]);
        assert!(!out.contains("AKIA"));
        assert!(!out.contains("tail"));
    }

    #[test]
    fn answers_can_be_restored() {
        let input = Scanner::shared().assess(
            "email jane@example.com",
            &Policy::default().with_restore_pii(true),
            Direction::Input,
        );
        let map = input.restoration().unwrap().clone();
        let mut s = StreamScanner::new(Scanner::shared(), Policy::default(), Direction::Output)
            .restoring(map);
        let mut out = s.push("I will write to [EMA").text;
        out.push_str(&s.push("IL_1] today.").text);
        out.push_str(&s.finish().chunk.text);
        assert_eq!(out, "I will write to jane@example.com today.");
    }

    #[test]
    fn window_is_validated() {
        assert!(StreamConfig::new(8).is_err());
        assert!(StreamConfig::new(1 << 20).is_err());
    }
}
