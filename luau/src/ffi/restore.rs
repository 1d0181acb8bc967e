//! Restore (`cpp/amber_restore.h`): builders over a verified model.

use std::ffi::{c_char, c_int};

use super::types::*;

/// A value to write into a restored object (`AmberRestoreValue`): `kind` says which fields hold it.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct AmberRestoreValue {
    pub kind: u32,
    pub a: u32,
    pub b: u64,
}

pub const AMBER_RV_NIL: u32 = 0;
pub const AMBER_RV_BOOLEAN: u32 = 1;
pub const AMBER_RV_NUMBER: u32 = 2;
pub const AMBER_RV_VECTOR: u32 = 3;
pub const AMBER_RV_OBJECT: u32 = 4;
pub const AMBER_RV_PERMANENT: u32 = 5;
pub const AMBER_RV_ITERATOR: u32 = 6;
pub const AMBER_RV_REFUSED: u32 = 7;

#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct AmberMemoryModel {
    pub string: usize,
    pub table: usize,
    pub value: usize,
    pub node: usize,
    pub lua_closure: usize,
    pub c_closure: usize,
    pub upvalue: usize,
    pub thread: usize,
    pub frame: usize,
    pub userdata: usize,
    pub buffer: usize,
    pub extra_stack: usize,
}

unsafe extern "C" {
    pub fn amber_restore_begin(
        vm: *mut AmberVm,
        objects: c_int,
        memcat: c_int,
        memory_limit: usize,
        globals_index: c_int,
        globals_view_ref: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_memory_model(out: *mut AmberMemoryModel);
    pub fn amber_restore_abort(vm: *mut AmberVm);
    pub fn amber_restore_orders(vm: *mut AmberVm) -> usize;
    pub fn amber_restore_end(
        vm: *mut AmberVm,
        main_thread: c_int,
        out_ref: *mut c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_string(
        vm: *mut AmberVm,
        index: c_int,
        data: *const c_char,
        length: usize,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_table(
        vm: *mut AmberVm,
        index: c_int,
        array_size: c_int,
        node_count: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_lua_closure(
        vm: *mut AmberVm,
        index: c_int,
        proto: usize,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_c_closure(
        vm: *mut AmberVm,
        index: c_int,
        registry_index: c_int,
        upvalues: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_thread(
        vm: *mut AmberVm,
        index: c_int,
        stack_slots: c_int,
        frames: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_userdata(
        vm: *mut AmberVm,
        index: c_int,
        tag: c_int,
        data: *const c_char,
        length: usize,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_buffer(
        vm: *mut AmberVm,
        index: c_int,
        data: *const c_char,
        length: usize,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_table_array(
        vm: *mut AmberVm,
        index: c_int,
        values: *const AmberRestoreValue,
        count: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_table_node(
        vm: *mut AmberVm,
        index: c_int,
        position: c_int,
        node: c_int,
        key: *const AmberRestoreValue,
        value: *const AmberRestoreValue,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_table_finish(
        vm: *mut AmberVm,
        index: c_int,
        insert_hint: c_int,
        metatable: *const AmberRestoreValue,
        readonly: c_int,
        safeenv: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_table_freeze(vm: *mut AmberVm, index: c_int, err: *mut c_char, cap: usize) -> c_int;
    pub fn amber_restore_upvalue_closed(
        vm: *mut AmberVm,
        index: c_int,
        value: *const AmberRestoreValue,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_upvalue_open(
        vm: *mut AmberVm,
        index: c_int,
        thread: c_int,
        slot: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_lua_closure_fill(
        vm: *mut AmberVm,
        index: c_int,
        env: *const AmberRestoreValue,
        upvalues: *const c_int,
        count: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_c_closure_fill(
        vm: *mut AmberVm,
        index: c_int,
        env: *const AmberRestoreValue,
        upvalues: *const AmberRestoreValue,
        count: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_userdata_metatable(
        vm: *mut AmberVm,
        index: c_int,
        metatable: *const AmberRestoreValue,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_thread_stack(
        vm: *mut AmberVm,
        index: c_int,
        values: *const AmberRestoreValue,
        count: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_thread_frames(
        vm: *mut AmberVm,
        index: c_int,
        frames: *const AmberFrameInfo,
        count: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_thread_finish(
        vm: *mut AmberVm,
        index: c_int,
        info: *const AmberThreadInfo,
        globals: *const AmberRestoreValue,
        namecall: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
}
