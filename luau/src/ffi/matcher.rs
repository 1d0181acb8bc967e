//! Pattern matching (`cpp/amber_match.h`): the persisted state's layout and the differential
//! test's plain state.

use std::ffi::{c_char, c_int};

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AmberMatchLayout {
    pub version: u32,
    pub header_words: u32,
    pub frame_words: u32,
    pub max_frames: u32,
    pub max_captures: u32,
    pub chunk: u32,
}

#[repr(C)]
pub struct AmberMatchState {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    pub fn amber_match_layout(out: *mut AmberMatchLayout);
    pub fn amber_match_open() -> *mut AmberMatchState;
    pub fn amber_match_close(state: *mut AmberMatchState);
    pub fn amber_match_eval(
        state: *mut AmberMatchState,
        source: *const c_char,
        length: usize,
        out: *mut c_char,
        cap: usize,
    ) -> std::ffi::c_long;
    pub fn amber_match_call(
        state: *mut AmberMatchState,
        function: *const c_char,
        args: *const *const c_char,
        lengths: *const usize,
        nargs: c_int,
        out: *mut c_char,
        cap: usize,
    ) -> std::ffi::c_long;
}
