//! A bounded walk over a request frame before kafka-protocol decodes it.
//!
//! Design note. kafka-protocol 0.18 decodes an array by reserving `Vec::with_capacity(count)` at the
//! count read from the wire, before it has seen a single element: a 14-byte frame whose array count
//! says 2^31 makes the process ask for gigabytes and abort. Strings and bytes are length-checked and
//! zero-copy, so arrays (and the per-struct allocations they multiply) are the hole. Rather than fork
//! the codec, every frame is first walked against a schema of its API and version, in our own DSL
//! (`requests.schema`, format in `schema`): each length and count is read with the codec's exact
//! encoding rules and checked against the bytes that remain, every array element must consume at least
//! one byte, a known tagged field must fill exactly its declared size, and the walk adds up an upper
//! estimate of what the decoder will allocate (`cost`). Only a frame whose walk succeeds and whose
//! estimate is within `cost::budget(frame size)` (16× the frame plus 1 MiB) reaches
//! `RequestKind::decode`; anything else closes the connection like an undecodable request. The walk
//! itself allocates nothing, is linear in the frame, and recurses only as deep as the schema nests.
//!
//! The schemas were derived from kafka-protocol's generated request decoders by
//! `tools/gen_request_schemas.py`; `tests` checks every API and version against the codec (requests
//! the codec encodes must walk to exactly their length), and that every version in `APIS` has one.

pub mod cost;
pub mod gen;
pub mod schema;
#[cfg(test)]
mod tests;

use schema::{ApiSchema, Kind, StructDef};

/// Why a frame was refused before decoding.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PrewalkError {
    #[error("no request schema for api key {key} v{version}")]
    NoSchema { key: i16, version: i16 },
    #[error("request schema unusable: {0}")]
    Schema(String),
    #[error("truncated at byte {at}: {need} more bytes needed, {left} left")]
    Truncated { at: usize, need: usize, left: usize },
    #[error("invalid length {len} at byte {at}")]
    BadLength { at: usize, len: i64 },
    #[error("null {field} at byte {at}")]
    NullNotAllowed { at: usize, field: String },
    #[error("array of {count} elements at byte {at} but only {left} bytes left")]
    TooManyElements {
        at: usize,
        count: usize,
        left: usize,
    },
    #[error("array element at byte {at} has no bytes")]
    EmptyElement { at: usize },
    #[error("tagged field {tag} at byte {at}: {size} bytes declared, {used} used")]
    TagSize {
        at: usize,
        tag: u32,
        size: usize,
        used: usize,
    },
    #[error("would decode into about {estimate} bytes, more than {budget} for this frame")]
    TooExpensive { estimate: usize, budget: usize },
}

/// What a successful walk learnt about a frame.
#[derive(Debug, PartialEq)]
pub struct Walked {
    /// Bytes of the frame covered by the header and body (the codec ignores anything after them).
    pub consumed: usize,
    /// Upper estimate of the memory the decoder will allocate.
    pub decoded_estimate: usize,
}

