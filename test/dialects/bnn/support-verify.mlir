// Invalid support ops of the bnn dialect: every verifier error, one per chunk.
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics | filecheck %s
// RUN: not bnnmlir-opt %s --split-input-file 2>&1 | filecheck %s --check-prefix=TOOL

// TOOL: error: 'bnn.requant8' input must be a ranked i8, i16 or i32 operand
// TOOL-NOT: Traceback
// CHECK: 'bnn.requant8' input must be a ranked i8, i16 or i32 operand, got tensor<2x2xf32>
func.func @do_not_accept_requant_float_input(%x: tensor<2x2xf32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 1, 1>, offset = array<i64: 0, 0>, shift = array<i64: 0, 0>} : tensor<2x2xf32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' expected output [2, 2] of i8, got tensor<2x2xi16>
func.func @do_not_accept_requant_to_i16(%x: tensor<2x2xi32>) -> tensor<2x2xi16> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 1, 1>, offset = array<i64: 0, 0>, shift = array<i64: 0, 0>} : tensor<2x2xi32> -> tensor<2x2xi16>
  func.return %0 : tensor<2x2xi16>
}

// -----

// CHECK: 'bnn.requant8' kind must be one of affine, breakpoints, table, got 'multiplier'
func.func @do_not_accept_requant_unknown_kind(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "multiplier", multiplier = array<i64: 1, 1>, offset = array<i64: 0, 0>, shift = array<i64: 0, 0>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' of kind 'affine' takes no 'table'
func.func @do_not_accept_requant_mix_kinds(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 1, 1>, offset = array<i64: 0, 0>, shift = array<i64: 0, 0>, table = array<i8: 1, 2>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' needs the property 'shift'
func.func @do_not_accept_requant_without_shift(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 1, 1>, offset = array<i64: 0, 0>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' multiplier must be an array of i64, got i32
func.func @do_not_accept_requant_i32_multiplier(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i32: 1, 1>, offset = array<i64: 0, 0>, shift = array<i64: 0, 0>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' offset needs 2 values, got 1
func.func @do_not_accept_requant_short_offset(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 1, 1>, offset = array<i64: 0>, shift = array<i64: 0, 0>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' multipliers must be within +-(2**31 - 1)
func.func @do_not_accept_requant_huge_multiplier(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 2147483648, 1>, offset = array<i64: 0, 0>, shift = array<i64: 0, 0>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' offsets must be within +-2**62
func.func @do_not_accept_requant_huge_offset(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 1, 1>, offset = array<i64: 0, -4611686018427387905>, shift = array<i64: 0, 0>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' shifts must be within [0, 62], got [63, 0]
func.func @do_not_accept_requant_shift_63(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 1, 1>, offset = array<i64: 0, 0>, shift = array<i64: 63, 0>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' steps must be +1 or -1, got [1, 2]
func.func @do_not_accept_requant_step_two(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "breakpoints", base = array<i8: 0, 0>, step = array<i8: 1, 2>, breakpoints = array<i32: 0, 1>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' bases must be within [-127, 127]
func.func @do_not_accept_requant_base_minus_128(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "breakpoints", base = array<i8: -128, 0>, step = array<i8: 1, 1>, breakpoints = array<i32: 0, 1>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' breakpoints of channel 1 are not sorted: [5, 4]
func.func @do_not_accept_requant_unsorted_breakpoints(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "breakpoints", base = array<i8: 0, 0>, step = array<i8: 1, 1>, breakpoints = array<i32: 0, 1, 5, 4>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' breakpoints needs a positive multiple of 2 values (one row per channel), got 3
func.func @do_not_accept_requant_ragged_breakpoints(%x: tensor<2x2xi32>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "breakpoints", base = array<i8: 0, 0>, step = array<i8: 1, 1>, breakpoints = array<i32: 0, 1, 2>} : tensor<2x2xi32> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' of kind 'table' needs an i64 'lo'
func.func @do_not_accept_requant_table_without_lo(%x: tensor<2x2xi8>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "table", table = array<i8: 1, 2, 3, 4>} : tensor<2x2xi8> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.requant8' table entries must be within [-127, 127]
func.func @do_not_accept_requant_table_minus_128(%x: tensor<2x2xi8>) -> tensor<2x2xi8> {
  %0 = bnn.requant8 %x {kind = "table", lo = 0 : i64, table = array<i8: 1, 2, -128, 4>} : tensor<2x2xi8> -> tensor<2x2xi8>
  func.return %0 : tensor<2x2xi8>
}

// -----

// CHECK: 'bnn.cast' input elements must be i8, i16, i32 or f32, got f64
func.func @do_not_accept_cast_f64(%x: tensor<3xf64>) -> tensor<3xf32> {
  %0 = bnn.cast %x : tensor<3xf64> -> tensor<3xf32>
  func.return %0 : tensor<3xf32>
}

// -----

// CHECK: 'bnn.cast' expected output [3] of f32, got tensor<3xi32>
func.func @do_not_accept_cast_to_int(%x: tensor<3xi8>) -> tensor<3xi32> {
  %0 = bnn.cast %x : tensor<3xi8> -> tensor<3xi32>
  func.return %0 : tensor<3xi32>
}

// -----

// CHECK: 'bnn.batch_norm' input must be a ranked f32 operand, got tensor<2xi8>
func.func @do_not_accept_batch_norm_int8(%x: tensor<2xi8>) -> tensor<2xf32> {
  %0 = bnn.batch_norm %x {mean = array<f32: 0.0, 0.0>, var = array<f32: 1.0, 1.0>, gamma = array<f32: 1.0, 1.0>, beta = array<f32: 0.0, 0.0>, eps = 1.0e-05 : f32} : tensor<2xi8> -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}

// -----

// CHECK: 'bnn.batch_norm' mean needs 2 values, got 3
func.func @do_not_accept_batch_norm_wrong_channels(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = bnn.batch_norm %x {mean = array<f32: 0.0, 0.0, 0.0>, var = array<f32: 1.0, 1.0>, gamma = array<f32: 1.0, 1.0>, beta = array<f32: 0.0, 0.0>, eps = 1.0e-05 : f32} : tensor<2xf32> -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}

// -----

// CHECK: 'bnn.batch_norm' eps must be an f32
func.func @do_not_accept_batch_norm_f64_eps(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = bnn.batch_norm %x {mean = array<f32: 0.0, 0.0>, var = array<f32: 1.0, 1.0>, gamma = array<f32: 1.0, 1.0>, beta = array<f32: 0.0, 0.0>, eps = 1.0e-05 : f64} : tensor<2xf32> -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}

// -----

// CHECK: 'bnn.affine' scale must be an array of f32, got i32
func.func @do_not_accept_affine_int_scale(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = bnn.affine %x {scale = array<i32: 1, 2>, bias = array<f32: 0.0, 0.0>} : tensor<2xf32> -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}

// -----

// CHECK: 'bnn.affine' needs exactly one of 'scale' and 'divisor'
func.func @do_not_accept_affine_scale_and_divisor(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = bnn.affine %x {scale = array<f32: 1.0, 2.0>, divisor = array<f32: 3.0, 3.0>, bias = array<f32: 0.0, 0.0>} : tensor<2xf32> -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}

// -----

// CHECK: 'bnn.affine' needs exactly one of 'scale' and 'divisor'
func.func @do_not_accept_affine_without_scale(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = bnn.affine %x {bias = array<f32: 0.0, 0.0>} : tensor<2xf32> -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}

// -----

// CHECK: 'bnn.affine' divisor needs 2 values, got 3
func.func @do_not_accept_affine_divisor_wrong_channels(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = bnn.affine %x {divisor = array<f32: 1.0, 2.0, 3.0>, bias = array<f32: 0.0, 0.0>} : tensor<2xf32> -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}

// -----

// CHECK: 'bnn.conv2d' input elements must be f32 or i8, got i32
func.func @do_not_accept_conv2d_int32_input(%x: tensor<1x3x3x2xi32>, %w: tensor<4x3x3x2xf32>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xi32>, tensor<4x3x3x2xf32> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.conv2d' with i8 weights is the integer form and needs i8 input, got f32 (all-integer or all-float)
func.func @do_not_accept_conv2d_float_input_int8_weight(%x: tensor<1x3x3x2xf32>, %w: tensor<4x3x3x2xi8>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xf32>, tensor<4x3x3x2xi8> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.conv2d' weight must be f32 (or i8 with i8 input), got tensor<4x3x3x2xi32>
func.func @do_not_accept_conv2d_int32_weight(%x: tensor<1x3x3x2xi8>, %w: tensor<4x3x3x2xi32>) -> tensor<1x1x1x4xi32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xi8>, tensor<4x3x3x2xi32> -> tensor<1x1x1x4xi32>
  func.return %0 : tensor<1x1x1x4xi32>
}

// -----

// CHECK: 'bnn.conv2d' expected output [1, 1, 1, 4] of i32, got tensor<1x1x1x4xf32>
func.func @do_not_accept_integer_conv2d_float_output(%x: tensor<1x3x3x2xi8>, %w: tensor<4x3x3x2xi8>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xi8>, tensor<4x3x3x2xi8> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.conv2d' integer form (i8 input and weights) takes no bias; add it after the i32 result
func.func @do_not_accept_integer_conv2d_bias(%x: tensor<1x3x3x2xi8>, %w: tensor<4x3x3x2xi8>, %b: tensor<4xf32>) -> tensor<1x1x1x4xi32> {
  %0 = bnn.conv2d %x, %w bias %b {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xi8>, tensor<4x3x3x2xi8> bias tensor<4xf32> -> tensor<1x1x1x4xi32>
  func.return %0 : tensor<1x1x1x4xi32>
}

// -----

// CHECK: 'bnn.conv2d' integer form: fan-in 131072 exceeds 131071 (128 * 128 * fan-in must fit i32 for an exact accumulation)
func.func @do_not_accept_integer_conv2d_huge_fan_in(%x: tensor<1x1x1x131072xi8>, %w: tensor<1x1x1x131072xi8>) -> tensor<1x1x1x1xi32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x1x1x131072xi8>, tensor<1x1x1x131072xi8> -> tensor<1x1x1x1xi32>
  func.return %0 : tensor<1x1x1x1xi32>
}

// -----

// CHECK: 'bnn.dense' with i8 weights is the integer form and needs i8 input, got i32 (all-integer or all-float)
func.func @do_not_accept_dense_int32_input_int8_weight(%x: tensor<1x8xi32>, %w: tensor<3x8xi8>) -> tensor<1x3xi32> {
  %0 = bnn.dense %x, %w : tensor<1x8xi32>, tensor<3x8xi8> -> tensor<1x3xi32>
  func.return %0 : tensor<1x3xi32>
}

// -----

// CHECK: 'bnn.dense' expected output [1, 3] of i32, got tensor<1x3xf32>
func.func @do_not_accept_integer_dense_float_output(%x: tensor<1x8xi8>, %w: tensor<3x8xi8>) -> tensor<1x3xf32> {
  %0 = bnn.dense %x, %w : tensor<1x8xi8>, tensor<3x8xi8> -> tensor<1x3xf32>
  func.return %0 : tensor<1x3xf32>
}

// -----

// CHECK: 'bnn.conv2d' bias must be f32 [4] (one per output channel), got tensor<2xf32>
func.func @do_not_accept_conv2d_short_bias(%x: tensor<1x3x3x2xf32>, %w: tensor<4x3x3x2xf32>, %b: tensor<2xf32>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w bias %b {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xf32>, tensor<4x3x3x2xf32> bias tensor<2xf32> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.conv2d' input must be rank-4 NHWC, got tensor<3x3x2xf32>
func.func @do_not_accept_conv2d_rank3(%x: tensor<3x3x2xf32>, %w: tensor<4x3x3x2xf32>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<3x3x2xf32>, tensor<4x3x3x2xf32> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.conv2d' weight must be [O, KH, KW, 2], got tensor<4x3x3x3xf32>
func.func @do_not_accept_conv2d_channel_mismatch(%x: tensor<1x3x3x2xf32>, %w: tensor<4x3x3x3xf32>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xf32>, tensor<4x3x3x3xf32> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.conv2d' strides must be 2 i64 integers >= 1, got [0, 1]
func.func @do_not_accept_conv2d_zero_stride(%x: tensor<1x3x3x2xf32>, %w: tensor<4x3x3x2xf32>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 0, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xf32>, tensor<4x3x3x2xf32> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.conv2d' kernel 3x3 (dilation 2x1) does not fit the padded 3x3 input
func.func @do_not_accept_conv2d_kernel_too_large(%x: tensor<1x3x3x2xf32>, %w: tensor<4x3x3x2xf32>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 2, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xf32>, tensor<4x3x3x2xf32> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.conv2d' expected output [1, 3, 3, 4] of f32, got tensor<1x1x1x4xf32>
func.func @do_not_accept_conv2d_wrong_output(%x: tensor<1x3x3x2xf32>, %w: tensor<4x3x3x2xf32>) -> tensor<1x1x1x4xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>} : tensor<1x3x3x2xf32>, tensor<4x3x3x2xf32> -> tensor<1x1x1x4xf32>
  func.return %0 : tensor<1x1x1x4xf32>
}

// -----

// CHECK: 'bnn.dense' input must be [N, C], got tensor<1x1x8xf32>
func.func @do_not_accept_dense_rank3(%x: tensor<1x1x8xf32>, %w: tensor<3x8xf32>) -> tensor<1x3xf32> {
  %0 = bnn.dense %x, %w : tensor<1x1x8xf32>, tensor<3x8xf32> -> tensor<1x3xf32>
  func.return %0 : tensor<1x3xf32>
}

// -----

// CHECK: 'bnn.dense' weight must be [O, 8], got tensor<3x7xf32>
func.func @do_not_accept_dense_channel_mismatch(%x: tensor<1x8xf32>, %w: tensor<3x7xf32>) -> tensor<1x3xf32> {
  %0 = bnn.dense %x, %w : tensor<1x8xf32>, tensor<3x7xf32> -> tensor<1x3xf32>
  func.return %0 : tensor<1x3xf32>
}

// -----

// CHECK: 'bnn.pool2d' input elements must be i8, i32 or f32, got i16
func.func @do_not_accept_pool_i16(%x: tensor<1x4x4x2xi16>) -> tensor<1x2x2x2xi16> {
  %0 = bnn.pool2d %x {kind = "max", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x4x4x2xi16> -> tensor<1x2x2x2xi16>
  func.return %0 : tensor<1x2x2x2xi16>
}

// -----

// CHECK: 'bnn.pool2d' kind must be one of max, avg, got 'min'
func.func @do_not_accept_pool_min(%x: tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32> {
  %0 = bnn.pool2d %x {kind = "min", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x4x4x2xf32> -> tensor<1x2x2x2xf32>
  func.return %0 : tensor<1x2x2x2xf32>
}

// -----

// CHECK: 'bnn.pool2d' count_include_pad only applies to 'avg'
func.func @do_not_accept_max_pool_count_include_pad(%x: tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32> {
  %0 = bnn.pool2d %x {kind = "max", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>, count_include_pad} : tensor<1x4x4x2xf32> -> tensor<1x2x2x2xf32>
  func.return %0 : tensor<1x2x2x2xf32>
}

// -----

// CHECK: 'bnn.pool2d' padding [2, 0, 0, 0] must be smaller than the kernel [2, 2] (a window may not lie entirely in the padding)
func.func @do_not_accept_pool_window_in_padding(%x: tensor<1x4x4x2xf32>) -> tensor<1x3x2x2xf32> {
  %0 = bnn.pool2d %x {kind = "max", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 2, 0, 0, 0>} : tensor<1x4x4x2xf32> -> tensor<1x3x2x2xf32>
  func.return %0 : tensor<1x3x2x2xf32>
}

// -----

// CHECK: 'bnn.pool2d' expected output [1, 2, 2, 2] of f32, got tensor<1x2x2x2xi8>
func.func @do_not_accept_avg_pool_to_int8(%x: tensor<1x4x4x2xi8>) -> tensor<1x2x2x2xi8> {
  %0 = bnn.pool2d %x {kind = "avg", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x4x4x2xi8> -> tensor<1x2x2x2xi8>
  func.return %0 : tensor<1x2x2x2xi8>
}

// -----

// CHECK: 'bnn.pool2d' kernel must be 2 i64 integers >= 1, got [2]
func.func @do_not_accept_pool_one_kernel_dim(%x: tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32> {
  %0 = bnn.pool2d %x {kind = "max", kernel = array<i64: 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x4x4x2xf32> -> tensor<1x2x2x2xf32>
  func.return %0 : tensor<1x2x2x2xf32>
}

// -----

// CHECK: 'bnn.global_avg_pool' expected output [1, 2] of f32, got tensor<1x1x1x2xf32>
func.func @do_not_accept_global_avg_pool_keepdim(%x: tensor<1x4x4x2xf32>) -> tensor<1x1x1x2xf32> {
  %0 = bnn.global_avg_pool %x : tensor<1x4x4x2xf32> -> tensor<1x1x1x2xf32>
  func.return %0 : tensor<1x1x1x2xf32>
}

// -----

// CHECK: 'bnn.mul' rhs must broadcast to lhs (same rank, each dimension equal or 1), got tensor<2x3xf32> and tensor<2x2xf32>
func.func @do_not_accept_mul_bad_broadcast(%a: tensor<2x3xf32>, %b: tensor<2x2xf32>) -> tensor<2x3xf32> {
  %0 = bnn.mul %a, %b : tensor<2x3xf32>, tensor<2x2xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.mul' multiplies two f32 operands, got f32 and i8
func.func @do_not_accept_mul_int(%a: tensor<2x3xf32>, %b: tensor<2x3xi8>) -> tensor<2x3xf32> {
  %0 = bnn.mul %a, %b : tensor<2x3xf32>, tensor<2x3xi8> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.add' operands must have the same shape, got tensor<2x3xf32> and tensor<3x2xf32>
func.func @do_not_accept_add_broadcast(%a: tensor<2x3xf32>, %b: tensor<3x2xf32>) -> tensor<2x3xf32> {
  %0 = bnn.add %a, %b : tensor<2x3xf32>, tensor<3x2xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.add' adds two f32 or two integer (i8, i16, i32) operands, got f32 and i8
func.func @do_not_accept_add_float_int(%a: tensor<2x3xf32>, %b: tensor<2x3xi8>) -> tensor<2x3xf32> {
  %0 = bnn.add %a, %b : tensor<2x3xf32>, tensor<2x3xi8> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.add' expected output [2, 3] of i16, got tensor<2x3xi32>
func.func @do_not_accept_add_int8_to_i32(%a: tensor<2x3xi8>, %b: tensor<2x3xi8>) -> tensor<2x3xi32> {
  %0 = bnn.add %a, %b : tensor<2x3xi8>, tensor<2x3xi8> -> tensor<2x3xi32>
  func.return %0 : tensor<2x3xi32>
}

// -----

// CHECK: 'bnn.activation' kind must be one of relu, hardtanh, prelu, got 'gelu'
func.func @do_not_accept_activation_gelu(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = bnn.activation %x {kind = "gelu"} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.activation' of kind 'relu' takes no 'min'
func.func @do_not_accept_relu_with_bound(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = bnn.activation %x {kind = "relu", min = 0.0 : f32} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.activation' of kind 'hardtanh' needs 'min' and 'max'
func.func @do_not_accept_hardtanh_without_max(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = bnn.activation %x {kind = "hardtanh", min = -1.0 : f32} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.activation' hardtanh bounds must be f32, got 1.000000e+00 : f64
func.func @do_not_accept_hardtanh_f64_bound(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = bnn.activation %x {kind = "hardtanh", min = -1.0 : f32, max = 1.0 : f64} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.activation' hardtanh needs min <= max, got 1.0 > -1.0
func.func @do_not_accept_hardtanh_inverted(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = bnn.activation %x {kind = "hardtanh", min = 1.0 : f32, max = -1.0 : f32} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.activation' hardtanh on integers needs integral bounds, got [-1.5, 1.0]
func.func @do_not_accept_hardtanh_fractional_int(%x: tensor<2x3xi8>) -> tensor<2x3xi8> {
  %0 = bnn.activation %x {kind = "hardtanh", min = -1.5 : f32, max = 1.0 : f32} : tensor<2x3xi8> -> tensor<2x3xi8>
  func.return %0 : tensor<2x3xi8>
}

// -----

// CHECK: 'bnn.activation' prelu needs f32 input, got i8
func.func @do_not_accept_prelu_int8(%x: tensor<2x3xi8>) -> tensor<2x3xi8> {
  %0 = bnn.activation %x {kind = "prelu", slopes = array<f32: 0.1, 0.1, 0.1>} : tensor<2x3xi8> -> tensor<2x3xi8>
  func.return %0 : tensor<2x3xi8>
}

// -----

// CHECK: 'bnn.activation' slopes needs 3 values, got 1
func.func @do_not_accept_prelu_shared_slope(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = bnn.activation %x {kind = "prelu", slopes = array<f32: 0.1>} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.activation' expected output [2, 3] of f32, got tensor<2x3xi8>
func.func @do_not_accept_activation_changes_type(%x: tensor<2x3xf32>) -> tensor<2x3xi8> {
  %0 = bnn.activation %x {kind = "relu"} : tensor<2x3xf32> -> tensor<2x3xi8>
  func.return %0 : tensor<2x3xi8>
}

// -----

// CHECK: 'bnn.concat' inputs must share the element type and all dimensions but the last: tensor<2x3xf32> vs tensor<3x3xf32>
func.func @do_not_accept_concat_other_axis(%a: tensor<2x3xf32>, %b: tensor<3x3xf32>) -> tensor<2x6xf32> {
  %0 = bnn.concat %a, %b : tensor<2x3xf32>, tensor<3x3xf32> -> tensor<2x6xf32>
  func.return %0 : tensor<2x6xf32>
}

// -----

// CHECK: 'bnn.concat' expected output [2, 5] of f32, got tensor<2x6xf32>
func.func @do_not_accept_concat_wrong_width(%a: tensor<2x3xf32>, %b: tensor<2x2xf32>) -> tensor<2x6xf32> {
  %0 = bnn.concat %a, %b : tensor<2x3xf32>, tensor<2x2xf32> -> tensor<2x6xf32>
  func.return %0 : tensor<2x6xf32>
}

// -----

// CHECK: 'bnn.reshape' output must have the element type and element count of the input: tensor<2x3xf32> vs tensor<7xf32>
func.func @do_not_accept_reshape_count(%x: tensor<2x3xf32>) -> tensor<7xf32> {
  %0 = bnn.reshape %x : tensor<2x3xf32> -> tensor<7xf32>
  func.return %0 : tensor<7xf32>
}

// -----

// CHECK: 'bnn.transpose' permutation must be a permutation of 0..1 (i64), got [0, 0]
func.func @do_not_accept_transpose_repeated_axis(%x: tensor<2x3xf32>) -> tensor<2x2xf32> {
  %0 = bnn.transpose %x {permutation = array<i64: 0, 0>} : tensor<2x3xf32> -> tensor<2x2xf32>
  func.return %0 : tensor<2x2xf32>
}

// -----

// CHECK: 'bnn.transpose' expected output [3, 2] of f32, got tensor<2x3xf32>
func.func @do_not_accept_transpose_wrong_output(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = bnn.transpose %x {permutation = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// -----

// CHECK: 'bnn.cast' on memrefs writes into an 'into' buffer and returns nothing
func.func @do_not_accept_mixed_forms(%x: memref<3xi8>) {
  %0 = "bnn.cast"(%x) : (memref<3xi8>) -> tensor<3xf32>
  func.return
}

// -----

// CHECK: 'bnn.concat' needs at least one input
func.func @do_not_accept_empty_concat(%o: memref<3xi8>) {
  "bnn.concat"(%o) <{operandSegmentSizes = array<i32: 0, 1>}> : (memref<3xi8>) -> ()
  func.return
}

// -----

// CHECK: 'bnn.pool2d' kernel 3x3 does not fit the padded 2x2 input
func.func @do_not_accept_pool_kernel_too_large(%x: memref<1x2x2x1xf32>, %o: memref<1x1x1x1xf32>) {
  bnn.pool2d %x into %o {kind = "max", kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<1x2x2x1xf32>, memref<1x1x1x1xf32>
  func.return
}

// -----

// CHECK: 'bnn.global_avg_pool' averages over at least one position, got 0x4
func.func @do_not_average_over_no_position(%x: tensor<1x0x4x2xf32>) -> tensor<1x2xf32> {
  %0 = bnn.global_avg_pool %x : tensor<1x0x4x2xf32> -> tensor<1x2xf32>
  func.return %0 : tensor<1x2xf32>
}

// -----

// CHECK: 'bnn.conv2d' a fused requant8 needs the integer form
func.func @do_not_accept_conv2d_float_requant8(%x: tensor<1x3x3x2xf32>, %w: tensor<2x3x3x2xf32>) -> tensor<1x1x1x2xi8> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, requant = {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>}} : tensor<1x3x3x2xf32>, tensor<2x3x3x2xf32> -> tensor<1x1x1x2xi8>
  func.return %0 : tensor<1x1x1x2xi8>
}

// -----

// CHECK: 'bnn.conv2d' expected output [1, 1, 1, 2] of i8, got tensor<1x1x1x2xi32>
func.func @do_not_accept_conv2d_requant8_i32_result(%x: tensor<1x3x3x2xi8>, %w: tensor<2x3x3x2xi8>) -> tensor<1x1x1x2xi32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, requant = {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>}} : tensor<1x3x3x2xi8>, tensor<2x3x3x2xi8> -> tensor<1x1x1x2xi32>
  func.return %0 : tensor<1x1x1x2xi32>
}

// -----

// CHECK: 'bnn.quantize' input must be a ranked f32 operand, got tensor<2x3xi32>
func.func @do_not_accept_quantize_integer_input(%x: tensor<2x3xi32>) -> tensor<2x3xi8> {
  %0 = bnn.quantize %x {steps = [], permutation = array<i64: 0, 1>} : tensor<2x3xi32> -> tensor<2x3xi8>
  func.return %0 : tensor<2x3xi8>
}

// -----

// CHECK: 'bnn.quantize' permutation must be a permutation of 0..1 (i64), got [1, 1]
func.func @do_not_accept_quantize_repeated_axis(%x: tensor<2x3xf32>) -> tensor<3x3xi8> {
  %0 = bnn.quantize %x {steps = [], permutation = array<i64: 1, 1>} : tensor<2x3xf32> -> tensor<3x3xi8>
  func.return %0 : tensor<3x3xi8>
}

// -----

// CHECK: 'bnn.quantize' expected output [3, 2] of i8, got tensor<3x2xf32>
func.func @do_not_accept_quantize_float_output(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %0 = bnn.quantize %x {steps = [], permutation = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<3x2xf32>
  func.return %0 : tensor<3x2xf32>
}

// -----

// CHECK: 'bnn.quantize' step 0 (mul): 'values' must be an f32 array of 3 values
func.func @do_not_accept_quantize_steps_of_another_dimension(%x: tensor<2x3xf32>) -> tensor<2x3xi8> {
  %0 = bnn.quantize %x {steps = [{kind = "mul", values = array<f32: 1.0, 2.0>}], permutation = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<2x3xi8>
  func.return %0 : tensor<2x3xi8>
}

// -----

// CHECK: 'bnn.quantize' an integer input needs 'cast' as its first step, and only it (step 0 is cast)
func.func @do_not_accept_quantize_cast_step(%x: tensor<2x3xf32>) -> tensor<2x3xi8> {
  %0 = bnn.quantize %x {steps = [{kind = "cast"}], permutation = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<2x3xi8>
  func.return %0 : tensor<2x3xi8>
}
