//! A deterministic labelled corpus for the side-by-side with Presidio: compliance-style
//! documents with planted personal data of the types both tools detect, each with its
//! gold span, plus distractors that must not be reported (numbers with a wrong check
//! digit, unissued SSNs, version strings, dates, hashes, ticket ids).
//!
//! Every value is generated, never copied from a list of real people, and is valid by the
//! rules the real issuers use (Luhn with an issuer prefix, IBAN mod-97 with the country's
//! BBAN layout, NHS mod-11, SSN area/group/serial rules), so a detector that validates
//! them should find every one. The same seed always gives the same corpus.

use serde::Serialize;

/// The entity types both tools detect, in Presidio's names.
pub const SHARED_TYPES: [&str; 7] = [
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "UK_NHS",
];

/// A planted entity; offsets are Unicode code points (Python string indices).
#[derive(Clone, Debug, Serialize)]
pub struct Gold {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Doc {
    pub id: usize,
    pub text: String,
    pub entities: Vec<Gold>,
}

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

fn luhn_check_digit(body: &str) -> u8 {
    // Double every second digit from the right of the full number, i.e. starting with the
    // last digit of `body` once the check digit is appended.
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn group(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        out.push(&s[at..at + n]);
        at += n;
    }
    out.join(sep)
}

fn card(rng: &mut Rng) -> String {
    let (prefix, len, groups): (String, usize, &[usize]) = match rng.below(4) {
        0 => ("4".into(), 16, &[4, 4, 4, 4]),
        1 => (rng.range(51, 55).to_string(), 16, &[4, 4, 4, 4]),
        2 => (rng.pick(&["34", "37"]).to_string(), 15, &[4, 6, 5]),
        _ => ("6011".into(), 16, &[4, 4, 4, 4]),
    };
    let body = format!("{prefix}{}", rng.digits(len - prefix.len() - 1));
    let number = format!("{body}{}", luhn_check_digit(&body));
    match rng.below(3) {
        0 => number,
        1 => group(&number, groups, " "),
        _ => group(&number, groups, "-"),
    }
}

fn mod97(digits_and_letters: &str) -> u32 {
    digits_and_letters.bytes().fold(0u32, |rem, b| {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            _ => u32::from(b - b'A') + 10,
        };
        if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        }
    })
}

fn iban_with_check(country: &str, bban: &str, check: u32) -> String {
    format!("{country}{check:02}{bban}")
}

/// (country, BBAN) following each country's layout.
fn bban(rng: &mut Rng) -> (&'static str, String) {
    let letters = |rng: &mut Rng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'A' + rng.below(26) as u8))
            .collect()
    };
    match rng.below(6) {
        0 => ("GB", format!("{}{}", letters(rng, 4), rng.digits(14))),
        1 => ("DE", rng.digits(18)),
        2 => ("FR", rng.digits(23)),
        3 => ("NL", format!("{}{}", letters(rng, 4), rng.digits(10))),
        4 => ("ES", rng.digits(20)),
        _ => ("IT", format!("{}{}", letters(rng, 1), rng.digits(22))),
    }
}

fn iban_check(country: &str, bban: &str) -> u32 {
    98 - mod97(&format!("{bban}{country}00"))
}

fn format_iban(iban: &str, rng: &mut Rng) -> String {
    if rng.below(2) == 0 {
        return iban.to_owned();
    }
    iban.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ASCII"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn nhs_check(nine: &str) -> Option<u8> {
    let sum: u32 = nine
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * (10 - i as u32))
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

fn is_nhs_valid(ten: &str) -> bool {
    ten.len() == 10 && nhs_check(&ten[..9]) == Some(ten.as_bytes()[9] - b'0')
}

fn nhs_digits(rng: &mut Rng) -> (String, u8) {
    loop {
        let nine = format!("{}{}", rng.range(4, 9), rng.digits(8));
        if let Some(c) = nhs_check(&nine) {
            return (nine, c);
        }
    }
}

fn format_nhs(ten: &str, rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => ten.to_owned(),
        1 => group(ten, &[3, 3, 4], " "),
        _ => group(ten, &[3, 3, 4], "-"),
    }
}

