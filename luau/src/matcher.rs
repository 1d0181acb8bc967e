//! Pattern matching that can be pre-empted and persisted (`cpp/amber_match.cpp`): the runtime's
//! side of the validator's matcher contract, and a plain Luau state that holds both Luau's own
//! matcher and Amber's, for differential tests and benchmarks.

use crate::ffi;
use amber_validator::contract::matcher as contract;
use std::ffi::{CString, c_char};
use std::ptr::NonNull;

/// Whether the compiled matcher writes its state as the validator's contract reads it.
pub(crate) fn layout_agrees() -> bool {
    let mut layout = ffi::AmberMatchLayout::default();
    // SAFETY: `layout` is a valid out-pointer; the function only writes constants into it.
    unsafe { ffi::amber_match_layout(&mut layout) };
    layout
        == ffi::AmberMatchLayout {
            version: contract::VERSION,
            header_words: contract::HEADER_WORDS as u32,
            frame_words: contract::FRAME_WORDS as u32,
            max_frames: contract::MAX_FRAMES as u32,
            max_captures: contract::MAX_CAPTURES as u32,
            chunk: contract::CHUNK,
        }
}

/// A plain Luau state (no scheduler, no sandbox) with the standard `string` library and Amber's
/// `find`, `match`, `gmatch` and `gsub` as the global table `amber_string`: one script can run
/// the same call through both matchers and compare.
pub struct MatcherLab {
    state: NonNull<ffi::AmberMatchState>,
}

/// What a lab call returned: its string result, or the error it raised.
pub type LabResult = Result<Vec<u8>, Vec<u8>>;

impl MatcherLab {
    pub fn new() -> Option<MatcherLab> {
        // SAFETY: no arguments; NULL (allocation failure) is handled.
        NonNull::new(unsafe { ffi::amber_match_open() }).map(|state| MatcherLab { state })
    }

    /// Runs a chunk that returns one string.
    pub fn eval(&mut self, source: &str) -> LabResult {
        let mut out = vec![0u8; 1 << 16];
        loop {
            // SAFETY: the state is live; source and out are valid for their lengths.
            let n = unsafe {
                ffi::amber_match_eval(
                    self.state.as_ptr(),
                    source.as_ptr().cast::<c_char>(),
                    source.len(),
                    out.as_mut_ptr().cast(),
                    out.len(),
                )
            };
            if let Some(done) = Self::finish(&mut out, n) {
                return done;
            }
        }
    }

    /// Calls global function `function` with string arguments; it returns one string.
    pub fn call(&mut self, function: &str, args: &[&[u8]]) -> LabResult {
        let Ok(name) = CString::new(function) else { return Err(b"function name has a NUL byte".to_vec()) };
        let pointers: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
        let lengths: Vec<usize> = args.iter().map(|a| a.len()).collect();
        let mut out = vec![0u8; 1 << 12];
        loop {
            // SAFETY: the state is live; every pointer is valid for its length, `name` is
            // NUL-terminated, and `out` is writable for its length.
            let n = unsafe {
                ffi::amber_match_call(
                    self.state.as_ptr(),
                    name.as_ptr(),
                    pointers.as_ptr(),
                    lengths.as_ptr(),
                    args.len() as std::ffi::c_int,
                    out.as_mut_ptr().cast(),
                    out.len(),
                )
            };
            if n >= 0 && n as usize > out.len() {
                // Truncated: run again with room (the functions a lab calls are pure).
                out.resize(n as usize, 0);
                continue;
            }
            if let Some(done) = Self::finish(&mut out, n) {
                return done;
            }
        }
    }

    fn finish(out: &mut Vec<u8>, n: std::ffi::c_long) -> Option<LabResult> {
        if n < 0 {
            let end = out.iter().position(|&b| b == 0).unwrap_or(out.len());
            out.truncate(end);
            return Some(Err(std::mem::take(out)));
        }
        if n as usize > out.len() {
            out.resize(n as usize, 0);
            return None;
        }
        out.truncate(n as usize);
        Some(Ok(std::mem::take(out)))
    }
}

impl Drop for MatcherLab {
    fn drop(&mut self) {
        // SAFETY: the state is live and owned by this value; it is not used again.
        unsafe { ffi::amber_match_close(self.state.as_ptr()) };
    }
}
