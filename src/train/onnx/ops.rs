//! Typed helpers for the ONNX operators the exporters use, each computing its output shape.
//!
//! Keeping the shape arithmetic next to the operator makes a wrong shape an export error with the
//! operator's name in it, not a tract typing failure three layers later.

use super::ExportError;
use super::graph::{Attr, OnnxGraph, Value};

impl OnnxGraph {
    /// Element-wise binary operator with numpy broadcasting (`Add`, `Mul`, `Sub`, `Div`).
    pub fn binary(&mut self, op: &str, a: &Value, b: &Value) -> Result<Value, ExportError> {
        let shape = broadcast(op, &a.shape, &b.shape)?;
        self.node(op, &[a, b], &[], &shape)
    }

    pub fn add(&mut self, a: &Value, b: &Value) -> Result<Value, ExportError> {
        self.binary("Add", a, b)
    }

    pub fn mul(&mut self, a: &Value, b: &Value) -> Result<Value, ExportError> {
        self.binary("Mul", a, b)
    }

    /// Multiplies by a scalar constant.
    pub fn mul_scalar(&mut self, a: &Value, factor: f32, name: &str) -> Result<Value, ExportError> {
        let factor = self.constant_f32(name, &[], &[factor])?;
        self.mul(a, &factor)
    }

    /// Element-wise unary operator (`Relu`, `Erf`, ...).
    pub fn unary(&mut self, op: &str, a: &Value) -> Result<Value, ExportError> {
        let shape = a.shape.clone();
        self.node(op, &[a], &[], &shape)
    }

    /// `MatMul` with numpy semantics: batch dimensions broadcast, the last two multiply.
    pub fn matmul(&mut self, a: &Value, b: &Value) -> Result<Value, ExportError> {
        let mismatch = || ExportError::Incompatible {
            op: "MatMul".into(),
            shapes: vec![a.shape.clone(), b.shape.clone()],
        };
        if a.rank() < 2 || b.rank() < 2 {
            return Err(mismatch());
        }
        let (m, k) = (a.shape[a.rank() - 2], a.shape[a.rank() - 1]);
        let (k2, n) = (b.shape[b.rank() - 2], b.shape[b.rank() - 1]);
        if k != k2 {
            return Err(mismatch());
        }
        let mut shape = broadcast("MatMul", &a.shape[..a.rank() - 2], &b.shape[..b.rank() - 2])?;
        shape.extend([m, n]);
        self.node("MatMul", &[a, b], &[], &shape)
    }

    /// `Reshape` to a literal shape (no -1, no 0: the plan is fixed-shape).
    pub fn reshape(&mut self, a: &Value, shape: &[usize]) -> Result<Value, ExportError> {
        let from: usize = a.shape.iter().product();
        let to: usize = shape.iter().product();
        if from != to {
            return Err(ExportError::Incompatible {
                op: "Reshape".into(),
                shapes: vec![a.shape.clone(), shape.to_vec()],
            });
        }
        let literal: Vec<i64> = shape.iter().map(|d| *d as i64).collect();
        let name = self.fresh("shape");
        let target = self.constant_i64(&name, &literal)?;
        self.node("Reshape", &[a, &target], &[], shape)
    }

    /// `Transpose` by a permutation of the axes.
    pub fn transpose(&mut self, a: &Value, perm: &[usize]) -> Result<Value, ExportError> {
        let mut seen = vec![false; a.rank()];
        for &axis in perm {
            match seen.get_mut(axis) {
                Some(flag) if !*flag => *flag = true,
                _ => {
                    return Err(ExportError::Incompatible {
                        op: format!("Transpose{perm:?}"),
                        shapes: vec![a.shape.clone()],
                    });
                }
            }
        }
        if perm.len() != a.rank() {
            return Err(ExportError::Incompatible {
                op: format!("Transpose{perm:?}"),
                shapes: vec![a.shape.clone()],
            });
        }
        let shape: Vec<usize> = perm.iter().map(|&axis| a.shape[axis]).collect();
        let perm = perm.iter().map(|&axis| axis as i64).collect();
        self.node("Transpose", &[a], &[Attr::Ints("perm", perm)], &shape)
    }

    /// `Softmax` over one axis (opset 13+ semantics: that axis alone).
    pub fn softmax(&mut self, a: &Value, axis: usize) -> Result<Value, ExportError> {
        let axis = self.check_axis("Softmax", a, axis)?;
        let shape = a.shape.clone();
        self.node("Softmax", &[a], &[Attr::Int("axis", axis)], &shape)
    }

