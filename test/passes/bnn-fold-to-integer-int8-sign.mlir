// RUN: bnnmlir-opt %s -p bnn-fold-to-integer 2>/dev/null | filecheck %s
// RUN: bnnmlir-opt %s -p bnn-fold-to-integer 2>&1 >/dev/null | filecheck %s --check-prefix=WARN
// RUN: bnnmlir-opt %s -p bnn-fold-to-integer --print-debuginfo 2>/dev/null | filecheck %s --check-prefix=LOC

// binarize(requant8(x)) and binarize(clip8(x)) become bnn.threshold(x): the sign of the int8 stream
// is a per-channel threshold of the integer x (domain [-45, 45] for K = 3*3*5).

// Affine: +1 iff x * m + b >= 0, per channel
//   0: 4x - 10 >= 0 <=> x >= 3     1: -3x + 7 >= 0 <=> x <= 2     2: m = 0, b = 5: always +1
//   3: m = 0, b = -1: always -1    4: x + 100 >= 0 on [-45, 45]: always +1
//   5: x - 100 >= 0 never on [-45, 45]: always -1
// CHECK-LABEL: func.func @fold_affine
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d
// CHECK-NEXT: %[[T:.*]] = bnn.threshold %[[C]] {thresholds = array<i32: 3, 2, -2147483648, -2147483648, -2147483648, -2147483648>, directions = array<i8: 1, -1, 1, -1, 1, -1>} : tensor<1x2x2x6xi32> -> tensor<1x2x2x1xi8>
// CHECK-NEXT: func.return %[[T]]
// LOC-LABEL: func.func @fold_affine
// LOC: bnn.threshold {{.*}} loc("layer2.sign")
func.func @fold_affine(%x: tensor<1x4x4x1xi8>, %w: tensor<6x3x3x1xi8>) -> tensor<1x2x2x1xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<6x3x3x1xi8> -> tensor<1x2x2x6xi32>
  %q = bnn.requant8 %c {kind = "affine", multiplier = array<i64: 4, -3, 0, 0, 1, 1>, offset = array<i64: -10, 7, 5, -1, 100, -100>, shift = array<i64: 2, 1, 0, 3, 0, 0>} : tensor<1x2x2x6xi32> -> tensor<1x2x2x6xi8>
  %s = bnn.binarize %q : tensor<1x2x2x6xi8> -> tensor<1x2x2x1xi8> loc("layer2.sign")
  func.return %s : tensor<1x2x2x1xi8>
}

// Breakpoints: base + step * #{breakpoints <= x}, per channel (rows of 3)
//   0: -2 + n >= 0 <=> n >= 2 <=> x >= 0          1: 1 - n >= 0 <=> n <= 1 <=> x <= 3
//   2: -5 + n needs n >= 5 > 3: always -1          3: 127 - n: always +1
// CHECK-LABEL: func.func @fold_breakpoints
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d
// CHECK-NEXT: %[[T:.*]] = bnn.threshold %[[C]] {thresholds = array<i32: 0, 3, -2147483648, -2147483648>, directions = array<i8: 1, -1, -1, 1>} : tensor<1x2x2x4xi32> -> tensor<1x2x2x1xi8>
// CHECK-NEXT: func.return %[[T]]
func.func @fold_breakpoints(%x: tensor<1x4x4x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x2x2x1xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x2x2x4xi32>
  %q = bnn.requant8 %c {kind = "breakpoints", base = array<i8: -2, 1, -5, 127>, step = array<i8: 1, -1, 1, -1>, breakpoints = array<i32: -5, 0, 7, -3, 4, 10, 1, 2, 2147483647, -1, 0, 1>} : tensor<1x2x2x4xi32> -> tensor<1x2x2x4xi8>
  %s = bnn.binarize %q : tensor<1x2x2x4xi8> -> tensor<1x2x2x1xi8>
  func.return %s : tensor<1x2x2x1xi8>
}