fn ssn(rng: &mut Rng) -> String {
    let area = loop {
        let a = rng.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    format!(
        "{area:03}-{:02}-{:04}",
        rng.range(1, 99),
        rng.range(1, 9999)
    )
}

fn phone(rng: &mut Rng) -> String {
    loop {
        let p = match rng.below(5) {
            0 => format!("+44 20 7946 0{}", rng.digits(3)),
            1 => format!("020 7946 0{}", rng.digits(3)),
            2 => format!("07700 900{}", rng.digits(3)),
            3 => format!(
                "({}) 555-01{}",
                rng.pick(&["212", "415", "312", "617"]),
                rng.digits(2)
            ),
            _ => format!(
                "+1 {} 555 01{}",
                rng.pick(&["212", "415", "312", "617"]),
                rng.digits(2)
            ),
        };
        // Ten digits that also pass the NHS check are ambiguous for both tools; keep the
        // gold unambiguous.
        let digits: String = p.chars().filter(char::is_ascii_digit).collect();
        let nhs_shaped = digits.len() == 10 && is_nhs_valid(&digits)
            || digits.len() == 11 && is_nhs_valid(&digits[1..]);
        if !nhs_shaped {
            return p;
        }
    }
}

fn ip(rng: &mut Rng) -> String {
    if rng.below(5) == 0 {
        return format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.range(1, 0xffff),
            rng.range(1, 0xffff),
            rng.range(1, 0xffff)
        );
    }
    let first = loop {
        let f = rng.range(11, 223);
        if f != 127 {
            break f;
        }
    };
    format!(
        "{first}.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.range(1, 254)
    )
}

fn email(rng: &mut Rng) -> String {
    let first = rng.pick(&["jane", "omar", "li", "priya", "tom", "ana", "kofi", "eva"]);
    let last = rng.pick(&["doe", "smith", "haddad", "chen", "patel", "novak", "mensah"]);
    let domain = rng.pick(&[
        "example.com",
        "acme-example.co.uk",
        "corp.example.org",
        "mail.example.net",
    ]);
    match rng.below(3) {
        0 => format!("{first}.{last}@{domain}"),
        1 => format!("{first}{}@{domain}", rng.range(1, 99)),
        _ => format!("{}.{last}+audit@{domain}", &first[..1]),
    }
}

/// Sentences with a slot for one entity of the given type.
const CARRIERS: &[(&str, &[&str])] = &[
    (
        "EMAIL_ADDRESS",
        &[
            "Please send the signed policy to {} before Friday.",
            "The data protection contact is {} for this supplier.",
            "Access request raised by {} was approved by the system owner.",
        ],
    ),
    (
        "PHONE_NUMBER",
        &[
            "The on-call engineer can be reached on {} during an incident.",
            "Supplier escalation line: {} (office hours only).",
            "Call {} to report a lost device.",
        ],
    ),
    (
        "CREDIT_CARD",
        &[
            "The test purchase used card {} and was refunded.",
            "A customer pasted their card number {} into the support ticket.",
        ],
    ),
    (
        "IBAN_CODE",
        &[
            "Invoices are paid to {} within 30 days.",
            "The supplier changed its bank account to {} last month.",
        ],
    ),
    (
        "US_SSN",
        &[
            "The HR export still contains the SSN {} of a former employee.",
            "Background check reference: SSN {} verified.",
        ],
    ),
    (
        "IP_ADDRESS",
        &[
            "Repeated failed logins came from {} and were blocked.",
            "The bastion host {} is the only way into production.",
        ],
    ),
    (
        "UK_NHS",
        &[
            "The incident ticket included NHS number {} in a screenshot.",
            "Patient record {} was shared with the wrong practice.",
        ],
    ),
];

const FILLER: &[&str] = &[
    "Access reviews are performed quarterly by system owners and evidenced in the register.",
    "Backups are encrypted with AES-256 and a restore is tested every month.",
    "The incident response plan sets severity levels and the 72-hour notification window.",
    "Supplier due diligence covers SOC 2 Type II reports and a data processing agreement.",
    "Employees complete security awareness training within 30 days of joining.",
    "Change management requires a ticket, a peer review and a rollback plan.",
    "Les données personnelles sont conservées pendant la durée nécessaire.",
    "Control A.5.15 maps to ISO/IEC 27001:2022 and to SOC 2 CC6.1.",
];