    /// `ReduceMean` over `axes`, keeping them as size-1 dimensions or dropping them.
    pub fn reduce_mean(
        &mut self,
        a: &Value,
        axes: &[usize],
        keep_dims: bool,
    ) -> Result<Value, ExportError> {
        let mut shape = Vec::with_capacity(a.rank());
        for (axis, &dim) in a.shape.iter().enumerate() {
            if !axes.contains(&axis) {
                shape.push(dim);
            } else if keep_dims {
                shape.push(1);
            }
        }
        for &axis in axes {
            self.check_axis("ReduceMean", a, axis)?;
        }
        let axes = axes.iter().map(|&axis| axis as i64).collect();
        self.node(
            "ReduceMean",
            &[a],
            &[
                Attr::Ints("axes", axes),
                Attr::Int("keepdims", keep_dims as i64),
            ],
            &shape,
        )
    }

    /// `Pad` in reflect mode on the last two axes of an NCHW value (torch's `ReflectionPad2d`).
    pub fn pad_reflect_2d(&mut self, a: &Value, pad: usize) -> Result<Value, ExportError> {
        let &[n, c, h, w] = a.shape.as_slice() else {
            return Err(ExportError::Incompatible {
                op: "Pad(reflect) expecting [N, C, H, W]".into(),
                shapes: vec![a.shape.clone()],
            });
        };
        if pad >= h || pad >= w {
            return Err(ExportError::Incompatible {
                op: format!("Pad(reflect, {pad}) larger than the image"),
                shapes: vec![a.shape.clone()],
            });
        }
        let p = pad as i64;
        let pads_name = self.fresh("pads");
        let pads = self.constant_i64(&pads_name, &[0, 0, p, p, 0, 0, p, p])?;
        self.node(
            "Pad",
            &[a, &pads],
            &[Attr::Str("mode", "reflect")],
            &[n, c, h + 2 * pad, w + 2 * pad],
        )
    }

    /// `Slice` of `[start, end)` along each of `axes`.
    pub fn slice(
        &mut self,
        a: &Value,
        axes: &[usize],
        ranges: &[(usize, usize)],
    ) -> Result<Value, ExportError> {
        let mut shape = a.shape.clone();
        for (&axis, &(start, end)) in axes.iter().zip(ranges) {
            self.check_axis("Slice", a, axis)?;
            if start >= end || end > shape[axis] {
                return Err(ExportError::Incompatible {
                    op: format!("Slice({start}..{end} on axis {axis})"),
                    shapes: vec![a.shape.clone()],
                });
            }
            shape[axis] = end - start;
        }
        let starts: Vec<i64> = ranges.iter().map(|r| r.0 as i64).collect();
        let ends: Vec<i64> = ranges.iter().map(|r| r.1 as i64).collect();
        let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
        let starts_name = self.fresh("starts");
        let starts = self.constant_i64(&starts_name, &starts)?;
        let ends_name = self.fresh("ends");
        let ends = self.constant_i64(&ends_name, &ends)?;
        let axes_name = self.fresh("axes");
        let axes = self.constant_i64(&axes_name, &axes)?;
        self.node("Slice", &[a, &starts, &ends, &axes], &[], &shape)
    }

    /// 1-D `Conv` of `[N, C, L]` with stride 1: `weight` is `[out, C, k]`, padded `pad.0` before
    /// and `pad.1` after, taps `dilation` apart.
    pub fn conv1d(
        &mut self,
        a: &Value,
        weight: &Value,
        bias: &Value,
        pad: (usize, usize),
        dilation: usize,
    ) -> Result<Value, ExportError> {
        let mismatch = || ExportError::Incompatible {
            op: format!("Conv1d(pads {pad:?}, dilation {dilation})"),
            shapes: vec![a.shape.clone(), weight.shape.clone(), bias.shape.clone()],
        };
        let (&[n, c, len], &[out, c_w, k]) = (a.shape.as_slice(), weight.shape.as_slice()) else {
            return Err(mismatch());
        };
        let span = dilation * k.saturating_sub(1) + 1;
        let padded = len + pad.0 + pad.1;
        if c != c_w || bias.shape != [out] || k == 0 || dilation == 0 || padded < span {
            return Err(mismatch());
        }
        let attributes = [
            Attr::Ints("kernel_shape", vec![k as i64]),
            Attr::Ints("pads", vec![pad.0 as i64, pad.1 as i64]),
            Attr::Ints("dilations", vec![dilation as i64]),
            Attr::Ints("strides", vec![1]),
        ];
        self.node(
            "Conv",
            &[a, weight, bias],
            &attributes,
            &[n, out, padded - span + 1],
        )
    }

