//! Credentials: cloud and SaaS API keys and tokens with recognisable shapes, PEM private
//! key blocks and JWTs. Each pattern starts with a literal prefix, so the regex engine's
//! prefilter skips ordinary text at memchr speed.

use super::{Ctx, re};
use crate::rule::Rule;
use aho_corasick::AhoCorasick;
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use regex::Regex;

pub(crate) struct SecretRules {
    shaped: Vec<(Rule, Regex, Edges)>,
    /// Literals of which every match of a rule contains one: for each of `shaped` in
    /// order, then the JWT and the private-key rules. A rule none of whose literals
    /// occur in a text cannot match it and is not run.
    literals: AhoCorasick,
    /// The same literals for Teddy, where the CPU has it: `literals` starts its search at
    /// each occurrence of a first byte, and `e` and `s` (of `eyJ`, `sk-`) are everywhere
    /// in prose.
    packed: Option<aho_corasick::packed::Searcher>,
    /// The rule (index as above) each literal belongs to.
    literal_rule: Vec<usize>,
    aws_secret: Regex,
    /// `secret`, looked for in the ASCII-lower-cased text: every `aws_secret` match holds
    /// it in some case.
    aws_secret_gate: memchr::memmem::Finder<'static>,
    jwt: Regex,
    pem_begin: Regex,
    pem_end: Regex,
    pem_line: Regex,
}

const B: &str = r"(?-u:\b)";

/// What keeps a shaped rule from matching a piece of a longer token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edges {
    /// `\b` at both ends of the pattern: the key is letters, digits and `_`, which `\b`
    /// counts as one word.
    Pattern,
    /// The key may hold `-`, which `\b` takes for an edge: the match must be
    /// [`standalone`] in its run of `[A-Za-z0-9_-]`, checked in code as the regex crate
    /// has no look-around.
    Run,
}