/// Sentences carrying something number-like that is NOT one of the shared types.
fn distractor(rng: &mut Rng) -> String {
    match rng.below(9) {
        0 => {
            // A card number with a wrong check digit.
            let c = card(rng);
            let at = c.rfind(|ch: char| ch.is_ascii_digit()).expect("digit");
            let d = c.as_bytes()[at] - b'0';
            format!(
                "Reference {}{}{} failed validation.",
                &c[..at],
                (d + 1) % 10,
                &c[at + 1..]
            )
        }
        1 => {
            // An IBAN with wrong check digits.
            let (country, b) = bban(rng);
            let check = (iban_check(country, &b) % 97) + 1;
            let bad = iban_with_check(country, &b, check);
            format!("The rejected transfer quoted {} as payee.", bad)
        }
        2 => {
            // Ten digits with a wrong NHS check digit.
            let (nine, c) = nhs_digits(rng);
            let wrong = (c + 1 + rng.below(9) as u8) % 10;
            let ten = format!("{nine}{wrong}");
            format!("Batch {} was reprocessed overnight.", format_nhs(&ten, rng))
        }
        3 => format!(
            "Unissued test value {}-{:02}-{:04} must be rejected by the form.",
            rng.pick(&["000", "666", "900", "987"]),
            rng.range(1, 99),
            rng.range(1, 9999)
        ),
        4 => format!(
            "Agent version {}.{}.{}.{}.{} shipped on 2026-03-{:02} at 10:{:02}:{:02}.",
            rng.range(1, 9),
            rng.range(0, 20),
            rng.range(0, 9),
            rng.range(0, 9),
            rng.range(0, 99),
            rng.range(1, 28),
            rng.below(60),
            rng.below(60)
        ),
        5 => format!(
            "Evidence hash {:016x}{:016x} was recorded.",
            rng.next(),
            rng.next()
        ),
        6 => format!(
            "Ticket INC-{} was closed within {} hours.",
            rng.digits(6),
            rng.range(1, 48)
        ),
        7 => format!(
            "Budget line {}-{}-{} remains open.",
            rng.digits(4),
            rng.digits(4),
            rng.digits(4)
        ),
        _ => format!(
            "Requirement {}.{}.{} applies to all cardholder data.",
            rng.range(1, 12),
            rng.range(1, 9),
            rng.range(1, 9)
        ),
    }
}

fn entity(kind: &str, rng: &mut Rng) -> String {
    match kind {
        "EMAIL_ADDRESS" => email(rng),
        "PHONE_NUMBER" => phone(rng),
        "CREDIT_CARD" => card(rng),
        "IBAN_CODE" => {
            let (country, b) = bban(rng);
            let iban = iban_with_check(country, &b, iban_check(country, &b));
            format_iban(&iban, rng)
        }
        "US_SSN" => ssn(rng),
        "IP_ADDRESS" => ip(rng),
        "UK_NHS" => {
            let (nine, c) = nhs_digits(rng);
            format_nhs(&format!("{nine}{c}"), rng)
        }
        other => unreachable!("no generator for {other}"),
    }
}

/// `count` documents from `seed`.
pub fn generate(count: usize, seed: u64) -> Vec<Doc> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|id| {
            let mut text = String::new();
            let mut entities = Vec::new();
            let sentences = rng.range(4, 8);
            for _ in 0..sentences {
                if !text.is_empty() {
                    text.push(' ');
                }
                match rng.below(10) {
                    0..=3 => {
                        let (kind, carriers) = *rng.pick(CARRIERS);
                        let carrier = rng.pick(carriers);
                        let value = entity(kind, &mut rng);
                        let (before, after) = carrier.split_once("{}").expect("slot");
                        text.push_str(before);
                        let start = text.chars().count();
                        text.push_str(&value);
                        let end = text.chars().count();
                        text.push_str(after);
                        entities.push(Gold { kind, start, end });
                    }
                    4..=5 => text.push_str(&distractor(&mut rng)),
                    _ => {
                        let filler: &&str = rng.pick(FILLER);
                        text.push_str(filler);
                    }
                }
            }
            Doc { id, text, entities }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_pass_their_checks() {
        let mut rng = Rng(7);
        for _ in 0..200 {
            let c: String = card(&mut rng)
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            let body = &c[..c.len() - 1];
            assert_eq!(luhn_check_digit(body), c.as_bytes()[c.len() - 1] - b'0');
            let (country, b) = bban(&mut rng);
            let iban = iban_with_check(country, &b, iban_check(country, &b));
            let rearranged = format!("{}{}", &iban[4..], &iban[..4]);
            assert_eq!(mod97(&rearranged), 1, "{iban}");
            let (nine, c) = nhs_digits(&mut rng);
            assert!(is_nhs_valid(&format!("{nine}{c}")));
        }
        assert_eq!(luhn_check_digit("411111111111111"), 1);
        assert!(is_nhs_valid("9434765919"));
    }

    #[test]
    fn gold_spans_cover_the_planted_values() {
        for doc in generate(50, 1) {
            let chars: Vec<char> = doc.text.chars().collect();
            for g in &doc.entities {
                let s: String = chars[g.start..g.end].iter().collect();
                assert!(!s.is_empty() && !s.starts_with(' ') && !s.ends_with(' '));
            }
        }
    }

    #[test]
    fn same_seed_same_corpus() {
        let a = serde_json::to_string(&generate(20, 42)).unwrap();
        let b = serde_json::to_string(&generate(20, 42)).unwrap();
        assert_eq!(a, b);
    }
}
