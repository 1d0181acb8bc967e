//! The process-wide Luau feature-flag set.
//!
//! Luau's flags are process globals shared by every VM and compiler call (and by parallel test
//! threads), and they change bytecode and VM behaviour. Amber pins one set for the whole process
//! before any state exists or any script compiles (Luau's defaults), and every snapshot records
//! the flags that are on, so that a loader running with others refuses it.

use crate::ffi;
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

    /// The flags that are on, sorted by name (registration order depends on link order): what
    /// a snapshot records and a loader compares. Each release has its own flags, all off by
    /// default, so the whole set would differ between any two releases; the ones that are on
    /// say how this runtime departs from a release's defaults.
    pub fn enabled_sorted(&self) -> Vec<String> {
        let mut on: Vec<String> = self.enabled().map(str::to_string).collect();
        on.sort();
        on
    }
}