// Table on an i8 stream (domain [-128, 127]), lo = -2, extended by its end values outside:
//   0: signs - - + + + : x >= 0         1: signs + + - - - : x <= -1
//   2: all +: always +1                 3: all -: always -1
// CHECK-LABEL: func.func @fold_table
// CHECK-NEXT: %[[T:.*]] = bnn.threshold %x {thresholds = array<i32: 0, -1, -2147483648, -2147483648>, directions = array<i8: 1, -1, 1, -1>} : tensor<3x4xi8> -> tensor<3x1xi8>
// CHECK-NEXT: func.return %[[T]]
func.func @fold_table(%x: tensor<3x4xi8>) -> tensor<3x1xi8> {
  %q = bnn.requant8 %x {kind = "table", lo = -2 : i64, table = array<i8: -3, -1, 0, 5, 9, 4, 0, -1, -7, -127, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1>} : tensor<3x4xi8> -> tensor<3x4xi8>
  %s = bnn.binarize %q : tensor<3x4xi8> -> tensor<3x1xi8>
  func.return %s : tensor<3x1xi8>
}

// A table whose signs change twice on the whole table changes once on the domain [-3, 3] of a
// clip of the input: the fold looks at the domain only.
// CHECK-LABEL: func.func @fold_table_on_its_domain
// CHECK-NEXT: %[[H:.*]] = bnn.activation
// CHECK-NEXT: %[[T:.*]] = bnn.threshold %[[H]] {thresholds = array<i32: 1>, directions = array<i8: 1>} : tensor<3x1xi16> -> tensor<3x1xi8>
func.func @fold_table_on_its_domain(%x: tensor<3x1xi16>) -> tensor<3x1xi8> {
  %h = bnn.activation %x {kind = "hardtanh", min = -3.0 : f32, max = 3.0 : f32} : tensor<3x1xi16> -> tensor<3x1xi16>
  %q = bnn.requant8 %h {kind = "table", lo = -4 : i64, table = array<i8: 9, -1, -1, -1, -1, 0, 2, 2, 2>} : tensor<3x1xi16> -> tensor<3x1xi8>
  %s = bnn.binarize %q : tensor<3x1xi8> -> tensor<3x1xi8>
  func.return %s : tensor<3x1xi8>
}

// clip8 keeps the sign of an integer: threshold 0, direction +1 on every channel.
// CHECK-LABEL: func.func @fold_clip8
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d
// CHECK-NEXT: %[[T:.*]] = bnn.threshold %[[C]] {thresholds = array<i32: 0, 0, 0>, directions = array<i8: 1, 1, 1>} : tensor<1x2x2x3xi32> -> tensor<1x2x2x1xi8>
// CHECK-NEXT: func.return %[[T]]
func.func @fold_clip8(%x: tensor<1x4x4x1xi8>, %w: tensor<3x3x3x1xi8>) -> tensor<1x2x2x1xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x2x2x3xi32>
  %q = bnn.clip8 %c : tensor<1x2x2x3xi32> -> tensor<1x2x2x3xi8>
  %s = bnn.binarize %q : tensor<1x2x2x3xi8> -> tensor<1x2x2x1xi8>
  func.return %s : tensor<1x2x2x1xi8>
}

// BatchNorm -> Clip8 -> sign: the float chain folds to a requant8, whose sign folds in turn.
//   0: clip8(x - 2.5) >= 0 <=> round_half_even(x - 2.5) >= 0 <=> x >= 2 (-0.5 rounds to -0)
//   1: clip8(-x) >= 0 <=> x <= 0
// CHECK-LABEL: func.func @fold_batch_norm_clip8_sign
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d
// CHECK-NEXT: %[[T:.*]] = bnn.threshold %[[C]] {thresholds = array<i32: 2, 0>, directions = array<i8: 1, -1>} : tensor<1x2x2x2xi32> -> tensor<1x2x2x1xi8>
// CHECK-NEXT: func.return %[[T]]
func.func @fold_batch_norm_clip8_sign(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>) -> tensor<1x2x2x1xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x2x2x2xi32>
  %f = bnn.cast %c : tensor<1x2x2x2xi32> -> tensor<1x2x2x2xf32>
  %b = bnn.batch_norm %f {mean = array<f32: 2.5, 0.0>, var = array<f32: 1.0, 1.0>, gamma = array<f32: 1.0, -1.0>, beta = array<f32: 0.0, 0.0>, eps = 0.0 : f32} : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %q = bnn.clip8 %b : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xi8>
  %s = bnn.binarize %q : tensor<1x2x2x2xi8> -> tensor<1x2x2x1xi8>
  func.return %s : tensor<1x2x2x1xi8>
}

