//! The subset of the pickle virtual machine that `torch.save(state_dict)` output needs.
//!
//! Only data opcodes and a closed list of globals are understood; there is no way to
//! construct arbitrary objects. Anything else (an `nn.Module` class, a numpy array, an
//! opcode that builds instances) stops the load with an error naming it, so a checkpoint is
//! never half-read without anybody noticing.

use std::collections::HashMap;
use std::path::Path;

use super::TorchReadError;
use super::tensor::DType;

/// A pickled value, restricted to what state dicts and their wrappers hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// LONG1/LONG4 integers wider than 64 bits, kept as little-endian two's complement bytes.
    /// Only the legacy format's magic number needs one.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// `dict` and `collections.OrderedDict`. A Vec keeps insertion order, which for a state
    /// dict is the order of the module's layers.
    Dict(Vec<(Value, Value)>),
    Global(Global),
    /// The result of a BINPERSID: a reference to a storage held outside the pickle.
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Value {
    /// What the value is, with its article, for error messages ("an int").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) | Value::BigInt(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class or function",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }

    /// Looks up a string key in a dict value (linear: these dicts are small or scanned once).
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// The globals the machine knows. Resolving at GLOBAL time (not at REDUCE) means an
/// unknown class is reported by its dotted name even if it is never called.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    /// `torch.Tensor` / `torch.nn.Parameter`, only as `new_type` of `_rebuild_from_type_v2`.
    TensorClass,
    /// `_codecs.encode`: how protocol 2 spells a Python 3 `bytes` object.
    CodecsEncode,
    StorageType(DType),
}

fn resolve_global(module: &str, name: &str) -> Option<Global> {
    let global = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch._tensor", "Tensor") | ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => {
            Global::TensorClass
        }
        ("_codecs", "encode") => Global::CodecsEncode,
        ("torch", storage) => Global::StorageType(DType::from_storage_class(storage)?),
        _ => return None,
    };
    Some(global)
}

/// A storage as named by a persistent id: `('storage', torch.FloatStorage, key, location,
/// numel)` in zip files, plus a sixth `view_metadata` entry in legacy files.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageRef {
    pub key: String,
    pub dtype: DType,
    /// Elements in the whole (root) storage.
    pub numel: usize,
    /// Legacy files from torch < 0.4 may point tensors at a window of a root storage.
    pub view: Option<StorageView>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageView {
    pub offset: usize,
    pub numel: usize,
}

/// A tensor as `_rebuild_tensor_v2` describes it; the bytes are fetched later, only for
/// the tensors of the dict that is actually asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorRef {
    pub storage: StorageRef,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// Where a pickle comes from, for error messages.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub pickle: &'a str,
}

/// Runs the pickle starting at `data[start..]` up to its STOP and returns the value and the
/// offset just past the STOP (legacy files hold several pickles back to back).
pub(crate) fn load(
    data: &[u8],
    start: usize,
    src: &Source,
) -> Result<(Value, usize), TorchReadError> {
    let mut machine = Machine {
        data,
        pos: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        src,
    };
    machine.run()
}

/// A stack entry remembers the memo slot it was stored under, because this machine copies
/// values instead of sharing them: when a memoised dict or list is filled after BINPUT, the
/// memo copy has to be refreshed or a later BINGET would see it empty.
struct Slot {
    value: Value,
    memo: Option<u32>,
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    src: &'a Source<'a>,
}

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
}

/// Names of every opcode up to protocol 5, so an unsupported one is reported by name.
fn opcode_name(code: u8) -> &'static str {
    match code {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "<not a pickle opcode>",
    }
}

/// Errors raised while executing one opcode carry only a message; the machine adds the
/// file, the pickle and the opcode's offset.
type Step<T> = Result<T, String>;

