// RUN: bnnmlir-opt %s -p bnn-fuse-output | filecheck %s
// RUN: bnnmlir-opt %s -p bnn-fuse-output --print-debuginfo | filecheck %s --check-prefix=LOC

// CHECK-LABEL: func.func @fuse_clip8
// CHECK-NEXT: %{{.*}} = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64, output = "clip8"} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi8>
// CHECK-NEXT: func.return
// LOC-LABEL: func.func @fuse_clip8
// LOC: bnn.bconv2d {{.*}} loc("block1.conv")
func.func @fuse_clip8(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>) -> tensor<1x4x4x2xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32> loc("block1.conv")
  %q = bnn.clip8 %c : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8> loc("block1.clip")
  func.return %q : tensor<1x4x4x2xi8>
}

// The threshold parameters move to the convolution; the result is the packed bits.
// CHECK-LABEL: func.func @fuse_threshold
// CHECK-NEXT: %{{.*}} = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = -1 : i64, output = "threshold", thresholds = array<i32: 3, -2147483648, 0>, directions = array<i8: 1, -1, -1>} : tensor<1x5x5x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x2x2x1xi8>
// CHECK-NEXT: func.return
func.func @fuse_threshold(%x: tensor<1x5x5x1xi8>, %w: tensor<3x3x3x1xi8>) -> tensor<1x2x2x1xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = -1 : i64} : tensor<1x5x5x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x2x2x3xi32>
  %t = bnn.threshold %c {thresholds = array<i32: 3, -2147483648, 0>, directions = array<i8: 1, -1, -1>} : tensor<1x2x2x3xi32> -> tensor<1x2x2x1xi8>
  func.return %t : tensor<1x2x2x1xi8>
}

// The i32 result is also returned: fusing would need the convolution twice.
// CHECK-LABEL: func.func @do_not_fuse_multiple_uses
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} :
// CHECK-NEXT: %[[Q:.*]] = bnn.clip8 %[[C]]
// CHECK-NEXT: %[[T:.*]] = bnn.threshold %[[C]]
// CHECK-NEXT: func.return %[[Q]], %[[T]], %[[C]]
func.func @do_not_fuse_multiple_uses(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>) -> (tensor<1x2x2x2xi8>, tensor<1x2x2x1xi8>, tensor<1x2x2x2xi32>) {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x2x2x2xi32>
  %q = bnn.clip8 %c : tensor<1x2x2x2xi32> -> tensor<1x2x2x2xi8>
  %t = bnn.threshold %c {thresholds = array<i32: 0, 0>, directions = array<i8: 1, 1>} : tensor<1x2x2x2xi32> -> tensor<1x2x2x1xi8>
  func.return %q, %t, %c : tensor<1x2x2x2xi8>, tensor<1x2x2x1xi8>, tensor<1x2x2x2xi32>
}

// A convolution that already has an output transform, and a clip8 of something else, stay.
// CHECK-LABEL: func.func @do_not_fuse_twice_or_other_producers
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d {{.*}}output = "threshold"
// CHECK-NEXT: bnn.threshold %[[C]]
// CHECK-NEXT: bnn.clip8 %y
func.func @do_not_fuse_twice_or_other_producers(%x: tensor<1x4x4x1xi8>, %w: tensor<8x3x3x1xi8>, %y: tensor<3xi32>) -> (tensor<1x2x2x1xi8>, tensor<3xi8>) {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64, output = "threshold", thresholds = array<i32: 0, 0, 0, 0, 0, 0, 0, 0>, directions = array<i8: 1, 1, 1, 1, 1, 1, 1, 1>} : tensor<1x4x4x1xi8>, tensor<8x3x3x1xi8> -> tensor<1x2x2x1xi8>
  %t = bnn.threshold %c {thresholds = array<i32: 0>, directions = array<i8: 1>} : tensor<1x2x2x1xi8> -> tensor<1x2x2x1xi8>
  %q = bnn.clip8 %y : tensor<3xi32> -> tensor<3xi8>
  func.return %t, %q : tensor<1x2x2x1xi8>, tensor<3xi8>
}

