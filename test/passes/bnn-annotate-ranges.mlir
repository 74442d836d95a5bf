// RUN: bnnmlir-opt %s -p bnn-annotate-ranges | filecheck %s

// A binary convolution with K = 3*3*5 = 45 is in [-45, 45], also with zero padding; its clip8 is
// not narrowed further, a sum of two of them adds, the cast keeps the interval, binarize is bits.
// CHECK-LABEL: func.func @conv_clip_add
// CHECK: bnn.bconv2d {{.*}}bnn.range = [-45 : i64, 45 : i64]
// CHECK: bnn.clip8 {{.*}}bnn.range = [-45 : i64, 45 : i64]
// CHECK: bnn.bconv2d {{.*}}bnn.range = [-288 : i64, 288 : i64]
// CHECK: bnn.clip8 {{.*}}bnn.range = [-127 : i64, 127 : i64]
// CHECK: bnn.add {{.*}}bnn.range = [-172 : i64, 172 : i64]
// CHECK: bnn.cast {{.*}}bnn.range = [-172 : i64, 172 : i64]
// CHECK: bnn.binarize %f : tensor
func.func @conv_clip_add(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>, %y: tensor<1x8x8x4xi8>, %v: tensor<2x3x3x4xi8>) -> tensor<1x4x4x1xi8> {
  %c = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi32>
  %a = bnn.clip8 %c : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  %d = bnn.bconv2d %y, %v {in_channels = 32 : i64, strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 1 : i64} : tensor<1x8x8x4xi8>, tensor<2x3x3x4xi8> -> tensor<1x4x4x2xi32>
  %b = bnn.clip8 %d : tensor<1x4x4x2xi32> -> tensor<1x4x4x2xi8>
  %s = bnn.add %a, %b : tensor<1x4x4x2xi8>, tensor<1x4x4x2xi8> -> tensor<1x4x4x2xi16>
  %f = bnn.cast %s : tensor<1x4x4x2xi16> -> tensor<1x4x4x2xf32>
  %p = bnn.binarize %f : tensor<1x4x4x2xf32> -> tensor<1x4x4x1xi8>
  func.return %p : tensor<1x4x4x1xi8>
}

// i8 arguments are [-128, 127]; relu, max pooling and clip8 of a float follow the rules; a
// float argument has no integer range, neither has its copy.
// CHECK-LABEL: func.func @arguments_and_elementwise
// CHECK: bnn.activation {{.*}}bnn.range = [0 : i64, 127 : i64]
// CHECK: bnn.pool2d {{.*}}bnn.range = [0 : i64, 127 : i64]
// CHECK: bnn.cast %f : tensor<1x4x4x3xf32>
// CHECK: bnn.clip8 {{.*}}bnn.range = [-127 : i64, 127 : i64]
func.func @arguments_and_elementwise(%q: tensor<1x4x4x3xi8>, %f: tensor<1x4x4x3xf32>) -> (tensor<1x2x2x3xi8>, tensor<1x4x4x3xi8>) {
  %r = bnn.activation %q {kind = "relu"} : tensor<1x4x4x3xi8> -> tensor<1x4x4x3xi8>
  %m = bnn.pool2d %r {kind = "max", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x4x4x3xi8> -> tensor<1x2x2x3xi8>
  %g = bnn.cast %f : tensor<1x4x4x3xf32> -> tensor<1x4x4x3xf32>
  %c = bnn.clip8 %g : tensor<1x4x4x3xf32> -> tensor<1x4x4x3xi8>
  func.return %m, %c : tensor<1x2x2x3xi8>, tensor<1x4x4x3xi8>
}

// Fused outputs: clip8 narrows to [-127, 127] only when K exceeds it; thresholds give bits.
// CHECK-LABEL: func.func @fused_outputs
// CHECK: bnn.bconv2d %{{.*}} {bnn.range = [-45 : i64, 45 : i64], {{.*}}output = "clip8"}
// CHECK: bnn.bconv2d %{{.*}} {in_channels = 5 : i64, {{.*}}output = "threshold"
// CHECK: bnn.requant8 {{.*}}bnn.range = [-127 : i64, 127 : i64]
func.func @fused_outputs(%x: tensor<1x4x4x1xi8>, %w: tensor<2x3x3x1xi8>) -> (tensor<1x4x4x2xi8>, tensor<1x4x4x1xi8>, tensor<1x4x4x2xi8>) {
  %a = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64, output = "clip8"} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x2xi8>
  %b = bnn.bconv2d %x, %w {in_channels = 5 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64, output = "threshold", thresholds = array<i32: 0, 3>, directions = array<i8: 1, -1>} : tensor<1x4x4x1xi8>, tensor<2x3x3x1xi8> -> tensor<1x4x4x1xi8>
  %c = bnn.requant8 %a {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>} : tensor<1x4x4x2xi8> -> tensor<1x4x4x2xi8>
  func.return %a, %b, %c : tensor<1x4x4x2xi8>, tensor<1x4x4x1xi8>, tensor<1x4x4x2xi8>
}

// Integer convolution / dense with constant i8 weights: per output channel the sum of the extreme
// products (weights 1, -2, 3 and 0, 0, 5 on [0, 127]: [-254, 508] and [0, 635]); with zero
// padding 0 would join every partial sum. A non-constant weight gives the whole i32 range.
// CHECK-LABEL: func.func @integer_products
// CHECK: bnn.activation {{.*}}bnn.range = [0 : i64, 127 : i64]
// CHECK: bnn.dense {{.*}}bnn.range = [-254 : i64, 635 : i64]
// CHECK: bnn.conv2d {{.*}}bnn.range = [-254 : i64, 635 : i64]
// CHECK: bnn.dense {{.*}}bnn.range = [-2147483648 : i64, 2147483647 : i64]
func.func @integer_products(%x: tensor<2x3xi8>, %y: tensor<1x1x1x3xi8>, %wv: tensor<2x3xi8>) -> (tensor<2x2xi32>, tensor<1x1x1x2xi32>, tensor<2x2xi32>) {
  %r = bnn.activation %x {kind = "relu"} : tensor<2x3xi8> -> tensor<2x3xi8>
  %w = arith.constant dense<[[1, -2, 3], [0, 0, 5]]> : tensor<2x3xi8>
  %d = bnn.dense %r, %w : tensor<2x3xi8>, tensor<2x3xi8> -> tensor<2x2xi32>
  %ry = bnn.activation %y {kind = "relu"} : tensor<1x1x1x3xi8> -> tensor<1x1x1x3xi8>
  %wc = arith.constant dense<[[[[1, -2, 3]]], [[[0, 0, 5]]]]> : tensor<2x1x1x3xi8>
  %c = bnn.conv2d %ry, %wc {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x1x1x3xi8>, tensor<2x1x1x3xi8> -> tensor<1x1x1x2xi32>
  %v = bnn.dense %r, %wv : tensor<2x3xi8>, tensor<2x3xi8> -> tensor<2x2xi32>
  func.return %d, %c, %v : tensor<2x2xi32>, tensor<1x1x1x2xi32>, tensor<2x2xi32>
}