impl<'a> Machine<'a> {
    fn run(&mut self) -> Result<(Value, usize), TorchReadError> {
        loop {
            let at = self.pos;
            let Some(&code) = self.data.get(at) else {
                return Err(TorchReadError::Truncated {
                    path: self.src.path.to_path_buf(),
                    detail: format!(
                        "{} ends at byte {at} before its STOP opcode",
                        self.src.pickle
                    ),
                });
            };
            self.pos += 1;
            match self.step(code) {
                Ok(Some(value)) => return Ok((value, self.pos)),
                Ok(None) => {}
                Err(StepError::Detail(detail)) => return Err(self.malformed(at, detail)),
                Err(StepError::Fatal(err)) => return Err(err),
                Err(StepError::Unsupported) => {
                    return Err(TorchReadError::UnsupportedOpcode {
                        path: self.src.path.to_path_buf(),
                        pickle: self.src.pickle.to_string(),
                        offset: at,
                        code,
                        name: opcode_name(code),
                    });
                }
            }
        }
    }

    fn malformed(&self, offset: usize, detail: String) -> TorchReadError {
        TorchReadError::Malformed {
            path: self.src.path.to_path_buf(),
            pickle: self.src.pickle.to_string(),
            offset,
            detail,
        }
    }

    /// Executes one opcode; `Some` once STOP hands back the result.
    fn step(&mut self, code: u8) -> Result<Option<Value>, StepError> {
        match code {
            op::PROTO => {
                let version = self.take(1, "protocol version")?[0];
                if version > 5 {
                    return Err(format!("pickle protocol {version} is newer than 5").into());
                }
            }
            // A frame only announces how many bytes follow; the opcodes continue inline.
            op::FRAME => {
                self.take(8, "frame length")?;
            }
            op::STOP => return Ok(Some(self.pop()?)),
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.stack.last().ok_or("DUP on an empty stack")?;
                let slot = Slot {
                    value: top.value.clone(),
                    memo: top.memo,
                };
                self.stack.push(slot);
            }
            op::NONE => self.push(Value::None),
            op::NEWTRUE => self.push(Value::Bool(true)),
            op::NEWFALSE => self.push(Value::Bool(false)),
            op::BININT => {
                let v = i32::from_le_bytes(self.array("BININT")?);
                self.push(Value::Int(v.into()));
            }
            op::BININT1 => {
                let v = self.take(1, "BININT1")?[0];
                self.push(Value::Int(v.into()));
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.array("BININT2")?);
                self.push(Value::Int(v.into()));
            }
            op::LONG1 => {
                let n = usize::from(self.take(1, "LONG1 length")?[0]);
                let bytes = self.take(n, "LONG1")?;
                self.push(long_from_bytes(bytes));
            }
            op::LONG4 => {
                let n = i32::from_le_bytes(self.array("LONG4 length")?);
                let n = usize::try_from(n).map_err(|_| format!("negative LONG4 length {n}"))?;
                let bytes = self.take(n, "LONG4")?;
                self.push(long_from_bytes(bytes));
            }
            op::BINFLOAT => {
                // The one big-endian field of the pickle format.
                let v = f64::from_be_bytes(self.array("BINFLOAT")?);
                self.push(Value::Float(v));
            }
            op::BINUNICODE => {
                let n = u32::from_le_bytes(self.array("BINUNICODE length")?);
                let s = self.string(n.try_into().unwrap_or(usize::MAX), "BINUNICODE")?;
                self.push(Value::Str(s));
            }
            op::SHORT_BINUNICODE => {
                let n = self.take(1, "SHORT_BINUNICODE length")?[0];
                let s = self.string(n.into(), "SHORT_BINUNICODE")?;
                self.push(Value::Str(s));
            }
            op::BINUNICODE8 => {
                let n = u64::from_le_bytes(self.array("BINUNICODE8 length")?);
                let s = self.string(n.try_into().unwrap_or(usize::MAX), "BINUNICODE8")?;
                self.push(Value::Str(s));
            }
            // Python 2 `str`, in checkpoints written by Python 2 torch; torch.load decodes
            // them as UTF-8 too.
            op::BINSTRING => {
                let n = i32::from_le_bytes(self.array("BINSTRING length")?);
                let n = usize::try_from(n).map_err(|_| format!("negative BINSTRING length {n}"))?;
                let s = self.string(n, "BINSTRING")?;
                self.push(Value::Str(s));
            }
            op::SHORT_BINSTRING => {
                let n = self.take(1, "SHORT_BINSTRING length")?[0];
                let s = self.string(n.into(), "SHORT_BINSTRING")?;
                self.push(Value::Str(s));
            }
            op::BINBYTES => {
                let n = u32::from_le_bytes(self.array("BINBYTES length")?);
                let b = self.take(n.try_into().unwrap_or(usize::MAX), "BINBYTES")?;
                self.push(Value::Bytes(b.to_vec()));
            }
            op::SHORT_BINBYTES => {
                let n = self.take(1, "SHORT_BINBYTES length")?[0];
                let b = self.take(n.into(), "SHORT_BINBYTES")?;
                self.push(Value::Bytes(b.to_vec()));
            }
            op::BINBYTES8 => {
                let n = u64::from_le_bytes(self.array("BINBYTES8 length")?);
                let b = self.take(n.try_into().unwrap_or(usize::MAX), "BINBYTES8")?;
                self.push(Value::Bytes(b.to_vec()));
            }
            op::EMPTY_TUPLE => self.push(Value::Tuple(Vec::new())),
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items));
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(code - op::TUPLE1 + 1);
                let start = self
                    .stack
                    .len()
                    .checked_sub(n)
                    .ok_or_else(|| format!("TUPLE{n} needs {n} stack items"))?;
                let items = self
                    .stack
                    .split_off(start)
                    .into_iter()
                    .map(|s| s.value)
                    .collect();
                self.push(Value::Tuple(items));
            }
            op::EMPTY_LIST => self.push(Value::List(Vec::new())),
            op::LIST => {
                let items = self.pop_mark()?;
                self.push(Value::List(items));
            }
            op::APPEND => {
                let item = self.pop()?;
                self.with_top(|top| match top {
                    Value::List(list) => {
                        list.push(item);
                        Ok(())
                    }
                    other => Err(format!("APPEND to {}", other.kind())),
                })?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                self.with_top(|top| match top {
                    Value::List(list) => {
                        list.extend(items);
                        Ok(())
                    }
                    other => Err(format!("APPENDS to {}", other.kind())),
                })?;
            }
            op::EMPTY_DICT => self.push(Value::Dict(Vec::new())),
            op::DICT => {
                let items = self.pop_mark()?;
                let mut dict = Vec::new();
                insert_pairs(&mut dict, items)?;
                self.push(Value::Dict(dict));
            }
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.with_top(|top| match top {
                    Value::Dict(dict) => insert_pairs(dict, vec![key, value]),
                    other => Err(format!("SETITEM on {}", other.kind())),
                })?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                self.with_top(|top| match top {
                    Value::Dict(dict) => insert_pairs(dict, items),
                    other => Err(format!("SETITEMS on {}", other.kind())),
                })?;
            }
            op::GLOBAL => {
                let module = self.line("GLOBAL module")?;
                let name = self.line("GLOBAL name")?;
                let global = self.global(&module, &name)?;
                self.push(Value::Global(global));
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err("STACK_GLOBAL needs two strings".to_string().into());
                };
                let global = self.global(&module, &name)?;
                self.push(Value::Global(global));
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let (Value::Global(callable), Value::Tuple(args)) = (callable, args) else {
                    return Err("REDUCE needs a known global and an argument tuple"
                        .to_string()
                        .into());
                };
                let value = call(callable, args)?;
                self.push(value);
            }
            op::BUILD => {
                let state = self.pop()?;
                let top = self.stack.last().ok_or("BUILD on an empty stack")?;
                match (&top.value, &state) {
                    // `state_dict()` returns an OrderedDict whose `_metadata` attribute holds
                    // per-module version numbers for `_load_from_state_dict` migrations;
                    // BUILD sets that attribute. It holds no weights, so it is dropped.
                    (Value::Dict(_), Value::Dict(_) | Value::None) => {}
                    (target, state) => {
                        return Err(format!(
                            "BUILD of {} with {} as state",
                            target.kind(),
                            state.kind()
                        )
                        .into());
                    }
                }
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let storage = persistent_load(pid)?;
                self.push(Value::Storage(storage));
            }
            op::BINPUT => {
                let index = self.take(1, "BINPUT index")?[0];
                self.put(index.into())?;
            }
            op::LONG_BINPUT => {
                let index = u32::from_le_bytes(self.array("LONG_BINPUT index")?);
                self.put(index)?;
            }
            op::MEMOIZE => {
                let index =
                    u32::try_from(self.memo.len()).map_err(|_| "memo overflow".to_string())?;
                self.put(index)?;
            }
            op::BINGET => {
                let index = self.take(1, "BINGET index")?[0];
                self.get(index.into())?;
            }
            op::LONG_BINGET => {
                let index = u32::from_le_bytes(self.array("LONG_BINGET index")?);
                self.get(index)?;
            }
            _ => return Err(StepError::Unsupported),
        }
        Ok(None)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], StepError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len());
        let Some(end) = end else {
            return Err(StepError::Fatal(TorchReadError::Truncated {
                path: self.src.path.to_path_buf(),
                detail: format!(
                    "{} ends inside {what} at byte {} (needs {n} bytes, {} left)",
                    self.src.pickle,
                    self.pos,
                    self.data.len().saturating_sub(self.pos)
                ),
            }));
        };
        let data: &'a [u8] = self.data;
        let bytes = &data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], StepError> {
        let bytes = self.take(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn string(&mut self, n: usize, what: &str) -> Result<String, StepError> {
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8").into())
    }

    /// GLOBAL arguments are newline-terminated ASCII lines.
    fn line(&mut self, what: &str) -> Result<String, StepError> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(|| {
            StepError::Fatal(TorchReadError::Truncated {
                path: self.src.path.to_path_buf(),
                detail: format!("{} ends inside {what}", self.src.pickle),
            })
        })?;
        let text = self.string(len, what)?;
        self.pos += 1;
        Ok(text)
    }

    fn global(&self, module: &str, name: &str) -> Result<Global, StepError> {
        resolve_global(module, name).ok_or_else(|| {
            StepError::Fatal(TorchReadError::UnsupportedGlobal {
                path: self.src.path.to_path_buf(),
                pickle: self.src.pickle.to_string(),
                module: module.to_string(),
                name: name.to_string(),
            })
        })
    }

    fn push(&mut self, value: Value) {
        self.stack.push(Slot { value, memo: None });
    }

    fn pop(&mut self) -> Step<Value> {
        // Items below the innermost MARK belong to an enclosing collection.
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("stack underflow".to_string());
        }
        self.stack
            .pop()
            .map(|s| s.value)
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn pop_mark(&mut self) -> Step<Vec<Value>> {
        let mark = self.marks.pop().ok_or("no MARK on the stack")?;
        if mark > self.stack.len() {
            return Err("MARK above the stack top".to_string());
        }
        Ok(self
            .stack
            .split_off(mark)
            .into_iter()
            .map(|s| s.value)
            .collect())
    }

    /// Mutates the top of the stack in place and refreshes its memo copy.
    fn with_top(&mut self, f: impl FnOnce(&mut Value) -> Step<()>) -> Step<()> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("no collection below the items".to_string());
        }
        let top = self.stack.last_mut().ok_or("empty stack")?;
        f(&mut top.value)?;
        if let Some(index) = top.memo {
            self.memo.insert(index, top.value.clone());
        }
        Ok(())
    }

    fn put(&mut self, index: u32) -> Step<()> {
        let top = self
            .stack
            .last_mut()
            .ok_or("memo store from an empty stack")?;
        top.memo = Some(index);
        self.memo.insert(index, top.value.clone());
        Ok(())
    }

    fn get(&mut self, index: u32) -> Step<()> {
        let value = self
            .memo
            .get(&index)
            .ok_or_else(|| format!("memo slot {index} was never stored"))?
            .clone();
        self.stack.push(Slot {
            value,
            memo: Some(index),
        });
        Ok(())
    }
}