// A requant8 of every kind moves, as the requant dictionary, into the convolution (i8 result).
// CHECK-LABEL: func.func @fuse_requant8
// CHECK-NEXT: %[[A:.*]] = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64, output = "requant8", requant = {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>}} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi8>
// CHECK-NEXT: %[[B:.*]] = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = -1 : i64, output = "requant8", requant = {kind = "breakpoints", base = array<i8: -127, 5>, step = array<i8: 1, -1>, breakpoints = array<i32: -3, 0, 2147483647, 4, 4, 9>}} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi8>
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>}} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x1x1x2xi8>
// CHECK-NEXT: func.return %[[A]], %[[B]], %[[C]]
// LOC-LABEL: func.func @fuse_requant8
// LOC: bnn.bconv2d {{.*}}output = "requant8"{{.*}} loc("block2.conv")
func.func @fuse_requant8(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>) -> (tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8>, tensor<1x1x1x2xi8>) {
  %a = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32> loc("block2.conv")
  %qa = bnn.requant8 %a {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>} : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8> loc("block2.requant")
  %b = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = -1 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32>
  %qb = bnn.requant8 %b {kind = "breakpoints", base = array<i8: -127, 5>, step = array<i8: 1, -1>, breakpoints = array<i32: -3, 0, 2147483647, 4, 4, 9>} : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x1x1x2xi32>
  %qc = bnn.requant8 %c {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>} : tensor<1x1x1x2xi32> -> tensor<1x1x1x2xi8>
  func.return %qa, %qb, %qc : tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8>, tensor<1x1x1x2xi8>
}

// Two requant8 users of one convolution: the i32 accumulator is needed twice, nothing fuses.
// CHECK-LABEL: func.func @do_not_fuse_requant8_of_a_shared_convolution
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} :
// CHECK-NEXT: %[[Q:.*]] = bnn.requant8 %[[C]] {kind = "affine"
// CHECK-NEXT: %[[R:.*]] = bnn.requant8 %[[C]] {kind = "table"
// CHECK-NEXT: func.return %[[Q]], %[[R]]
func.func @do_not_fuse_requant8_of_a_shared_convolution(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>) -> (tensor<1x2x2x2xi8>, tensor<1x2x2x2xi8>) {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x2x2x2xi32>
  %q = bnn.requant8 %c {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>} : tensor<1x2x2x2xi32> -> tensor<1x2x2x2xi8>
  %r = bnn.requant8 %c {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>} : tensor<1x2x2x2xi32> -> tensor<1x2x2x2xi8>
  func.return %q, %r : tensor<1x2x2x2xi8>, tensor<1x2x2x2xi8>
}

// A requant8 of a convolution that already has an output transform (its i8 result) stays.
// CHECK-LABEL: func.func @do_not_fuse_requant8_twice
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d {{.*}}output = "clip8"
// CHECK-NEXT: bnn.requant8 %[[C]]
func.func @do_not_fuse_requant8_twice(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>) -> tensor<1x2x2x2xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64, output = "clip8"} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x2x2x2xi8>
  %q = bnn.requant8 %c {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>} : tensor<1x2x2x2xi8> -> tensor<1x2x2x2xi8>
  func.return %q : tensor<1x2x2x2xi8>
}

// clip8(add(conv, r)) of i8 operands: the residual moves into the convolution (either side).
// CHECK-LABEL: func.func @fuse_residual
// CHECK-NEXT: %[[A:.*]] = bnn.bconv2d %x, %w residual %r {{{.*}}output = "clip8"} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> residual tensor<1x4x4x2xi8> -> tensor<1x4x4x2xi8>
// CHECK-NEXT: %[[B:.*]] = bnn.bconv2d %x, %w residual %[[A]] {{{.*}}output = "requant8", requant = {kind = "affine"{{.*}}} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> residual tensor<1x4x4x2xi8> -> tensor<1x4x4x2xi8>
// CHECK-NEXT: func.return %[[B]]
func.func @fuse_residual(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>, %r: tensor<1x4x4x2xi8>) -> tensor<1x4x4x2xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32>
  %q = bnn.clip8 %c : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  %s = bnn.add %q, %r : tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8> -> tensor<1x4x4x2xi16>
  %y = bnn.clip8 %s : tensor<1x4x4x2xi16> -> tensor<1x4x4x2xi8>
  %c2 = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32>
  %q2 = bnn.requant8 %c2 {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>} : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  %s2 = bnn.add %y, %q2 : tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8> -> tensor<1x4x4x2xi16>
  %y2 = bnn.clip8 %s2 : tensor<1x4x4x2xi16> -> tensor<1x4x4x2xi8>
  func.return %y2 : tensor<1x4x4x2xi8>
}

