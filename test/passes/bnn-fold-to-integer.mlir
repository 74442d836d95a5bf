// RUN: bnnmlir-opt %s -p bnn-fold-to-integer 2>/dev/null | filecheck %s
// RUN: bnnmlir-opt %s -p bnn-fold-to-integer 2>&1 >/dev/null | filecheck %s --check-prefix=WARN
// RUN: bnnmlir-opt %s -p bnn-fold-to-integer --print-debuginfo 2>/dev/null | filecheck %s --check-prefix=LOC
// The same folds when BatchNorm is evaluated by torch.nn.functional.batch_norm (exact here):
// RUN: bnnmlir-opt %s -p 'bnn-fold-to-integer{batch-norm=torch}' 2>/dev/null | filecheck %s
// RUN: not bnnmlir-opt %s -p 'bnn-fold-to-integer{batch-norm=fused}' 2>&1 | filecheck %s --check-prefix=BAD-OPTION
// BAD-OPTION: bnn-fold-to-integer: batch-norm must be one of op, torch, got 'fused'

// BatchNorm then sign of a convolution (K = 45, x in [-45, 45]), per channel:
//   0: 0.5x - 0.5 >= 0 <=> x >= 1                  (gamma > 0: direction +1)
//   1: -2x + 0.5 >= 0 <=> x <= 0                   (gamma < 0: direction -1)
//   2: gamma = 0, beta = 1: always +1              (t = -2**31, d = +1)
//   3: gamma = 0, beta = -1: always -1             (t = -2**31, d = -1)
//   4: x + 100 >= 0 on the whole domain: always +1
// CHECK-LABEL: func.func @fold_batch_norm_sign
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d
// CHECK-NEXT: %{{.*}} = bnn.threshold %[[C]] {thresholds = array<i32: 1, 0, -2147483648, -2147483648, -2147483648>, directions = array<i8: 1, -1, 1, -1, 1>} : tensor<1x2x2x5xi32> -> tensor<1x2x2x1xi8>
// CHECK-NEXT: func.return
// LOC-LABEL: func.func @fold_batch_norm_sign
// LOC: bnn.threshold {{.*}} loc("layer1.sign")
func.func @fold_batch_norm_sign(%x: tensor<1x4x4x1xi8>, %w: tensor<5x3x3x1xi8>) -> tensor<1x2x2x1xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<5x3x3x1xi8> -> tensor<1x2x2x5xi32>
  %f = bnn.cast %c : tensor<1x2x2x5xi32> -> tensor<1x2x2x5xf32>
  %b = bnn.batch_norm %f {mean = array<f32: 1.5, 0.0, 0.0, 0.0, 0.0>, var = array<f32: 4.0, 1.0, 1.0, 1.0, 1.0>, gamma = array<f32: 1.0, -2.0, 0.0, 0.0, 1.0>, beta = array<f32: 0.25, 0.5, 1.0, -1.0, 100.0>, eps = 0.0 : f32} : tensor<1x2x2x5xf32> -> tensor<1x2x2x5xf32>
  %s = bnn.binarize %b : tensor<1x2x2x5xf32> -> tensor<1x2x2x1xi8> loc("layer1.sign")
  func.return %s : tensor<1x2x2x1xi8>
}

// BatchNorm then clip8 of an int8 stream: scale 4, shift 3 is exactly 4x + 3, clamped:
// the affine kind with multiplier 4 and no shift.
// CHECK-LABEL: func.func @fold_batch_norm_clip8
// CHECK-NEXT: %{{.*}} = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 4, -1>, offset = array<i64: 3, 0>, shift = array<i64: 0, 0>} : tensor<2x2xi8> -> tensor<2x2xi8>
// CHECK-NEXT: func.return
func.func @fold_batch_norm_clip8(%x: tensor<2x2xi8>) -> tensor<2x2xi8> {
  %f = bnn.cast %x : tensor<2x2xi8> -> tensor<2x2xf32>
  %b = bnn.batch_norm %f {mean = array<f32: 0.0, 0.0>, var = array<f32: 1.0, 1.0>, gamma = array<f32: 4.0, -1.0>, beta = array<f32: 3.0, 0.0>, eps = 0.0 : f32} : tensor<2x2xf32> -> tensor<2x2xf32>
  %q = bnn.clip8 %b : tensor<2x2xf32> -> tensor<2x2xi8>
  func.return %q : tensor<2x2xi8>
}

