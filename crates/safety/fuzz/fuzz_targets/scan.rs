//! Fuzz target: the scanner and the stream scanner on arbitrary bytes (lossy UTF-8).
//! The checks live in `assay_safety::fuzzing::scan_bytes`, which the property tests also
//! run, so this file stays a thin shim.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assay_safety::fuzzing::scan_bytes(data);
});