enum StepError {
    /// A value-level problem; reported as `Malformed` at the opcode's offset.
    Detail(String),
    /// Already a complete error (truncation, unknown global).
    Fatal(TorchReadError),
    Unsupported,
}

impl From<String> for StepError {
    fn from(detail: String) -> Self {
        StepError::Detail(detail)
    }
}

impl From<&str> for StepError {
    fn from(detail: &str) -> Self {
        StepError::Detail(detail.to_string())
    }
}

fn long_from_bytes(bytes: &[u8]) -> Value {
    if bytes.len() > 8 {
        return Value::BigInt(bytes.to_vec());
    }
    // Sign-extend the little-endian two's complement number to 8 bytes.
    let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut wide = [fill; 8];
    wide[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(wide))
}

/// Adds flat key/value items to a dict. A pickler never writes a key twice; a duplicate
/// means a crafted or corrupt file, and silently keeping one of the two tensors would hide it.
fn insert_pairs(dict: &mut Vec<(Value, Value)>, items: Vec<Value>) -> Step<()> {
    if !items.len().is_multiple_of(2) {
        return Err(format!("odd number of dict items ({})", items.len()));
    }
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        if dict.iter().any(|(k, _)| *k == key) {
            return Err(format!("duplicate dict key {key:?}"));
        }
        dict.push((key, value));
    }
    Ok(())
}

