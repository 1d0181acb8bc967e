//! A restore in progress, as a safe type over the shim's builders (`cpp/amber_restore.h`).
//!
//! The shim keeps one restore per VM between `amber_restore_begin` and `amber_restore_end`
//! (the collector stopped, new objects in a table of the snapshot's size). A [`Session`] is that
//! interval: it exists only after a successful begin, every builder is a method that can only be
//! called while it exists, finishing consumes it, and dropping it unfinished aborts the restore.
//! Each method is one FFI call with one reason it is sound; the shim re-checks every index and
//! reports what it refuses as text, which the methods return.

use crate::ffi::{self, AmberRestoreValue};
use crate::vm::{Vm, c_buffer_text};
use std::ffi::{c_char, c_int};

pub(super) struct Session<'v> {
    vm: &'v Vm,
    err: Vec<c_char>,
    open: bool,
}

/// What the shim refused, in its words.
pub(super) type Refused = String;

impl<'v> Session<'v> {
    /// Starts a restore of `objects` objects charged to `memcat` (at most `memory_limit` bytes,
    /// 0: no limit). With `globals`, registry entry `.0` (the base globals) stands for the view
    /// anchored at `.1`.
    pub fn begin(
        vm: &'v Vm,
        objects: c_int,
        memcat: u8,
        memory_limit: usize,
        globals: Option<(usize, c_int)>,
    ) -> Result<Session<'v>, Refused> {
        let mut s = Session { vm, err: vec![0; 512], open: false };
        let (index, anchor) = globals.map_or((-1, 0), |(i, a)| (i as c_int, a));
        let cap = s.err.len();
        // SAFETY: the VM is live (borrowed for the session); `err` has `cap` bytes; the anchor,
        // when given, is a view this VM made; the shim checks the registry index.
        let rc = unsafe {
            ffi::amber_restore_begin(
                s.ptr(),
                objects,
                c_int::from(memcat),
                memory_limit,
                index,
                anchor,
                s.err.as_mut_ptr(),
                cap,
            )
        };
        s.status(rc)?;
        s.open = true;
        Ok(s)
    }

    fn ptr(&self) -> *mut ffi::AmberVm {
        self.vm.inner().ptr()
    }

    fn status(&self, rc: c_int) -> Result<(), Refused> {
        if rc == 0 { Ok(()) } else { Err(c_buffer_text(&self.err)) }
    }

    /// Runs one builder with the error buffer; the builders' common contract (live VM, a
    /// restore in progress, indices range-checked by the shim) holds for every call.
    fn call(&mut self, f: impl FnOnce(*mut ffi::AmberVm, *mut c_char, usize) -> c_int) -> Result<(), Refused> {
        let cap = self.err.len();
        let rc = f(self.ptr(), self.err.as_mut_ptr(), cap);
        self.status(rc)
    }

    pub fn string(&mut self, index: c_int, bytes: &[u8]) -> Result<(), Refused> {
        // SAFETY: a session means a live VM with a restore in progress; `bytes` is valid for
        // the call and `err` holds `cap` bytes.
        self.call(|vm, e, cap| unsafe {
            ffi::amber_restore_string(vm, index, bytes.as_ptr().cast(), bytes.len(), e, cap)
        })
    }

    pub fn buffer(&mut self, index: c_int, bytes: &[u8]) -> Result<(), Refused> {
        // SAFETY: as for `string`.
        self.call(|vm, e, cap| unsafe {
            ffi::amber_restore_buffer(vm, index, bytes.as_ptr().cast(), bytes.len(), e, cap)
        })
    }

    pub fn table(&mut self, index: c_int, array: c_int, nodes: c_int) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; plain integers the shim checks.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_table(vm, index, array, nodes, e, cap) })
    }

    /// `proto` is a handle this VM reported for the loaded script (`Vm::protos_in`); the closure
    /// gets the proto's upvalue count, which its fill must match.
    pub fn lua_closure(&mut self, index: c_int, proto: usize) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress (live VM, `err` of `cap` bytes); `proto` is
        // a Proto pointer this VM's loader reported and keeps alive, which the shim dereferences
        // for its upvalue count; the shim range-checks `index`.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_lua_closure(vm, index, proto, e, cap) })
    }

    pub fn c_closure(&mut self, index: c_int, registry_index: c_int, upvalues: c_int) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; the shim checks the registry index.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_c_closure(vm, index, registry_index, upvalues, e, cap) })
    }

    pub fn thread(&mut self, index: c_int, stack_slots: c_int, frames: c_int) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; plain integers the shim checks.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_thread(vm, index, stack_slots, frames, e, cap) })
    }

    pub fn userdata(&mut self, index: c_int, tag: c_int, data: &[u8]) -> Result<(), Refused> {
        // SAFETY: as for `string`.
        self.call(|vm, e, cap| unsafe {
            ffi::amber_restore_userdata(vm, index, tag, data.as_ptr().cast(), data.len(), e, cap)
        })
    }

    pub fn table_array(&mut self, index: c_int, values: &[AmberRestoreValue]) -> Result<(), Refused> {
        let count = c_int::try_from(values.len()).map_err(|_| "array part too large".to_string())?;
        // SAFETY: a session's restore is in progress; `values` holds `count` values for the call.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_table_array(vm, index, values.as_ptr(), count, e, cap) })
    }

    pub fn table_node(
        &mut self,
        index: c_int,
        position: c_int,
        node: c_int,
        key: &AmberRestoreValue,
        value: &AmberRestoreValue,
    ) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; `key` and `value` are valid for the call.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_table_node(vm, index, position, node, key, value, e, cap) })
    }

    pub fn table_finish(
        &mut self,
        index: c_int,
        insert_hint: c_int,
        metatable: &AmberRestoreValue,
        readonly: bool,
        safeenv: bool,
    ) -> Result<(), Refused> {
        let (r, s) = (c_int::from(readonly), c_int::from(safeenv));
        // SAFETY: a session's restore is in progress; `metatable` is valid for the call.
        self.call(|vm, e, cap| unsafe {
            ffi::amber_restore_table_finish(vm, index, insert_hint, metatable, r, s, e, cap)
        })
    }

    pub fn table_freeze(&mut self, index: c_int) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; the shim checks the index.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_table_freeze(vm, index, e, cap) })
    }

    pub fn userdata_metatable(&mut self, index: c_int, metatable: &AmberRestoreValue) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; `metatable` is valid for the call.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_userdata_metatable(vm, index, metatable, e, cap) })
    }

    pub fn c_closure_fill(
        &mut self,
        index: c_int,
        env: &AmberRestoreValue,
        upvalues: &[AmberRestoreValue],
    ) -> Result<(), Refused> {
        let n = upvalues.len() as c_int;
        // SAFETY: a session's restore is in progress; `upvalues` holds `n` values.
        self.call(|vm, e, cap| unsafe {
            ffi::amber_restore_c_closure_fill(vm, index, env, upvalues.as_ptr(), n, e, cap)
        })
    }

    pub fn lua_closure_fill(
        &mut self,
        index: c_int,
        env: &AmberRestoreValue,
        upvalues: &[c_int],
    ) -> Result<(), Refused> {
        let n = upvalues.len() as c_int;
        // SAFETY: a session's restore is in progress; `upvalues` holds `n` object indices.
        self.call(|vm, e, cap| unsafe {
            ffi::amber_restore_lua_closure_fill(vm, index, env, upvalues.as_ptr(), n, e, cap)
        })
    }

    pub fn upvalue_closed(&mut self, index: c_int, value: &AmberRestoreValue) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; `value` is valid for the call.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_upvalue_closed(vm, index, value, e, cap) })
    }

    pub fn upvalue_open(&mut self, index: c_int, thread: c_int, slot: c_int) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; the shim checks the thread and the slot.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_upvalue_open(vm, index, thread, slot, e, cap) })
    }

    pub fn thread_stack(&mut self, index: c_int, values: &[AmberRestoreValue]) -> Result<(), Refused> {
        let count = c_int::try_from(values.len()).map_err(|_| "stack too large".to_string())?;
        // SAFETY: a session's restore is in progress; `values` holds `count` values for the call.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_thread_stack(vm, index, values.as_ptr(), count, e, cap) })
    }

    /// A thread's frames, bottom first (frame 1 on).
    pub fn thread_frames(&mut self, index: c_int, frames: &[ffi::AmberFrameInfo]) -> Result<(), Refused> {
        let count = c_int::try_from(frames.len()).map_err(|_| "too many frames".to_string())?;
        // SAFETY: a session's restore is in progress; `frames` holds `count` frames for the call.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_thread_frames(vm, index, frames.as_ptr(), count, e, cap) })
    }

    pub fn thread_finish(
        &mut self,
        index: c_int,
        info: &ffi::AmberThreadInfo,
        globals: &AmberRestoreValue,
        namecall: c_int,
    ) -> Result<(), Refused> {
        // SAFETY: a session's restore is in progress; `info` and `globals` are valid for the call.
        self.call(|vm, e, cap| unsafe { ffi::amber_restore_thread_finish(vm, index, info, globals, namecall, e, cap) })
    }

    /// Ends the restore with thread `main_thread` as the task: its anchor, and how many tables
    /// got an explicit iteration order.
    pub fn finish(mut self, main_thread: c_int) -> Result<(c_int, usize), Refused> {
        let mut thread_ref = 0;
        let cap = self.err.len();
        // The shim ends the restore whatever this call returns.
        self.open = false;
        // SAFETY: a session's restore is in progress; `thread_ref` and `err` are valid for the
        // call.
        let rc =
            unsafe { ffi::amber_restore_end(self.ptr(), main_thread, &mut thread_ref, self.err.as_mut_ptr(), cap) };
        self.status(rc)?;
        // SAFETY: the VM is live; reads a counter of the restore that just ended.
        let orders = unsafe { ffi::amber_restore_orders(self.ptr()) };
        Ok((thread_ref, orders))
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if self.open {
            // SAFETY: the VM is live and a restore is in progress: abort frees what it built.
            unsafe { ffi::amber_restore_abort(self.ptr()) };
        }
    }
}