/// base64url as used by JWTs, with or without padding.
pub(crate) const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl SecretRules {
    pub fn new() -> Self {
        let shaped = vec![
            (
                Rule::SecretAwsAccessKey,
                re(&format!(
                    r"{B}(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{{16}}{B}"
                )),
                Edges::Pattern,
            ),
            (
                Rule::SecretGithubToken,
                re(&format!(
                    r"{B}(?:gh[pousr]_[A-Za-z0-9]{{36,251}}|github_pat_[A-Za-z0-9_]{{22,250}}){B}"
                )),
                Edges::Pattern,
            ),
            (
                Rule::SecretOpenaiKey,
                re(&format!(
                    r"{B}sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{{20,250}}"
                )),
                Edges::Run,
            ),
            (
                Rule::SecretGoogleApiKey,
                re(&format!(r"{B}AIza[0-9A-Za-z_-]{{35}}")),
                Edges::Run,
            ),
            (
                Rule::SecretSlackToken,
                re(&format!(r"{B}xox[baprs]-[0-9A-Za-z-]{{10,250}}")),
                Edges::Run,
            ),
            (
                Rule::SecretStripeKey,
                re(&format!(
                    r"{B}(?:(?:sk|rk)_(?:live|test)|pk_live)_[0-9A-Za-z]{{10,247}}{B}"
                )),
                Edges::Pattern,
            ),
        ];
        // One list per rule, in the order of `shaped`, then JWT, then PEM.
        let literal_sets: [&[&str]; 8] = [
            &[
                "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA",
                "APKA", "ASCA",
            ],
            &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            &["sk-"],
            &["AIza"],
            &["xox"],
            &["k_live_", "k_test_"],
            &["eyJ"],
            &["-----BEGIN "],
        ];
        assert_eq!(literal_sets.len(), shaped.len() + 2);
        for (i, a) in literal_sets.iter().enumerate() {
            for (j, b) in literal_sets.iter().enumerate() {
                assert!(
                    i == j || !a.iter().any(|x| b.iter().any(|y| y.starts_with(x))),
                    "a literal of one secret rule starts another's"
                );
            }
        }
        let literal_rule: Vec<usize> = literal_sets
            .iter()
            .enumerate()
            .flat_map(|(i, set)| set.iter().map(move |_| i))
            .collect();
        // Leftmost-first, restarted one byte after each match, finds every position that
        // holds a literal (no literal is a prefix of another rule's).
        let literals = aho_corasick::AhoCorasickBuilder::new()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(literal_sets.concat())
            .expect("secret literals");
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(literal_sets.concat())
            .build();
        Self {
            shaped,
            literals,
            packed,
            literal_rule,
            aws_secret_gate: memchr::memmem::Finder::new("secret"),
            aws_secret: re(
                r#"(?i)(?:(?:aws[_. -]?)?secret[_. -]?access[_. -]?key|aws[_. -]?secret[_. -]?key)["']?[ \t]*(?::|=>?)[ \t]*["']?([A-Za-z0-9/+]{40})"#,
            ),
            jwt: re(&format!(
                r"{B}(eyJ[A-Za-z0-9_-]{{8,}}={{0,2}})\.[A-Za-z0-9_-]{{8,}}={{0,2}}\.[A-Za-z0-9_-]*"
            )),
            pem_begin: re(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"),
            pem_end: re(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"),
            pem_line: re(
                r"\A(?:\r?\n|[ \t]*[A-Za-z0-9+/=]{1,100}[ \t]*(?:\r?\n|\z)|[A-Za-z-]+: [^\r\n]{0,200}\r?\n)",
            ),
        }
    }

    /// Returns the start (normalised view) of a private-key block whose END line has not
    /// been seen, so a stream can hold it back until it has.
    pub fn detect(&self, ctx: &mut Ctx<'_>) -> Option<usize> {
        let text = ctx.norm;
        let present = self.present(text, self.packed.as_ref());
        // A rule whose literals are absent searches an empty text instead (none of them
        // matches the empty string), which keeps the loops below as they were.
        let gated = |i: usize| if present & (1 << i) != 0 { text } else { "" };
        for (i, (rule, regex, edges)) in self.shaped.iter().enumerate() {
            // A rejected match hides no other: all its bytes are of the run and it starts
            // with a letter, so a match starting inside it would be rejected too.
            for m in regex.find_iter(gated(i)) {
                if *edges == Edges::Run && !standalone(text, m.start(), m.end()) {
                    continue;
                }
                if *rule == Rule::SecretOpenaiKey && !looks_random(m.as_str()) {
                    continue;
                }
                ctx.value(*rule, m.start(), m.end());
            }
        }
        self.detect_aws_secret(ctx);
        for c in self.jwt.captures_iter(gated(self.shaped.len())) {
            let m = c.get(0).expect("whole match");
            if jwt_header_has_alg(&c[1]) {
                ctx.value(Rule::SecretJwt, m.start(), m.end());
            }
        }
        if present & (1 << (self.shaped.len() + 1)) == 0 {
            return None;
        }
        self.detect_pem(ctx)
    }

    /// The rules (bits, indexed as `literal_rule`) with a literal somewhere in `text`.
    /// Leftmost-first, restarted one byte after each match, visits every position that
    /// holds a literal; no literal is a prefix of another rule's, so which engine reports
    /// a position does not change the rule it opens.
    fn present(&self, text: &str, packed: Option<&aho_corasick::packed::Searcher>) -> u32 {
        let mut present = 0u32;
        let mut at = 0;
        let find = |at: usize| match packed {
            Some(p) => p.find_in(text, aho_corasick::Span::from(at..text.len())),
            None => self
                .literals
                .find(aho_corasick::Input::new(text).span(at..text.len())),
        };
        while let Some(m) = find(at) {
            present |= 1 << self.literal_rule[m.pattern().as_usize()];
            at = m.start() + 1;
        }
        present
    }

    fn detect_aws_secret(&self, ctx: &mut Ctx<'_>) {
        let text = ctx.norm;
        // Cheap gate: the assignment always names the key, in any case (the regex is
        // case-insensitive, so `aws_sEcReT_access_key` must pass the gate too).
        if self.aws_secret_gate.find(ctx.lower).is_none() {
            return;
        }
        for c in self.aws_secret.captures_iter(text) {
            let Some(v) = c.get(1) else { continue };
            let next = text[v.end()..].bytes().next();
            if next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+') {
                continue;
            }
            ctx.value(Rule::SecretAwsSecretKey, v.start(), v.end());
        }
    }

    fn detect_pem(&self, ctx: &mut Ctx<'_>) -> Option<usize> {
        let text = ctx.norm;
        let mut open = None;
        let mut from = 0;
        while let Some(begin) = self.pem_begin.find_at(text, from) {
            match self.pem_end.find_at(text, begin.end()) {
                Some(end) => {
                    ctx.value(Rule::SecretPrivateKey, begin.start(), end.end());
                    from = end.end();
                }
                None => {
                    // No END line: redact the header and the key-body lines that follow.
                    let mut at = begin.end();
                    while let Some(line) = self.pem_line.find(&text[at..]) {
                        if line.is_empty() {
                            break;
                        }
                        at += line.end();
                    }
                    let body_end = at - (text[..at].len() - text[..at].trim_end().len());
                    ctx.value(
                        Rule::SecretPrivateKey,
                        begin.start(),
                        body_end.max(begin.end()),
                    );
                    open = Some(begin.start());
                    break;
                }
            }
        }
        open
    }
}

/// Whether `text[start..end]` is a whole run of `[A-Za-z0-9_-]` rather than a piece of a
/// longer one: no such byte follows it, and none precedes it but a `-` that itself starts
/// the run (a diff's line marker, an option's dash).
fn standalone(text: &str, start: usize, end: usize) -> bool {
    let in_run = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let b = text.as_bytes();
    let before = |n: usize| start.checked_sub(n).map(|i| b[i]);
    let glued_before = match before(1) {
        None => false,
        Some(b'-') => before(2).is_some_and(in_run),
        Some(c) => in_run(c),
    };
    !glued_before && !b.get(end).copied().is_some_and(in_run)
}

/// Real keys mix letters and digits; `sk-this-is-a-long-name` does not.
fn looks_random(s: &str) -> bool {
    let body = s.trim_start_matches("sk-");
    body.bytes().any(|b| b.is_ascii_digit())
        && body.bytes().any(|b| b.is_ascii_uppercase())
        && body.bytes().any(|b| b.is_ascii_lowercase())
}

/// A JWT's first part is base64url JSON with an `alg` member.
fn jwt_header_has_alg(part: &str) -> bool {
    URL_SAFE_LENIENT
        .decode(part.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|v| v.get("alg").is_some_and(serde_json::Value::is_string))
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Teddy and the automaton open the same rules.
        #[test]
        fn packed_and_automaton_find_the_same_literals(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "AKIA", "ASIA", "ghp_", "github_pat_", "sk-", "AIza", "xox", "k_live_",
                "k_test_", "eyJ", "-----BEGIN ", "e", "s", "k", "-", "A", "g", "x", " ", "_",
                "AK", "gh", "sk", "ey", "-----", "github",
            ]), 0..16),
        ) {
            static RULES: std::sync::LazyLock<super::SecretRules> =
                std::sync::LazyLock::new(super::SecretRules::new);
            let text = pieces.concat();
            proptest::prop_assume!(RULES.packed.is_some());
            proptest::prop_assert_eq!(
                RULES.present(&text, RULES.packed.as_ref()),
                RULES.present(&text, None),
                "{:?}", text
            );
        }
    }

    use crate::Rule;
    use crate::detect::test_support::{has, lacks};

    #[test]
    fn aws_keys() {
        has(
            "key AKIAIOSFODNN7EXAMPLE here",
            Rule::SecretAwsAccessKey,
            "AKIAIOSFODNN7EXAMPLE",
        );
        has(
            "ASIAY34FZKBOKMUTVV7A",
            Rule::SecretAwsAccessKey,
            "ASIAY34FZKBOKMUTVV7A",
        );
        lacks("AKIAIOSFODNN7EXAMPL", Rule::SecretAwsAccessKey);
        lacks("XAKIAIOSFODNN7EXAMPLE", Rule::SecretAwsAccessKey);
        has(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            Rule::SecretAwsSecretKey,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        has(
            r#"{"AwsSecretKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#,
            Rule::SecretAwsSecretKey,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        // Any case of the name, as the regex allows (the cheap gate once missed these).
        has(
            "aws_sEcReT_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Rule::SecretAwsSecretKey,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        lacks("secret_access_key = tooShort", Rule::SecretAwsSecretKey);
    }

    #[test]
    fn tokens() {
        has(
            "t=ghp_abcdefghijklmnopqrstuvwxyz0123456789 ok",
            Rule::SecretGithubToken,
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        );
        let pat = format!("github_pat_11ABCDEFG0{}", "a1B2c3D4e5".repeat(7));
        has(&pat, Rule::SecretGithubToken, &pat);
        lacks("ghp_short", Rule::SecretGithubToken);
        has(
            "OPENAI_API_KEY=sk-proj-Abc123Def456Ghi789Jkl012Mno345",
            Rule::SecretOpenaiKey,
            "sk-proj-Abc123Def456Ghi789Jkl012Mno345",
        );
        lacks(
            "use the sk-learn-compatible-wrapper-library",
            Rule::SecretOpenaiKey,
        );
        has(
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
            Rule::SecretGoogleApiKey,
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        );
        has(
            "xoxb-123456789012-abcdefABCDEF",
            Rule::SecretSlackToken,
            "xoxb-123456789012-abcdefABCDEF",
        );
        lacks("xoxo-hugs-and-kisses-forever", Rule::SecretSlackToken);
        has(
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            Rule::SecretStripeKey,
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        );
        lacks("pk_test_TYooMQauvdEDq54NiTphI7jx", Rule::SecretStripeKey);
    }

    /// The spans of `rule` found in `text`.
    fn spans(text: &str, rule: Rule) -> Vec<(usize, usize)> {
        crate::Scanner::shared()
            .scan(text)
            .into_iter()
            .filter(|f| f.rule == rule)
            .map(|f| (f.span.start, f.span.end))
            .collect()
    }

    const GOOGLE_KEY: &str = "AIzaSyA1234567890abcdefghijklmnopqrstuv";

    #[test]
    fn google_api_key_is_found_with_its_exact_span() {
        for (before, after) in [
            ("", ""),
            ("key=", ""),
            ("key=", "&libraries=places"),
            ("\"", "\","),
            ("(", ")."),
            ("use ", " here"),
            ("use ", "\n"),
            ("use ", "\tnext"),
            ("use ", "; then"),
            ("use ", "."),
            ("use ", "/path"),
            // A removed line in a diff: the `-` marks the line, it does not join a token.
            ("-", "\n+AIza"),
        ] {
            let text = format!("{before}{GOOGLE_KEY}{after}");
            let start = before.len();
            assert_eq!(
                spans(&text, Rule::SecretGoogleApiKey),
                vec![(start, start + GOOGLE_KEY.len())],
                "{text:?}"
            );
        }
    }

    #[test]
    fn google_api_key_prefix_inside_a_longer_token_is_not_a_key() {
        for text in [
            format!("{GOOGLE_KEY}w"),
            format!("{GOOGLE_KEY}0 trailing"),
            format!("{GOOGLE_KEY}_suffix"),
            format!("{GOOGLE_KEY}-suffix"),
            format!("{GOOGLE_KEY}{GOOGLE_KEY}"),
            format!("id: prefix-{GOOGLE_KEY}"),
            format!("id: prefix_{GOOGLE_KEY}"),
            format!("x--{GOOGLE_KEY}"),
        ] {
            lacks(&text, Rule::SecretGoogleApiKey);
        }
        // Two keys with a separator are two keys.
        let two = format!("{GOOGLE_KEY},{GOOGLE_KEY}");
        assert_eq!(
            spans(&two, Rule::SecretGoogleApiKey),
            vec![(0, 39), (40, 79)]
        );
    }

    #[test]
    fn openai_and_slack_tokens_inside_longer_tokens_are_not_keys() {
        let openai = "sk-proj-Abc123Def456Ghi789Jkl012Mno345";
        has(&format!("\"{openai}\"."), Rule::SecretOpenaiKey, openai);
        has(&format!("-{openai}\n"), Rule::SecretOpenaiKey, openai);
        lacks(
            &format!("signature: Qx7dLk2-{openai}"),
            Rule::SecretOpenaiKey,
        );
        // Longer than any key of the format: the first 250 characters are not flagged.
        let long = format!("sk-{}", "Ab1".repeat(100));
        lacks(&format!("{long} end"), Rule::SecretOpenaiKey);
        let longest = format!("sk-{}", "Ab1".repeat(83));
        has(&format!("{longest} end"), Rule::SecretOpenaiKey, &longest);

        let slack = "xoxb-123456789012-abcdefABCDEF";
        has(&format!("token: {slack}."), Rule::SecretSlackToken, slack);
        lacks(&format!("{slack}_backup"), Rule::SecretSlackToken);
        lacks(&format!("build-{slack}"), Rule::SecretSlackToken);
        lacks(
            &format!("xoxb-{}", "1234567890".repeat(26)),
            Rule::SecretSlackToken,
        );
    }

    #[test]
    fn private_keys() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----";
        has(
            &format!("here:\n{key}\nthanks"),
            Rule::SecretPrivateKey,
            key,
        );
        let truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAMwAAAAtzc2gtZWQyNTUxOQ";
        has(
            &format!("{truncated}\n\nThat was all of it."),
            Rule::SecretPrivateKey,
            truncated,
        );
        lacks(
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
            Rule::SecretPrivateKey,
        );
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        has(&format!("Bearer {jwt}"), Rule::SecretJwt, jwt);
        // Header without "alg" is not a JWT.
        lacks(
            "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            Rule::SecretJwt,
        );
    }
}
