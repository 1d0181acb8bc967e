//! The scheduler (`cpp/amber_scheduler.h`): spawning tasks and running their slices.

use std::ffi::{c_char, c_int};

use super::types::*;

pub const AMBER_FINISHED: c_int = 0;
pub const AMBER_YIELDED: c_int = 1;
pub const AMBER_PREEMPTED: c_int = 2;
pub const AMBER_ERRORED: c_int = 3;
pub const AMBER_KILLED: c_int = 4;
pub const AMBER_NOT_RESUMABLE: c_int = 5;

#[repr(C)]
#[derive(Default)]
pub struct AmberSlice {
    pub budget: i64,
    pub defer_cap: u64,
    pub rng_state: u64,
    pub preempt_after_yield: c_int,
    pub memory_category: c_int,
    pub memory_limit: usize,
}

pub const AMBER_KILL_DEFERRED: c_int = 1;
pub const AMBER_KILL_MEMORY: c_int = 2;

#[repr(C)]
#[derive(Default)]
pub struct AmberSliceResult {
    pub status: c_int,
    pub rng_state: u64,
    pub ticks: u64,
    pub deferrals: u64,
    pub max_deferred: u64,
    pub nvalues: c_int,
    pub kill_kind: c_int,
    pub kill_value: u64,
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
    pub proto: usize,
}

unsafe extern "C" {
    pub fn amber_vm_set_preemption(vm: *mut AmberVm, enabled: c_int);
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
}