// The sum is also returned, or the convolution's output is used again, or an operand is wider
// than i8: nothing moves.
// CHECK-LABEL: func.func @do_not_fuse_residual
// CHECK-NEXT: %[[Q:.*]] = bnn.bconv2d %x, %w {{{.*}}output = "clip8"}
// CHECK-NEXT: %[[S:.*]] = bnn.add %[[Q]], %r
// CHECK-NEXT: bnn.clip8 %[[S]]
// CHECK-NEXT: %[[Q2:.*]] = bnn.bconv2d %x, %w {{{.*}}output = "clip8"}
// CHECK-NEXT: %[[S2:.*]] = bnn.add %[[Q2]], %r
// CHECK-NEXT: bnn.clip8 %[[S2]]
// CHECK-NEXT: %[[Q3:.*]] = bnn.bconv2d %x, %w {{{.*}}output = "clip8"}
// CHECK-NEXT: %[[S3:.*]] = bnn.add %[[Q3]], %r16
// CHECK-NEXT: bnn.clip8 %[[S3]]
func.func @do_not_fuse_residual(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>, %r: tensor<1x4x4x2xi8>, %r16: tensor<1x4x4x2xi16>) -> (tensor<1x4x4x2xi8>, tensor<1x4x4x2xi16>, tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8>) {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32>
  %q = bnn.clip8 %c : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  %s = bnn.add %q, %r : tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8> -> tensor<1x4x4x2xi16>
  %y = bnn.clip8 %s : tensor<1x4x4x2xi16> -> tensor<1x4x4x2xi8>
  %c2 = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32>
  %q2 = bnn.clip8 %c2 : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  %s2 = bnn.add %q2, %r : tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8> -> tensor<1x4x4x2xi16>
  %y2 = bnn.clip8 %s2 : tensor<1x4x4x2xi16> -> tensor<1x4x4x2xi8>
  %c3 = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32>
  %q3 = bnn.clip8 %c3 : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  %s3 = bnn.add %q3, %r16 : tensor<1x4x4x2xi8>, tensor<1x4x4x2xi16> -> tensor<1x4x4x2xi32>
  %y3 = bnn.clip8 %s3 : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  func.return %y, %s, %y2, %q2, %y3 : tensor<1x4x4x2xi8>, tensor<1x4x4x2xi16>, tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8>
}

// The input quantization (the same affine map on every channel, then clip8) moves before the
// NCHW -> NHWC transpose, which then moves i8; the affine's arrays follow the new last dimension.
// CHECK-LABEL: func.func @quantize_before_transpose
// CHECK-NEXT: %[[A:.*]] = bnn.affine %x {divisor = array<f32: 1.562500e-02, 1.562500e-02, 1.562500e-02, 1.562500e-02, 1.562500e-02>, bias = array<f32: -0.000000e+00, -0.000000e+00, -0.000000e+00, -0.000000e+00, -0.000000e+00>} : tensor<1x3x4x5xf32> -> tensor<1x3x4x5xf32>
// CHECK-NEXT: %[[Q:.*]] = bnn.clip8 %[[A]] : tensor<1x3x4x5xf32> -> tensor<1x3x4x5xi8>
// CHECK-NEXT: %[[T:.*]] = bnn.transpose %[[Q]] {permutation = array<i64: 0, 2, 3, 1>} : tensor<1x3x4x5xi8> -> tensor<1x4x5x3xi8>
// CHECK-NEXT: func.return %[[T]]
func.func @quantize_before_transpose(%x: tensor<1x3x4x5xf32>) -> tensor<1x4x5x3xi8> {
  %t = bnn.transpose %x {permutation = array<i64: 0, 2, 3, 1>} : tensor<1x3x4x5xf32> -> tensor<1x4x5x3xf32>
  %a = bnn.affine %t {divisor = array<f32: 0.015625, 0.015625, 0.015625>, bias = array<f32: -0.0, -0.0, -0.0>} : tensor<1x4x5x3xf32> -> tensor<1x4x5x3xf32>
  %q = bnn.clip8 %a : tensor<1x4x5x3xf32> -> tensor<1x4x5x3xi8>
  func.return %q : tensor<1x4x5x3xi8>
}

