//! Schema-driven request generator: well-formed bodies for any API and version, with non-empty arrays,
//! nulls, known and unknown tagged fields. Used by the schema property test and the fuzz driver.

use bytes::{BufMut, BytesMut};

use super::schema::{ApiSchema, Kind, StructDef};

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub fn put_uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

pub struct Gen<'a> {
    pub api: &'a ApiSchema,
    pub version: i16,
    pub flexible: bool,
    pub rng: Rng,
}

impl Gen<'_> {
    fn length(&mut self, out: &mut BytesMut, len: Option<usize>, wide: bool) {
        match (self.flexible, len) {
            (true, None) => put_uvarint(out, 0),
            (true, Some(n)) => put_uvarint(out, n as u32 + 1),
            (false, None) if wide => out.put_i32(-1),
            (false, None) => out.put_i16(-1),
            (false, Some(n)) if wide => out.put_i32(n as i32),
            (false, Some(n)) => out.put_i16(n as i16),
        }
    }

    fn null(&mut self, nullable: bool) -> bool {
        nullable && self.rng.below(4) == 0
    }

    fn kind(&mut self, out: &mut BytesMut, kind: &Kind, nullable: bool, depth: usize) {
        match kind {
            Kind::I8 => out.put_i8(self.rng.next_u64() as i8),
            Kind::Bool => out.put_u8(self.rng.below(2) as u8),
            Kind::I16 => out.put_i16(self.rng.next_u64() as i16),
            Kind::I32 => out.put_i32(self.rng.next_u64() as i32),
            Kind::I64 => out.put_i64(self.rng.next_u64() as i64),
            Kind::F64 => out.put_f64(self.rng.below(1000) as f64 / 7.0),
            Kind::Uuid => out.put_u128(self.rng.next_u64() as u128 | 1),
            Kind::Str | Kind::Bytes => {
                if self.null(nullable) {
                    self.length(out, None, *kind == Kind::Bytes);
                } else {
                    let n = self.rng.below(6) as usize;
                    self.length(out, Some(n), *kind == Kind::Bytes);
                    for _ in 0..n {
                        out.put_u8(b'a' + self.rng.below(26) as u8);
                    }
                }
            }
            Kind::Struct(i) => {
                let s = &self.api.structs[*i];
                self.structure(out, s, depth + 1);
            }
            Kind::Array(elem) => {
                if self.null(nullable) {
                    self.length(out, None, true);
                } else {
                    // Non-empty most of the time, shallow enough to stay small.
                    let n = if depth > 3 {
                        1
                    } else {
                        1 + self.rng.below(3) as usize
                    };
                    self.length(out, Some(n), true);
                    for _ in 0..n {
                        self.kind(out, elem, false, depth + 1);
                    }
                }
            }
        }
    }

    pub fn structure(&mut self, out: &mut BytesMut, s: &StructDef, depth: usize) {
        let version = self.version;
        for f in s.fields.iter().filter(|f| f.present_in(version)) {
            self.kind(out, &f.kind, f.nullable, depth);
        }
        if !self.flexible {
            return;
        }
        // Known tags (ascending), then two unknown ones with tag numbers no schema uses.
        let mut fields = Vec::new();
        for f in s.tagged.iter().filter(|f| f.present_in(version)) {
            if self.rng.below(2) == 0 {
                let mut v = BytesMut::new();
                self.kind(&mut v, &f.kind, f.nullable, depth);
                fields.push((f.tag.unwrap_or(0), v));
            }
        }
        for tag in [1000u32, 1000 + 1 + self.rng.below(100) as u32] {
            let n = self.rng.below(4) as usize;
            fields.push((tag, BytesMut::from(&vec![7u8; n][..])));
        }
        put_uvarint(out, fields.len() as u32);
        for (tag, v) in fields {
            put_uvarint(out, tag);
            put_uvarint(out, v.len() as u32);
            out.put_slice(&v);
        }
    }
}

/// A well-formed body of `api` at `version` from `seed`.
pub fn body(api: &ApiSchema, version: i16, seed: u64) -> BytesMut {
    let mut g = Gen {
        api,
        version,
        flexible: api.is_flexible(version),
        rng: Rng(0x9e37_79b9_7f4a_7c15
            ^ seed.wrapping_mul(0x100_0000_01b3)
            ^ (api.key as u64) << 8
            ^ version as u64),
    };
    let mut out = BytesMut::new();
    if let Some(root) = api.structs.first() {
        g.structure(&mut out, root, 0);
    }
    out
}
