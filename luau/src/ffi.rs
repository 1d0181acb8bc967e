//! Raw declarations mirroring `cpp/amber_host.h`. Nothing here is safe to call directly; the
//! safe layer is `vm.rs`. Only the shim's entry points are declared: they catch every C++
//! exception, so plain `extern "C"` is right for them (nothing unwinds out).

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// Must match `LUA_VECTOR_SIZE` in `build.rs` (the C++ is compiled with it).
pub const LUA_VECTOR_SIZE: usize = 3;

pub const LUA_TNIL: c_int = 0;
pub const LUA_TBOOLEAN: c_int = 1;
pub const LUA_TLIGHTUSERDATA: c_int = 2;
pub const LUA_TNUMBER: c_int = 3;
pub const LUA_TINTEGER: c_int = 4;
pub const LUA_TVECTOR: c_int = 5;
pub const LUA_TSTRING: c_int = 6;

pub const AMBER_FINISHED: c_int = 0;
pub const AMBER_YIELDED: c_int = 1;
pub const AMBER_PREEMPTED: c_int = 2;
pub const AMBER_ERRORED: c_int = 3;
pub const AMBER_KILLED: c_int = 4;
pub const AMBER_NOT_RESUMABLE: c_int = 5;

#[repr(C)]
pub struct AmberVm {
    _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Default)]
pub struct AmberSlice {
    pub budget: i64,
    pub defer_cap: u64,
    pub rng_state: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct AmberSliceResult {
    pub status: c_int,
    pub rng_state: u64,
    pub ticks: u64,
    pub deferrals: u64,
    pub max_deferred: u64,
    pub nvalues: c_int,
}

#[repr(C)]
pub struct AmberValue {
    pub type_: c_int,
    pub boolean: c_int,
    pub number: f64,
    pub vector: [f32; LUA_VECTOR_SIZE],
    pub string: *const c_char,
    pub length: usize,
    pub type_name: *const c_char,
}

#[repr(C)]
pub struct AmberSite {
    pub bytecode_id: c_int,
    pub pc: c_int,
    pub chunk: *const c_char,
    pub chunk_length: usize,
}

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

    pub fn amber_vm_new() -> *mut AmberVm;
    pub fn amber_vm_free(vm: *mut AmberVm);
    pub fn amber_vm_set_preemption(vm: *mut AmberVm, enabled: c_int);
    pub fn amber_vm_permanents(vm: *mut AmberVm, text: *mut *const c_char, length: *mut usize);
    pub fn amber_vm_load(
        vm: *mut AmberVm,
        chunk: *const c_char,
        bytecode: *const c_char,
        length: usize,
        out_ref: *mut c_int,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn amber_vm_unref(vm: *mut AmberVm, r: c_int);

    pub fn amber_task_spawn(
        vm: *mut AmberVm,
        fn_ref: c_int,
        memcat: c_int,
        out_thread_ref: *mut c_int,
        out_proto: *mut usize,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn amber_task_resume(
        vm: *mut AmberVm,
        thread_ref: c_int,
        slice: *const AmberSlice,
        out: *mut AmberSliceResult,
        message: *mut c_char,
        message_cap: usize,
        trace: *mut c_char,
        trace_cap: usize,
    ) -> c_int;
    pub fn amber_task_value(vm: *mut AmberVm, thread_ref: c_int, index: c_int, out: *mut AmberValue) -> c_int;
    pub fn amber_task_clear(vm: *mut AmberVm, thread_ref: c_int);
    pub fn amber_task_site(vm: *mut AmberVm, thread_ref: c_int, out: *mut AmberSite) -> c_int;

    pub fn amber_vm_memory(vm: *mut AmberVm, category: c_int) -> usize;
    pub fn amber_vm_output_length(vm: *mut AmberVm) -> usize;
    pub fn amber_vm_take_output(vm: *mut AmberVm, into: *mut c_char, length: usize);
}