// The int8 stream has a second user (a residual): it is still needed, nothing is folded.
// CHECK-LABEL: func.func @do_not_fold_two_users
// CHECK-NEXT: %[[Q:.*]] = bnn.requant8 %x
// CHECK-NEXT: %[[S:.*]] = bnn.binarize %[[Q]]
// CHECK-NEXT: %[[P:.*]] = bnn.clip8 %x
// CHECK-NEXT: %[[R:.*]] = bnn.binarize %[[P]]
// CHECK-NEXT: func.return %[[S]], %[[Q]], %[[R]], %[[P]]
func.func @do_not_fold_two_users(%x: tensor<2x2xi16>) -> (tensor<2x1xi8>, tensor<2x2xi8>, tensor<2x1xi8>, tensor<2x2xi8>) {
  %q = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 1, -1>, offset = array<i64: 0, 0>, shift = array<i64: 0, 0>} : tensor<2x2xi16> -> tensor<2x2xi8>
  %s = bnn.binarize %q : tensor<2x2xi8> -> tensor<2x1xi8>
  %p = bnn.clip8 %x : tensor<2x2xi16> -> tensor<2x2xi8>
  %r = bnn.binarize %p : tensor<2x2xi8> -> tensor<2x1xi8>
  func.return %s, %q, %r, %p : tensor<2x1xi8>, tensor<2x2xi8>, tensor<2x1xi8>, tensor<2x2xi8>
}

// Channel 1 of the table is + - + on the domain: no single threshold, nothing is folded.
// CHECK-LABEL: func.func @do_not_fold_non_monotone_table
// CHECK-NEXT: bnn.requant8
// CHECK-NEXT: bnn.binarize
// WARN: bnn-fold-to-integer left 'bnn.binarize' unchanged: channel 1: the sign of the table changes 2 times on [-128, 127], so no single threshold exists
func.func @do_not_fold_non_monotone_table(%x: tensor<3x2xi8>) -> tensor<3x1xi8> {
  %q = bnn.requant8 %x {kind = "table", lo = -1 : i64, table = array<i8: -1, 0, 1, 5, -5, 5>} : tensor<3x2xi8> -> tensor<3x2xi8>
  %s = bnn.binarize %q : tensor<3x2xi8> -> tensor<3x1xi8>
  func.return %s : tensor<3x1xi8>
}

// "Always -1" on every i32 value: t = -2**31, d = -1 would give +1 at -2**31, and d = +1 with
// t = 2**31 - 1 would give +1 at 2**31 - 1: no threshold expresses it.
// CHECK-LABEL: func.func @do_not_fold_always_minus_one_on_all_of_i32
// CHECK-NEXT: bnn.requant8
// CHECK-NEXT: bnn.binarize
// WARN: bnn-fold-to-integer left 'bnn.binarize' unchanged: channel 0: always -1 on the whole i32 range, which no threshold expresses
func.func @do_not_fold_always_minus_one_on_all_of_i32(%x: tensor<3x1xi32>) -> tensor<3x1xi8> {
  %q = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 0>, offset = array<i64: -1>, shift = array<i64: 0>} : tensor<3x1xi32> -> tensor<3x1xi8>
  %s = bnn.binarize %q : tensor<3x1xi8> -> tensor<3x1xi8>
  func.return %s : tensor<3x1xi8>
}

// A float clip8 rounds before the sign (clip8(-0.4) = 0 is +1): not a threshold of an integer.
// CHECK-LABEL: func.func @do_not_fold_float_clip8
// CHECK-NEXT: bnn.clip8
// CHECK-NEXT: bnn.binarize
func.func @do_not_fold_float_clip8(%x: tensor<3x2xf32>) -> tensor<3x1xi8> {
  %q = bnn.clip8 %x : tensor<3x2xf32> -> tensor<3x2xi8>
  %s = bnn.binarize %q : tensor<3x2xi8> -> tensor<3x1xi8>
  func.return %s : tensor<3x1xi8>
}
