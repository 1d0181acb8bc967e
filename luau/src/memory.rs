//! What a snapshot's objects will take in the VM, before any is built: the VM's own object sizes
//! (`sizestring`, `sizeof(LuaTable)`, `sizeLclosure`, ... read from the C++ at run time, so they
//! follow the build) applied to the verified model by the validator's one formula
//! ([`amber_validator::estimate_memory`]). Restore refuses a snapshot whose estimate does not fit
//! the task's memory limit.

use crate::ffi;
use amber_validator::ObjectSizes;
use amber_validator::snapshot::SnapshotView;

/// This build's object sizes, as the validator takes them.
pub fn memory_model() -> ObjectSizes {
    let mut m = ffi::AmberMemoryModel::default();
    // SAFETY: writes plain sizes into `m`.
    unsafe { ffi::amber_memory_model(&mut m) };
    ObjectSizes {
        string: m.string,
        table: m.table,
        value: m.value,
        node: m.node,
        lua_closure: m.lua_closure,
        c_closure: m.c_closure,
        upvalue: m.upvalue,
        thread: m.thread,
        frame: m.frame,
        extra_stack: m.extra_stack,
        userdata: m.userdata,
        buffer: m.buffer,
    }
}

/// Bytes the snapshot's objects take once restored in this VM build.
pub fn estimate_memory(s: &SnapshotView) -> usize {
    amber_validator::estimate_memory(s, &memory_model())
}
