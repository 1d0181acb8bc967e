//! The bytecode reader must turn any input into a module or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(module) = amber_validator::bytecode::parse(data) {
        for proto in &module.protos {
            let map = proto.yield_points();
            for (i, point) in map.points.iter().enumerate() {
                assert_eq!(map.find(point.saved_pc, point.kind), Some(i as u32));
            }
        }
    }
});
