// The "optimized" stage of passes/pipelines.py, in order:
// RUN: %python -c "from bnnmlir.passes.pipelines import stage_passes; print(*[p.name for p in stage_passes('optimized')])" | filecheck %s --check-prefix=ORDER
// ORDER: bnn-fold-to-integer bnn-fuse-output bnn-fuse-elementwise bnn-fuse-quantize bnn-pack-weights
//
// RUN: bnnmlir-opt %s -p bnn-fold-to-integer,bnn-fuse-output,bnn-pack-weights | filecheck %s
// RUN: bnnmlir-opt %s -p bnn-fuse-output,bnn-fold-to-integer,bnn-pack-weights | filecheck %s --check-prefix=FUSE-FIRST
//
// Folding comes first: it creates the bnn.threshold and bnn.requant8 that fusion absorbs into
// the convolutions, and it turns binarize(cast(constant)) into binarize(constant), which weight packing folds.
// The accumulator width of each convolution is chosen later, at loop level, by
// lower-bnn-to-loops (passes/accumulator_width.py).

// CHECK-LABEL: func.func @two_layers
// CHECK-NEXT: %[[W1:.*]] = arith.constant dense<{{\[\[\[\[}}2]]], {{\[\[\[}}3]]]]> : tensor<2x1x1x1xi8>
// CHECK-NEXT: %[[B:.*]] = bnn.bconv2d %x, %[[W1]] {{{.*}}output = "threshold", thresholds = array<i32: 1, 0>, directions = array<i8: 1, -1>} : tensor<1x3x3x1xi8>, tensor<2x1x1x1xi8> -> tensor<1x3x3x1xi8>
// CHECK-NEXT: %[[W2:.*]] = arith.constant dense<{{\[\[\[\[}}2]]], {{\[\[\[}}3]]], {{\[\[\[}}0]]]]> : tensor<3x1x1x1xi8>
// CHECK-NEXT: %[[Q:.*]] = bnn.bconv2d %[[B]], %[[W2]] {{{.*}}pad_value = 0 : i64, output = "requant8", requant = {kind = "affine", multiplier = array<i64: 8, -16, 32>, offset = array<i64: 0, 1, -32>, shift = array<i64: 0, 0, 0>}} : tensor<1x3x3x1xi8>, tensor<3x1x1x1xi8> -> tensor<1x3x3x3xi8>
// CHECK-NEXT: func.return %[[Q]]

// FUSE-FIRST-LABEL: func.func @two_layers
// FUSE-FIRST: %[[C:.*]] = bnn.bconv2d
// FUSE-FIRST-NEXT: bnn.threshold %[[C]]
func.func @two_layers(%x: tensor<1x3x3x1xi8>) -> tensor<1x3x3x3xi8> {
  %w1 = arith.constant dense<[[[[1.0, -1.0, 1.0]]], [[[-1.0, -1.0, 1.0]]]]> : tensor<2x1x1x3xf32>
  %p1 = bnn.binarize %w1 : tensor<2x1x1x3xf32> -> tensor<2x1x1x1xi8>
  %c1 = bnn.bconv2d %x, %p1 {in_channels = 3 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x3x3x1xi8>, tensor<2x1x1x1xi8> -> tensor<1x3x3x2xi32>
  %f1 = bnn.cast %c1 : tensor<1x3x3x2xi32> -> tensor<1x3x3x2xf32>
  %n1 = bnn.batch_norm %f1 {mean = array<f32: 0.5, 0.0>, var = array<f32: 1.0, 1.0>, gamma = array<f32: 1.0, -1.0>, beta = array<f32: 0.0, 0.25>, eps = 0.0 : f32} : tensor<1x3x3x2xf32> -> tensor<1x3x3x2xf32>
  %b1 = bnn.binarize %n1 : tensor<1x3x3x2xf32> -> tensor<1x3x3x1xi8>
  %w2i = arith.constant dense<[[[[1, -1]]], [[[-1, -1]]], [[[2, 0]]]]> : tensor<3x1x1x2xi32>
  %w2f = bnn.cast %w2i : tensor<3x1x1x2xi32> -> tensor<3x1x1x2xf32>
  %p2 = bnn.binarize %w2f : tensor<3x1x1x2xf32> -> tensor<3x1x1x1xi8>
  %c2 = bnn.bconv2d %b1, %p2 {in_channels = 2 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x3x3x1xi8>, tensor<3x1x1x1xi8> -> tensor<1x3x3x3xi32>
  %f2 = bnn.cast %c2 : tensor<1x3x3x3xi32> -> tensor<1x3x3x3xf32>
  %n2 = bnn.batch_norm %f2 {mean = array<f32: 0.0, 0.0, 1.0>, var = array<f32: 1.0, 1.0, 1.0>, gamma = array<f32: 8.0, -16.0, 32.0>, beta = array<f32: 0.0, 1.0, 0.0>, eps = 0.0 : f32} : tensor<1x3x3x3xf32> -> tensor<1x3x3x3xf32>
  %q = bnn.clip8 %n2 : tensor<1x3x3x3xf32> -> tensor<1x3x3x3xi8>
  func.return %q : tensor<1x3x3x3xi8>
}

// Binary conv -> BatchNorm -> Clip8 -> next binary layer, without a residual: the int8 stream
// only feeds a sign, so BatchNorm + Clip8 + sign fold to one integer threshold (x >= 1, x <= 0)
// that fusion moves into the first convolution; no requant8 and no int8 tensor remain.
// CHECK-LABEL: func.func @clip8_then_binary_layer
// CHECK-NEXT: %[[B:.*]] = bnn.bconv2d %x, %w1 {{{.*}}output = "threshold", thresholds = array<i32: 1, 0>, directions = array<i8: 1, -1>} : tensor<1x4x4x1xi8>, tensor<2x1x1x1xi8> -> tensor<1x4x4x1xi8>
// CHECK-NEXT: %[[C:.*]] = bnn.bconv2d %[[B]], %w2 {{{.*}}pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<1x1x1x1xi8> -> tensor<1x4x4x1xi32>
// CHECK-NEXT: func.return %[[C]]
// FUSE-FIRST-LABEL: func.func @clip8_then_binary_layer
// FUSE-FIRST: %[[C:.*]] = bnn.bconv2d %x, %w1
// FUSE-FIRST-NEXT: bnn.threshold %[[C]]
func.func @clip8_then_binary_layer(%x: tensor<1x4x4x1xi8>, %w1: tensor<2x1x1x1xi8>, %w2: tensor<1x1x1x1xi8>) -> tensor<1x4x4x1xi32> {
  %c1 = bnn.bconv2d %x, %w1 {in_channels = 3 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x1x1x1xi8> -> tensor<1x4x4x2xi32>
  %f = bnn.cast %c1 : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xf32>
  %n = bnn.batch_norm %f {mean = array<f32: 0.75, 0.0>, var = array<f32: 1.0, 1.0>, gamma = array<f32: 16.0, -16.0>, beta = array<f32: 0.0, 0.0>, eps = 0.0 : f32} : tensor<1x4x4x2xf32> -> tensor<1x4x4x2xf32>
  %q = bnn.clip8 %n : tensor<1x4x4x2xf32> -> tensor<1x4x4x2xi8>
  %b = bnn.binarize %q : tensor<1x4x4x2xi8> -> tensor<1x4x4x1xi8>
  %c2 = bnn.bconv2d %b, %w2 {in_channels = 2 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<1x1x1x1xi8> -> tensor<1x4x4x1xi32>
  func.return %c2 : tensor<1x4x4x1xi32>
}
