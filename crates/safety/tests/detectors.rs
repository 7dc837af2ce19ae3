//! Detector behaviour per entity, through the public scanner: every checksum or
//! number-plan rule is shown accepting a valid value and rejecting the same value with one
//! digit wrong, and the built-in framework catalogue (every text a user will paste back
//! at the assistant) produces no finding at all.

use assay_safety::{Finding, Rule, Scanner};

fn found(text: &str) -> Vec<(Rule, String)> {
    Scanner::shared()
        .scan(text)
        .into_iter()
        .map(|f| (f.rule, text[f.span.start..f.span.end].to_owned()))
        .collect()
}

/// `value` is found, with exactly that span, as `rule` inside a sentence.
fn valid(rule: Rule, value: &str) {
    let text = format!("Please record {value} in the file.");
    let f = found(&text);
    assert!(
        f.iter().any(|(r, m)| *r == rule && m == value),
        "expected {rule} on {value:?}, got {f:?}"
    );
}

/// `value` does not produce `rule` inside a sentence.
fn invalid(rule: Rule, value: &str) {
    let text = format!("Please record {value} in the file.");
    let f = found(&text);
    assert!(
        !f.iter().any(|(r, _)| *r == rule),
        "{value:?} must not be {rule}: {f:?}"
    );
}

/// Replace the last digit with the next one (mod 10): a single-digit error, which every
/// checksum used here detects.
fn last_digit_off(value: &str) -> String {
    let at = value.rfind(|c: char| c.is_ascii_digit()).expect("a digit");
    let d = value.as_bytes()[at] - b'0';
    let mut out = value.to_owned();
    out.replace_range(at..=at, &((d + 1) % 10).to_string());
    out
}

#[test]
fn payment_cards_need_a_luhn_digit_and_an_issuer() {
    for card in [
        "4111111111111111",    // Visa
        "4111 1111 1111 1111", // Visa, grouped
        "4012888888881881",    // Visa
        "5555555555554444",    // Mastercard
        "5105-1051-0510-5100", // Mastercard, dashes
        "2223003122003222",    // Mastercard 2-series
        "378282246310005",     // American Express
        "3714 496353 98431",   // American Express, 4-6-5
        "6011111111111117",    // Discover
        "3530111333300000",    // JCB
        "30569309025904",      // Diners Club
    ] {
        valid(Rule::PiiCard, card);
        invalid(Rule::PiiCard, &last_digit_off(card));
    }
    // Luhn-valid but no issuer uses the range; mixed separators; too short.
    invalid(Rule::PiiCard, "1234567812345670");
    invalid(Rule::PiiCard, "4111 1111-1111 1111");
    invalid(Rule::PiiCard, "411111111111");
}

#[test]
fn ibans_need_mod_97_and_their_country_length() {
    for iban in [
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "BE68539007547034",
        "CH9300762011623852957",
    ] {
        valid(Rule::PiiIban, iban);
        invalid(Rule::PiiIban, &last_digit_off(iban));
    }
    // Right checksum arithmetic is not enough: GB IBANs have 22 characters.
    invalid(Rule::PiiIban, "GB82WEST1234569876543");
}

#[test]
fn national_insurance_numbers_follow_the_prefix_rules() {
    for nino in ["AB123456C", "AB 12 34 56 C", "JK 55 66 77 A", "ZY123456D"] {
        valid(Rule::PiiUkNino, nino);
    }
    for nino in [
        "DA123456A", // D, F, I, Q, U, V are never first letters
        "QQ123456C",
        "VA123456A",
        "AO123456A", // O is never a second letter
        "BG123456A", // unissued prefixes
        "GB123456A",
        "NK123456A",
        "TN123456A",
        "ZZ123456A",
        "AB123456E", // suffix beyond D
    ] {
        invalid(Rule::PiiUkNino, nino);
    }
}

#[test]
fn nhs_numbers_need_their_mod_11_check_digit() {
    for nhs in ["9434765919", "943 476 5919", "943-476-5919", "4010232137"] {
        valid(Rule::PiiNhsNumber, nhs);
        invalid(Rule::PiiNhsNumber, &last_digit_off(nhs));
    }
    // Nine digits whose weighted sum leaves remainder 1 would need check digit 10, which
    // is never issued, so no tenth digit makes them valid.
    // 1*10 + 3*2 = 16, 16 % 11 = 5 -> check digit 6.
    valid(Rule::PiiNhsNumber, "1000000036");
    invalid(Rule::PiiNhsNumber, "1000000035");
    for d in 0..10 {
        // 1*10 + 1*2 = 12, 12 % 11 = 1 -> check digit 10: never valid.
        invalid(Rule::PiiNhsNumber, &format!("100000001{d}"));
    }
    // Repeated digits pass the arithmetic but are not issued.
    invalid(Rule::PiiNhsNumber, "2222222222");
}

