//! Upper estimates of what kafka-protocol allocates when it decodes a walked request.
//!
//! The decoder builds one Rust struct per wire struct, one `Vec` per array (reserved at the wire
//! count) and one map entry per unknown tagged field; strings and bytes are zero-copy slices of the
//! frame. The estimates below are deliberately generous (every scalar field padded to 8 bytes); a unit
//! test checks them against `size_of` of the generated types.

use super::schema::{Kind, StructDef};

/// A `Bytes`/`StrBytes` handle (pointer, length, data, vtable).
const BYTES: usize = 32;
/// A `Vec` header.
const VEC: usize = 24;
/// The empty `BTreeMap` of unknown tagged fields every struct carries.
const TAG_MAP: usize = 24;
/// One unknown tagged field: key, `Bytes` value and the B-tree node space it occupies when nodes are
/// half full.
pub const UNKNOWN_TAG: usize = 96;

/// Decoded memory may be at most this multiple of the frame size, plus `DECODE_SLACK`.
pub const DECODE_FACTOR: usize = 16;
/// Small frames may always decode into this much (a handful of empty structs is bigger than its wire form).
pub const DECODE_SLACK: usize = 1 << 20;

/// The most a frame of `len` bytes may decode into.
pub fn budget(len: usize) -> usize {
    len.saturating_mul(DECODE_FACTOR)
        .saturating_add(DECODE_SLACK)
}

/// Size of `kind` as a field inside a struct (padded).
fn field_size(kind: &Kind, structs: &[StructDef]) -> usize {
    match kind {
        Kind::I8 | Kind::I16 | Kind::I32 | Kind::I64 | Kind::F64 | Kind::Bool => 8,
        Kind::Uuid => 16,
        Kind::Str | Kind::Bytes => BYTES,
        Kind::Array(_) => VEC,
        // An optional struct is one word bigger.
        Kind::Struct(i) => structs.get(*i).map_or(0, |s| s.mem) + 8,
    }
}

/// Size of one element of an array of `kind` (`Vec::with_capacity` reserves exactly this per element).
pub fn element_size(kind: &Kind, structs: &[StructDef]) -> usize {
    match kind {
        Kind::I8 | Kind::Bool => 1,
        Kind::I16 => 2,
        Kind::I32 => 4,
        Kind::I64 | Kind::F64 => 8,
        Kind::Uuid => 16,
        Kind::Str | Kind::Bytes => BYTES,
        Kind::Array(_) => VEC,
        Kind::Struct(i) => structs.get(*i).map_or(0, |s| s.mem),
    }
}

/// Computes `mem` of every struct (a struct's nested structs first); fails on a struct that contains
/// itself, which the wire format cannot express.
pub fn fill_struct_sizes(structs: &mut [StructDef]) -> Result<(), String> {
    let n = structs.len();
    // Each pass settles at least one more struct unless there is a cycle.
    for _ in 0..=n {
        let mut changed = false;
        for i in 0..n {
            if structs[i].mem != 0 {
                continue;
            }
            let ready = structs[i]
                .fields
                .iter()
                .chain(&structs[i].tagged)
                .all(|f| match &f.kind {
                    Kind::Struct(j) => structs.get(*j).is_some_and(|s| s.mem != 0),
                    _ => true,
                });
            if ready {
                let size = structs[i]
                    .fields
                    .iter()
                    .chain(&structs[i].tagged)
                    .map(|f| field_size(&f.kind, structs))
                    .sum::<usize>()
                    + TAG_MAP;
                structs[i].mem = size;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    match structs.iter().find(|s| s.mem == 0) {
        Some(s) => Err(format!("struct {} contains itself", s.name)),
        None => Ok(()),
    }
}
