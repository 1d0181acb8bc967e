//! The base image (`cpp/amber_image.h`): the VM, its registry, scripts, globals views.

use std::ffi::{c_char, c_int, c_void};

use super::types::*;

/// A host function's argument or result (`AmberHostValue` in amber_host.h).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AmberHostValue {
    pub type_: c_int,
    pub boolean: c_int,
    pub number: f64,
    pub vector: [f32; LUA_VECTOR_SIZE],
    pub string: *const c_char,
    pub length: usize,
}

pub const AMBER_HOST_RESULTS: usize = 8;

#[repr(C)]
pub struct AmberHostReturn {
    pub count: c_int,
    pub values: [AmberHostValue; AMBER_HOST_RESULTS],
    pub error: *const c_char,
    pub error_length: usize,
}

/// The host's entry point for library functions (`AmberHostCall`).
pub type AmberHostCall = extern "C" fn(
    ctx: *mut c_void,
    function: c_int,
    args: *const AmberHostValue,
    nargs: c_int,
    out: *mut AmberHostReturn,
);

#[repr(C)]
pub struct AmberHostLibrary {
    pub name: *const c_char,
    pub function_names: *const *const c_char,
    pub functions: c_int,
    pub first: c_int,
}

#[repr(C)]
pub struct AmberRegistryView {
    pub name: *const c_char,
    pub name_length: usize,
    pub kind: c_int,
    pub object: usize,
    pub function: usize,
    pub continuation: usize,
    pub role: c_int,
}

unsafe extern "C" {
    pub fn amber_vm_new(
        deterministic: c_int,
        libraries: *const AmberHostLibrary,
        library_count: c_int,
        call: Option<AmberHostCall>,
        ctx: *mut c_void,
    ) -> *mut AmberVm;
    pub fn amber_vm_free(vm: *mut AmberVm);
    pub fn amber_vm_load(
        vm: *mut AmberVm,
        chunk: *const c_char,
        bytecode: *const c_char,
        length: usize,
        env_ref: c_int,
        out_ref: *mut c_int,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn amber_vm_globals_view(
        vm: *mut AmberVm,
        names: *const *const c_char,
        lengths: *const usize,
        count: c_int,
        out_ref: *mut c_int,
        out_object: *mut usize,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn amber_vm_unref(vm: *mut AmberVm, r: c_int);
    pub fn amber_task_set_userdata(
        vm: *mut AmberVm,
        thread_ref: c_int,
        name: *const c_char,
        tag: c_int,
        data: *const c_char,
        length: usize,
        with_destructor: c_int,
    ) -> c_int;
    pub fn amber_vm_output_length(vm: *mut AmberVm) -> usize;
    pub fn amber_vm_collect(vm: *mut AmberVm);
    pub fn amber_vm_memory(vm: *mut AmberVm, category: c_int) -> usize;
    pub fn amber_vm_take_output(vm: *mut AmberVm, into: *mut c_char, length: usize);
    pub fn amber_registry_count(vm: *mut AmberVm) -> c_int;
    pub fn amber_registry_entry(vm: *mut AmberVm, index: c_int, out: *mut AmberRegistryView) -> c_int;
    pub fn amber_vm_script_protos(vm: *mut AmberVm, fn_ref: c_int, out: *mut usize, cap: c_int) -> c_int;
}
