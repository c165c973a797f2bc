use crate::internal::*;
use crate::ops::cnn::Patch;
use crate::ops::cnn::patches::ZoneScanner;
use crate::ops::nn::DataShape;
use num_traits::Zero;

/// Largest zone `process_zone_any` hands to the vectorised kernel; 9x9 is 81 taps and 11x11
/// is 121. The taps live in stack arrays of this size, two per call.
const MAX_VECTORISED_TAPS: usize = 128;

#[derive(Debug, Clone, new, Hash, PartialEq, Eq)]
pub struct DepthWise {
    patch: Patch,
    input_shape: DataShape,
    output_shape: DataShape,
    /// f32 bounds fused from the Max and Min by constants that follow (a Clip, a ReLU6), as
    /// bits so the op stays `Hash + Eq`: applied to each plane while it is still in cache
    /// instead of a separate pass over the output.
    #[new(default)]
    clamp_below: Option<u32>,
    #[new(default)]
    clamp_above: Option<u32>,
}

impl Op for DepthWise {
    fn name(&self) -> StaticName {
        "DepthWiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = vec![format!("{:?}", self.patch)];
        if let Some((below, above)) = self.clamp() {
            info.push(format!("clamped to [{below}, {above}]"));
        }
        Ok(info)
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for DepthWise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let dt = inputs[0].datum_type();
        #[cfg(target_arch = "aarch64")]
        if dt == f16::datum_type() && tract_linalg::arm64::has_fp16() {
            return unsafe {
                eval_t_aarch64fp16::<f16>(
                    self,
                    inputs,
                    |a, b| tract_linalg::arm64::add_f16(a, b),
                    |a, b| tract_linalg::arm64::mul_f16(a, b),
                )
            };
        }
        // The geometry is taken per call, not stored in the op: it also checks this call's
        // tensors (shape, plain storage, kernel and bias lengths), costs well under a
        // microsecond beside the convolution, and would otherwise join the op's Hash and Eq.
        if dt == f32::datum_type()
            && let Some(planes) = padded_planes::Geometry::of(self, &inputs)
        {
            return planes.eval(inputs, self.clamp());
        }
        let outputs = dispatch_floatlike!(Self::eval_gen(dt)(self, inputs))?;
        // Only f32 ops carry a clamp (`fuse` checks): here it is the separate pass it replaced.
        if let Some(bounds) = self.clamp() {
            let mut output = outputs.into_iter().next().context("no output")?.into_tensor();
            clamp_f32(unsafe { output.as_slice_mut_unchecked::<f32>() }, bounds);
            return Ok(tvec!(output.into_tvalue()));
        }
        Ok(outputs)
    }
}

/// `max(below)` then `min(above)`, as the Max and Min ops this replaces compute them.
fn clamp_f32(values: &mut [f32], (below, above): (f32, f32)) {
    for v in values {
        *v = v.max(below).min(above);
    }
}

impl DepthWise {
    /// The fused bounds, `(-inf, inf)` for a side with none; `None` when nothing is fused.
    fn clamp(&self) -> Option<(f32, f32)> {
        if self.clamp_below.is_none() && self.clamp_above.is_none() {
            return None;
        }
        Some((
            self.clamp_below.map_or(f32::NEG_INFINITY, f32::from_bits),
            self.clamp_above.map_or(f32::INFINITY, f32::from_bits),
        ))
    }

    fn eval_gen<T: Datum + Copy + num_traits::Zero + ndarray::LinalgScalar>(
        &self,
        inputs: TVec<TValue>,
    ) -> TractResult<TVec<TValue>> {
        unsafe { eval_t_generic::<T>(self, inputs, |a, b| a + b, |a, b| a * b) }
    }

    fn zone_scanners(&self) -> Vec<ZoneScanner<'_>> {
        self.patch.zones.iter().map(|zone| ZoneScanner::new(zone, &self.patch)).collect()
    }
}

impl TypedOp for DepthWise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        anyhow::ensure!(inputs.len() == 3);
        anyhow::ensure!(
            self.input_shape.c() == self.output_shape.c(),
            "DepthWiseConv must have same input and output channels"
        );
        anyhow::ensure!(
            self.input_shape.c().to_dim() == inputs[2].shape.volume(),
            "DepthWiseConv data has {} channels, bias has {}",
            self.input_shape.c(),
            inputs[2].shape.len()
        );
        Ok(tvec!(inputs[0].datum_type.fact(&self.output_shape.shape)))
    }

    /// A following Max or Min by a constant scalar (what a Clip or ReLU6 becomes) moves into
    /// the op for f32 channel-first convolutions, where the padded-plane path clamps each
    /// plane as it writes it.
    fn fuse(&self, model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
        use crate::ops::binary::{OptBinByScalar, TypedBinOp};
        use crate::ops::math::{Max, Min};
        rule_if!(model.outlet_fact(node.id.into())?.datum_type == f32::datum_type());
        rule_if!(!self.input_shape.fmt.c_is_last());
        rule_if!(!model.output_outlets()?.contains(&node.id.into()));
        rule_if_some!(succ = model.single_succ(node.id)?);
        let binop = if let Some(op) = succ.op_as::<TypedBinOp>() {
            &op.0
        } else if let Some(op) = succ.op_as::<OptBinByScalar>() {
            &op.binop
        } else {
            return Ok(None);
        };
        rule_if!(succ.inputs.len() == 2);
        let other = succ.inputs[if succ.inputs[0] == node.id.into() { 1 } else { 0 }];
        rule_if!(other != node.id.into());
        rule_if!(
            model.outlet_fact(succ.id.into())?.shape == model.outlet_fact(node.id.into())?.shape
        );
        rule_if_some!(constant = model.outlet_fact(other)?.konst.clone());
        rule_if!(constant.len() == 1 && constant.datum_type() == f32::datum_type());
        let bound = constant.cast_to_scalar::<f32>()?;
        rule_if!(!bound.is_nan());
        let mut op = self.clone();
        if binop.is::<Max>() {
            let below = op.clamp_below.map_or(bound, |b| f32::from_bits(b).max(bound));
            op.clamp_below = Some(below.to_bits());
        } else if binop.is::<Min>() {
            let above = op.clamp_above.map_or(bound, |b| f32::from_bits(b).min(bound));
            op.clamp_above = Some(above.to_bits());
        } else {
            return Ok(None);
        }
        Ok(Some(TypedModelPatch::fuse_with_next(model, node, op)?))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let [_input, kernel, _bias] = inputs else {
            bail!("Depthwise expects three inputs");
        };
        let n_output_points = self.patch.output_shape.iter().cloned().product::<usize>();
        Ok(tvec!((
            Cost::FMA(inputs[0].datum_type),
            kernel.shape.volume() * self.input_shape.n().unwrap_or(&1) * n_output_points
        )))
    }

    as_op!();
}

