//! The bytecode reader and its analyses on any input: a module or an error, never a panic; for a
//! module, every yield-point map is consistent (each point found where it is, every register the
//! dataflow names inside the frame, signatures a pure function of the code).

use amber_validator::bytecode::{self, YieldPointMap};

/// Checks `bytes` as a module; `Ok` for refused input too (refusing is the reader's right).
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let Ok((module, maps)) = bytecode::parse_with_maps(bytes) else { return Ok(()) };
    for (proto, map) in module.protos.iter().zip(&maps) {
        let frame = u32::from(proto.max_stack_size);
        for (i, p) in map.points.iter().enumerate() {
            if map.find(p.saved_pc, p.kind) != Some(i as u32) {
                return Err(format!("proto {}: point {i} is not found at its own pc", proto.id));
            }
            let needs = [p.needs.numbers, p.needs.tables, p.open];
            if let Some(r) = needs.iter().flat_map(|set| set.iter()).find(|&r| r >= frame) {
                return Err(format!("proto {}: point {i} names register {r} of a {frame}-register frame", proto.id));
            }
            if let Some(a) = p.needs.loops.iter().find(|&a| a + 2 >= frame) {
                return Err(format!("proto {}: point {i} has a loop at {a} past the frame", proto.id));
            }
        }
        let again = YieldPointMap::of(proto).map_err(|e| e.to_string())?;
        if again != *map {
            return Err(format!("proto {}: the map is not a function of the code", proto.id));
        }
    }
    Ok(())
}
