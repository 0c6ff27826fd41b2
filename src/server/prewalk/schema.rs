//! The request-schema DSL: one `api` block per Kafka API, naming the fields of each struct per version.
//!
//! ```text
//! api <key> <Name> v<min>-<max> flex v<first flexible version>|none
//! struct <Name>                       # the first struct of a block is the request body
//!   <field> <type> [v<a>+ | v<a>-<b>]  # omitted versions: every version of the api
//!   tag <n> <field> <type> [versions]  # a known tagged field (flexible versions only)
//! ```
//!
//! Types: `i8 i16 i32 i64 f64 bool uuid str bytes`, a struct name, `[<type>]` for an array; a `?`
//! suffix makes a string, bytes or array nullable. Whether strings, bytes and arrays use the compact
//! (varint) encoding follows from the version being flexible, as in Kafka's JSON schemas; every struct
//! ends with a tagged-field section in flexible versions.

use std::sync::OnceLock;

/// The wire type of one field.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    I8,
    I16,
    I32,
    I64,
    F64,
    Bool,
    Uuid,
    Str,
    Bytes,
    /// Index into the api's `structs`.
    Struct(usize),
    Array(Box<Kind>),
}

/// One field of a struct, present in `versions` (inclusive).
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub nullable: bool,
    pub versions: (i16, i16),
    /// Known tag number for a tagged field.
    pub tag: Option<u32>,
}

impl Field {
    pub fn present_in(&self, version: i16) -> bool {
        (self.versions.0..=self.versions.1).contains(&version)
    }
}

#[derive(Clone, Debug)]
pub struct StructDef {
    pub name: String,
    pub fields: Vec<Field>,
    pub tagged: Vec<Field>,
    /// Upper estimate of the decoded struct's in-memory size (see `super::cost`).
    pub mem: usize,
}

/// The request body schema of one API over its versions. `structs[0]` is the body.
#[derive(Clone, Debug)]
pub struct ApiSchema {
    pub key: i16,
    pub name: String,
    pub versions: (i16, i16),
    pub flexible_from: Option<i16>,
    pub structs: Vec<StructDef>,
}

impl ApiSchema {
    pub fn is_flexible(&self, version: i16) -> bool {
        self.flexible_from.is_some_and(|f| version >= f)
    }
}

/// A schema file that does not parse: a build-time mistake, caught by the unit tests.
#[derive(Debug, thiserror::Error)]
#[error("request schema line {line}: {reason}")]
pub struct SchemaError {
    pub line: usize,
    pub reason: String,
}

pub struct Schemas {
    pub apis: Vec<ApiSchema>,
}

impl Schemas {
    /// The schema for `key` if it covers `version`.
    pub fn get(&self, key: i16, version: i16) -> Option<&ApiSchema> {
        self.apis
            .iter()
            .find(|a| a.key == key && (a.versions.0..=a.versions.1).contains(&version))
    }
}

/// The built-in schemas (`requests.schema`), parsed once.
pub fn schemas() -> Result<&'static Schemas, &'static SchemaError> {
    static PARSED: OnceLock<Result<Schemas, SchemaError>> = OnceLock::new();
    PARSED
        .get_or_init(|| parse(include_str!("requests.schema")))
        .as_ref()
}

fn err(line: usize, reason: impl Into<String>) -> SchemaError {
    SchemaError {
        line,
        reason: reason.into(),
    }
}

fn parse_version(line: usize, s: &str) -> Result<i16, SchemaError> {
    s.parse()
        .map_err(|_| err(line, format!("bad version {s:?}")))
}

/// `v3+`, `v3-12`, or `v-12`-free forms only: the generator always writes a lower bound.
fn parse_versions(line: usize, s: &str, all: (i16, i16)) -> Result<(i16, i16), SchemaError> {
    let s = s
        .strip_prefix('v')
        .ok_or_else(|| err(line, format!("versions must start with v: {s:?}")))?;
    if let Some(lo) = s.strip_suffix('+') {
        return Ok((parse_version(line, lo)?, all.1));
    }
    match s.split_once('-') {
        Some((lo, hi)) => Ok((parse_version(line, lo)?, parse_version(line, hi)?)),
        None => {
            let v = parse_version(line, s)?;
            Ok((v, v))
        }
    }
}

/// A type before struct names are resolved.
enum RawKind {
    Known(Kind),
    Named(String),
    Array(Box<RawKind>),
}

