//! Capture and restore: persisting in the middle and resuming in a fresh VM must give exactly
//! the output of an uninterrupted run.

use amber_luau::*;
use amber_validator::{Limits, encode, validate};

fn fresh(src: &str) -> (String, Outcome) {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=t").unwrap()).unwrap();
    loop {
        match task.resume(Budget::unlimited()).unwrap() {
            Outcome::Yielded(_) => continue,
            o => return (String::from_utf8(task.take_output()).unwrap(), o),
        }
    }
}

/// Runs `src` pre-empted at every tick; at the `k`-th pre-emption persists through bytes,
/// validates, restores into a fresh VM and runs to the end there.
fn persisted(src: &str, k: u64) -> Option<(String, Outcome, Vec<u8>)> {
    let vm = Vm::new().unwrap();
    let mut task = vm.spawn(&Script::compile(src, "=t").unwrap()).unwrap();
    let mut seen = 0;
    loop {
        match task.resume(Budget::ticks(1)).unwrap() {
            Outcome::Preempted => {
                seen += 1;
                if seen == k {
                    break;
                }
            }
            Outcome::Yielded(_) => continue,
            _ => return None,
        }
    }
    let before = String::from_utf8(task.take_output()).unwrap();
    let snapshot = capture(&task).unwrap_or_else(|e| panic!("capture at {k}: {e}"));
    let bytes = encode(&snapshot);
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only())
        .unwrap_or_else(|r| panic!("validate at {k}: {r}"));
    let vm2 = Vm::new().unwrap();
    let mut task2 =
        restore(&vm2, &verified, RestoreOptions::default()).unwrap_or_else(|e| panic!("restore at {k}: {e}"));
    let end = loop {
        match task2.resume(Budget::ticks(3)).unwrap() {
            Outcome::Preempted | Outcome::Yielded(_) => continue,
            o => break o,
        }
    };
    Some((before + &String::from_utf8(task2.take_output()).unwrap(), end, bytes))
}

fn check_every_point(src: &str) -> u64 {
    let (want, want_end) = fresh(src);
    let mut k = 1;
    while let Some((got, end, _)) = persisted(src, k) {
        assert_eq!(got, want, "persisted at pre-emption {k}");
        assert_eq!(end, want_end, "persisted at pre-emption {k}");
        k += 1;
    }
    k - 1
}

#[test]
fn a_simple_loop_round_trips_at_every_point() {
    let n = check_every_point("local s = 0 for i = 1, 10 do s += i print(i, s) end return s");
    assert!(n > 10);
}
