// Invalid bnn IR: every verifier error, one per chunk.
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics | filecheck %s
// RUN: not bnnmlir-opt %s --split-input-file 2>&1 | filecheck %s --check-prefix=TOOL

// TOOL: error: 'bnn.binarize' packs 37 channels into 5 i8 words
// TOOL-NOT: Traceback

// CHECK: 'bnn.binarize' packs 37 channels into 5 i8 words: expected output shape [2, 5] of i8, got tensor<2x4xi8>
func.func @do_not_accept_wrong_packed_width(%x: tensor<2x37xf32>) -> tensor<2x4xi8> {
  %0 = bnn.binarize %x : tensor<2x37xf32> -> tensor<2x4xi8>
  func.return %0 : tensor<2x4xi8>
}

// -----

// CHECK: 'bnn.binarize' input elements must be i8, i16, i32 or f32, got f64
func.func @do_not_binarize_f64(%x: tensor<8xf64>) -> tensor<1xi8> {
  %0 = bnn.binarize %x : tensor<8xf64> -> tensor<1xi8>
  func.return %0 : tensor<1xi8>
}

// -----

// CHECK: 'bnn.binarize' on memrefs writes into an 'into' buffer and returns nothing
func.func @do_not_mix_forms(%x: memref<8xi8>) {
  %0 = "bnn.binarize"(%x) : (memref<8xi8>) -> tensor<1xi8>
  func.return
}

// -----

// CHECK: 'bnn.bconv2d' 37 channels pack into 5 i8 words, but input has 4 and weight 5
func.func @do_not_accept_channel_mismatch(%x: tensor<1x8x8x4xi8>, %w: tensor<4x3x3x5xi8>) -> tensor<1x6x6x4xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 37 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x8x8x4xi8>, tensor<4x3x3x5xi8> -> tensor<1x6x6x4xi32>
  func.return %0 : tensor<1x6x6x4xi32>
}

// -----

// CHECK: 'bnn.bconv2d' expected output shape [1, 4, 4, 4], got [1, 6, 6, 4]
func.func @do_not_accept_wrong_output_shape(%x: tensor<1x8x8x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x6x6x4xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x8x8x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x6x6x4xi32>
  func.return %0 : tensor<1x6x6x4xi32>
}

// -----

// CHECK: 'bnn.bconv2d' pad_value must be -1, 0 or +1, got 2
func.func @do_not_accept_pad_value_two(%x: tensor<1x3x3x1xi8>, %w: tensor<1x3x3x1xi8>) -> tensor<1x1x1x1xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 2 : i64} : tensor<1x3x3x1xi8>, tensor<1x3x3x1xi8> -> tensor<1x1x1x1xi32>
  func.return %0 : tensor<1x1x1x1xi32>
}

// -----

// CHECK: 'bnn.bconv2d' strides must be 2 i64 integers >= 1, got [0, 1]
func.func @do_not_accept_zero_stride(%x: tensor<1x3x3x1xi8>, %w: tensor<1x3x3x1xi8>) -> tensor<1x1x1x1xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 0, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x3x3x1xi8>, tensor<1x3x3x1xi8> -> tensor<1x1x1x1xi32>
  func.return %0 : tensor<1x1x1x1xi32>
}

// -----

// CHECK: 'bnn.bconv2d' kernel 5x5 (dilation 1x1) does not fit the padded 3x3 input
func.func @do_not_accept_kernel_larger_than_input(%x: tensor<1x3x3x1xi8>, %w: tensor<1x5x5x1xi8>) -> tensor<1x1x1x1xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x3x3x1xi8>, tensor<1x5x5x1xi8> -> tensor<1x1x1x1xi32>
  func.return %0 : tensor<1x1x1x1xi32>
}

// -----

// CHECK: 'bnn.clip8' input elements must be i16, i32 or f32, got f64
func.func @do_not_clip_f64(%x: tensor<4xf64>) -> tensor<4xi8> {
  %0 = bnn.clip8 %x : tensor<4xf64> -> tensor<4xi8>
  func.return %0 : tensor<4xi8>
}

// -----

// CHECK: 'bnn.clip8' output must be i8 of shape [4], got tensor<4xi16>
func.func @do_not_clip_to_i16(%x: tensor<4xi32>) -> tensor<4xi16> {
  %0 = bnn.clip8 %x : tensor<4xi32> -> tensor<4xi16>
  func.return %0 : tensor<4xi16>
}

// -----

// CHECK: 'bnn.threshold' needs one threshold and one direction per channel (3), got 2 and 3
func.func @do_not_accept_missing_threshold(%x: tensor<2x3xi32>) -> tensor<2x1xi8> {
  %0 = bnn.threshold %x {thresholds = array<i32: 1, 2>, directions = array<i8: 1, 1, 1>} : tensor<2x3xi32> -> tensor<2x1xi8>
  func.return %0 : tensor<2x1xi8>
}