// Scale + bias then clip8 with round half to even: x/2 rounds 1/2 -> 0, 3/2 -> 2, which no
// floor((m*x + b) / 2**s) reproduces; the monotone step function becomes breakpoints.
// CHECK-LABEL: func.func @fold_affine_clip8
// CHECK-NEXT: bnn.requant8 %x {kind = "breakpoints", {{.*}}} : tensor<3x1xi8> -> tensor<3x1xi8>
// CHECK-NEXT: func.return
func.func @fold_affine_clip8(%x: tensor<3x1xi8>) -> tensor<3x1xi8> {
  %f = bnn.cast %x : tensor<3x1xi8> -> tensor<3x1xf32>
  %a = bnn.affine %f {scale = array<f32: 0.5>, bias = array<f32: 0.0>} : tensor<3x1xf32> -> tensor<3x1xf32>
  %q = bnn.clip8 %a : tensor<3x1xf32> -> tensor<3x1xi8>
  func.return %q : tensor<3x1xi8>
}

// A chain: BatchNorm, hardtanh, scale + bias, then sign.
// CHECK-LABEL: func.func @fold_chain_sign
// CHECK-NEXT: bnn.threshold %x {thresholds = array<i32: 3>, directions = array<i8: 1>} : tensor<4x1xi16> -> tensor<4x1xi8>
// CHECK-NEXT: func.return
func.func @fold_chain_sign(%x: tensor<4x1xi16>) -> tensor<4x1xi8> {
  %f = bnn.cast %x : tensor<4x1xi16> -> tensor<4x1xf32>
  %b = bnn.batch_norm %f {mean = array<f32: 2.0>, var = array<f32: 1.0>, gamma = array<f32: 1.0>, beta = array<f32: 0.0>, eps = 0.0 : f32} : tensor<4x1xf32> -> tensor<4x1xf32>
  %h = bnn.activation %b {kind = "hardtanh", min = -1.0 : f32, max = 1.0 : f32} : tensor<4x1xf32> -> tensor<4x1xf32>
  %a = bnn.affine %h {scale = array<f32: 1.0>, bias = array<f32: -0.5>} : tensor<4x1xf32> -> tensor<4x1xf32>
  %s = bnn.binarize %a : tensor<4x1xf32> -> tensor<4x1xi8>
  func.return %s : tensor<4x1xi8>
}

// Casts alone: binarize and clip8 take the integer directly.
// CHECK-LABEL: func.func @fold_casts
// CHECK-NEXT: %[[B:.*]] = bnn.binarize %x : tensor<2x9xi32> -> tensor<2x2xi8>
// CHECK-NEXT: %[[Q:.*]] = bnn.clip8 %x : tensor<2x9xi32> -> tensor<2x9xi8>
// CHECK-NEXT: func.return %[[B]], %[[Q]]
func.func @fold_casts(%x: tensor<2x9xi32>) -> (tensor<2x2xi8>, tensor<2x9xi8>) {
  %f = bnn.cast %x : tensor<2x9xi32> -> tensor<2x9xf32>
  %g = bnn.cast %f : tensor<2x9xf32> -> tensor<2x9xf32>
  %s = bnn.binarize %g : tensor<2x9xf32> -> tensor<2x2xi8>
  %q = bnn.clip8 %f : tensor<2x9xf32> -> tensor<2x9xi8>
  func.return %s, %q : tensor<2x2xi8>, tensor<2x9xi8>
}