/// REDUCE: applies one of the known callables.
fn call(callable: Global, args: Vec<Value>) -> Step<Value> {
    match callable {
        Global::OrderedDict => match <[Value; 0]>::try_from(args) {
            Ok([]) => Ok(Value::Dict(Vec::new())),
            Err(args) => Err(format!("OrderedDict called with {} arguments", args.len())),
        },
        Global::RebuildTensorV2 => {
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            if !(6..=7).contains(&args.len()) {
                return Err(format!(
                    "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
                    args.len()
                ));
            }
            expect_empty(&args[5], "backward_hooks")?;
            if let Some(metadata) = args.get(6) {
                // Dense tensors carry no metadata; conj/neg bits would change the values.
                expect_empty(metadata, "tensor metadata")?;
            }
            rebuild_tensor(&args[..4])
        }
        Global::RebuildTensor => {
            if args.len() != 4 {
                return Err(format!(
                    "_rebuild_tensor takes 4 arguments, got {}",
                    args.len()
                ));
            }
            rebuild_tensor(&args)
        }
        Global::RebuildParameter | Global::RebuildParameterWithState => {
            // (data, requires_grad, backward_hooks[, state]): a Parameter is its data.
            let arity = if callable == Global::RebuildParameter {
                3
            } else {
                4
            };
            if args.len() != arity {
                return Err(format!(
                    "_rebuild_parameter takes {arity} arguments, got {}",
                    args.len()
                ));
            }
            expect_empty(&args[2], "backward_hooks")?;
            if let Some(state) = args.get(3) {
                expect_empty(state, "parameter state")?;
            }
            match args.into_iter().next() {
                Some(tensor @ Value::Tensor(_)) => Ok(tensor),
                other => Err(format!(
                    "_rebuild_parameter of {}",
                    other.as_ref().map_or("nothing", Value::kind)
                )),
            }
        }
        Global::RebuildFromTypeV2 => {
            // (func, new_type, args, state): torch >= 1.13 wraps rebuilds of tensor
            // subclasses this way; plain Tensor/Parameter with no state is the inner rebuild.
            let [func, new_type, inner, state] = <[Value; 4]>::try_from(args)
                .map_err(|a| format!("_rebuild_from_type_v2 takes 4 arguments, got {}", a.len()))?;
            if new_type != Value::Global(Global::TensorClass) {
                return Err(format!("_rebuild_from_type_v2 to {}", new_type.kind()));
            }
            expect_empty(&state, "tensor state")?;
            match (func, inner) {
                (Value::Global(func), Value::Tuple(inner)) => call(func, inner),
                _ => {
                    Err("_rebuild_from_type_v2 needs a function and an argument tuple".to_string())
                }
            }
        }
        Global::CodecsEncode => match args.as_slice() {
            [Value::Str(text), Value::Str(encoding)]
                if encoding == "latin1" || encoding == "latin-1" =>
            {
                let bytes: Result<Vec<u8>, _> = text.chars().map(u8::try_from).collect();
                bytes
                    .map(Value::Bytes)
                    .map_err(|_| "_codecs.encode: text is not latin-1".to_string())
            }
            _ => Err("_codecs.encode needs (str, 'latin1')".to_string()),
        },
        Global::TensorClass | Global::StorageType(_) => Err(format!(
            "{callable:?} is a class that state dicts never call"
        )),
    }
}