// -----

// CHECK: 'bnn.threshold' directions must be +1 or -1, got 0
func.func @do_not_accept_zero_direction(%x: tensor<2x3xi32>) -> tensor<2x1xi8> {
  %0 = bnn.threshold %x {thresholds = array<i32: 1, 2, 3>, directions = array<i8: 1, 0, 1>} : tensor<2x3xi32> -> tensor<2x1xi8>
  func.return %0 : tensor<2x1xi8>
}

// -----

// CHECK: 'bnn.narrow_acc' 32 steps of up to 8 per lane overflow 8-bit lanes: at most 31 steps are exact
func.func @do_not_overflow_i8_lanes(%acc: vector<16xi8>, %a: vector<16xi8>) -> vector<16xi8> {
  %0 = bnn.narrow_acc %acc, %a, %a max_steps = 32 : vector<16xi8> into vector<16xi8>
  func.return %0 : vector<16xi8>
}

// -----

// CHECK: 'bnn.narrow_acc' 4096 steps of up to 16 per lane overflow 16-bit lanes: at most 4095 steps are exact
func.func @do_not_overflow_i16_lanes(%acc: vector<8xi16>, %a: vector<16xi8>) -> vector<8xi16> {
  %0 = bnn.narrow_acc %acc, %a, %a max_steps = 4096 : vector<16xi8> into vector<8xi16>
  func.return %0 : vector<8xi16>
}

// -----

// CHECK: 'bnn.narrow_acc' 16 bytes cannot be split evenly over 3 lanes
func.func @do_not_split_unevenly(%acc: vector<3xi16>, %a: vector<16xi8>) -> vector<3xi16> {
  %0 = bnn.narrow_acc %acc, %a, %a max_steps = 1 : vector<16xi8> into vector<3xi16>
  func.return %0 : vector<3xi16>
}

// -----

// CHECK: 'bnn.bconv2d' with output clip8 produces rank-4 i8, got tensor<1x1x1x4xi32>
func.func @do_not_fuse_clip8_into_i32(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8"} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi32>
  func.return %0 : tensor<1x1x1x4xi32>
}

// -----

// CHECK: 'bnn.bconv2d' thresholds and directions go with output = "threshold" only
func.func @do_not_accept_thresholds_without_threshold_output(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8", thresholds = array<i32: 0, 0, 0, 0>, directions = array<i8: 1, 1, 1, 1>} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' output must be one of i32, clip8, threshold, requant8, f32, got 'relu'
func.func @do_not_accept_unknown_output(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "relu"} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi32>
  func.return %0 : tensor<1x1x1x4xi32>
}

// -----