// A BatchNorm with another user stays for it; the binarize is still folded.
// CHECK-LABEL: func.func @fold_shared_batch_norm
// CHECK: %[[BN:.*]] = bnn.batch_norm
// CHECK-NEXT: %[[T:.*]] = bnn.threshold %x
// CHECK-NEXT: func.return %[[T]], %[[BN]]
func.func @fold_shared_batch_norm(%x: tensor<2x3xi8>) -> (tensor<2x1xi8>, tensor<2x3xf32>) {
  %f = bnn.cast %x : tensor<2x3xi8> -> tensor<2x3xf32>
  %b = bnn.batch_norm %f {mean = array<f32: 0.0, 1.0, 2.0>, var = array<f32: 1.0, 1.0, 1.0>, gamma = array<f32: 1.0, 1.0, 1.0>, beta = array<f32: 0.0, 0.0, 0.0>, eps = 0.0 : f32} : tensor<2x3xf32> -> tensor<2x3xf32>
  %s = bnn.binarize %b : tensor<2x3xf32> -> tensor<2x1xi8>
  func.return %s, %b : tensor<2x1xi8>, tensor<2x3xf32>
}

// The input is a float, not an integer: nothing to fold.
// CHECK-LABEL: func.func @do_not_fold_float_input
// CHECK-NEXT: bnn.batch_norm
// CHECK-NEXT: bnn.binarize
func.func @do_not_fold_float_input(%x: tensor<2x3xf32>) -> tensor<2x1xi8> {
  %b = bnn.batch_norm %x {mean = array<f32: 0.0, 1.0, 2.0>, var = array<f32: 1.0, 1.0, 1.0>, gamma = array<f32: 1.0, 1.0, 1.0>, beta = array<f32: 0.0, 0.0, 0.0>, eps = 0.0 : f32} : tensor<2x3xf32> -> tensor<2x3xf32>
  %s = bnn.binarize %b : tensor<2x3xf32> -> tensor<2x1xi8>
  func.return %s : tensor<2x1xi8>
}

// |x| - 5 >= 0 has two switching points (x <= -5 and x >= 5): no single threshold exists.
// CHECK-LABEL: func.func @do_not_fold_non_monotone
// CHECK-NEXT: bnn.cast
// CHECK-NEXT: bnn.activation
// CHECK-NEXT: bnn.affine
// CHECK-NEXT: bnn.binarize
// WARN: bnn-fold-to-integer left 'bnn.binarize' unchanged: channel 0: sign(fn(x)) is not a single-threshold step function on [-128, 127]
func.func @do_not_fold_non_monotone(%x: tensor<4x1xi8>) -> tensor<4x1xi8> {
  %f = bnn.cast %x : tensor<4x1xi8> -> tensor<4x1xf32>
  %p = bnn.activation %f {kind = "prelu", slopes = array<f32: -1.0>} : tensor<4x1xf32> -> tensor<4x1xf32>
  %a = bnn.affine %p {scale = array<f32: 1.0>, bias = array<f32: -5.0>} : tensor<4x1xf32> -> tensor<4x1xf32>
  %s = bnn.binarize %a : tensor<4x1xf32> -> tensor<4x1xi8>
  func.return %s : tensor<4x1xi8>
}

// An i32 argument may be any 32-bit integer: beyond 2**24 the cast is not exact, no fold.
// CHECK-LABEL: func.func @do_not_fold_unbounded_input
// CHECK-NEXT: bnn.cast
// CHECK-NEXT: bnn.batch_norm
// CHECK-NEXT: bnn.clip8
// WARN: bnn-fold-to-integer left 'bnn.clip8' unchanged: domain [-2147483648, 2147483647] exceeds |x| <= 2**24
func.func @do_not_fold_unbounded_input(%x: tensor<4x2xi32>) -> tensor<4x2xi8> {
  %f = bnn.cast %x : tensor<4x2xi32> -> tensor<4x2xf32>
  %b = bnn.batch_norm %f {mean = array<f32: 0.0, 1.0>, var = array<f32: 1.0, 1.0>, gamma = array<f32: 1.0, 1.0>, beta = array<f32: 0.0, 0.0>, eps = 0.0 : f32} : tensor<4x2xf32> -> tensor<4x2xf32>
  %q = bnn.clip8 %b : tensor<4x2xf32> -> tensor<4x2xi8>
  func.return %q : tensor<4x2xi8>
}
