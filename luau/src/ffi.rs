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
    pub preempt_after_yield: c_int,
    pub memory_category: c_int,
    pub memory_limit: usize,
}

pub const AMBER_KILL_DEFERRED: c_int = 1;
pub const AMBER_KILL_MEMORY: c_int = 2;

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
pub struct AmberSite {
    pub bytecode_id: c_int,
    pub pc: c_int,
    pub chunk: *const c_char,
    pub chunk_length: usize,
    pub proto: usize,
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

    pub fn amber_vm_new(
        deterministic: c_int,
        libraries: *const AmberHostLibrary,
        library_count: c_int,
        call: Option<AmberHostCall>,
        ctx: *mut c_void,
    ) -> *mut AmberVm;
    pub fn amber_vm_free(vm: *mut AmberVm);
    pub fn amber_vm_set_preemption(vm: *mut AmberVm, enabled: c_int);
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
    pub fn amber_task_set_userdata(
        vm: *mut AmberVm,
        thread_ref: c_int,
        name: *const c_char,
        tag: c_int,
        data: *const c_char,
        length: usize,
        with_destructor: c_int,
    ) -> c_int;
    pub fn amber_task_site(vm: *mut AmberVm, thread_ref: c_int, out: *mut AmberSite) -> c_int;

    pub fn amber_vm_memory(vm: *mut AmberVm, category: c_int) -> usize;
    pub fn amber_vm_collect(vm: *mut AmberVm);
    pub fn amber_vm_output_length(vm: *mut AmberVm) -> usize;
    pub fn amber_vm_take_output(vm: *mut AmberVm, into: *mut c_char, length: usize);
}

// ---------------------------------------------------------------------------------------------
// Capture and restore (cpp/amber_state.cpp).

pub const LUA_TTABLE: c_int = 7;
pub const LUA_TFUNCTION: c_int = 8;
pub const LUA_TUSERDATA: c_int = 9;
pub const LUA_TTHREAD: c_int = 10;
pub const LUA_TBUFFER: c_int = 11;
pub const LUA_TCLASS: c_int = 12;
pub const LUA_TOBJECT: c_int = 13;
pub const LUA_TUPVAL: c_int = 16;

pub const LUA_OK: c_int = 0;
pub const LUA_YIELD: c_int = 1;
pub const LUA_ERRRUN: c_int = 2;
pub const LUA_BREAK: c_int = 6;

pub const LUA_CALLINFO_OPYIELD: u32 = 1 << 3;
pub const LUA_MINSTACK: i32 = 20;
/// `LU_TAG_ITERATOR`: the light userdata tag of a generic-for position.
pub const LU_TAG_ITERATOR: c_int = 128;
/// `UTAG_PROXY`: the userdata tag of `newproxy()` values.
pub const UTAG_PROXY: c_int = 129;