#[test]
fn us_ssns_follow_the_issuing_rules() {
    for ssn in ["536-22-1234", "536 22 1234", "001-01-0001", "899-99-9999"] {
        valid(Rule::PiiUsSsn, ssn);
    }
    for ssn in [
        "000-22-1234", // area 000
        "666-22-1234", // area 666
        "900-22-1234", // areas 900-999
        "999-22-1234",
        "536-00-1234", // group 00
        "536-22-0000", // serial 0000
        "078-05-1120", // published sample numbers
        "219-09-9999",
        "123-45-6789",
        "536-22 1234", // mixed separators
    ] {
        invalid(Rule::PiiUsSsn, ssn);
    }
}

#[test]
fn emails_phones_and_addresses() {
    valid(Rule::PiiEmail, "jane.doe+tag@example.co.uk");
    valid(Rule::PiiEmail, "dpo@acme-example.com");
    invalid(Rule::PiiEmail, "jane..doe@example.com");
    invalid(Rule::PiiEmail, "jane@localhost");

    valid(Rule::PiiPhone, "+44 20 7946 0958");
    valid(Rule::PiiPhone, "+14155552671");
    valid(Rule::PiiPhone, "020 7946 0958");
    valid(Rule::PiiPhone, "07700 900123");
    valid(Rule::PiiPhone, "(415) 555-2671");
    valid(Rule::PiiPhone, "415-555-2670"); // (415-555-2671 also passes the NHS check)
    invalid(Rule::PiiPhone, "+12 345"); // too few digits for E.164
    invalid(Rule::PiiPhone, "+1234567890123456"); // too many
    invalid(Rule::PiiPhone, "020 7946 09"); // UK numbers have 10 or 11 digits
    invalid(Rule::PiiPhone, "2024-01-15");

    valid(Rule::PiiIpv4, "192.168.10.1");
    valid(Rule::PiiIpv4, "10.0.4.17");
    invalid(Rule::PiiIpv4, "256.1.1.1");
    invalid(Rule::PiiIpv4, "1.2.3.4.5");
    valid(Rule::PiiIpv6, "2001:db8::8a2e:370:7334");
    valid(Rule::PiiIpv6, "fe80::1ff:fe23:4567:890a");
    invalid(Rule::PiiIpv6, "10:30:45");
    invalid(Rule::PiiIpv6, "00:1A:2B:3C:4D:5E");
}

#[test]
fn builtin_framework_texts_produce_no_finding() {
    let catalogue = assay_core::catalogue::builtin();
    let mut texts: Vec<(String, &str)> = Vec::new();
    for fw in catalogue.frameworks() {
        texts.push((format!("{} name", fw.key), &fw.name));
        texts.push((format!("{} description", fw.key), &fw.description));
        for r in &fw.requirements {
            texts.push((format!("{} {} title", fw.key, r.ref_id), &r.title));
            texts.push((
                format!("{} {} description", fw.key, r.ref_id),
                &r.description,
            ));
        }
    }
    for c in catalogue.controls() {
        texts.push((format!("{} title", c.key), &c.title));
        texts.push((format!("{} description", c.key), &c.description));
        texts.push((format!("{} guidance", c.key), &c.guidance));
        for (i, q) in c.questions.iter().enumerate() {
            texts.push((format!("{} question {i}", c.key), q));
        }
    }
    assert!(
        texts.len() > 500,
        "the catalogue looks empty: {} texts",
        texts.len()
    );
    let noisy: Vec<(String, Vec<Finding>)> = texts
        .iter()
        .filter_map(|(at, text)| {
            let f = Scanner::shared().scan(text);
            (!f.is_empty()).then(|| (at.clone(), f))
        })
        .collect();
    assert!(noisy.is_empty(), "false positives: {noisy:#?}");
    // The same texts pasted together as one prompt stay quiet too (phrase rules see
    // across sentence ends).
    let all: String = texts
        .iter()
        .map(|(_, t)| *t)
        .collect::<Vec<_>>()
        .join("\n\n");
    let f = Scanner::shared().scan(&all);
    assert!(f.is_empty(), "false positives in the joined text: {f:#?}");
}
