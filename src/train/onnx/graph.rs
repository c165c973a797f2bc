//! A small ONNX graph writer over `tract_onnx::pb` (the protobuf types tract itself parses).
//!
//! Every value carries its static shape: vigil's plans are optimized with fixed shapes, and the
//! layer exporters need the shapes anyway to spell reshapes with literal dimensions (the int8
//! study found symbolic shapes up to 7.6× slower in tract). Node outputs get unique names from a
//! counter; initializers are named after the parameter they hold, so a reader of the file can
//! tell `block0.attn.query.weight` from `block0.mlp.fc1.weight`.

use std::path::Path;

use prost::Message;
use tract_onnx::pb;

use super::ExportError;

/// The opset the exporter writes: 17 is the first with `LayerNormalization`, and the last where
/// `ReduceMean` takes its axes as an attribute.
pub const OPSET: i64 = 17;

/// ONNX `TensorProto.DataType` codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32 = 1,
    U8 = 2,
    I8 = 3,
    I32 = 6,
    I64 = 7,
}

/// A named value in the graph with its static shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Value {
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// A node attribute.
#[derive(Debug, Clone)]
pub enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
    Str(&'static str, &'static str),
}

impl Attr {
    fn to_proto(&self) -> pb::AttributeProto {
        use pb::attribute_proto::AttributeType;
        match self {
            Attr::Int(name, value) => pb::AttributeProto {
                name: name.to_string(),
                r#type: AttributeType::Int as i32,
                i: *value,
                ..Default::default()
            },
            Attr::Ints(name, values) => pb::AttributeProto {
                name: name.to_string(),
                r#type: AttributeType::Ints as i32,
                ints: values.clone(),
                ..Default::default()
            },
            Attr::Float(name, value) => pb::AttributeProto {
                name: name.to_string(),
                r#type: AttributeType::Float as i32,
                f: *value,
                ..Default::default()
            },
            Attr::Str(name, value) => pb::AttributeProto {
                name: name.to_string(),
                r#type: AttributeType::String as i32,
                s: value.as_bytes().to_vec(),
                ..Default::default()
            },
        }
    }
}

/// Builds one graph: inputs, initializers, nodes, outputs.
#[derive(Debug)]
pub struct OnnxGraph {
    name: String,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    initializers: Vec<pb::TensorProto>,
    nodes: Vec<pb::NodeProto>,
    taken_names: std::collections::HashSet<String>,
    counter: usize,
    /// Numbers the anonymous constants (reshape targets) the operator helpers add.
    pub(super) counter_hint: usize,
}

impl OnnxGraph {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            nodes: Vec::new(),
            taken_names: Default::default(),
            counter: 0,
            counter_hint: 0,
        }
    }

    /// Declares a float input of fixed shape.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> Result<Value, ExportError> {
        let name = self.claim(name)?;
        self.inputs.push(value_info(&name, ElemType::F32, shape));
        Ok(Value {
            name,
            shape: shape.to_vec(),
        })
    }

    /// Declares `value` as a float graph output called `name` (through an Identity so that the
    /// public name does not depend on which node produced it).
    pub fn output(&mut self, value: &Value, name: &str) -> Result<(), ExportError> {
        let name = self.claim(name)?;
        self.nodes.push(pb::NodeProto {
            name: format!("{name}_identity"),
            op_type: "Identity".into(),
            input: vec![value.name.clone()],
            output: vec![name.clone()],
            ..Default::default()
        });
        self.outputs
            .push(value_info(&name, ElemType::F32, &value.shape));
        Ok(())
    }

    /// A new name `<stem>_<n>` for an operator's own constant (shapes, pads, axes).
    pub(super) fn fresh(&mut self, stem: &str) -> String {
        self.counter_hint += 1;
        format!("{stem}_{}", self.counter_hint)
    }

    /// A float initializer.
    pub fn constant_f32(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<Value, ExportError> {
        check_len(name, shape, data.len())?;
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, ElemType::F32, shape, raw)
    }

    /// An int8 initializer (quantized weights, zero points).
    pub fn constant_i8(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[i8],
    ) -> Result<Value, ExportError> {
        check_len(name, shape, data.len())?;
        let raw = data.iter().map(|v| *v as u8).collect();
        self.initializer(name, ElemType::I8, shape, raw)
    }

    /// A 1-D int64 initializer (shapes, axes, permutations).
    pub fn constant_i64(&mut self, name: &str, data: &[i64]) -> Result<Value, ExportError> {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, ElemType::I64, &[data.len()], raw)
    }

    fn initializer(
        &mut self,
        name: &str,
        elem: ElemType,
        shape: &[usize],
        raw_data: Vec<u8>,
    ) -> Result<Value, ExportError> {
        let name = self.claim(name)?;
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            data_type: elem as i32,
            dims: shape.iter().map(|d| *d as i64).collect(),
            raw_data,
            ..Default::default()
        });
        Ok(Value {
            name,
            shape: shape.to_vec(),
        })
    }

    /// Adds a single-output node. `shape` is the output's static shape, which the caller knows
    /// from the operator's definition.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&Value],
        attributes: &[Attr],
        shape: &[usize],
    ) -> Result<Value, ExportError> {
        self.counter += 1;
        let name = self.claim(&format!("{}_{}", op_type.to_lowercase(), self.counter))?;
        self.nodes.push(pb::NodeProto {
            name: name.clone(),
            op_type: op_type.to_string(),
            input: inputs.iter().map(|v| v.name.clone()).collect(),
            output: vec![name.clone()],
            attribute: attributes.iter().map(Attr::to_proto).collect(),
            ..Default::default()
        });
        Ok(Value {
            name,
            shape: shape.to_vec(),
        })
    }

    /// Names must be unique across inputs, initializers and node outputs: two parameters
    /// exported under one name would silently share weights.
    fn claim(&mut self, name: &str) -> Result<String, ExportError> {
        if !self.taken_names.insert(name.to_string()) {
            return Err(ExportError::DuplicateName(name.to_string()));
        }
        Ok(name.to_string())
    }

    /// The finished model, ready to encode or to hand to tract.
    pub fn finish(self) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "vigil-train".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(pb::GraphProto {
                name: self.name,
                node: self.nodes,
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn check_len(name: &str, shape: &[usize], len: usize) -> Result<(), ExportError> {
    let expected: usize = shape.iter().product();
    if expected != len {
        return Err(ExportError::ShapeMismatch {
            name: name.to_string(),
            shape: shape.to_vec(),
            len,
        });
    }
    Ok(())
}

fn value_info(name: &str, elem: ElemType, shape: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|d| Dimension {
                            value: Some(dimension::Value::DimValue(*d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes `model` to `path` (binary protobuf).
pub fn save(model: &pb::ModelProto, path: &Path) -> Result<(), ExportError> {
    std::fs::write(path, model.encode_to_vec()).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads an ONNX file back into its protobuf form (for the quantizer).
pub fn load(path: &Path) -> Result<pb::ModelProto, ExportError> {
    let bytes = std::fs::read(path).map_err(|source| ExportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    pb::ModelProto::decode(bytes.as_slice()).map_err(|err| ExportError::Decode {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}
