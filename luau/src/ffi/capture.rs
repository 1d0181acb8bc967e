//! Capture (`cpp/amber_capture.h`): read-only accessors over GC objects.

use std::ffi::{c_char, c_int};

use super::types::*;

#[repr(C)]
#[derive(Default)]
pub struct AmberTableInfo {
    pub array_size: c_int,
    pub node_count: c_int,
    pub insert_hint: c_int,
    pub readonly: c_int,
    pub safeenv: c_int,
    pub metatable: GcRef,
    pub has_order: c_int,
}

#[repr(C)]
#[derive(Default)]
pub struct AmberClosureInfo {
    pub is_c: c_int,
    pub upvalues: c_int,
    pub env: GcRef,
    pub proto: usize,
    pub bytecode_id: c_int,
    pub function: usize,
    pub continuation: usize,
}

#[repr(C)]
pub struct AmberUserdataInfo {
    pub tag: c_int,
    pub length: c_int,
    pub data: *const c_char,
    pub metatable: GcRef,
    pub is_proxy: c_int,
    pub has_destructor: c_int,
}

unsafe extern "C" {
    pub fn amber_task_thread(vm: *mut AmberVm, thread_ref: c_int, out: *mut GcRef) -> c_int;
    pub fn amber_gc_type(o: GcRef) -> c_int;
    pub fn amber_string_bytes(o: GcRef, data: *mut *const c_char, length: *mut usize);
    pub fn amber_table_info(o: GcRef, out: *mut AmberTableInfo);
    pub fn amber_table_array(o: GcRef, i: c_int, out: *mut AmberTV);
    pub fn amber_table_node(o: GcRef, i: c_int, key: *mut AmberTV, value: *mut AmberTV) -> c_int;
    pub fn amber_table_position_node(o: GcRef, p: c_int) -> c_int;
    pub fn amber_table_position_origin(o: GcRef, p: c_int) -> c_int;
    pub fn amber_closure_info(o: GcRef, out: *mut AmberClosureInfo);
    pub fn amber_closure_upvalue(o: GcRef, i: c_int, out: *mut AmberTV);
    pub fn amber_upvalue(o: GcRef, value: *mut AmberTV) -> c_int;
    pub fn amber_thread_info(o: GcRef, out: *mut AmberThreadInfo);
    pub fn amber_thread_slot(o: GcRef, i: c_int, out: *mut AmberTV);
    pub fn amber_thread_frame(o: GcRef, i: c_int, out: *mut AmberFrameInfo);
    pub fn amber_thread_open_upvalues(o: GcRef, out: *mut GcRef, cap: c_int, slots: *mut c_int) -> c_int;
    pub fn amber_userdata_info(o: GcRef, out: *mut AmberUserdataInfo);
    pub fn amber_buffer_bytes(o: GcRef, data: *mut *const c_char, length: *mut usize);
}