/// Walks a whole request frame (header included, size prefix excluded) of `api_key` at `version`,
/// whose request header version is `header_version`.
pub fn prewalk(
    frame: &[u8],
    api_key: i16,
    version: i16,
    header_version: i16,
) -> Result<Walked, PrewalkError> {
    let schemas = schema::schemas().map_err(|e| PrewalkError::Schema(e.to_string()))?;
    let api = schemas
        .get(api_key, version)
        .ok_or(PrewalkError::NoSchema {
            key: api_key,
            version,
        })?;
    let mut w = Walker {
        buf: frame,
        pos: 0,
        mem: 0,
        api,
        version,
        flexible: false,
    };
    // Request header: api key, version, correlation id, then a classic nullable client id in both
    // header versions; v2 adds a tagged-field section.
    w.take(8)?;
    w.string(true, "client_id", false)?;
    if header_version >= 2 {
        w.tagged_section(None)?;
    }
    w.flexible = api.is_flexible(version);
    let root = api
        .structs
        .first()
        .ok_or_else(|| PrewalkError::Schema(format!("{} has no body", api.name)))?;
    w.mem = root.mem;
    w.walk_struct(root)?;
    let budget = cost::budget(frame.len());
    if w.mem > budget {
        return Err(PrewalkError::TooExpensive {
            estimate: w.mem,
            budget,
        });
    }
    Ok(Walked {
        consumed: w.pos,
        decoded_estimate: w.mem,
    })
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    mem: usize,
    api: &'a ApiSchema,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PrewalkError> {
        if n > self.left() {
            return Err(PrewalkError::Truncated {
                at: self.pos,
                need: n,
                left: self.left(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn int16(&mut self) -> Result<i16, PrewalkError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn int32(&mut self) -> Result<i32, PrewalkError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Kafka's unsigned varint exactly as kafka-protocol reads it: at most five bytes, high bits of the
    /// fifth dropped.
    fn uvarint(&mut self) -> Result<u32, PrewalkError> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = self.take(1)?[0] as u32;
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    fn charge(&mut self, bytes: usize) {
        self.mem = self.mem.saturating_add(bytes);
    }

    /// A length prefix: `None` for null. Compact forms store length + 1 as a varint.
    fn length(&mut self, compact: bool, wide: bool) -> Result<Option<usize>, PrewalkError> {
        let at = self.pos;
        if compact {
            return Ok(match self.uvarint()? {
                0 => None,
                n => Some(n as usize - 1),
            });
        }
        let n = if wide {
            self.int32()? as i64
        } else {
            self.int16()? as i64
        };
        match n {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as usize)),
            n => Err(PrewalkError::BadLength { at, len: n }),
        }
    }

    fn null_check(&self, at: usize, nullable: bool, field: &str) -> Result<(), PrewalkError> {
        if nullable {
            Ok(())
        } else {
            Err(PrewalkError::NullNotAllowed {
                at,
                field: field.to_string(),
            })
        }
    }

    /// A string (`wide` = false) or bytes (`wide` = true) field.
    fn string(&mut self, nullable: bool, field: &str, wide: bool) -> Result<(), PrewalkError> {
        let at = self.pos;
        let compact = self.flexible;
        match self.length(compact, wide)? {
            None => self.null_check(at, nullable, field),
            Some(n) => self.take(n).map(|_| ()),
        }
    }

    fn walk_struct(&mut self, s: &StructDef) -> Result<(), PrewalkError> {
        let version = self.version;
        for f in s.fields.iter().filter(|f| f.present_in(version)) {
            self.walk_kind(&f.kind, f.nullable, &f.name)?;
        }
        if self.flexible {
            self.tagged_section(Some(s))?;
        }
        Ok(())
    }

    fn walk_kind(&mut self, kind: &Kind, nullable: bool, field: &str) -> Result<(), PrewalkError> {
        match kind {
            Kind::I8 | Kind::Bool => self.take(1).map(|_| ()),
            Kind::I16 => self.take(2).map(|_| ()),
            Kind::I32 => self.take(4).map(|_| ()),
            Kind::I64 | Kind::F64 => self.take(8).map(|_| ()),
            Kind::Uuid => self.take(16).map(|_| ()),
            Kind::Str => self.string(nullable, field, false),
            Kind::Bytes => self.string(nullable, field, true),
            Kind::Struct(i) => {
                let api = self.api;
                let s = api
                    .structs
                    .get(*i)
                    .ok_or_else(|| PrewalkError::Schema(format!("{field}: no struct {i}")))?;
                self.walk_struct(s)
            }
            Kind::Array(elem) => {
                let at = self.pos;
                let compact = self.flexible;
                let Some(count) = self.length(compact, true)? else {
                    return self.null_check(at, nullable, field);
                };
                // Every element takes at least one byte, so a count beyond what is left is a lie; checked
                // before the decoder would reserve `count` elements.
                if count > self.left() {
                    return Err(PrewalkError::TooManyElements {
                        at,
                        count,
                        left: self.left(),
                    });
                }
                self.charge(count.saturating_mul(cost::element_size(elem, &self.api.structs)));
                for _ in 0..count {
                    let start = self.pos;
                    self.walk_kind(elem, false, field)?;
                    if self.pos == start {
                        return Err(PrewalkError::EmptyElement { at: start });
                    }
                }
                Ok(())
            }
        }
    }

    /// A tagged-field section: known tags of `s` are walked inside their declared size, unknown ones skipped.
    fn tagged_section(&mut self, s: Option<&StructDef>) -> Result<(), PrewalkError> {
        let at = self.pos;
        let count = self.uvarint()? as usize;
        // A tag and its size take at least two bytes.
        if count > self.left() / 2 {
            return Err(PrewalkError::TooManyElements {
                at,
                count,
                left: self.left(),
            });
        }
        for _ in 0..count {
            let at = self.pos;
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            if size > self.left() {
                return Err(PrewalkError::Truncated {
                    at: self.pos,
                    need: size,
                    left: self.left(),
                });
            }
            let known = s.and_then(|s| {
                s.tagged
                    .iter()
                    .find(|f| f.tag == Some(tag) && f.present_in(self.version))
            });
            match known {
                Some(f) => {
                    let start = self.pos;
                    self.walk_kind(&f.kind, f.nullable, &f.name)?;
                    let used = self.pos - start;
                    if used != size {
                        return Err(PrewalkError::TagSize {
                            at,
                            tag,
                            size,
                            used,
                        });
                    }
                }
                None => {
                    self.take(size)?;
                    self.charge(cost::UNKNOWN_TAG);
                }
            }
        }
        Ok(())
    }
}