fn parse_kind(s: &str) -> RawKind {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return RawKind::Array(Box::new(parse_kind(inner)));
    }
    RawKind::Known(match s {
        "i8" => Kind::I8,
        "i16" => Kind::I16,
        "i32" => Kind::I32,
        "i64" => Kind::I64,
        "f64" => Kind::F64,
        "bool" => Kind::Bool,
        "uuid" => Kind::Uuid,
        "str" => Kind::Str,
        "bytes" => Kind::Bytes,
        other => return RawKind::Named(other.to_string()),
    })
}

fn resolve(line: usize, raw: &RawKind, names: &[String]) -> Result<Kind, SchemaError> {
    Ok(match raw {
        RawKind::Known(k) => k.clone(),
        RawKind::Named(n) => Kind::Struct(
            names
                .iter()
                .position(|s| s == n)
                .ok_or_else(|| err(line, format!("unknown struct {n}")))?,
        ),
        RawKind::Array(inner) => Kind::Array(Box::new(resolve(line, inner, names)?)),
    })
}

struct RawField {
    line: usize,
    name: String,
    kind: RawKind,
    nullable: bool,
    versions: (i16, i16),
    tag: Option<u32>,
}

struct RawApi {
    line: usize,
    key: i16,
    name: String,
    versions: (i16, i16),
    flexible_from: Option<i16>,
    structs: Vec<(String, Vec<RawField>)>,
}

/// Parses the schema DSL.
pub fn parse(text: &str) -> Result<Schemas, SchemaError> {
    let mut raw: Vec<RawApi> = Vec::new();
    for (i, full) in text.lines().enumerate() {
        let line = i + 1;
        let content = full.split('#').next().unwrap_or("");
        let words: Vec<&str> = content.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["api", key, name, versions, "flex", flex] => {
                let key = key
                    .parse()
                    .map_err(|_| err(line, format!("bad api key {key:?}")))?;
                let versions = parse_versions(line, versions, (0, i16::MAX))?;
                let flexible_from = match *flex {
                    "none" => None,
                    v => Some(parse_versions(line, v, versions)?.0),
                };
                raw.push(RawApi {
                    line,
                    key,
                    name: name.to_string(),
                    versions,
                    flexible_from,
                    structs: Vec::new(),
                });
            }
            ["struct", name] => {
                let api = raw
                    .last_mut()
                    .ok_or_else(|| err(line, "struct outside an api block"))?;
                api.structs.push((name.to_string(), Vec::new()));
            }
            rest => {
                let api = raw
                    .last_mut()
                    .ok_or_else(|| err(line, "field outside an api block"))?;
                let all = api.versions;
                let fields = &mut api
                    .structs
                    .last_mut()
                    .ok_or_else(|| err(line, "field outside a struct"))?
                    .1;
                let (tag, rest) = match rest {
                    ["tag", n, rest @ ..] => (
                        Some(n.parse().map_err(|_| err(line, format!("bad tag {n:?}")))?),
                        rest,
                    ),
                    _ => (None, rest),
                };
                let (name, ty, versions) = match rest {
                    [name, ty] => (name, ty, all),
                    [name, ty, v] => (name, ty, parse_versions(line, v, all)?),
                    _ => return Err(err(line, format!("cannot parse {content:?}"))),
                };
                let (ty, nullable) = match ty.strip_suffix('?') {
                    Some(t) => (t, true),
                    None => (*ty, false),
                };
                fields.push(RawField {
                    line,
                    name: name.to_string(),
                    kind: parse_kind(ty),
                    nullable,
                    versions,
                    tag,
                });
            }
        }
    }
    let mut apis = Vec::new();
    for api in raw {
        if api.structs.is_empty() {
            return Err(err(api.line, format!("api {} has no struct", api.name)));
        }
        let names: Vec<String> = api.structs.iter().map(|(n, _)| n.clone()).collect();
        let mut structs = Vec::new();
        for (name, raw_fields) in &api.structs {
            let mut fields = Vec::new();
            let mut tagged = Vec::new();
            for f in raw_fields {
                let field = Field {
                    name: f.name.clone(),
                    kind: resolve(f.line, &f.kind, &names)?,
                    nullable: f.nullable,
                    versions: f.versions,
                    tag: f.tag,
                };
                if field.tag.is_some() {
                    tagged.push(field);
                } else {
                    fields.push(field);
                }
            }
            structs.push(StructDef {
                name: name.clone(),
                fields,
                tagged,
                mem: 0,
            });
        }
        super::cost::fill_struct_sizes(&mut structs)
            .map_err(|reason| err(api.line, format!("api {}: {reason}", api.name)))?;
        apis.push(ApiSchema {
            key: api.key,
            name: api.name,
            versions: api.versions,
            flexible_from: api.flexible_from,
            structs,
        });
    }
    Ok(Schemas { apis })
}