// Per-channel parameters do not commute with the transpose; a shared transpose stays too.
// CHECK-LABEL: func.func @do_not_move_quantization
// CHECK-NEXT: %[[T:.*]] = bnn.transpose %x
// CHECK-NEXT: %[[A:.*]] = bnn.affine %[[T]] {scale = array<f32: 1.000000e+00, 2.000000e+00, 1.000000e+00>
// CHECK-NEXT: bnn.clip8 %[[A]]
// CHECK-NEXT: %[[T2:.*]] = bnn.transpose %x
// CHECK-NEXT: %[[A2:.*]] = bnn.affine %[[T2]]
// CHECK-NEXT: bnn.clip8 %[[A2]]
func.func @do_not_move_quantization(%x: tensor<1x3x4x5xf32>) -> (tensor<1x4x5x3xi8>, tensor<1x4x5x3xi8>, tensor<1x4x5x3xf32>) {
  %t = bnn.transpose %x {permutation = array<i64: 0, 2, 3, 1>} : tensor<1x3x4x5xf32> -> tensor<1x4x5x3xf32>
  %a = bnn.affine %t {scale = array<f32: 1.0, 2.0, 1.0>, bias = array<f32: 0.0, 0.0, 0.0>} : tensor<1x4x5x3xf32> -> tensor<1x4x5x3xf32>
  %q = bnn.clip8 %a : tensor<1x4x5x3xf32> -> tensor<1x4x5x3xi8>
  %t2 = bnn.transpose %x {permutation = array<i64: 0, 2, 3, 1>} : tensor<1x3x4x5xf32> -> tensor<1x4x5x3xf32>
  %a2 = bnn.affine %t2 {scale = array<f32: 1.0, 1.0, 1.0>, bias = array<f32: 0.0, 0.0, 0.0>} : tensor<1x4x5x3xf32> -> tensor<1x4x5x3xf32>
  %q2 = bnn.clip8 %a2 : tensor<1x4x5x3xf32> -> tensor<1x4x5x3xi8>
  func.return %q, %q2, %t2 : tensor<1x4x5x3xi8>, tensor<1x4x5x3xi8>, tensor<1x4x5x3xf32>
}

// An integer bnn.conv2d (the int8 stem) takes a following requant8 the same way; a float one,
// or one whose i32 result is also returned, keeps it.
// CHECK-LABEL: func.func @fuse_int8_conv_requant8
// CHECK-NEXT: %[[A:.*]] = bnn.conv2d %x, %w {{{.*}}requant = {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>}} : tensor<1x3x3x2xi8>, tensor<2x3x3x2xi8> -> tensor<1x1x1x2xi8>
// CHECK-NEXT: %[[B:.*]] = bnn.conv2d %x, %w {{{.*}}padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xi8>, tensor<2x3x3x2xi8> -> tensor<1x1x1x2xi32>
// CHECK-NEXT: %[[Q:.*]] = bnn.requant8 %[[B]]
// CHECK-NEXT: func.return %[[A]], %[[Q]], %[[B]]
func.func @fuse_int8_conv_requant8(%x: tensor<1x3x3x2xi8>, %w: tensor<2x3x3x2xi8>) -> (tensor<1x1x1x2xi8>, tensor<1x1x1x2xi8>, tensor<1x1x1x2xi32>) {
  %a = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xi8>, tensor<2x3x3x2xi8> -> tensor<1x1x1x2xi32>
  %qa = bnn.requant8 %a {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>} : tensor<1x1x1x2xi32> -> tensor<1x1x1x2xi8>
  %b = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xi8>, tensor<2x3x3x2xi8> -> tensor<1x1x1x2xi32>
  %qb = bnn.requant8 %b {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>} : tensor<1x1x1x2xi32> -> tensor<1x1x1x2xi8>
  func.return %qa, %qb, %b : tensor<1x1x1x2xi8>, tensor<1x1x1x2xi8>, tensor<1x1x1x2xi32>
}