/// Hooks, metadata and state must be absent: they would carry behaviour we cannot replay.
fn expect_empty(value: &Value, what: &str) -> Step<()> {
    match value {
        Value::None => Ok(()),
        Value::Dict(items) if items.is_empty() => Ok(()),
        Value::Tuple(items) if items.is_empty() => Ok(()),
        other => Err(format!(
            "{what} must be None or empty, got a non-empty value ({})",
            other.kind()
        )),
    }
}

/// `(storage, storage_offset, size, stride)` into a tensor reference.
fn rebuild_tensor(args: &[Value]) -> Step<Value> {
    let [storage, offset, shape, stride] = args else {
        return Err("tensor rebuild needs (storage, offset, size, stride)".to_string());
    };
    let Value::Storage(storage) = storage else {
        return Err(format!(
            "tensor rebuilt from {}, not a storage",
            storage.kind()
        ));
    };
    let offset = to_usize(offset, "storage offset")?;
    let shape = to_usize_tuple(shape, "size")?;
    let stride = to_usize_tuple(stride, "stride")?;
    if shape.len() != stride.len() {
        return Err(format!(
            "size {shape:?} and stride {stride:?} differ in rank"
        ));
    }
    Ok(Value::Tensor(TensorRef {
        storage: storage.clone(),
        offset,
        shape,
        stride,
    }))
}