pub const AMBER_REF_NONE: c_int = 0;
pub const AMBER_REF_OBJECT: c_int = 1;
pub const AMBER_REF_PERMANENT: c_int = 2;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct AmberTV {
    pub type_: c_int,
    pub tag: c_int,
    pub boolean: c_int,
    pub number: f64,
    pub vector: [f32; 3],
    pub ref_: usize,
    pub ref_kind: c_int,
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

#[repr(C)]
#[derive(Default)]
pub struct AmberTableInfo {
    pub array_size: c_int,
    pub node_count: c_int,
    pub insert_hint: c_int,
    pub readonly: c_int,
    pub safeenv: c_int,
    pub metatable: usize,
    pub has_order: c_int,
}

#[repr(C)]
#[derive(Default)]
pub struct AmberClosureInfo {
    pub is_c: c_int,
    pub upvalues: c_int,
    pub env: usize,
    pub proto: usize,
    pub bytecode_id: c_int,
    pub function: usize,
    pub continuation: usize,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct AmberThreadInfo {
    pub status: c_int,
    pub top: c_int,
    pub base: c_int,
    pub frames: c_int,
    pub globals: usize,
    pub namecall: usize,
    pub stack_size: c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct AmberFrameInfo {
    pub func: c_int,
    pub base: c_int,
    pub top: c_int,
    pub nresults: c_int,
    pub flags: u32,
    pub is_lua: c_int,
    pub pc: c_int,
    pub errfunc: c_int,
    pub closure: usize,
}

#[repr(C)]
pub struct AmberUserdataInfo {
    pub tag: c_int,
    pub length: c_int,
    pub data: *const c_char,
    pub metatable: usize,
    pub is_proxy: c_int,
    pub has_destructor: c_int,
}

unsafe extern "C" {
    pub fn amber_registry_count(vm: *mut AmberVm) -> c_int;
    pub fn amber_registry_entry(vm: *mut AmberVm, index: c_int, out: *mut AmberRegistryView) -> c_int;

    pub fn amber_task_thread(vm: *mut AmberVm, thread_ref: c_int, out: *mut usize) -> c_int;
    pub fn amber_gc_type(o: usize) -> c_int;
    pub fn amber_string_bytes(o: usize, data: *mut *const c_char, length: *mut usize);
    pub fn amber_table_info(o: usize, out: *mut AmberTableInfo);
    pub fn amber_table_array(o: usize, i: c_int, out: *mut AmberTV);
    pub fn amber_table_node(o: usize, i: c_int, key: *mut AmberTV, value: *mut AmberTV) -> c_int;
    pub fn amber_table_position_node(o: usize, p: c_int) -> c_int;
    pub fn amber_table_position_origin(o: usize, p: c_int) -> c_int;
    pub fn amber_closure_info(o: usize, out: *mut AmberClosureInfo);
    pub fn amber_closure_upvalue(o: usize, i: c_int, out: *mut AmberTV);
    pub fn amber_upvalue(o: usize, value: *mut AmberTV) -> c_int;
    pub fn amber_thread_info(o: usize, out: *mut AmberThreadInfo);
    pub fn amber_thread_slot(o: usize, i: c_int, out: *mut AmberTV);
    pub fn amber_thread_frame(o: usize, i: c_int, out: *mut AmberFrameInfo);
    pub fn amber_thread_open_upvalues(o: usize, out: *mut usize, cap: c_int, slots: *mut c_int) -> c_int;
    pub fn amber_userdata_info(o: usize, out: *mut AmberUserdataInfo);
    pub fn amber_buffer_bytes(o: usize, data: *mut *const c_char, length: *mut usize);

    pub fn amber_vm_script_protos(vm: *mut AmberVm, fn_ref: c_int, out: *mut usize, cap: c_int) -> c_int;

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
    pub fn amber_restore_abort(vm: *mut AmberVm);
    pub fn amber_memory_model(out: *mut AmberMemoryModel);
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
        upvalues: c_int,
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
        slot: c_int,
        value: *const AmberTV,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_table_node(
        vm: *mut AmberVm,
        index: c_int,
        position: c_int,
        node: c_int,
        key: *const AmberTV,
        value: *const AmberTV,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_table_finish(
        vm: *mut AmberVm,
        index: c_int,
        insert_hint: c_int,
        metatable: *const AmberTV,
        readonly: c_int,
        safeenv: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_table_freeze(vm: *mut AmberVm, index: c_int, err: *mut c_char, cap: usize) -> c_int;
    pub fn amber_restore_upvalue_closed(
        vm: *mut AmberVm,
        index: c_int,
        value: *const AmberTV,
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
        env: *const AmberTV,
        upvalues: *const c_int,
        count: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_c_closure_fill(
        vm: *mut AmberVm,
        index: c_int,
        env: *const AmberTV,
        upvalues: *const AmberTV,
        count: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_userdata_metatable(
        vm: *mut AmberVm,
        index: c_int,
        metatable: *const AmberTV,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_thread_slot(
        vm: *mut AmberVm,
        index: c_int,
        slot: c_int,
        value: *const AmberTV,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_thread_frame(
        vm: *mut AmberVm,
        index: c_int,
        frame: c_int,
        f: *const AmberFrameInfo,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
    pub fn amber_restore_thread_finish(
        vm: *mut AmberVm,
        index: c_int,
        info: *const AmberThreadInfo,
        globals: *const AmberTV,
        namecall: c_int,
        err: *mut c_char,
        cap: usize,
    ) -> c_int;
}

// cpp/amber_match.h: the persisted matcher state's layout and the differential test's state.

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
