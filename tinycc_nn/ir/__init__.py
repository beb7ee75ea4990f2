"""The tinycc-nn IR: a small graph of integer tensor ops.

One module per idea: types.py (value types), ops.py (the op table, requantization
arithmetic), window.py (conv and pool semantics), graph.py (the graph), edit.py (type-keeping rewrites),
ranges.py (interval analysis), verify.py (the contract).

Every value is an integer vector (or a constant matrix) whose element range is
proven by interval analysis and recorded in its type, so a backend can pick the
narrowest accumulator that can never overflow.  The ops, with their exact integer
semantics (the reference backend executes exactly this):

  input                      program input vector, quantized on the host ({reading:
                             "integer"} when the model is compiled to onnxruntime's
                             integer kernels, frontend/kernels.py)
  const                      constant integer tensor (weights)
  matmul(x, w)               acc[j] = sum_i x[i] * w[i, j]
  bias_add(x) {bias}         x[j] + bias[j]
  requant(x) {mult, rnd, shift, rounding, lo, hi}
                             t = x[j] * mult[j] + rnd[j]
                             clamp(round(t / 2**shift[j]), lo, hi) where round is
                             floor (rounding="floor") or to nearest with ties to
                             even ("half_even", ONNX QuantizeLinear's rule) or to
                             odd ("half_odd": the same rule seen through an odd
                             zero point, which the fit folds into rnd)
  clamp(x) {lo, hi}          clamp(x[j], lo, hi)          (lo/hi may be null: unbounded)
  dense(x, w) {bias, mult, rnd, shift, rounding, lo, hi}
                             requant(bias_add(matmul(x, w))), the fused layer
  conv(x, w) {in_shape, strides, pads, group, pad_value}
                             2-D convolution of x read as a [C, H, W] map (C order) with
                             the const w [M, C/group, kh, kw]: acc[m, oy, ox] = sum over
                             m's group of channels c and taps (ky, kx) of
                             x[c, oy*sh + ky - top, ox*sw + kx - left] * w[m, c', ky, kx];
                             outside the map x reads pad_value[c] (see window.py)
  qconv(x, w) {conv's, bias, mult, rnd, shift, rounding, lo, hi}
                             requant(bias_add(conv(x, w))) per output channel m
  maxpool(x) {in_shape, kernel, strides, pads}
                             the largest element of each window inside the map
  sumpool(x) {in_shape, kernel, strides, pads, pad_value}
                             the sum of each window, pad_value outside the map
  argmax(x) {last}           index of the first (last=true: last) maximum of x
                             (a map is read flattened in C order)
  output(x) {name, dtype, shape, float_ops}
                             host turns x back into the ONNX output tensor

`mult`, `rnd`, `shift` and `bias` are an int (same for every channel) or a list
with one entry per output channel.  Channels are axis 0 of a value's shape: each
element of a vector, each plane of a [C, H, W] map (elementwise ops on a map apply
a channel's parameters to all of its elements).  matmul/dense read their operand
flattened in C order, so a map feeds a dense layer as ONNX's Flatten would.  `mult` is never negative, so requant is
monotone and interval analysis only needs the end points.
"""
from .edit import replace_chain
from .graph import Graph, attr_equal
from .ops import (CONV_ATTRS, OPS, PLAN_ATTRS, REQUANT_ATTRS, ROUNDINGS, SCHEDULE_ATTRS, WEIGHTED,
                  WINDOWED, OpSpec, per_channel, requant_values, shift_round)
from .ranges import (accumulator_range, channel_range, element_range, infer_type,
                     map_channel_range, result_shape)
from .types import TensorType, identifier
from .verify import verify
from .window import conv_values, maxpool_values, sumpool_values, window_out_hw, window_patches

__all__ = ["Graph", "attr_equal", "replace_chain", "CONV_ATTRS", "OPS", "PLAN_ATTRS", "REQUANT_ATTRS", "ROUNDINGS",
           "SCHEDULE_ATTRS", "WEIGHTED", "WINDOWED", "OpSpec", "per_channel", "requant_values",
           "shift_round", "accumulator_range", "channel_range", "element_range", "infer_type",
           "map_channel_range", "result_shape", "TensorType", "identifier", "verify",
           "conv_values", "maxpool_values", "sumpool_values", "window_out_hw", "window_patches"]