macro_rules! impl_eval {
    ($(#[$meta: meta])* $suffix: ident ) => {
        pastey::paste! {
            $(#[$meta])*
            unsafe fn [<eval_t_ $suffix>]<T: Datum + Copy + num_traits::Zero + ndarray::LinalgScalar>(
                dw: &DepthWise,
                inputs: TVec<TValue>,
                add: impl Fn(T, T) -> T + Copy + Send + Sync + 'static,
                mul: impl Fn(T, T) -> T + Copy + Send + Sync + 'static,
            ) -> TractResult<TVec<TValue>> {
                let (img, kernel, bias) = args_3!(inputs);
                let mut output = unsafe { Tensor::uninitialized::<T>(&dw.output_shape.shape)? };
                let iptr = img.as_ptr::<T>()?;
                let optr = output.as_ptr_mut::<T>()?;
                let k_stride_i = kernel.strides()[1];
                let n = *dw.input_shape.n().unwrap_or(&1);
                let n_stride_i = *dw.input_shape.n_stride().unwrap_or(&0) as isize;
                let n_stride_o = *dw.output_shape.n_stride().unwrap_or(&0) as isize;
                let c_stride_i = *dw.input_shape.c_stride() as isize;
                let c_stride_o = *dw.output_shape.c_stride() as isize;
                let bias = bias.as_ptr::<T>()?;
                let kptr = kernel.as_ptr::<T>()?;
                let c = *dw.input_shape.c() as isize;
                if dw.input_shape.fmt.c_is_last() {
                    // Every output position holds all channels contiguously, so channel blocks
                    // are disjoint across the whole image: each chunk of blocks runs the full zone
                    // walk on its own channel range. A block spans at least one cache line.
                    let channels = *dw.input_shape.c();
                    let block = (64 / T::datum_type().size_of()).max(16);
                    let (i_base, k_base, b_base, o_base) =
                        (iptr as usize, kptr as usize, bias as usize, optr as usize);
                    let total = output.len();
                    tract_linalg::multithread::par_chunks_mut(
                        &mut vec![(); channels.div_ceil(block)],
                        1,
                        total,
                        |first, blocks| {
                            let c0 = first * block;
                            let c1 = channels.min((first + blocks.len()) * block);
                            unsafe {
                                [<eval_c_inner_ $suffix>](
                                    dw,
                                    n,
                                    n_stride_i,
                                    n_stride_o,
                                    k_stride_i,
                                    i_base as *const T,
                                    k_base as *const T,
                                    b_base as *const T,
                                    o_base as *mut T,
                                    add,
                                    mul,
                                    c0,
                                    c1,
                                )
                            };
                            Ok(())
                        },
                    )?;
                    return Ok(tvec!(output.into_tvalue()));
                }
                // The (n, c) planes are disjoint and each is contiguous, so when the output is
                // laid out that way the channels split across the executor with no other
                // change: every output element keeps the arithmetic it has serially, and the
                // value it has serially. Small planes stay on the inline path -- the
                // element threshold in `par_chunks_mut` is what decides, not this call site.
                let total = output.len();
                let planes = n * c as usize;
                let plane = if planes > 0 { total / planes } else { 0 };
                if plane == 0
                    || total % plane != 0
                    || *dw.output_shape.w_stride() != 1
                    || c_stride_o != plane as isize
                {
                    unsafe {
                        let mut scanners = dw.zone_scanners();
                        for n in 0..n as isize {
                            let iptr = iptr.offset(n_stride_i * n);
                            let optr = optr.offset(n_stride_o * n);
                            for scanner in &mut scanners {
                                [<process_zone_ $suffix>](
                                    scanner, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias,
                                    optr, add, mul, 0, c,
                                )
                            }
                        }
                    }
                    return Ok(tvec!(output.into_tvalue()));
                }
                let i_base = iptr as usize;
                let k_base = kptr as usize;
                let b_base = bias as usize;
                let c_us = c as usize;
                tract_linalg::multithread::par_chunks_mut(
                    unsafe { output.as_slice_mut_unchecked::<T>() },
                    plane,
                    total,
                    |first, chunk| {
                        // `par_chunks_mut` calls the body inline, with the whole slice, when the
                        // executor is single-threaded (a one-thread pool included) or the work is
                        // under its element threshold. Keep the per-zone shape there: the channels
                        // loop inside it, so one `ZoneScanner` covers a whole zone rather than one
                        // channel of it -- the difference was a 63% tax on small planes, which is
                        // a third of the frame on the streaming models.
                        if first == 0 && chunk.len() == total {
                            let mut scanners = dw.zone_scanners();
                            unsafe {
                                for ni in 0..n as isize {
                                    let iptr = (i_base as *const T).offset(n_stride_i * ni);
                                    let optr = chunk.as_mut_ptr().offset(n_stride_o * ni);
                                    for scanner in &mut scanners {
                                        [<process_zone_ $suffix>](
                                            scanner,
                                            c_stride_i,
                                            c_stride_o,
                                            k_stride_i,
                                            iptr,
                                            k_base as *const T,
                                            b_base as *const T,
                                            optr,
                                            add,
                                            mul,
                                            0,
                                            c,
                                        )
                                    }
                                }
                            }
                            return Ok(());
                        }
                        let mut scanners = dw.zone_scanners();
                        for (ix, out) in chunk.chunks_mut(plane).enumerate() {
                            let row = first + ix;
                            let (ni, ci) = (row / c_us, row % c_us);
                            unsafe {
                                let iptr = (i_base as *const T)
                                    .offset(n_stride_i * ni as isize + c_stride_i * ci as isize);
                                let optr = out.as_mut_ptr();
                                for scanner in &mut scanners {
                                    [<process_zone_ $suffix>](
                                        scanner,
                                        0,
                                        0,
                                        k_stride_i,
                                        iptr,
                                        k_base as *const T,
                                        b_base as *const T,
                                        optr,
                                        add,
                                        mul,
                                        ci as isize,
                                        ci as isize + 1,
                                    )
                                }
                            }
                        }
                        Ok(())
                    },
                )?;
                Ok(tvec!(output.into_tvalue()))
            }

            /// Channel-last eval of channels `c0..c1`: the channel is the contiguous dim on both
            /// input and output, so one output position is a run of channel values and the tap
            /// offsets of `zone.values_offsets` already step over whole channel vectors. `kptr`
            /// is a `[1, HW, C]` kernel, `k_stride_i` (`C`) its per-tap stride.
            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            $(#[$meta])*
            unsafe fn [<eval_c_inner_ $suffix>]<T: Datum + Copy + Zero>(
                dw: &DepthWise,
                n: usize,
                n_stride_i: isize,
                n_stride_o: isize,
                k_stride_i: isize,
                iptr: *const T,
                kptr: *const T,
                bias: *const T,
                optr: *mut T,
                add: impl Fn(T, T) -> T + Copy + 'static,
                mul: impl Fn(T, T) -> T + Copy + 'static,
                c0: usize,
                c1: usize,
                ) { unsafe {
                let ker = if T::datum_type() == f32::datum_type() {
                    tract_linalg::routines::depthwise_c_f32()
                } else {
                    None
                };
                let (iptr, kptr, bias, optr) =
                    (iptr.add(c0), kptr.add(c0), bias.add(c0), optr.add(c0));
                let width = c1 - c0;
                for ni in 0..n as isize {
                    let iptr = iptr.offset(n_stride_i * ni);
                    let optr = optr.offset(n_stride_o * ni);
                    for zone in &dw.patch.zones {
                        let tap_indices: TVec<usize> =
                            zone.values_offsets.iter().map(|pair| pair.0).collect();
                        let offsets: TVec<isize> =
                            zone.values_offsets.iter().map(|pair| pair.1).collect();
                        let mut visitor = ZoneScanner::new(zone, &dw.patch);
                        while !visitor.done {
                            let iptr = iptr.offset(visitor.input_center_offset);
                            let optr = optr.offset(visitor.output_offset);
                            if let Some(ker) = ker {
                                ker(
                                    iptr as *const f32,
                                    optr as *mut f32,
                                    kptr as *const f32,
                                    &tap_indices,
                                    &offsets,
                                    bias as *const f32,
                                    width,
                                    k_stride_i as usize,
                                    visitor.inner_loop_len,
                                    visitor.inner_loop_input_full_stride,
                                    visitor.inner_loop_output_stride,
                                );
                            } else {
                                // Taps outer, channels inner: every inner loop is contiguous.
                                for i in 0..visitor.inner_loop_len as isize {
                                    let iptr =
                                        iptr.offset(visitor.inner_loop_input_full_stride * i);
                                    let out = std::slice::from_raw_parts_mut(
                                        optr.offset(visitor.inner_loop_output_stride * i),
                                        width,
                                    );
                                    out.copy_from_slice(std::slice::from_raw_parts(bias, width));
                                    for (&kix, &off) in tap_indices.iter().zip(&offsets) {
                                        let k = std::slice::from_raw_parts(
                                            kptr.offset(k_stride_i * kix as isize),
                                            width,
                                        );
                                        let x = std::slice::from_raw_parts(iptr.offset(off), width);
                                        for c in 0..width {
                                            out[c] = add(out[c], mul(k[c], x[c]));
                                        }
                                    }
                                }
                            }
                            visitor.next_non_inner_axis()
                        }
                    }
                }
            }}

            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            $(#[$meta])*
            unsafe fn [<process_zone_ $suffix>]<T: Datum + Copy + Zero>(
                visitor: &mut ZoneScanner,
                c_stride_i: isize,
                c_stride_o: isize,
                k_stride_i: isize,
                iptr: *const T,
                kptr: *const T,
                bias: *const T,
                optr: *mut T,
                add: impl Fn(T, T) -> T + Copy + 'static,
                mul: impl Fn(T, T) -> T + Copy + 'static,
                c_start: isize,
                c_end: isize,
                ) { unsafe {
                /*
                   if zone.values_offsets.len() == 2 {
                   self.process_zone_n::<T, 2, 4>(
                   zone, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias, optr,
                   )
                   } else if zone.values_offsets.len() == 3 {
                   dw.process_zone_n::<T, 3, 4>(
                   zone, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias, optr,
                   )
                   } else */
                match visitor.zone.values_offsets.len() {
                    1 => [<process_zone_n_ $suffix>]::<T, 1, 4>(
                        visitor, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias, optr, add,
                        mul, c_start, c_end,
                    ),
                    2 => [<process_zone_n_ $suffix>]::<T, 2, 4>(
                        visitor, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias, optr, add,
                        mul, c_start, c_end,
                    ),
                    3 => [<process_zone_n_ $suffix>]::<T, 3, 4>(
                        visitor, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias, optr, add,
                        mul, c_start, c_end,
                    ),
                    4 => [<process_zone_n_ $suffix>]::<T, 4, 4>(
                        visitor, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias, optr, add,
                        mul, c_start, c_end,
                    ),
                    // f32 zones go to the row kernel (tract-linalg's on wasm, the portable
                    // one elsewhere); other types keep the plain inline walk below.
                    _ if T::datum_type() == f32::datum_type() && c_stride_o != 1 =>
                    {
                        [<process_zone_any_ $suffix>](
                            visitor, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias, optr,
                            add, mul, c_start, c_end,
                        )
                    }
                    // A call covering many channels amortises a fresh scanner. A single-channel
                    // call (the parallel path, one per plane) reuses the caller's allocation, but
                    // walks it as a local: through `&mut` the inner loop runs measurably slower.
                    _ if c_end - c_start > 1 => visitor.zone.visit_output(visitor.patch, |visitor| {
                        for c in c_start..c_end {
                            let iptr = iptr.offset(c_stride_i * c);
                            let optr = optr.offset(c_stride_o * c);
                            let kptr = kptr.offset(k_stride_i * c);
                            [<inner_loop_ $suffix>]::<T>(iptr, kptr, bias, optr, c, visitor, add, mul)
                        }
                    }),
                    _ => [<process_zone_one_channel_ $suffix>](
                        visitor, c_stride_i, c_stride_o, k_stride_i, iptr, kptr, bias, optr, add,
                        mul, c_start,
                    ),
                }
            }}

            /// One channel of a generic (more than four taps) zone, the parallel path's per-plane
            /// call. The caller's scanner is walked as a local, its buffer moved out and back:
            /// through `&mut` the inner loop runs measurably slower.
            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            $(#[$meta])*
            unsafe fn [<process_zone_one_channel_ $suffix>]<T: Datum + Copy + Zero>(
                visitor: &mut ZoneScanner,
                c_stride_i: isize,
                c_stride_o: isize,
                k_stride_i: isize,
                iptr: *const T,
                kptr: *const T,
                bias: *const T,
                optr: *mut T,
                add: impl Fn(T, T) -> T + Copy + 'static,
                mul: impl Fn(T, T) -> T + Copy + 'static,
                c: isize,
                ) { unsafe {
                let mut local = ZoneScanner {
                    output_coords: std::mem::take(&mut visitor.output_coords),
                    inner_loop_output_range: visitor.inner_loop_output_range.clone(),
                    ..*visitor
                };
                local.reset();
                while !local.done() {
                    let iptr = iptr.offset(c_stride_i * c);
                    let optr = optr.offset(c_stride_o * c);
                    let kptr = kptr.offset(k_stride_i * c);
                    [<inner_loop_ $suffix>]::<T>(iptr, kptr, bias, optr, c, &local, add, mul);
                    local.next();
                }
                visitor.output_coords = local.output_coords;
            }}

            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            $(#[$meta])*
            unsafe fn [<process_zone_n_ $suffix>]<T: Datum + Copy + Zero, const N: usize, const UNROLL: usize>(
                visitor: &mut ZoneScanner,
                c_stride_i: isize,
                c_stride_o: isize,
                k_stride_i: isize,
                iptr: *const T,
                kptr: *const T,
                bias: *const T,
                optr: *mut T,
                add: impl Fn(T, T) -> T,
                mul: impl Fn(T, T) -> T,
                c_start: isize,
                c_end: isize,
                ) { unsafe {
                let zone = visitor.zone;
                let mut ioffset = [0isize; N];
                for i in 0..N {
                    ioffset[i] = zone.values_offsets[i].1;
                }
                let mut k = [T::zero(); N];
                let ker = (T::datum_type() == f32::datum_type()).then(depthwise_w_f32_kernel);
                for c in c_start..c_end {
                    visitor.reset();
                    let iptr = iptr.offset(c_stride_i * c);
                    let optr = optr.offset(c_stride_o * c);
                    for n in 0..N {
                        k[n] = *kptr.offset(k_stride_i * c).add(zone.values_offsets[n].0);
                    }
                    let bias = *bias.offset(c);
                    while !visitor.done {
                        let iptr = iptr.offset(visitor.input_center_offset);
                        let optr = optr.offset(visitor.output_offset);
                        if let Some(ker) = ker
                            && visitor.inner_loop_output_stride == 1
                            && visitor.inner_loop_input_full_stride >= 1
                        {
                            let k_f32 = *(&k as *const [T; N] as *const [f32; N]);
                            ker(
                                iptr as *const f32,
                                optr as *mut f32,
                                &k_f32,
                                &ioffset,
                                *(&bias as *const T as *const f32),
                                visitor.inner_loop_len,
                                visitor.inner_loop_input_full_stride,
                            );
                            visitor.next_non_inner_axis();
                            continue;
                        }
                        let mut i = 0isize;
                        while i + (UNROLL as isize) < visitor.inner_loop_len as isize {
                            let iptr = iptr.offset(visitor.inner_loop_input_full_stride * i);
                            let optr = optr.offset(visitor.inner_loop_output_stride * i);
                            let mut iptrs = [std::ptr::null(); UNROLL];
                            for u in 0..UNROLL {
                                iptrs[u] = iptr.offset(visitor.inner_loop_input_full_stride * u as isize);
                            }
                            let mut optrs = [std::ptr::null_mut(); UNROLL];
                            for u in 0..UNROLL {
                                optrs[u] = optr.offset(visitor.inner_loop_output_stride * u as isize);
                            }
                            let mut is = [[T::zero(); N]; UNROLL];
                            for u in 0..UNROLL {
                                for n in 0..N {
                                    is[u][n] = *iptrs[u].offset(ioffset[n]);
                                }
                            }
                            let mut ps = [[T::zero(); N]; UNROLL];
                            for u in 0..UNROLL {
                                for n in 0..N {
                                    ps[u][n] = mul(is[u][n], k[n]);
                                }
                            }
                            for u in 0..UNROLL {
                                let mut sum = bias;
                                for n in 0..N {
                                    sum = add(sum, ps[u][n]);
                                }
                                *optrs[u] = sum;
                            }
                            i += UNROLL as isize;
                        }
                        while i < visitor.inner_loop_len as isize {
                            let iptr = iptr.offset(visitor.inner_loop_input_full_stride * i);
                            let optr = optr.offset(visitor.inner_loop_output_stride * i);
                            let mut is = [T::zero(); N];
                            for n in 0..N {
                                is[n] = *iptr.offset(ioffset[n]);
                            }
                            let mut p = [T::zero(); N];
                            for n in 0..N {
                                p[n] = mul(is[n], k[n]);
                            }
                            let mut sum = bias;
                            for n in 0..N {
                                sum = add(sum, p[n]);
                            }
                            *optr = sum;
                            i += 1;
                        }
                        visitor.next_non_inner_axis()
                    }
                }
            }}

            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            $(#[$meta])*
            unsafe fn [<process_zone_any_ $suffix>]<T: Datum + Copy + Zero>(
                scanner: &mut ZoneScanner,
                c_stride_i: isize,
                c_stride_o: isize,
                k_stride_i: isize,
                iptr: *const T,
                kptr: *const T,
                bias: *const T,
                optr: *mut T,
                add: impl Fn(T, T) -> T + Copy,
                mul: impl Fn(T, T) -> T + Copy,
                c_start: isize,
                c_end: isize,
                ) { unsafe {
                // A zone whose tap count the const-generic paths cannot name -- which is every
                // 3x3 and 5x5 convolution, at nine and twenty-five taps -- still walks the same
                // inner loop, so hand it the whole tap list. The kernel takes the count at
                // runtime; it was the compile-time count that kept this on the scalar path.
                let ker = (T::datum_type() == f32::datum_type()).then(depthwise_w_f32_kernel);
                let zone = scanner.zone;
                let taps = zone.values_offsets.len();
                let Some(ker) = ker.filter(|_| taps <= MAX_VECTORISED_TAPS) else {
                    zone.visit_output(scanner.patch, |visitor| {
                        for c in c_start..c_end {
                            let iptr = iptr.offset(c_stride_i * c);
                            let optr = optr.offset(c_stride_o * c);
                            let kptr = kptr.offset(k_stride_i * c);
                            [<inner_loop_ $suffix>]::<T>(iptr, kptr, bias, optr, c, visitor, add, mul)
                        }
                    });
                    return;
                };
                let mut k = [T::zero(); MAX_VECTORISED_TAPS];
                let mut ioffset = [0isize; MAX_VECTORISED_TAPS];
                for (ix, (_, offset)) in zone.values_offsets.iter().enumerate() {
                    ioffset[ix] = *offset;
                }
                let ioffset = &ioffset[..taps];
                // Walked as a local, as in `process_zone`'s single-channel arm.
                let mut visitor = ZoneScanner {
                    output_coords: std::mem::take(&mut scanner.output_coords),
                    inner_loop_output_range: scanner.inner_loop_output_range.clone(),
                    ..*scanner
                };
                for c in c_start..c_end {
                    let iptr = iptr.offset(c_stride_i * c);
                    let optr = optr.offset(c_stride_o * c);
                    let kptr = kptr.offset(k_stride_i * c);
                    for (ix, (ker_ix, _)) in zone.values_offsets.iter().enumerate() {
                        k[ix] = *kptr.add(*ker_ix);
                    }
                    // `T` is f32 on the only path that gets here, checked above: the kernel reads
                    // the taps and the bias as f32, so re-read the buffers rather than convert.
                    let k_f32 = std::slice::from_raw_parts(k.as_ptr() as *const f32, taps);
                    let bias_t = *bias.offset(c);
                    let bias_f32 = *(bias as *const T as *const f32).offset(c);
                    visitor.reset();
                    while !visitor.done {
                        let iptr = iptr.offset(visitor.input_center_offset);
                        let optr = optr.offset(visitor.output_offset);
                        if visitor.inner_loop_output_stride == 1
                            && visitor.inner_loop_input_full_stride >= 1
                        {
                            ker(
                                iptr as *const f32,
                                optr as *mut f32,
                                k_f32,
                                ioffset,
                                bias_f32,
                                visitor.inner_loop_len,
                                visitor.inner_loop_input_full_stride,
                            );
                            visitor.next_non_inner_axis();
                            continue;
                        }
                        let mut i = 0isize;
                        while i < visitor.inner_loop_len as isize {
                            let iptr = iptr.offset(visitor.inner_loop_input_full_stride * i);
                            let optr = optr.offset(visitor.inner_loop_output_stride * i);
                            let mut sum = bias_t;
                            for n in 0..taps {
                                sum = add(sum, mul(k[n], *iptr.offset(ioffset[n])));
                            }
                            *optr = sum;
                            i += 1;
                        }
                        visitor.next_non_inner_axis()
                    }
                }
                scanner.output_coords = visitor.output_coords;
            }}

            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            $(#[$meta])*
            unsafe fn [<inner_loop_ $suffix>]<T: Datum + Copy>(
                iptr: *const T,
                kptr: *const T,
                bias: *const T,
                optr: *mut T,
                c: isize,
                visitor: &ZoneScanner,
                add: impl Fn(T, T) -> T,
                mul: impl Fn(T, T) -> T,
                ) { unsafe {
                let mut sum = *bias.offset(c);
                let mut iter = visitor.valid_offsets_ker_in();
                if iter.size_hint() == (3, Some(3)) {
                    let (ix, v) = iter.next().unwrap();
                    let k0 = *kptr.add(ix);
                    let i0 = *iptr.offset(v);
                    let (ix, v) = iter.next().unwrap();
                    let k1 = *kptr.add(ix);
                    let i1 = *iptr.offset(v);
                    let (ix, v) = iter.next().unwrap();
                    let k2 = *kptr.add(ix);
                    let i2 = *iptr.offset(v);
                    sum = add(add(add(sum, mul(k0, i0)), mul(k1, i1)), mul(k2, i2));
                } else {
                    for (ix, v) in iter {
                        let k = *kptr.add(ix);
                        let i = *iptr.offset(v);
                        sum = add(sum, mul(k, i));
                    }
                }
                let optr = optr.offset(visitor.output_offset);
                *optr = sum;
            }}
        }
    }
}

impl_eval!(generic);
impl_eval! {
#[target_feature(enable = "fp16")]
#[cfg(target_arch = "aarch64")]
aarch64fp16
}

//#[target_feature(enable = "fp16")] impl_eval!(aarch64fp16);

/* partial alternative impl that may be relevant when simd gets better */

/*
#[inline(never)]
unsafe fn process_zone_4_f32(
&self,
zone: &Zone,
c_stride_i: isize,
c_stride_o: isize,
k_stride_i: isize,
iptr: *const f32,
kptr: *const f32,
bias: *const f32,
optr: *mut f32,
) {
use std::simd::*;
let mut visitor = ZoneScanner::new(zone, &self.patch);
let ioffset0 = zone.values_offsets[0].1;
let ioffset1 = zone.values_offsets[1].1;
let ioffset2 = zone.values_offsets[2].1;
let ioffset3 = zone.values_offsets[3].1;
for c in 0..*self.input_shape.c() as isize {
visitor.reset();
let kptr = kptr.offset(k_stride_i * c);
let iptr = iptr.offset(c_stride_i * c);
let optr = optr.offset(c_stride_o * c);
let k0 = *kptr.offset(zone.values_offsets[0].0 as isize);
let k1 = *kptr.offset(zone.values_offsets[1].0 as isize);
let k2 = *kptr.offset(zone.values_offsets[2].0 as isize);
let k3 = *kptr.offset(zone.values_offsets[3].0 as isize);
let k0 = f32x4::splat(k0);
let k1 = f32x4::splat(k1);
let k2 = f32x4::splat(k2);
let k3 = f32x4::splat(k3);
let bias = f32x4::splat(*bias.offset(c));
while !visitor.done {
let iptr = iptr.offset(visitor.input_center_offset);
let optr = optr.offset(visitor.output_offset);
let mut i  = 0;
while i + 4 <
for i in 0..visitor.inner_loop_len as isize {
let iptr = iptr.offset(visitor.inner_loop_input_full_stride * i);
let optr = optr.offset(visitor.inner_loop_output_stride * i);
let i0 = *iptr.offset(ioffset0);
let i1 = *iptr.offset(ioffset1);
let i2 = *iptr.offset(ioffset2);
let i3 = *iptr.offset(ioffset3);
let i = f32x4::from_array([i0, i1, i2, i3]);
let p = (i * k).reduce_sum();
let sum = bias + p;
     *optr = sum
     }
     visitor.next_non_inner_axis()
     }
     }
     }
     */

/*
#[inline(never)]
unsafe fn process_zone_4_f32(
&self,
zone: &Zone,
c_stride_i: isize,
c_stride_o: isize,
k_stride_i: isize,
iptr: *const f32,
kptr: *const f32,
bias: *const f32,
optr: *mut f32,
) {
use std::simd::*;
let mut visitor = ZoneScanner::new(zone, &self.patch);
let ioffset0 = zone.values_offsets[0].1;
let ioffset1 = zone.values_offsets[1].1;
let ioffset2 = zone.values_offsets[2].1;
let ioffset3 = zone.values_offsets[3].1;
for c in 0..*self.input_shape.c() as isize {
visitor.reset();
let kptr = kptr.offset(k_stride_i * c);
let iptr = iptr.offset(c_stride_i * c);
let optr = optr.offset(c_stride_o * c);
let k0 = *kptr.offset(zone.values_offsets[0].0 as isize);
let k1 = *kptr.offset(zone.values_offsets[1].0 as isize);
let k2 = *kptr.offset(zone.values_offsets[2].0 as isize);
let k3 = *kptr.offset(zone.values_offsets[3].0 as isize);
let k = f32x4::from_array([k0, k1, k2, k3]);
let bias = *bias.offset(c);
while !visitor.done {
let iptr = iptr.offset(visitor.input_center_offset);
let optr = optr.offset(visitor.output_offset);
for i in 0..visitor.inner_loop_len as isize {
let iptr = iptr.offset(visitor.inner_loop_input_full_stride * i);
let optr = optr.offset(visitor.inner_loop_output_stride * i);
let i0 = *iptr.offset(ioffset0);
let i1 = *iptr.offset(ioffset1);
let i2 = *iptr.offset(ioffset2);
let i3 = *iptr.offset(ioffset3);
let i = f32x4::from_array([i0, i1, i2, i3]);
let p = (i * k).reduce_sum();
let sum = bias + p;
     *optr = sum
     }
     visitor.next_non_inner_axis()
     }
     }
     }
     */

/*
#[inline(never)]
unsafe fn process_zone_4<T: Datum + Copy + ndarray::LinalgScalar>(
&self,
zone: &Zone,
c_stride_i: isize,
c_stride_o: isize,
k_stride_i: isize,
iptr: *const T,
kptr: *const T,
bias: *const T,
optr: *mut T,
) {
let mut visitor = ZoneScanner::new(zone, &self.patch);
let ioffset0 = zone.values_offsets[0].1;
let ioffset1 = zone.values_offsets[1].1;
let ioffset2 = zone.values_offsets[2].1;
let ioffset3 = zone.values_offsets[3].1;
for c in 0..*self.input_shape.c() as isize {
visitor.reset();
let kptr = kptr.offset(k_stride_i * c);
let iptr = iptr.offset(c_stride_i * c);
let optr = optr.offset(c_stride_o * c);
let k0 = *kptr.offset(zone.values_offsets[0].0 as isize);
let k1 = *kptr.offset(zone.values_offsets[1].0 as isize);
let k2 = *kptr.offset(zone.values_offsets[2].0 as isize);
let k3 = *kptr.offset(zone.values_offsets[3].0 as isize);
let bias = *bias.offset(c);
while !visitor.done {
let iptr = iptr.offset(visitor.input_center_offset);
let optr = optr.offset(visitor.output_offset);
for i in 0..visitor.inner_loop_len as isize {
let iptr = iptr.offset(visitor.inner_loop_input_full_stride * i);
let optr = optr.offset(visitor.inner_loop_output_stride * i);
let i0 = *iptr.offset(ioffset0);
let i1 = *iptr.offset(ioffset1);
let i2 = *iptr.offset(ioffset2);
let i3 = *iptr.offset(ioffset3);
let p0 = i0 * k0;
let p1 = i1 * k1;
let p2 = i2 * k2;
let p3 = i3 * k3;
let sum = bias + p0 + p1 + p2 + p3;
     *optr = sum
     }
     visitor.next_non_inner_axis()
     }
     }
     }
     */

/// Channel-first f32 2-D depthwise convolution, one zero-padded plane at a time.
///
/// The zone walk splits every plane into up to nine zones (corners, edges, interior) and calls a
/// kernel per zone row: on the 14x14 and 7x7 planes of a MobileNet's last blocks that overhead,
/// not arithmetic, is the time (1-3 GMAC/s measured, against 12 on 112x112 planes). Copying the
/// plane into a zero-bordered buffer makes every output point an interior point with the same
/// taps, and laying the padded rows end to end makes the whole plane one row kernel call: the
/// points that fall on the padding columns are computed and dropped (two of every `w + 2` for a
/// 3x3 kernel). A stride `(sh, sw)` splits the padded plane into `sh * sw` phases (row `r`,
/// column `x` goes to phase `(r % sh, x % sw)` at `(r / sh, x / sw)`), after which every stride
/// reads like stride 1: consecutive values, one call per plane.
mod padded_planes {
    use super::*;

    pub(super) struct Geometry {
        channels: usize,
        batch: usize,
        in_hw: (usize, usize),
        out_hw: (usize, usize),
        pad_before: (usize, usize),
        strides: (usize, usize),
        /// Rows and columns of one phase: the padded extent divided by the stride, rounded up.
        phase_hw: (usize, usize),
        /// One offset per tap into the phased plane, row-major over the kernel like the
        /// kernel's own taps.
        offsets: Vec<isize>,
        taps: usize,
        kernel: tract_linalg::routines::DepthwiseWF32,
    }

    impl Geometry {
        /// `None` where the op is not a plain channel-first 2-D convolution on contiguous
        /// tensors, or has more taps than the kernel's stack arrays: those keep the zone walk.
        pub(super) fn of(dw: &DepthWise, inputs: &[TValue]) -> Option<Geometry> {
            let kernel = depthwise_w_f32_kernel();
            let (ishape, oshape) = (&dw.input_shape, &dw.output_shape);
            if ishape.fmt.c_is_last() || ishape.hw_rank() != 2 {
                return None;
            }
            let spec = &dw.patch.spec;
            let (kh, kw) = (spec.kernel_shape[0], spec.kernel_shape[1]);
            let (dh, dw_) = (spec.dilations[0], spec.dilations[1]);
            let (sh, sw) = (spec.strides[0], spec.strides[1]);
            let taps = kh * kw;
            let channels = *ishape.c();
            let [img, k, bias] = inputs else { return None };
            let contiguous = |shape: &DataShape| {
                *shape.w_stride() == 1
                    && *shape.h_stride() == shape.hw_dims()[1]
                    && *shape.c_stride() == shape.hw_dims()[0] * shape.hw_dims()[1]
            };
            let in_hw = (ishape.hw_dims()[0], ishape.hw_dims()[1]);
            let out_hw = (oshape.hw_dims()[0], oshape.hw_dims()[1]);
            if taps == 0
                || taps > MAX_VECTORISED_TAPS
                || out_hw.0 == 0
                || out_hw.1 == 0
                || !contiguous(ishape)
                || !contiguous(oshape)
                || img.shape() != &*ishape.shape
                || [img, k, bias].iter().any(|t| t.as_plain_ram().is_none())
                || k.len() != channels * taps
                || bias.len() != channels
                || dw.patch.pad_before.len() != 2
            {
                return None;
            }
            let pad_before = (dw.patch.pad_before[0], dw.patch.pad_before[1]);
            // The padded extent: what the last window reaches, and at least the whole input
            // (padding after the input may be more or less than the last window needs).
            let extent =
                |out: usize, stride: usize, k: usize, d: usize, pad: usize, input: usize| {
                    ((out - 1) * stride + (k - 1) * d + 1).max(pad + input)
                };
            let phase_hw = (
                extent(out_hw.0, sh, kh, dh, pad_before.0, in_hw.0).div_ceil(sh),
                extent(out_hw.1, sw, kw, dw_, pad_before.1, in_hw.1).div_ceil(sw),
            );
            let phase_size = phase_hw.0 * phase_hw.1;
            let offsets: Vec<isize> = (0..kh)
                .flat_map(|y| (0..kw).map(move |x| (y * dh, x * dw_)))
                .map(|(r, x)| {
                    let phase = (r % sh) * sw + x % sw;
                    (phase * phase_size + (r / sh) * phase_hw.1 + x / sw) as isize
                })
                .collect();
            // The bound the kernel calls rely on, checked rather than only argued: the last
            // flat point's furthest tap stays inside the phases (else keep the zone walk).
            let len = (out_hw.0 - 1) * phase_hw.1 + out_hw.1;
            let furthest = offsets.iter().copied().max().unwrap_or(0) as usize + len - 1;
            if furthest >= sh * sw * phase_size {
                return None;
            }
            Some(Geometry {
                channels,
                batch: ishape.n().copied().unwrap_or(1),
                in_hw,
                out_hw,
                pad_before,
                strides: (sh, sw),
                phase_hw,
                offsets,
                taps,
                kernel,
            })
        }

        pub(super) fn eval(
            &self,
            inputs: TVec<TValue>,
            clamp: Option<(f32, f32)>,
        ) -> TractResult<TVec<TValue>> {
            let (img, kernel, bias) = args_3!(inputs);
            let out_shape: TVec<usize> = if img.rank() == 4 {
                tvec!(self.batch, self.channels, self.out_hw.0, self.out_hw.1)
            } else {
                tvec!(self.channels, self.out_hw.0, self.out_hw.1)
            };
            let mut output = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
            let (img, kernel, bias) = (
                img.try_as_plain_ram()?.as_slice::<f32>()?,
                kernel.try_as_plain_ram()?.as_slice::<f32>()?,
                bias.try_as_plain_ram()?.as_slice::<f32>()?,
            );
            let plane_in = self.in_hw.0 * self.in_hw.1;
            let plane_out = self.out_hw.0 * self.out_hw.1;
            let total = output.len();
            tract_linalg::multithread::par_chunks_mut(
                // Every point is written below: each plane's rows are copied out whole.
                unsafe { output.as_slice_mut_unchecked::<f32>() },
                plane_out,
                total,
                |first, chunk| {
                    let mut scratch = Scratch::new(self);
                    for (ix, out) in chunk.chunks_mut(plane_out).enumerate() {
                        let plane = first + ix;
                        let c = plane % self.channels;
                        self.plane(
                            &mut scratch,
                            &img[plane * plane_in..][..plane_in],
                            &kernel[c * self.taps..][..self.taps],
                            bias[c],
                            out,
                        );
                        if let Some(bounds) = clamp {
                            clamp_f32(out, bounds);
                        }
                    }
                    Ok(())
                },
            )?;
            Ok(tvec!(output.into_tvalue()))
        }

        fn plane(
            &self,
            scratch: &mut Scratch,
            input: &[f32],
            taps: &[f32],
            bias: f32,
            out: &mut [f32],
        ) {
            let (ih, iw) = self.in_hw;
            let (oh, ow) = self.out_hw;
            let (sh, sw) = self.strides;
            let (pad_y, pad_x) = self.pad_before;
            let wq = self.phase_hw.1;
            let phase_size = self.phase_hw.0 * wq;
            for y in 0..ih {
                let row = &input[y * iw..][..iw];
                let r = pad_y + y;
                let row_start = (r % sh) * sw * phase_size + (r / sh) * wq;
                if sw == 1 {
                    scratch.padded[row_start + pad_x..][..iw].copy_from_slice(row);
                    continue;
                }
                if sw == 2 {
                    // The usual downsampling stride, as pairs the compiler turns into shuffles:
                    // input column 0 lands in phase `pad_x % 2`, column 1 in the other.
                    let first = row_start + (pad_x % 2) * phase_size + pad_x / 2;
                    let second = row_start + (1 - pad_x % 2) * phase_size + (pad_x + 1) / 2;
                    let pairs = iw / 2;
                    let (a, b) = if first < second {
                        let (lo, hi) = scratch.padded.split_at_mut(second);
                        (&mut lo[first..][..pairs + iw % 2], &mut hi[..pairs])
                    } else {
                        let (lo, hi) = scratch.padded.split_at_mut(first);
                        (&mut hi[..pairs + iw % 2], &mut lo[second..][..pairs])
                    };
                    for ((pair, a), b) in row.chunks_exact(2).zip(a.iter_mut()).zip(b.iter_mut()) {
                        *a = pair[0];
                        *b = pair[1];
                    }
                    if iw % 2 == 1 {
                        a[pairs] = row[iw - 1];
                    }
                    continue;
                }
                // Column phase `p` takes the input columns `x` with `(pad_x + x) % sw == p`:
                // every `sw`-th from the first such `x`, into consecutive columns.
                for phase in 0..sw {
                    let first = (phase + sw - pad_x % sw) % sw;
                    if first >= iw {
                        continue;
                    }
                    let start = row_start + phase * phase_size + (pad_x + first) / sw;
                    let values = row[first..].iter().step_by(sw);
                    for (slot, &v) in scratch.padded[start..].iter_mut().zip(values) {
                        *slot = v;
                    }
                }
            }
            // Safety: `Scratch::new` sized `padded` to all phases. Output point `(oy, ox)` is
            // flat point `oy * wq + ox`, and its taps read phase rows `oy + ky * dh / sh` and
            // columns `ox + kx * dw / sw`, inside the phase by construction of `extent`; the
            // points with `ox >= ow` (dropped) read on into the next row, and the last one read,
            // `(oh - 1) * wq + ow - 1` past the largest offset, is still inside its phase.
            let len = (oh - 1) * wq + ow;
            unsafe {
                (self.kernel)(
                    scratch.padded.as_ptr(),
                    scratch.rows.as_mut_ptr(),
                    taps,
                    &self.offsets,
                    bias,
                    len,
                    1,
                )
            };
            for y in 0..oh {
                out[y * ow..][..ow].copy_from_slice(&scratch.rows[y * wq..][..ow]);
            }
        }
    }

    /// One worker's buffers: the phased padded plane (its border is written once, as zeros,
    /// and never again: every plane writes the same interior points) and the computed rows.
    struct Scratch {
        padded: Vec<f32>,
        rows: Vec<f32>,
    }

    impl Scratch {
        fn new(geometry: &Geometry) -> Scratch {
            let (hq, wq) = geometry.phase_hw;
            let (oh, ow) = geometry.out_hw;
            let phases = geometry.strides.0 * geometry.strides.1;
            Scratch { padded: vec![0.0; phases * hq * wq], rows: vec![0.0; (oh - 1) * wq + ow] }
        }
    }
}

/// The row kernel for zones along a contiguous output axis: tract-linalg's where it has one
/// (wasm), else the portable one below, so there always is one. Every f32 3x3 and 5x5 zone
/// goes through it; before the portable kernel those zones ran one scalar multiply-add per
/// tap and point off wasm.
fn depthwise_w_f32_kernel() -> tract_linalg::routines::DepthwiseWF32 {
    tract_linalg::routines::depthwise_w_f32().unwrap_or_else(portable_w::kernel)
}

/// A portable `DepthwiseWF32`: plain Rust the compiler vectorises, built once for the target's
/// baseline (SSE2 on x86_64, NEON on aarch64) and, on x86_64, once more with AVX2 and FMA,
/// picked at run time. Same contract as tract-linalg's wasm kernel: `len` output points, each
/// `bias` plus every `taps[t] * input[offsets[t] + i * in_stride]`, taps summed in order.
mod portable_w {
    use tract_linalg::routines::DepthwiseWF32;

    /// Output points per block: 32 independent accumulators hide the multiply-add latency
    /// (4 AVX vectors, 8 SSE/NEON vectors) and each tap's broadcast is paid once per block.
    const BLOCK: usize = 32;

    pub(super) fn kernel() -> DepthwiseWF32 {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return x86_64_fma;
        }
        baseline
    }

    /// # Safety
    /// As tract-linalg's `depthwise_w_f32`: every `input.offset(offsets[t] + i * in_stride)`
    /// readable for `i < len`, `len` points writable at `output`, `taps` as long as `offsets`.
    pub(super) unsafe fn baseline(
        input: *const f32,
        output: *mut f32,
        taps: &[f32],
        offsets: &[isize],
        bias: f32,
        len: usize,
        in_stride: isize,
    ) {
        unsafe { rows::<false>(input, output, taps, offsets, bias, len, in_stride) }
    }

    /// # Safety
    /// As [`baseline`], on a CPU with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn x86_64_fma(
        input: *const f32,
        output: *mut f32,
        taps: &[f32],
        offsets: &[isize],
        bias: f32,
        len: usize,
        in_stride: isize,
    ) {
        unsafe { rows::<true>(input, output, taps, offsets, bias, len, in_stride) }
    }

    /// Fused where the build asked for FMA (one rounding per tap, as the wasm and ARM kernels of
    /// tract-linalg do); mul then add otherwise, as the scalar path does.
    #[inline(always)]
    fn madd<const FMA: bool>(acc: f32, tap: f32, x: f32) -> f32 {
        if FMA { x.mul_add(tap, acc) } else { acc + tap * x }
    }

    #[inline(always)]
    unsafe fn rows<const FMA: bool>(
        input: *const f32,
        output: *mut f32,
        taps: &[f32],
        offsets: &[isize],
        bias: f32,
        len: usize,
        in_stride: isize,
    ) {
        unsafe {
            // Strides 1 and 2 are the convolutions networks use (stride 2 downsamples); a
            // compile-time stride lets the loads vectorise (stride 2 as a load and a shuffle).
            let done = match in_stride {
                1 => blocks::<FMA, 1>(input, output, taps, offsets, bias, len),
                2 => blocks::<FMA, 2>(input, output, taps, offsets, bias, len),
                _ => 0,
            };
            for i in done..len {
                let mut acc = bias;
                for (&tap, &offset) in taps.iter().zip(offsets) {
                    acc = madd::<FMA>(acc, tap, *input.offset(offset + i as isize * in_stride));
                }
                *output.add(i) = acc;
            }
        }
    }

    /// The points that fill whole blocks of 32, then of 8, then of 4; returns how many were
    /// written. No read goes past the last point's own taps (`offsets[t] + (len - 1) * S`).
    #[inline(always)]
    unsafe fn blocks<const FMA: bool, const S: usize>(
        input: *const f32,
        output: *mut f32,
        taps: &[f32],
        offsets: &[isize],
        bias: f32,
        len: usize,
    ) -> usize {
        unsafe {
            let mut i = 0;
            while i + BLOCK <= len {
                block::<FMA, S, BLOCK>(input, output, taps, offsets, bias, i);
                i += BLOCK;
            }
            while i + 8 <= len {
                block::<FMA, S, 8>(input, output, taps, offsets, bias, i);
                i += 8;
            }
            while i + 4 <= len {
                block::<FMA, S, 4>(input, output, taps, offsets, bias, i);
                i += 4;
            }
            i
        }
    }

    #[inline(always)]
    unsafe fn block<const FMA: bool, const S: usize, const B: usize>(
        input: *const f32,
        output: *mut f32,
        taps: &[f32],
        offsets: &[isize],
        bias: f32,
        from: usize,
    ) {
        unsafe {
            let mut acc = [bias; B];
            for (&tap, &offset) in taps.iter().zip(offsets) {
                let x = std::slice::from_raw_parts(
                    input.offset(offset + (from * S) as isize),
                    (B - 1) * S + 1,
                );
                for j in 0..B {
                    acc[j] = madd::<FMA>(acc[j], tap, x[j * S]);
                }
            }
            std::ptr::copy_nonoverlapping(acc.as_ptr(), output.add(from), B);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        /// Each point in f64, taps in order: the f32 kernels must sit within a few ulps of it.
        fn reference(
            input: &[f32],
            taps: &[f32],
            offsets: &[isize],
            bias: f32,
            len: usize,
            in_stride: isize,
            base: isize,
        ) -> Vec<f64> {
            (0..len)
                .map(|i| {
                    let mut acc = bias as f64;
                    for (&t, &o) in taps.iter().zip(offsets) {
                        acc +=
                            t as f64 * input[(base + o + i as isize * in_stride) as usize] as f64;
                    }
                    acc
                })
                .collect()
        }

        fn check(taps: Vec<f32>, offsets: Vec<isize>, len: usize, in_stride: isize, seed: u32) {
            // The input ends exactly at the last point's furthest tap, so a read past it would
            // leave the allocation (and fail under Miri or a sanitiser, and read junk here).
            let lo = offsets.iter().copied().min().unwrap_or(0).min(0);
            let hi = offsets.iter().copied().max().unwrap_or(0).max(0);
            let base = -lo;
            let size = (base + hi + (len.max(1) as isize - 1) * in_stride + 1) as usize;
            let input: Vec<f32> = (0..size)
                .map(|i| {
                    (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2001) as f32
                        / 1000.0
                        - 1.0
                })
                .collect();
            let want = reference(&input, &taps, &offsets, 0.25, len, in_stride, base);
            let mut kernels: Vec<(&str, DepthwiseWF32)> = vec![("baseline", baseline)];
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                kernels.push(("x86_64_fma", x86_64_fma));
            }
            for (name, ker) in kernels {
                let mut got = vec![f32::NAN; len + 1];
                unsafe {
                    ker(
                        input.as_ptr().offset(base),
                        got.as_mut_ptr(),
                        &taps,
                        &offsets,
                        0.25,
                        len,
                        in_stride,
                    )
                };
                assert!(got[len].is_nan(), "{name} wrote past len {len}");
                let scale: f64 = taps.iter().map(|t| t.abs() as f64).sum::<f64>() + 0.25;
                for i in 0..len {
                    let err = (got[i] as f64 - want[i]).abs();
                    assert!(
                        err <= 4.0 * f32::EPSILON as f64 * scale,
                        "{name}: point {i} of {len}, stride {in_stride}, {} taps: {} vs {}",
                        taps.len(),
                        got[i],
                        want[i]
                    );
                }
            }
        }

        #[test]
        fn a_3x3_row_at_every_length_and_stride() {
            // A 3x3 kernel on a 40-wide image: offsets of the rows above and below the centre.
            let offsets: Vec<isize> =
                (-1..=1).flat_map(|r| (-1..=1).map(move |c| r * 40 + c)).collect();
            let taps: Vec<f32> = (0..9).map(|t| (t as f32 - 4.0) / 3.0).collect();
            for in_stride in 1..=3 {
                for len in 0..=80 {
                    check(taps.clone(), offsets.clone(), len, in_stride, len as u32);
                }
            }
        }

        #[test]
        fn zero_taps_give_the_bias() {
            check(vec![], vec![], 37, 1, 0);
        }

        proptest! {
            #[test]
            fn any_taps_offsets_and_stride(
                taps in proptest::collection::vec(-2.0f32..2.0, 1..30),
                spread in 0isize..200,
                len in 0usize..150,
                in_stride in 1isize..4,
                seed in any::<u32>(),
            ) {
                let offsets: Vec<isize> = (0..taps.len())
                    .map(|t| ((t as isize * 7919 + seed as isize) % (2 * spread + 1)) - spread)
                    .collect();
                check(taps, offsets, len, in_stride, seed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cnn::conv::{BlockedConv, Conv, KernelFormat};
    use crate::ops::cnn::{PaddingSpec, PoolSpec};
    use crate::ops::nn::DataFormat;

    #[allow(clippy::too_many_arguments)]
    fn run_dw(
        fmt: DataFormat,
        c: usize,
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
        pad: PaddingSpec,
        stride: (usize, usize),
    ) {
        run_dw_dt(f32::datum_type(), fmt, c, h, w, kh, kw, pad, stride)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_dw_dt(
        dt: DatumType,
        fmt: DataFormat,
        c: usize,
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
        pad: PaddingSpec,
        stride: (usize, usize),
    ) {
        run_dw_batch(1, dt, fmt, c, h, w, kh, kw, pad, stride)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_dw_batch(
        n: usize,
        dt: DatumType,
        fmt: DataFormat,
        c: usize,
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
        pad: PaddingSpec,
        stride: (usize, usize),
    ) {
        run_dw_dilated(n, dt, fmt, c, h, w, kh, kw, pad, stride, (1, 1))
    }

    #[allow(clippy::too_many_arguments)]
    fn run_dw_dilated(
        n: usize,
        dt: DatumType,
        fmt: DataFormat,
        c: usize,
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
        pad: PaddingSpec,
        stride: (usize, usize),
        dilation: (usize, usize),
    ) {
        let x: Vec<f32> = (0..n * c * h * w).map(|i| ((i as f32 * 0.137).sin()) * 0.7).collect();
        let kernel: Vec<f32> = (0..c * kh * kw).map(|i| ((i as f32 * 0.091).cos()) * 0.3).collect();
        let bias: Vec<f32> = (0..c).map(|i| (i as f32 * 0.05) - 0.1).collect();

        let c_last = fmt.c_is_last();
        let x_shape = if c_last { [n, h, w, c] } else { [n, c, h, w] };
        let mut model = TypedModel::default();
        let xv = model.add_source("x", dt.fact(x_shape)).unwrap();
        let k = Tensor::from_shape(&[c, 1, kh, kw], &kernel).unwrap();
        let kv = model.add_const("k", k.cast_to_dt(dt).unwrap().into_owned()).unwrap();
        let b = Tensor::from_shape(&[c], &bias).unwrap();
        let bv = model.add_const("b", b.cast_to_dt(dt).unwrap().into_owned()).unwrap();
        let pool_spec = PoolSpec {
            data_format: fmt,
            kernel_shape: tvec!(kh, kw),
            padding: pad.clone(),
            dilations: Some(tvec!(dilation.0, dilation.1)),
            strides: Some(tvec!(stride.0, stride.1)),
            input_channels: c,
            output_channels: c,
        };
        let computed = pool_spec.computed_padding(&[h, w]);
        let conv = Conv { pool_spec, kernel_fmt: KernelFormat::OIHW, group: c, q_params: None };
        let out = model.wire_node("dw", conv, &[xv, kv, bv]).unwrap();
        model.select_output_outlets(&out).unwrap();
        let model = model.into_decluttered().unwrap().into_optimized().unwrap();
        if kw == 1 && model.nodes.iter().any(|node| node.op_as::<BlockedConv>().is_some()) {
            // `BlockedConv` claims kw=1 NCHW f32 wherever it is enabled -- by default on
            // wasm, opt-in elsewhere -- so this shape does not reach DepthWise there.
            // `blocked_conv_matches_reference` covers it.
            return;
        }
        assert!(
            model.nodes.iter().any(|node| node.op_as::<DepthWise>().is_some()),
            "expected DepthWiseConv, got {}",
            model.nodes.iter().map(|node| node.op().name()).collect::<Vec<_>>().join(",")
        );
        let runnable = model.into_runnable().unwrap();
        let input = Tensor::from_shape(&x_shape, &x).unwrap();
        let input = input.cast_to_dt(dt).unwrap().into_owned();
        let got = runnable.run(tvec![input.into_tvalue()]).unwrap();
        let got = got[0].cast_to::<f32>().unwrap().into_owned();
        let got = got.to_plain_array_view::<f32>().unwrap();
        let oshape = got.shape();
        let (oh, ow) = if c_last { (oshape[1], oshape[2]) } else { (oshape[2], oshape[3]) };
        let (ph, pw) = (computed[0].pad_before as isize, computed[1].pad_before as isize);
        let mut max_abs = 0f32;
        for b in 0..n {
            for oc in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = bias[oc];
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride.0 + ky * dilation.0) as isize - ph;
                                let ix = (ox * stride.1 + kx * dilation.1) as isize - pw;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let (iy, ix) = (iy as usize, ix as usize);
                                let xv = if c_last {
                                    x[(((b * h + iy) * w) + ix) * c + oc]
                                } else {
                                    x[(((b * c + oc) * h + iy) * w) + ix]
                                };
                                let kv = kernel[((oc * kh + ky) * kw) + kx];
                                acc += xv * kv;
                            }
                        }
                        let g = if c_last { got[[b, oy, ox, oc]] } else { got[[b, oc, oy, ox]] };
                        max_abs = max_abs.max((g - acc).abs());
                    }
                }
            }
        }
        // f16 accumulates every tap in f16, so its error grows with the tap count.
        let tolerance = if dt == f16::datum_type() { 3e-3 * (kh * kw) as f32 } else { 1e-5 };
        assert!(
            max_abs < tolerance,
            "DepthWise {dt:?} {fmt:?} mismatch c={c} {h}x{w} k={kh}x{kw} stride={stride:?} pad={pad:?}: max_abs={max_abs}"
        );
    }

    /// A depthwise convolution on `[1, c, *spatial]` then Max(below) and Min(above) by
    /// constants (a Clip), optimised, against the graph evaluated as written. Returns the
    /// optimised DepthWise's description.
    fn clipped_depthwise(spatial: &[usize], kernel: &[usize], below: f32, above: f32) -> String {
        use crate::ops::binary::TypedBinOp;
        use crate::ops::math::{Max, Min};
        let c = 5;
        let mut shape = vec![1, c];
        shape.extend_from_slice(spatial);
        let taps: usize = kernel.iter().product();
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(&shape)).unwrap();
        let mut kshape = vec![c, 1];
        kshape.extend_from_slice(kernel);
        let k = Tensor::from_shape(
            &kshape,
            &(0..c * taps).map(|i| ((i as f32) * 0.71).sin()).collect::<Vec<_>>(),
        )
        .unwrap();
        let k = model.add_const("k", k).unwrap();
        let b = model
            .add_const("b", Tensor::from_shape(&[c], &[0.1f32, -0.2, 0.3, 0.0, 0.5]).unwrap())
            .unwrap();
        let pool_spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: kernel.into(),
            padding: PaddingSpec::SameUpper,
            dilations: None,
            strides: None,
            input_channels: c,
            output_channels: c,
        };
        let conv = Conv { pool_spec, kernel_fmt: KernelFormat::OIHW, group: c, q_params: None };
        let y = model.wire_node("dw", conv, &[x, k, b]).unwrap();
        // Typed binary ops take operands of equal rank: the bounds as [1, 1, ...].
        let ones = vec![1; shape.len()];
        let lo = model.add_const("lo", Tensor::from_shape(&ones, &[below]).unwrap()).unwrap();
        let hi = model.add_const("hi", Tensor::from_shape(&ones, &[above]).unwrap()).unwrap();
        let y = model.wire_node("max", TypedBinOp(Box::new(Max), None), &[y[0], lo]).unwrap();
        let y = model.wire_node("min", TypedBinOp(Box::new(Min), None), &[hi, y[0]]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let n: usize = shape.iter().product();
        let input = Tensor::from_shape(
            &shape,
            &(0..n).map(|i| ((i as f32) * 0.37).cos() * 3.0).collect::<Vec<_>>(),
        )
        .unwrap();
        let want = model.clone().into_runnable().unwrap().run(tvec!(input.clone().into())).unwrap();
        let optimised = model.into_optimized().unwrap();
        let names: Vec<String> =
            optimised.nodes.iter().map(|n| n.op().name().to_string()).collect();
        let dw = optimised
            .nodes
            .iter()
            .find_map(|n| n.op_as::<DepthWise>())
            .unwrap_or_else(|| panic!("no DepthWise in {names:?}"));
        let info = dw.info().unwrap().join(" ");
        let got = optimised.clone().into_runnable().unwrap().run(tvec!(input.into())).unwrap();
        got[0].close_enough(&want[0], Approximation::Approximate).unwrap();
        assert!(
            !names.iter().any(|n| n.contains("Max") || n.contains("Min")),
            "the clamp stayed a separate op: {names:?}"
        );
        info
    }

    #[test]
    fn a_following_clip_is_fused_into_the_depthwise_convolution() {
        // Padded-plane path (2-D) and the zone walk (1-D): both apply the fused bounds.
        assert!(clipped_depthwise(&[9, 11], &[3, 3], 0.0, 6.0).contains("clamped to [0, 6]"));
        assert!(
            clipped_depthwise(&[7, 7], &[3, 3], -0.5, 0.25).contains("clamped to [-0.5, 0.25]")
        );
        assert!(clipped_depthwise(&[20], &[3], 0.0, 1.0).contains("clamped to [0, 1]"));
    }

    #[test]
    fn depthwise_padded_planes_match_reference() {
        // The shapes the padded-plane path exists for (MobileNet's last blocks), and the
        // geometry it must get right: asymmetric and explicit padding, mixed strides, dilation,
        // windows that leave input columns unread, 1x1 planes, batches.
        let f32 = f32::datum_type();
        let explicit = |b: [usize; 2], a: [usize; 2]| {
            PaddingSpec::Explicit(tvec!(b[0], b[1]), tvec!(a[0], a[1]))
        };
        run_dw(DataFormat::NCHW, 96, 7, 7, 3, 3, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NCHW, 40, 14, 14, 3, 3, PaddingSpec::SameUpper, (2, 2));
        run_dw(DataFormat::NCHW, 9, 1, 1, 3, 3, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NCHW, 9, 2, 3, 3, 3, PaddingSpec::SameUpper, (2, 2));
        run_dw(DataFormat::NCHW, 5, 13, 17, 3, 3, PaddingSpec::Valid, (2, 2));
        run_dw(DataFormat::NCHW, 5, 13, 17, 3, 5, PaddingSpec::Valid, (2, 1));
        run_dw(DataFormat::NCHW, 5, 13, 17, 5, 3, PaddingSpec::SameLower, (1, 2));
        run_dw(DataFormat::NCHW, 5, 12, 16, 3, 3, explicit([0, 2], [1, 0]), (1, 1));
        run_dw(DataFormat::NCHW, 5, 12, 16, 3, 3, explicit([2, 0], [0, 3]), (2, 3));
        run_dw_dilated(
            2,
            f32,
            DataFormat::NCHW,
            4,
            15,
            14,
            3,
            3,
            PaddingSpec::SameUpper,
            (1, 1),
            (2, 2),
        );
        run_dw_dilated(
            1,
            f32,
            DataFormat::NCHW,
            4,
            15,
            14,
            3,
            3,
            explicit([1, 3], [2, 0]),
            (1, 2),
            (3, 1),
        );
        run_dw_batch(3, f32, DataFormat::NCHW, 7, 7, 7, 3, 3, PaddingSpec::SameUpper, (1, 1));
    }

    #[test]
    fn depthwise_multithreaded_matches_reference() {
        let pool = tract_linalg::multithread::Executor::multithread(4);
        tract_linalg::multithread::multithread_tract_scope(pool, || {
            run_dw(DataFormat::NCHW, 32, 64, 80, 3, 3, PaddingSpec::Valid, (1, 1));
            run_dw(DataFormat::NCHW, 32, 200, 24, 3, 3, PaddingSpec::SameUpper, (1, 1));
            run_dw(DataFormat::NCHW, 32, 70, 70, 5, 5, PaddingSpec::SameUpper, (1, 1));
            run_dw(DataFormat::NCHW, 20, 91, 91, 3, 3, PaddingSpec::SameUpper, (2, 2));
            run_dw(DataFormat::NCHW, 7, 130, 129, 3, 3, PaddingSpec::Valid, (1, 1));
            run_dw_batch(
                3,
                f32::datum_type(),
                DataFormat::NCHW,
                11,
                64,
                70,
                3,
                3,
                PaddingSpec::SameUpper,
                (1, 1),
            );
            run_dw_batch(
                2,
                f32::datum_type(),
                DataFormat::NCHW,
                5,
                120,
                100,
                5,
                5,
                PaddingSpec::Valid,
                (1, 1),
            );
        });
    }

    #[test]
    fn depthwise_contig_w_matches_reference() {
        // 48 kHz-like: NCHW, H=1, long W, kw=3. Inner loop is W.
        run_dw(DataFormat::NCHW, 16, 1, 64, 1, 3, PaddingSpec::Valid, (1, 1));
        run_dw(DataFormat::NCHW, 32, 1, 481, 1, 3, PaddingSpec::Valid, (1, 1));
        run_dw(DataFormat::NCHW, 8, 1, 17, 1, 3, PaddingSpec::SameUpper, (1, 1));
        // kw=1: taps a row apart, output still contiguous along W.
        run_dw(DataFormat::NCHW, 8, 12, 20, 3, 1, PaddingSpec::Valid, (1, 1));
        run_dw(DataFormat::NCHW, 4, 9, 9, 3, 3, PaddingSpec::Valid, (1, 1));
        // 5x5 / 5x1 / 3x5: tap counts past the compile-time paths, so the inner loop runs
        // through the whole-tap-count kernel rather than a fallback.
        run_dw(DataFormat::NCHW, 16, 40, 40, 5, 5, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NCHW, 64, 20, 20, 5, 5, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NCHW, 8, 24, 24, 5, 5, PaddingSpec::Valid, (1, 1));
        run_dw(DataFormat::NCHW, 8, 12, 20, 5, 1, PaddingSpec::Valid, (1, 1));
        run_dw(DataFormat::NCHW, 8, 12, 20, 3, 5, PaddingSpec::Valid, (1, 1));
        // 49, 81 and 121 taps take the vectorised kernel; 169 is past the limit and stays scalar.
        run_dw(DataFormat::NCHW, 8, 30, 30, 7, 7, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NCHW, 8, 30, 30, 9, 9, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NCHW, 8, 30, 30, 11, 11, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NCHW, 8, 30, 30, 13, 13, PaddingSpec::SameUpper, (1, 1));
        // Encoder DW: stride 2 / 3 along W (vld2 / vld3 path).
        run_dw(DataFormat::NCHW, 64, 1, 481, 1, 3, PaddingSpec::SameUpper, (1, 3));
        run_dw(DataFormat::NCHW, 64, 1, 161, 1, 3, PaddingSpec::SameUpper, (1, 2));
        run_dw(DataFormat::NCHW, 16, 1, 64, 1, 3, PaddingSpec::Valid, (1, 2));
    }

    #[test]
    fn depthwise_nhwc_f16_matches_reference() {
        let f16 = f16::datum_type();
        run_dw_dt(f16, DataFormat::NHWC, 3, 9, 9, 3, 3, PaddingSpec::Valid, (1, 1));
        run_dw_dt(f16, DataFormat::NHWC, 33, 12, 14, 3, 3, PaddingSpec::SameUpper, (1, 1));
        run_dw_dt(f16, DataFormat::NHWC, 64, 11, 13, 5, 5, PaddingSpec::SameUpper, (2, 2));
    }

    #[test]
    fn depthwise_nhwc_multithreaded_matches_reference() {
        let pool = tract_linalg::multithread::Executor::multithread(4);
        tract_linalg::multithread::multithread_tract_scope(pool, || {
            for dt in [f32::datum_type(), f16::datum_type()] {
                run_dw_dt(dt, DataFormat::NHWC, 64, 30, 30, 3, 3, PaddingSpec::SameUpper, (1, 1));
                run_dw_dt(dt, DataFormat::NHWC, 33, 40, 40, 3, 3, PaddingSpec::Valid, (1, 1));
                run_dw_dt(dt, DataFormat::NHWC, 200, 20, 20, 5, 5, PaddingSpec::SameUpper, (2, 2));
                run_dw_dt(dt, DataFormat::NHWC, 80, 25, 27, 3, 3, PaddingSpec::SameUpper, (2, 1));
            }
        });
    }

    #[test]
    fn depthwise_nhwc_matches_reference() {
        // DFN3-like depthwise convs: 1x3 along a long axis, strided or not.
        run_dw(DataFormat::NHWC, 3, 9, 9, 3, 3, PaddingSpec::Valid, (1, 1));
        run_dw(DataFormat::NHWC, 64, 100, 32, 1, 3, PaddingSpec::SameUpper, (1, 2));
        run_dw(DataFormat::NHWC, 64, 100, 16, 1, 3, PaddingSpec::SameUpper, (1, 2));
        run_dw(DataFormat::NHWC, 64, 100, 8, 1, 3, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NHWC, 64, 100, 8, 1, 1, PaddingSpec::Valid, (1, 1));
        run_dw(DataFormat::NHWC, 64, 100, 96, 5, 1, PaddingSpec::SameUpper, (1, 1));
        // Odd channel counts and small shapes: vector tails, narrow zones.
        run_dw(DataFormat::NHWC, 17, 12, 20, 3, 3, PaddingSpec::SameUpper, (1, 1));
        run_dw(DataFormat::NHWC, 8, 1, 64, 1, 3, PaddingSpec::Valid, (1, 3));
        run_dw(DataFormat::NHWC, 4, 1, 17, 1, 3, PaddingSpec::SameUpper, (1, 1));
    }
}
