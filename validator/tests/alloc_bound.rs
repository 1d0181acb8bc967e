//! Decoding and validating hostile snapshots never allocates beyond a bound proportional to the
//! input (which the limits bound): counted by a global allocator. One test in this binary, so no
//! other test's allocations are counted.

use amber_validator::testkit as common;

use amber_validator::{Limits, encode, validate};
use common::{TestCatalog, limits, sample};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator and only adds bookkeeping on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated while running `f`, above what was live before.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

/// Every decoded byte becomes at most one value or object header in memory; this factor covers
/// the largest in-memory form per input byte plus the checker's bookkeeping.
const BYTES_PER_INPUT_BYTE: usize = 256;
const SLACK: usize = 256 * 1024;

#[test]
fn hostile_inputs_stay_within_the_allocation_bound() {
    let good = encode(&sample());
    let lim = limits();
    let bound = |len: usize| len * BYTES_PER_INPUT_BYTE + SLACK;
    let mut worst = 0f64;
    let mut check = |bytes: &[u8]| {
        let peak = peak_during(|| {
            let _ = validate(bytes, &lim, &TestCatalog);
        });
        assert!(peak <= bound(bytes.len()), "{} input bytes allocated {peak} bytes", bytes.len());
        worst = worst.max(peak as f64 / bytes.len().max(1) as f64);
    };
    for len in 0..good.len() {
        check(&good[..len]);
    }
    for i in 0..good.len() {
        for v in [0x00, 0x7f, 0x80, 0xff, good[i] ^ 0x40] {
            let mut m = good.clone();
            m[i] = v;
            check(&m);
        }
    }
    // Counts claiming far more than the input holds are refused before allocating.
    let mut huge = good[..9].to_vec();
    huge.extend_from_slice(&[1, 0x80, 0x80, 0x80, 0x80, 0x01]);
    check(&huge);
    // The byte limit caps everything: a large input over the limit is refused at once.
    let big = vec![0u8; 1 << 20];
    let tight = Limits { max_input_bytes: 4096, ..lim.clone() };
    let peak = peak_during(|| {
        let _ = validate(&big, &tight, &TestCatalog);
    });
    assert!(peak < SLACK, "{peak}");
    println!("worst allocation per input byte: {worst:.1}");
}
