//! Maps keyed by VM addresses (object and proto handles), for capture and the VM's proto table.

use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for VM addresses. Addresses are the VM's own, never an attacker's input, so the
/// default hasher's protection against chosen collisions is not needed, and its cost was a third
/// of capture's instructions (callgrind, 100k closures).
#[derive(Default)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        // Fibonacci hashing; the high bits carry the entropy hashbrown uses.
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
}

/// A `HashMap` keyed by VM addresses.
pub(crate) type AddressMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<AddressHasher>>;
