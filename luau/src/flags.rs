//! The process-wide Luau feature-flag set.
//!
//! Luau's flags are process globals shared by every VM and compiler call (and by parallel test
//! threads), and they change bytecode and VM behaviour. Amber pins one set for the whole process
//! before any state exists or any script compiles (Luau's defaults), and every snapshot records it
//! so that a loader under another set refuses it.

use crate::ffi;
use sha2::{Digest, Sha256};
use std::ffi::CStr;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureFlags {
    /// (name, value), in Luau's registration order.
    pub flags: Vec<(String, bool)>,
}

static PINNED: OnceLock<FeatureFlags> = OnceLock::new();

impl FeatureFlags {
    /// The pinned set: read once, before the first VM or compile of the process, and never
    /// changed afterwards (Amber has no API that sets a flag).
    pub fn pinned() -> &'static FeatureFlags {
        PINNED.get_or_init(FeatureFlags::read)
    }

    fn read() -> FeatureFlags {
        // SAFETY: amber_flag_count walks a static linked list built by static constructors.
        let count = unsafe { ffi::amber_flag_count() };
        let mut flags = Vec::with_capacity(count.max(0) as usize);
        for i in 0..count {
            let mut name = std::ptr::null();
            let mut value = 0;
            // SAFETY: `i` is below the count; on success `name` points at a static C string.
            if unsafe { ffi::amber_flag_get(i, &mut name, &mut value) } == 0 && !name.is_null() {
                // SAFETY: flag names are static NUL-terminated strings in the Luau binary.
                let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
                flags.push((name, value != 0));
            }
        }
        FeatureFlags { flags }
    }

    /// The flags that are on (empty under Luau's defaults).
    pub fn enabled(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().filter(|(_, v)| *v).map(|(n, _)| n.as_str())
    }

    /// SHA-256 of the set, sorted by name (registration order depends on link order).
    pub fn digest(&self) -> [u8; 32] {
        let mut sorted: Vec<_> = self.flags.iter().collect();
        sorted.sort();
        let mut h = Sha256::new();
        for (name, value) in sorted {
            h.update(name.as_bytes());
            h.update([0, u8::from(*value)]);
        }
        h.finalize().into()
    }
}