    /// `Concat` along `axis`; every other dimension must agree.
    pub fn concat(&mut self, values: &[&Value], axis: usize) -> Result<Value, ExportError> {
        let Some(first) = values.first() else {
            return Err(ExportError::Incompatible {
                op: "Concat of nothing".into(),
                shapes: vec![],
            });
        };
        let mut shape = first.shape.clone();
        self.check_axis("Concat", first, axis)?;
        shape[axis] = 0;
        for value in values {
            let same_rank = value.rank() == first.rank();
            let agrees = same_rank
                && (0..value.rank()).all(|d| d == axis || value.shape[d] == first.shape[d]);
            if !agrees {
                return Err(ExportError::Incompatible {
                    op: format!("Concat(axis {axis})"),
                    shapes: values.iter().map(|v| v.shape.clone()).collect(),
                });
            }
            shape[axis] += value.shape[axis];
        }
        self.node("Concat", values, &[Attr::Int("axis", axis as i64)], &shape)
    }

    /// Adaptive average pooling of an NCHW value to `size × size`, for sides it divides
    /// (`AveragePool` with kernel = stride = side / size).
    pub fn adaptive_average_pool(&mut self, a: &Value, size: usize) -> Result<Value, ExportError> {
        let &[n, c, h, w] = a.shape.as_slice() else {
            return Err(ExportError::Incompatible {
                op: "AveragePool expecting [N, C, H, W]".into(),
                shapes: vec![a.shape.clone()],
            });
        };
        if size == 0 || h % size != 0 || w % size != 0 {
            return Err(ExportError::Incompatible {
                op: format!("adaptive AveragePool to {size}x{size} of a side it does not divide"),
                shapes: vec![a.shape.clone()],
            });
        }
        let (kh, kw) = (h / size, w / size);
        self.node(
            "AveragePool",
            &[a],
            &[
                Attr::Ints("kernel_shape", vec![kh as i64, kw as i64]),
                Attr::Ints("strides", vec![kh as i64, kw as i64]),
            ],
            &[n, c, size, size],
        )
    }

    fn check_axis(&self, op: &str, a: &Value, axis: usize) -> Result<i64, ExportError> {
        if axis >= a.rank() {
            return Err(ExportError::Incompatible {
                op: format!("{op}(axis {axis})"),
                shapes: vec![a.shape.clone()],
            });
        }
        Ok(axis as i64)
    }
}

/// Numpy broadcasting of two shapes.
fn broadcast(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>, ExportError> {
    let rank = a.len().max(b.len());
    let dim = |shape: &[usize], axis: usize| {
        let offset = rank - shape.len();
        if axis < offset {
            1
        } else {
            shape[axis - offset]
        }
    };
    (0..rank)
        .map(|axis| match (dim(a, axis), dim(b, axis)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(ExportError::Incompatible {
                op: op.to_string(),
                shapes: vec![a.to_vec(), b.to_vec()],
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast("Add", &[2, 3, 4], &[4]).ok(), Some(vec![2, 3, 4]));
        assert_eq!(
            broadcast("Add", &[2, 1, 4], &[3, 1]).ok(),
            Some(vec![2, 3, 4])
        );
        assert_eq!(broadcast("Add", &[], &[5]).ok(), Some(vec![5]));
        assert!(broadcast("Add", &[2, 3], &[4]).is_err());
    }

    #[test]
    fn shape_errors_name_the_operator() -> Result<(), ExportError> {
        let mut graph = OnnxGraph::new("t");
        let x = graph.input("x", &[1, 4, 6])?;
        let w = graph.constant_f32("w", &[5, 2], &[0.0; 10])?;
        let err = graph.matmul(&x, &w).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("MatMul")));
        let err = graph.reshape(&x, &[5, 5]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("Reshape")));
        assert!(graph.transpose(&x, &[0, 0, 1]).is_err());
        assert!(graph.softmax(&x, 3).is_err());
        Ok(())
    }
}
