//! The base image's globals as a restored task sees them. A snapshot lists the global names its
//! task could see; restored into a base image with more globals (a newer host, a host library),
//! the task must see exactly its own names and nil for the others, through every path: plain
//! reads, the imports Luau resolves when a script is loaded (GETIMPORT), `_G.name`,
//! `rawget(_G, name)` and `pairs(_G)`.
//!
//! Writing nil into the task's proxy cannot hide a name (nil falls through `__index`, and
//! imports are resolved at load time, LUAU-FACTS.md), so the task gets a *view*: a frozen table
//! with exactly the visible base globals (`_G` in it names the view). Restore binds the
//! snapshot's base-globals permanent to the view and loads the task's scripts against it, so
//! their imports resolve there. Views and the scripts loaded against them are cached per name
//! set: a thousand tasks restored from one image's snapshots share one view and one load.

use crate::ffi;
use crate::vm::{LoadedScript, ScriptKey, VmError};
use std::ffi::{c_char, c_int};

/// The base globals as a task sees them: per hash position, the global's name there.
pub(crate) type Layout = Vec<Option<Vec<u8>>>;

/// A globals view of one VM.
#[derive(Debug, Clone)]
pub(crate) struct GlobalsView {
    /// Its anchor in the VM (the load environment, restore's stand-in for the base globals).
    pub anchor: c_int,
    /// Its identity (capture names it as the base globals).
    pub object: usize,
    /// The layout it was made from (and iterates in).
    pub layout: Layout,
}

/// A VM's views and the scripts loaded against each (view index, script key).
#[derive(Default)]
pub(crate) struct Views {
    pub views: Vec<GlobalsView>,
    pub loads: std::collections::HashMap<(usize, ScriptKey), LoadedScript>,
}

/// A live table's layout as iteration sees it: for each position of its hash part, the string
/// key there (with a non-nil value), following an explicit iteration order if it has one.
pub(crate) fn layout_of(table: ffi::GcRef) -> Layout {
    if table.is_null() {
        return Vec::new();
    }
    let mut ti = ffi::AmberTableInfo::default();
    // SAFETY: `table` is a live table of the VM.
    unsafe { ffi::amber_table_info(table, &mut ti) };
    (0..ti.node_count)
        .map(|p| {
            // SAFETY: `p` is below the node count; the shim maps it through the table's order.
            let node = unsafe { ffi::amber_table_position_node(table, p) };
            if node < 0 {
                return None;
            }
            let (mut key, mut val) = (ffi::AmberTV::default(), ffi::AmberTV::default());
            // SAFETY: `node` is a node of the table.
            if unsafe { ffi::amber_table_node(table, node, &mut key, &mut val) } != 1
                || key.type_ != ffi::LUA_TSTRING
                || val.type_ == ffi::LUA_TNIL
            {
                return None;
            }
            let (mut data, mut len) = (std::ptr::null(), 0usize);
            // SAFETY: the key is a live string; its bytes are copied at once.
            unsafe { ffi::amber_string_bytes(ffi::GcRef(key.ref_), &mut data, &mut len) };
            // SAFETY: `data` points at the string's `len` bytes.
            (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec())
        })
        .collect()
}

/// Makes a view with `layout` in the VM.
pub(crate) fn make_view(vm: *mut ffi::AmberVm, layout: Layout) -> Result<GlobalsView, VmError> {
    let pointers: Vec<*const c_char> =
        layout.iter().map(|n| n.as_ref().map_or(std::ptr::null(), |n| n.as_ptr().cast())).collect();
    let lengths: Vec<usize> = layout.iter().map(|n| n.as_ref().map_or(0, Vec::len)).collect();
    let (mut anchor, mut object) = (0, 0usize);
    let mut err = [0 as c_char; 512];
    let count = c_int::try_from(layout.len()).map_err(|_| VmError::View("too many global names".into()))?;
    // SAFETY: `vm` is live; the pointers and lengths describe `count` positions (a null pointer
    // is an empty one) whose bytes outlive the call; the out-pointers are valid.
    let rc = unsafe {
        ffi::amber_vm_globals_view(
            vm,
            pointers.as_ptr(),
            lengths.as_ptr(),
            count,
            &mut anchor,
            &mut object,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc != 0 {
        return Err(VmError::View(crate::vm::c_buffer_text(&err)));
    }
    Ok(GlobalsView { anchor, object, layout })
}
