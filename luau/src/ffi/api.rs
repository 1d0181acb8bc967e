//! The plain C API (`cpp/amber_api.h`): feature flags and the compiler.

use std::ffi::{c_char, c_int, c_void};

unsafe extern "C" {
    pub fn amber_flag_count() -> c_int;
    pub fn amber_flag_get(index: c_int, name: *mut *const c_char, value: *mut c_int) -> c_int;
    pub fn amber_compile(
        source: *const c_char,
        length: usize,
        optimization_level: c_int,
        debug_level: c_int,
        out_length: *mut usize,
    ) -> *mut c_char;
    pub fn amber_free(p: *mut c_void);
}
