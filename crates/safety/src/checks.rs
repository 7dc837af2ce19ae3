//! Checksums and number-plan rules that turn "looks like a number" into "is one": most of
//! the PII detectors' precision comes from here, not from their regexes.

/// Luhn (mod 10) over ASCII digits.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A payment card number: length, a known issuer range and a valid Luhn digit.
pub(crate) fn is_card(digits: &[u8]) -> bool {
    let n = digits.len();
    if !(13..=19).contains(&n) || !luhn(digits) {
        return false;
    }
    let prefix = |k: usize| -> u32 {
        digits[..k.min(n)]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    let p6 = prefix(6);
    match digits[0] {
        b'4' => matches!(n, 13 | 16 | 19), // Visa
        b'5' => (51..=55).contains(&p2) && n == 16 || (50..=59).contains(&p2), // Mastercard, Maestro
        b'2' => (2221..=2720).contains(&p4) && n == 16, // Mastercard 2-series
        b'3' => {
            (p2 == 34 || p2 == 37) && n == 15 // Amex
                || (3528..=3589).contains(&p4) // JCB
                || (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 // Diners
        }
        b'6' => {
            p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) // Discover
                || (622126..=622925).contains(&p6) || p2 == 62 // UnionPay
                || (56..=69).contains(&p2) // Maestro
        }
        _ => false,
    }
}

/// Expected IBAN lengths for the countries most often seen; others fall back to the
/// generic 15..=34 range with the checksum alone.
fn iban_length(country: &[u8]) -> Option<usize> {
    Some(match country {
        b"GB" | b"IE" | b"DE" => 22,
        b"FR" | b"MC" | b"IT" | b"SM" => 27,
        b"ES" | b"SE" | b"SK" | b"CZ" | b"TN" | b"RO" => 24,
        b"NL" => 18,
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FO" | b"GL" => 18,
        b"AT" | b"EE" | b"LT" | b"LU" | b"KZ" | b"XK" | b"BA" => 20,
        b"CH" | b"LI" | b"LV" | b"HR" => 21,
        b"PT" => 25,
        b"PL" | b"HU" | b"CY" => 28,
        b"GR" => 27,
        b"IS" | b"TR" => 26,
        b"SI" => 19,
        b"MT" => 31,
        b"AE" | b"IL" | b"BG" => 23,
        b"SA" => 24,
        _ => return None,
    })
}

/// Whether `s` (upper-case letters and digits, no spaces) is an IBAN: known length for
/// its country and ISO 7064 mod-97 remainder of 1.
pub(crate) fn is_iban(s: &[u8]) -> bool {
    if s.len() < 15 || s.len() > 34 || !s[..2].iter().all(u8::is_ascii_uppercase) {
        return false;
    }
    if !s[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if let Some(len) = iban_length(&s[..2])
        && len != s.len()
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in s[4..].iter().chain(&s[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// The IBAN length to expect for a country code, if known.
pub(crate) fn iban_expected_length(country: &[u8]) -> Option<usize> {
    iban_length(country)
}

/// A UK National Insurance number (letters and digits only, upper case): valid prefix
/// letters, not an unissued prefix, suffix A-D.
pub(crate) fn is_uk_nino(s: &[u8]) -> bool {
    if s.len() != 9 {
        return false;
    }
    let (a, b) = (s[0], s[1]);
    let first_ok = a.is_ascii_uppercase() && !b"DFIQUV".contains(&a);
    let second_ok = b.is_ascii_uppercase() && !b"DFIOQUV".contains(&b);
    let unissued = [b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"]
        .iter()
        .any(|p| &s[..2] == p.as_slice());
    first_ok
        && second_ok
        && !unissued
        && s[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&s[8])
}

/// An NHS number: 10 digits whose last is the mod-11 check digit of the first nine.
/// A remainder giving 10 is never issued; all-equal digits pass the sum but are not real.
pub(crate) fn is_nhs_number(d: &[u8]) -> bool {
    if d.len() != 10 || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x - b'0') * (10 - i as u32))
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(d[9] - b'0')
}

/// A US Social Security number in its three parts; area 000, 666 and 900-999, group 00
/// and serial 0000 are never issued, and a few published sample numbers are excluded.
pub(crate) fn is_us_ssn(area: u32, group: u32, serial: u32) -> bool {
    let sample = matches!(
        (area, group, serial),
        (78, 5, 1120) | (219, 9, 9999) | (123, 45, 6789)
    );
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !sample
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_issuers() {
        assert!(is_card(b"4111111111111111"));
        assert!(is_card(b"5555555555554444"));
        assert!(is_card(b"378282246310005"));
        assert!(is_card(b"6011111111111117"));
        assert!(!is_card(b"4111111111111112"), "bad check digit");
        assert!(!is_card(b"1234567812345670"), "Luhn-valid but no issuer");
        assert!(!is_card(b"41111111111"), "too short");
    }

    #[test]
    fn iban_mod97() {
        assert!(is_iban(b"GB82WEST12345698765432"));
        assert!(is_iban(b"DE89370400440532013000"));
        assert!(is_iban(b"FR1420041010050500013M02606"));
        assert!(!is_iban(b"GB82WEST12345698765433"), "bad checksum");
        assert!(!is_iban(b"GB82WEST1234569876543"), "wrong length for GB");
    }

    #[test]
    fn nino_rules() {
        assert!(is_uk_nino(b"AB123456C"));
        assert!(!is_uk_nino(b"QQ123456C"), "Q is never a first letter");
        assert!(!is_uk_nino(b"GB123456A"), "unissued prefix");
        assert!(!is_uk_nino(b"AB123456E"), "suffix beyond D");
        assert!(!is_uk_nino(b"AO123456A"), "O is never a second letter");
    }

    #[test]
    fn nhs_mod11() {
        assert!(is_nhs_number(b"9434765919"));
        assert!(is_nhs_number(b"4010232137"));
        assert!(!is_nhs_number(b"9434765918"), "wrong check digit");
        assert!(!is_nhs_number(b"0000000000"));
    }

    #[test]
    fn ssn_ranges() {
        assert!(is_us_ssn(536, 22, 1234));
        assert!(!is_us_ssn(0, 22, 1234));
        assert!(!is_us_ssn(666, 22, 1234));
        assert!(!is_us_ssn(901, 22, 1234));
        assert!(!is_us_ssn(536, 0, 1234));
        assert!(!is_us_ssn(536, 22, 0));
        assert!(!is_us_ssn(78, 5, 1120));
    }
}