fn to_usize(value: &Value, what: &str) -> Step<usize> {
    match value {
        Value::Int(v) => usize::try_from(*v).map_err(|_| format!("{what} {v} is negative")),
        other => Err(format!("{what} is {}, not an int", other.kind())),
    }
}

fn to_usize_tuple(value: &Value, what: &str) -> Step<Vec<usize>> {
    match value {
        Value::Tuple(items) | Value::List(items) => {
            items.iter().map(|v| to_usize(v, what)).collect()
        }
        other => Err(format!("{what} is {}, not a tuple", other.kind())),
    }
}

/// BINPERSID: `('storage', storage_type, key, location, numel[, view_metadata])`.
fn persistent_load(pid: Value) -> Step<StorageRef> {
    let Value::Tuple(items) = pid else {
        return Err(format!("persistent id is {}, not a tuple", pid.kind()));
    };
    match items.first() {
        Some(Value::Str(tag)) if tag == "storage" => {}
        // Legacy `torch.save(model)` stores module source code under 'module' ids.
        Some(Value::Str(tag)) => {
            return Err(format!(
                "persistent id of type {tag:?} (a pickled nn.Module?), only 'storage' is supported"
            ));
        }
        _ => return Err("persistent id does not start with a type tag".to_string()),
    }
    if !(5..=6).contains(&items.len()) {
        return Err(format!(
            "storage persistent id has {} fields, not 5 or 6",
            items.len()
        ));
    }
    let Value::Global(Global::StorageType(dtype)) = items[1] else {
        return Err(format!(
            "storage type is {}, not a torch.*Storage class",
            items[1].kind()
        ));
    };
    let key = match &items[2] {
        Value::Str(key) => key.clone(),
        // Keys are strings in every torch version seen, but an int key is just as usable.
        Value::Int(key) => key.to_string(),
        other => return Err(format!("storage key is {}", other.kind())),
    };
    let numel = to_usize(&items[4], "storage size")?;
    let view = match items.get(5) {
        None | Some(Value::None) => None,
        Some(Value::Tuple(meta)) => match meta.as_slice() {
            [_view_key, offset, size] => Some(StorageView {
                offset: to_usize(offset, "storage view offset")?,
                numel: to_usize(size, "storage view size")?,
            }),
            _ => return Err("storage view metadata is not (key, offset, size)".to_string()),
        },
        Some(other) => return Err(format!("storage view metadata is {}", other.kind())),
    };
    Ok(StorageRef {
        key,
        dtype,
        numel,
        view,
    })
}