// CHECK: 'bnn.bconv2d' requant parameters go with output = "requant8" only, not with output clip8
func.func @do_not_accept_requant_without_requant8_output(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8", requant = {kind = "affine", multiplier = array<i64: 1, 2, 3, 4>, offset = array<i64: 0, 0, 0, 0>, shift = array<i64: 0, 1, 2, 3>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant parameters go with output = "requant8" only, not with output i32
func.func @do_not_accept_requant_without_output(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, requant = {kind = "affine", multiplier = array<i64: 1, 2, 3, 4>, offset = array<i64: 0, 0, 0, 0>, shift = array<i64: 0, 1, 2, 3>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi32>
  func.return %0 : tensor<1x1x1x4xi32>
}

// -----

// CHECK: 'bnn.bconv2d' with output = "requant8" needs the requant parameters (requant = {kind = ..., ...})
func.func @do_not_accept_requant8_output_without_parameters(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8"} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' with output requant8 produces rank-4 i8, got tensor<1x1x1x4xi32>
func.func @do_not_fuse_requant8_into_i32(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "affine", multiplier = array<i64: 1, 2, 3, 4>, offset = array<i64: 0, 0, 0, 0>, shift = array<i64: 0, 1, 2, 3>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi32>
  func.return %0 : tensor<1x1x1x4xi32>
}

// -----

// CHECK: 'bnn.bconv2d' requant kind must be one of affine, breakpoints, table, got 'linear'
func.func @do_not_accept_unknown_requant_kind(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "linear", multiplier = array<i64: 1, 1, 1, 1>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant needs the entry 'kind' (a string)
func.func @do_not_accept_requant_without_kind(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {multiplier = array<i64: 1, 1, 1, 1>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant multiplier needs 4 values, got 3
func.func @do_not_accept_a_multiplier_per_input_channel(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "affine", multiplier = array<i64: 1, 2, 3>, offset = array<i64: 0, 0, 0, 0>, shift = array<i64: 0, 1, 2, 3>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant needs the entry 'step'
func.func @do_not_accept_breakpoints_without_steps(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "breakpoints", base = array<i8: 0, 0, 0, 0>, breakpoints = array<i32: 0, 1, 2, 3>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant breakpoints of channel 2 are not sorted: [5, -5]
func.func @do_not_accept_unsorted_breakpoints(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "breakpoints", base = array<i8: 0, 0, 0, 0>, step = array<i8: 1, 1, -1, -1>, breakpoints = array<i32: 0, 1, 2, 3, 5, -5, 7, 7>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant table needs a positive multiple of 4 values (one row per channel), got 6
func.func @do_not_accept_a_table_with_partial_rows(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "table", lo = 0 : i64, table = array<i8: 1, 2, 3, 4, 5, 6>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant of kind 'table' takes no 'shift'
func.func @do_not_accept_entries_of_another_kind(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "table", lo = 0 : i64, table = array<i8: 1, 2, 3, 4>, shift = array<i64: 0, 0, 0, 0>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant of kind 'table' needs an i64 'lo'
func.func @do_not_accept_a_table_without_lo(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "table", table = array<i8: 1, 2, 3, 4>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant table ends at lo + 2 - 1 = 9223372036854775808, beyond 2**63 - 1
func.func @do_not_accept_a_table_past_the_i64_range(%x: tensor<1x3x3x1xi8>, %w: tensor<2x3x3x1xi8>) -> tensor<1x1x1x2xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "table", lo = 9223372036854775807 : i64, table = array<i8: 5, -127, 1, 2>}} : tensor<1x3x3x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x1x1x2xi8>
  func.return %0 : tensor<1x1x1x2xi8>
}

// -----

// CHECK: 'bnn.bconv2d' requant shift must be an array of i64, got i32
func.func @do_not_accept_i32_shifts(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "affine", multiplier = array<i64: 1, 2, 3, 4>, offset = array<i64: 0, 0, 0, 0>, shift = array<i32: 0, 1, 2, 3>}} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// -----

// CHECK: 'bnn.bconv2d' weight needs at least one output channel and a kernel of at least 1x1, got 0 output channels and a 3x3 kernel
func.func @do_not_accept_zero_output_channels(%x: tensor<1x4x4x1xi8>, %w: tensor<0x3x3x1xi8>) -> tensor<1x2x2x0xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<0x3x3x1xi8> -> tensor<1x2x2x0xi32>
  func.return %0 : tensor<1x2x2x0xi32>
}

// -----

// CHECK: 'bnn.bconv2d' weight needs at least one output channel and a kernel of at least 1x1, got 2 output channels and a 0x0 kernel
func.func @do_not_accept_empty_kernel(%x: tensor<1x4x4x1xi8>, %w: tensor<2x0x0x1xi8>) -> tensor<1x5x5x2xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x0x0x1xi8> -> tensor<1x5x5x2xi32>
  func.return %0 : tensor<1x5x5x2xi32>
}

// -----

// An empty batch is a valid convolution (no output positions): no diagnostic.
// CHECK-LABEL: func.func @accept_empty_batch
// CHECK-NOT: does not verify
func.func @accept_empty_batch(%x: tensor<0x4x4x1xi8>, %w: tensor<2x3x3x1xi8>) -> tensor<0x2x2x2xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<0x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<0x2x2x2xi32>
  func.return %0 : tensor<0x2x2x2xi32>
}

// -----

// CHECK: 'bnn.binarize' needs a last dimension of at least one channel to pack, got tensor<2x0xf32>
func.func @do_not_binarize_zero_channels(%x: tensor<2x0xf32>) -> tensor<2x0xi8> {
  %0 = bnn.binarize %x : tensor<2x0xf32> -> tensor<2x0xi8>
  func.return %0 : tensor<2x0xi8>
}

// -----

// CHECK: 'bnn.threshold' needs at least one channel to pack, got tensor<2x0xi32>
func.func @do_not_threshold_zero_channels(%x: tensor<2x0xi32>) -> tensor<2x0xi8> {
  %0 = bnn.threshold %x {thresholds = array<i32>, directions = array<i8>} : tensor<2x0xi32> -> tensor<2x0xi8>
  func.return %0 : tensor<2x0xi8>
}

// -----

// CHECK: 'bnn.bconv2d' a residual goes with output clip8, requant8 or f32 only, not i32
func.func @do_not_accept_residual_of_i32_output(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>, %r: tensor<1x1x1x4xi8>) -> tensor<1x1x1x4xi32> {
  %0 = bnn.bconv2d %x, %w residual %r {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> residual tensor<1x1x1x4xi8> -> tensor<1x1x1x4xi32>
  func.return %0 : tensor<1x1x1x4xi32>
}

// -----

// CHECK: 'bnn.bconv2d' residual must be i8 of the output shape [1, 1, 1, 4], got tensor<1x1x1x4xi16>
func.func @do_not_accept_wide_residual(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>, %r: tensor<1x1x1x4xi16>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w residual %r {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8"} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> residual tensor<1x1x1x4xi16> -> tensor<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}
