//! Amber's pattern matcher against Luau's own on 100,000 generated cases (captures, anchors,
//! `%b`, `%f`, sets, back-references, malformed patterns; find, match, gmatch and gsub with
//! string, table and function replacements): same values, same error messages.

use amber_harness::generators::patterns::PatternCase;
use amber_harness::oracles::patterns::PatternOracle;

/// A fixed-seed byte stream (xorshift64*), so the cases are the same on every run.
struct Bytes(u64);

impl Bytes {
    fn fill(&mut self, into: &mut [u8]) {
        for b in into {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

#[test]
fn amber_matcher_agrees_with_luau_on_100k_cases() {
    let mut oracle = PatternOracle::new().expect("driver loads");
    let mut bytes = Bytes(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 96];
    let mut failures = Vec::new();
    let (mut errors, mut matched) = (0, 0);
    for _ in 0..100_000 {
        bytes.fill(&mut buf);
        let case = PatternCase::from_bytes(&buf);
        match oracle.check(&case) {
            // Coverage of the outcomes, so that the generator cannot silently go dull.
            Ok(same) if same.starts_with("false") => errors += 1,
            Ok(same) if !(same.ends_with("nil") || same.ends_with("| number:0") || same == "true | string:") => {
                matched += 1
            }
            Ok(_) => {}
            Err(diff) => {
                failures.push(diff);
                if failures.len() >= 5 {
                    break;
                }
            }
        }
    }
    println!("{errors} raised errors, {matched} matched");
    assert!(failures.is_empty(), "{} differences, first:\n{}", failures.len(), failures.join("\n\n"));
    assert!(errors > 5_000, "only {errors} cases raised an error");
    // About one case in eight matches something non-empty over a random 24-byte subject.
    assert!(matched > 10_000, "only {matched} cases matched something");
}
