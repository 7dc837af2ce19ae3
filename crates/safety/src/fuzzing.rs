//! Entry point shared by the cargo-fuzz target and the property tests: scan arbitrary
//! bytes as a whole and as a stream, and check the invariants that must hold for any
//! input. Kept in the library so a normal `cargo test` compiles and runs the same code the
//! fuzzer does.

use crate::{Direction, Policy, Profile, Scanner, StreamConfig, StreamScanner};

/// Scan `data` (lossy UTF-8) whole and streamed in chunks whose sizes come from the data
/// itself; panic if an invariant breaks.
pub fn scan_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let scanner = Scanner::shared();
    for f in scanner.scan(&text) {
        assert!(
            f.span.start <= f.span.end && f.span.end <= text.len(),
            "span out of range"
        );
        assert!(
            text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end),
            "span off a char boundary"
        );
    }
    for profile in Profile::ALL {
        let a = scanner.assess(&text, &Policy::new(profile), Direction::Input);
        if let Some(r) = a.redaction() {
            // Everything outside the edited spans is carried over unchanged.
            let kept: usize = r.replacements.iter().map(|x| x.span.len()).sum();
            let added: usize = r.replacements.iter().map(|x| x.placeholder.len()).sum();
            assert_eq!(r.text.len(), text.len() - kept + added, "redaction length");
        }
    }
    let config = StreamConfig::new(StreamConfig::MIN_WINDOW).expect("valid window");
    let mut stream =
        StreamScanner::with_config(scanner, Policy::default(), Direction::Output, config);
    let mut at = 0;
    let mut sizes = data.iter().cycle();
    while at < text.len() {
        let step = usize::from(*sizes.next().unwrap_or(&7)).max(1);
        let mut end = (at + step).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        stream.push(&text[at..end]);
        at = end;
    }
    let end = stream.finish();
    for f in &end.findings {
        assert!(
            f.span.end <= text.len() && text.is_char_boundary(f.span.start),
            "stream span"
        );
    }
}
