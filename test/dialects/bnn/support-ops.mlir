// Round trip of every integer and float support op of the bnn dialect, in custom and generic form.
// RUN: bnnmlir-opt %s | bnnmlir-opt | filecheck %s
// RUN: bnnmlir-opt %s --print-op-generic | bnnmlir-opt | filecheck %s
// RUN: bnnmlir-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// CHECK-LABEL: func.func @requant8
// CHECK: bnn.requant8 %{{.*}} {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>} : tensor<1x2x2x2xi32> -> tensor<1x2x2x2xi8>
// CHECK: bnn.requant8 %{{.*}} {kind = "breakpoints", base = array<i8: -127, 5>, step = array<i8: 1, -1>, breakpoints = array<i32: -3, 0, 2147483647, 4, 4, 9>} : tensor<4x2xi16> -> tensor<4x2xi8>
// CHECK: bnn.requant8 %{{.*}} into %{{.*}} {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>} : memref<3x2xi8>, memref<3x2xi8>
// GENERIC-LABEL: sym_name = "requant8"
// GENERIC: "bnn.requant8"(%{{.*}}) <{kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>}> : (tensor<1x2x2x2xi32>) -> tensor<1x2x2x2xi8>
func.func @requant8(%x: tensor<1x2x2x2xi32>, %y: tensor<4x2xi16>, %z: memref<3x2xi8>, %o: memref<3x2xi8>) -> (tensor<1x2x2x2xi8>, tensor<4x2xi8>) {
  %0 = bnn.requant8 %x {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>} : tensor<1x2x2x2xi32> -> tensor<1x2x2x2xi8>
  %1 = bnn.requant8 %y {kind = "breakpoints", base = array<i8: -127, 5>, step = array<i8: 1, -1>, breakpoints = array<i32: -3, 0, 2147483647, 4, 4, 9>} : tensor<4x2xi16> -> tensor<4x2xi8>
  bnn.requant8 %z into %o {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>} : memref<3x2xi8>, memref<3x2xi8>
  func.return %0, %1 : tensor<1x2x2x2xi8>, tensor<4x2xi8>
}

// CHECK-LABEL: func.func @cast
// CHECK: bnn.cast %{{.*}} : tensor<2x3xi8> -> tensor<2x3xf32>
// CHECK: bnn.cast %{{.*}} into %{{.*}} : memref<5xi32>, memref<5xf32>
// GENERIC: "bnn.cast"(%{{.*}}) : (tensor<2x3xi8>) -> tensor<2x3xf32>
func.func @cast(%x: tensor<2x3xi8>, %y: memref<5xi32>, %o: memref<5xf32>) -> tensor<2x3xf32> {
  %0 = bnn.cast %x : tensor<2x3xi8> -> tensor<2x3xf32>
  bnn.cast %y into %o : memref<5xi32>, memref<5xf32>
  func.return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @batch_norm
// CHECK: bnn.batch_norm %{{.*}} {mean = array<f32: 1.000000e-01, -2.500000e+00>, var = array<f32: 1.000000e+00, 3.000000e-01>, gamma = array<f32: 1.500000e+00, -1.000000e+00>, beta = array<f32: 0.000000e+00, 2.000000e+00>, eps = 1.000000e-05 : f32} : tensor<1x3x3x2xf32> -> tensor<1x3x3x2xf32>
// GENERIC: "bnn.batch_norm"(%{{.*}}) <{mean = array<f32: 1.000000e-01, -2.500000e+00>, var = array<f32: 1.000000e+00, 3.000000e-01>, gamma = array<f32: 1.500000e+00, -1.000000e+00>, beta = array<f32: 0.000000e+00, 2.000000e+00>, eps = 1.000000e-05 : f32}>
func.func @batch_norm(%x: tensor<1x3x3x2xf32>) -> tensor<1x3x3x2xf32> {
  %0 = bnn.batch_norm %x {mean = array<f32: 0.1, -2.5>, var = array<f32: 1.0, 0.3>, gamma = array<f32: 1.5, -1.0>, beta = array<f32: 0.0, 2.0>, eps = 1.0e-05 : f32} : tensor<1x3x3x2xf32> -> tensor<1x3x3x2xf32>
  func.return %0 : tensor<1x3x3x2xf32>
}

// CHECK-LABEL: func.func @affine
// CHECK: bnn.affine %{{.*}} into %{{.*}} {scale = array<f32: 2.000000e+00, 5.000000e-01, -1.000000e+00>, bias = array<f32: 0.000000e+00, 1.000000e+00, 2.000000e+00>} : memref<4x3xf32>, memref<4x3xf32>
func.func @affine(%x: memref<4x3xf32>, %o: memref<4x3xf32>) {
  bnn.affine %x into %o {scale = array<f32: 2.0, 0.5, -1.0>, bias = array<f32: 0.0, 1.0, 2.0>} : memref<4x3xf32>, memref<4x3xf32>
  func.return
}

// An integer convolution with a fused requant8 returns i8.
// CHECK-LABEL: func.func @conv2d_requant8
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, requant = {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>}} : tensor<1x3x3x2xi8>, tensor<2x3x3x2xi8> -> tensor<1x1x1x2xi8>
func.func @conv2d_requant8(%x: tensor<1x3x3x2xi8>, %w: tensor<2x3x3x2xi8>) -> tensor<1x1x1x2xi8> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, requant = {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 7, 0>}} : tensor<1x3x3x2xi8>, tensor<2x3x3x2xi8> -> tensor<1x1x1x2xi8>
  func.return %0 : tensor<1x1x1x2xi8>
}

// CHECK-LABEL: func.func @conv2d
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>} : tensor<1x8x8x3xf32>, tensor<16x3x3x3xf32> -> tensor<1x4x4x16xf32>
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} bias %{{.*}} {strides = array<i64: 1, 1>, dilations = array<i64: 1, 2>, padding = array<i64: 0, 0, 0, 0>} : tensor<2x5x6x3xi8>, tensor<4x3x3x3xf32> bias tensor<4xf32> -> tensor<2x3x2x4xf32>
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} bias %{{.*}} into %{{.*}} {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<1x3x3x2xf32>, memref<4x3x3x2xf32> bias memref<4xf32>, memref<1x1x1x4xf32>
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} into %{{.*}} {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<1x3x3x2xf32>, memref<4x3x3x2xf32>, memref<1x1x1x4xf32>
// GENERIC: "bnn.conv2d"(%{{.*}}, %{{.*}}) <{strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0>}>
// GENERIC: "bnn.conv2d"(%{{.*}}, %{{.*}}, %{{.*}}) <{strides = array<i64: 1, 1>, dilations = array<i64: 1, 2>, padding = array<i64: 0, 0, 0, 0>, operandSegmentSizes = array<i32: 1, 1, 1, 0>}>
// GENERIC: "bnn.conv2d"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, operandSegmentSizes = array<i32: 1, 1, 1, 1>}>
// GENERIC: "bnn.conv2d"(%{{.*}}, %{{.*}}, %{{.*}}) <{strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, operandSegmentSizes = array<i32: 1, 1, 0, 1>}>
func.func @conv2d(%x: tensor<1x8x8x3xf32>, %w: tensor<16x3x3x3xf32>, %q: tensor<2x5x6x3xi8>, %w2: tensor<4x3x3x3xf32>, %b2: tensor<4xf32>,
                  %mx: memref<1x3x3x2xf32>, %mw: memref<4x3x3x2xf32>, %mb: memref<4xf32>, %mo: memref<1x1x1x4xf32>) -> (tensor<1x4x4x16xf32>, tensor<2x3x2x4xf32>) {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>} : tensor<1x8x8x3xf32>, tensor<16x3x3x3xf32> -> tensor<1x4x4x16xf32>
  %1 = bnn.conv2d %q, %w2 bias %b2 {strides = array<i64: 1, 1>, dilations = array<i64: 1, 2>, padding = array<i64: 0, 0, 0, 0>} : tensor<2x5x6x3xi8>, tensor<4x3x3x3xf32> bias tensor<4xf32> -> tensor<2x3x2x4xf32>
  bnn.conv2d %mx, %mw bias %mb into %mo {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<1x3x3x2xf32>, memref<4x3x3x2xf32> bias memref<4xf32>, memref<1x1x1x4xf32>
  bnn.conv2d %mx, %mw into %mo {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<1x3x3x2xf32>, memref<4x3x3x2xf32>, memref<1x1x1x4xf32>
  func.return %0, %1 : tensor<1x4x4x16xf32>, tensor<2x3x2x4xf32>
}

// CHECK-LABEL: func.func @dense
// CHECK: bnn.dense %{{.*}}, %{{.*}} bias %{{.*}} : tensor<2x7xf32>, tensor<3x7xf32> bias tensor<3xf32> -> tensor<2x3xf32>
// CHECK: bnn.dense %{{.*}}, %{{.*}} into %{{.*}} : memref<1x7xi8>, memref<3x7xf32>, memref<1x3xf32>
// GENERIC: "bnn.dense"(%{{.*}}, %{{.*}}, %{{.*}}) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<2x7xf32>, tensor<3x7xf32>, tensor<3xf32>) -> tensor<2x3xf32>
func.func @dense(%x: tensor<2x7xf32>, %w: tensor<3x7xf32>, %b: tensor<3xf32>, %q: memref<1x7xi8>, %mw: memref<3x7xf32>, %o: memref<1x3xf32>) -> tensor<2x3xf32> {
  %0 = bnn.dense %x, %w bias %b : tensor<2x7xf32>, tensor<3x7xf32> bias tensor<3xf32> -> tensor<2x3xf32>
  bnn.dense %q, %mw into %o : memref<1x7xi8>, memref<3x7xf32>, memref<1x3xf32>
  func.return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @affine_divisor
// CHECK: bnn.affine %{{.*}} {divisor = array<f32: 3.000000e+00, 1.230000e-02>, bias = array<f32: -0.000000e+00, 1.000000e+00>} : tensor<4x2xf32> -> tensor<4x2xf32>
// GENERIC: "bnn.affine"(%{{.*}}) <{divisor = array<f32: 3.000000e+00, 1.230000e-02>, bias = array<f32: -0.000000e+00, 1.000000e+00>}> : (tensor<4x2xf32>) -> tensor<4x2xf32>
func.func @affine_divisor(%x: tensor<4x2xf32>) -> tensor<4x2xf32> {
  %0 = bnn.affine %x {divisor = array<f32: 3.0, 0.0123>, bias = array<f32: -0.0, 1.0>} : tensor<4x2xf32> -> tensor<4x2xf32>
  func.return %0 : tensor<4x2xf32>
}

// The integer forms: i8 input, i8 weights, i32 result, no bias.
// CHECK-LABEL: func.func @integer_conv2d_dense
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 3, 3, 3, 3>} : tensor<1x16x16x3xi8>, tensor<8x7x7x3xi8> -> tensor<1x8x8x8xi32>
// CHECK: bnn.conv2d %{{.*}}, %{{.*}} into %{{.*}} {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<1x3x3x2xi8>, memref<4x3x3x2xi8>, memref<1x1x1x4xi32>
// CHECK: bnn.dense %{{.*}}, %{{.*}} : tensor<2x7xi8>, tensor<3x7xi8> -> tensor<2x3xi32>
// GENERIC: "bnn.conv2d"(%{{.*}}, %{{.*}}) <{strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 3, 3, 3, 3>, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x16x16x3xi8>, tensor<8x7x7x3xi8>) -> tensor<1x8x8x8xi32>
// GENERIC: "bnn.dense"(%{{.*}}, %{{.*}}) <{operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<2x7xi8>, tensor<3x7xi8>) -> tensor<2x3xi32>
func.func @integer_conv2d_dense(%x: tensor<1x16x16x3xi8>, %w: tensor<8x7x7x3xi8>, %mx: memref<1x3x3x2xi8>, %mw: memref<4x3x3x2xi8>, %mo: memref<1x1x1x4xi32>,
                                %d: tensor<2x7xi8>, %dw: tensor<3x7xi8>) -> (tensor<1x8x8x8xi32>, tensor<2x3xi32>) {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 3, 3, 3, 3>} : tensor<1x16x16x3xi8>, tensor<8x7x7x3xi8> -> tensor<1x8x8x8xi32>
  bnn.conv2d %mx, %mw into %mo {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<1x3x3x2xi8>, memref<4x3x3x2xi8>, memref<1x1x1x4xi32>
  %1 = bnn.dense %d, %dw : tensor<2x7xi8>, tensor<3x7xi8> -> tensor<2x3xi32>
  func.return %0, %1 : tensor<1x8x8x8xi32>, tensor<2x3xi32>
}

// CHECK-LABEL: func.func @pool2d
// CHECK: bnn.pool2d %{{.*}} {kind = "max", kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : tensor<1x7x7x5xi8> -> tensor<1x4x4x5xi8>
// CHECK: bnn.pool2d %{{.*}} {kind = "avg", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 1, 0, 1, 0>, count_include_pad} : tensor<1x7x7x5xf32> -> tensor<1x4x4x5xf32>
// CHECK: bnn.pool2d %{{.*}} into %{{.*}} {kind = "avg", kernel = array<i64: 2, 2>, strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<2x3x3x4xi32>, memref<2x2x2x4xf32>
// GENERIC: "bnn.pool2d"(%{{.*}}) <{kind = "avg", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 1, 0, 1, 0>, count_include_pad}>
func.func @pool2d(%x: tensor<1x7x7x5xi8>, %f: tensor<1x7x7x5xf32>, %q: memref<2x3x3x4xi32>, %o: memref<2x2x2x4xf32>) -> (tensor<1x4x4x5xi8>, tensor<1x4x4x5xf32>) {
  %0 = bnn.pool2d %x {kind = "max", kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : tensor<1x7x7x5xi8> -> tensor<1x4x4x5xi8>
  %1 = bnn.pool2d %f {kind = "avg", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 1, 0, 1, 0>, count_include_pad} : tensor<1x7x7x5xf32> -> tensor<1x4x4x5xf32>
  bnn.pool2d %q into %o {kind = "avg", kernel = array<i64: 2, 2>, strides = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<2x3x3x4xi32>, memref<2x2x2x4xf32>
  func.return %0, %1 : tensor<1x4x4x5xi8>, tensor<1x4x4x5xf32>
}

// CHECK-LABEL: func.func @global_avg_pool
// CHECK: bnn.global_avg_pool %{{.*}} : tensor<2x3x5x7xi8> -> tensor<2x7xf32>
// CHECK: bnn.global_avg_pool %{{.*}} into %{{.*}} : memref<1x2x2x3xf32>, memref<1x3xf32>
func.func @global_avg_pool(%x: tensor<2x3x5x7xi8>, %y: memref<1x2x2x3xf32>, %o: memref<1x3xf32>) -> tensor<2x7xf32> {
  %0 = bnn.global_avg_pool %x : tensor<2x3x5x7xi8> -> tensor<2x7xf32>
  bnn.global_avg_pool %y into %o : memref<1x2x2x3xf32>, memref<1x3xf32>
  func.return %0 : tensor<2x7xf32>
}

// CHECK-LABEL: func.func @mul
// CHECK: bnn.mul %{{.*}}, %{{.*}} : tensor<2x3x5x7xf32>, tensor<2x3x5x1xf32> -> tensor<2x3x5x7xf32>
// CHECK: bnn.mul %{{.*}}, %{{.*}} into %{{.*}} : memref<3xf32>, memref<3xf32>, memref<3xf32>
// GENERIC: "bnn.mul"(%{{.*}}, %{{.*}}) : (tensor<2x3x5x7xf32>, tensor<2x3x5x1xf32>) -> tensor<2x3x5x7xf32>
func.func @mul(%a: tensor<2x3x5x7xf32>, %k: tensor<2x3x5x1xf32>, %f: memref<3xf32>, %o: memref<3xf32>) -> tensor<2x3x5x7xf32> {
  %0 = bnn.mul %a, %k : tensor<2x3x5x7xf32>, tensor<2x3x5x1xf32> -> tensor<2x3x5x7xf32>
  bnn.mul %f, %f into %o : memref<3xf32>, memref<3xf32>, memref<3xf32>
  func.return %0 : tensor<2x3x5x7xf32>
}

// CHECK-LABEL: func.func @add
// CHECK: bnn.add %{{.*}}, %{{.*}} : tensor<2x4xi8>, tensor<2x4xi8> -> tensor<2x4xi16>
// CHECK: bnn.add %{{.*}}, %{{.*}} : tensor<2x4xi8>, tensor<2x4xi32> -> tensor<2x4xi32>
// CHECK: bnn.add %{{.*}}, %{{.*}} into %{{.*}} : memref<3xf32>, memref<3xf32>, memref<3xf32>
// GENERIC: "bnn.add"(%{{.*}}, %{{.*}}) : (tensor<2x4xi8>, tensor<2x4xi8>) -> tensor<2x4xi16>
func.func @add(%a: tensor<2x4xi8>, %b: tensor<2x4xi32>, %f: memref<3xf32>, %o: memref<3xf32>) -> (tensor<2x4xi16>, tensor<2x4xi32>) {
  %0 = bnn.add %a, %a : tensor<2x4xi8>, tensor<2x4xi8> -> tensor<2x4xi16>
  %1 = bnn.add %a, %b : tensor<2x4xi8>, tensor<2x4xi32> -> tensor<2x4xi32>
  bnn.add %f, %f into %o : memref<3xf32>, memref<3xf32>, memref<3xf32>
  func.return %0, %1 : tensor<2x4xi16>, tensor<2x4xi32>
}

// CHECK-LABEL: func.func @activation
// CHECK: bnn.activation %{{.*}} {kind = "relu"} : tensor<2x3xf32> -> tensor<2x3xf32>
// CHECK: bnn.activation %{{.*}} {kind = "hardtanh", min = -1.000000e+00 : f32, max = 1.000000e+00 : f32} : tensor<2x3xf32> -> tensor<2x3xf32>
// CHECK: bnn.activation %{{.*}} {kind = "hardtanh", min = -6.400000e+01 : f32, max = 6.300000e+01 : f32} : tensor<2x3xi8> -> tensor<2x3xi8>
// CHECK: bnn.activation %{{.*}} into %{{.*}} {kind = "prelu", slopes = array<f32: 2.500000e-01, 1.000000e-01, -1.000000e+00>} : memref<2x3xf32>, memref<2x3xf32>
// GENERIC: "bnn.activation"(%{{.*}}) <{kind = "hardtanh", min = -1.000000e+00 : f32, max = 1.000000e+00 : f32}>
func.func @activation(%x: tensor<2x3xf32>, %q: tensor<2x3xi8>, %m: memref<2x3xf32>, %o: memref<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xi8>) {
  %0 = bnn.activation %x {kind = "relu"} : tensor<2x3xf32> -> tensor<2x3xf32>
  %1 = bnn.activation %x {kind = "hardtanh", min = -1.0 : f32, max = 1.0 : f32} : tensor<2x3xf32> -> tensor<2x3xf32>
  %2 = bnn.activation %q {kind = "hardtanh", min = -64.0 : f32, max = 63.0 : f32} : tensor<2x3xi8> -> tensor<2x3xi8>
  bnn.activation %m into %o {kind = "prelu", slopes = array<f32: 0.25, 0.1, -1.0>} : memref<2x3xf32>, memref<2x3xf32>
  func.return %0, %1, %2 : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xi8>
}

// CHECK-LABEL: func.func @concat
// CHECK: bnn.concat %{{.*}}, %{{.*}}, %{{.*}} : tensor<1x2x2x3xi8>, tensor<1x2x2x5xi8>, tensor<1x2x2x3xi8> -> tensor<1x2x2x11xi8>
// CHECK: bnn.concat %{{.*}}, %{{.*}} into %{{.*}} : memref<4x1xf32>, memref<4x2xf32> into memref<4x3xf32>
// GENERIC: "bnn.concat"(%{{.*}}, %{{.*}}, %{{.*}}) <{operandSegmentSizes = array<i32: 2, 1>}> : (memref<4x1xf32>, memref<4x2xf32>, memref<4x3xf32>) -> ()
func.func @concat(%a: tensor<1x2x2x3xi8>, %b: tensor<1x2x2x5xi8>, %f: memref<4x1xf32>, %g: memref<4x2xf32>, %o: memref<4x3xf32>) -> tensor<1x2x2x11xi8> {
  %0 = bnn.concat %a, %b, %a : tensor<1x2x2x3xi8>, tensor<1x2x2x5xi8>, tensor<1x2x2x3xi8> -> tensor<1x2x2x11xi8>
  bnn.concat %f, %g into %o : memref<4x1xf32>, memref<4x2xf32> into memref<4x3xf32>
  func.return %0 : tensor<1x2x2x11xi8>
}

// CHECK-LABEL: func.func @quantize
// CHECK: bnn.quantize %{{.*}} {steps = [{kind = "mul", values = array<f32: 6.400000e+01, 3.200000e+01>}, {kind = "min", value = 1.000000e+02 : f32}], permutation = array<i64: 0, 2, 1>} : tensor<1x3x2xf32> -> tensor<1x2x3xi8>
// CHECK: bnn.quantize %{{.*}} {steps = [], permutation = array<i64: 0, 1>} : tensor<4x5xf32> -> tensor<4x5xi8>
// CHECK: bnn.quantize %{{.*}} into %{{.*}} {steps = [], permutation = array<i64: 1, 0>} : memref<3x7xf32>, memref<7x3xi8>
// GENERIC: "bnn.quantize"(%{{.*}}) <{steps = [{kind = "mul", values = array<f32: 6.400000e+01, 3.200000e+01>}, {kind = "min", value = 1.000000e+02 : f32}], permutation = array<i64: 0, 2, 1>}> : (tensor<1x3x2xf32>) -> tensor<1x2x3xi8>
func.func @quantize(%x: tensor<1x3x2xf32>, %y: tensor<4x5xf32>, %q: memref<3x7xf32>, %o: memref<7x3xi8>) -> (tensor<1x2x3xi8>, tensor<4x5xi8>) {
  %0 = bnn.quantize %x {steps = [{kind = "mul", values = array<f32: 64.0, 32.0>}, {kind = "min", value = 100.0 : f32}], permutation = array<i64: 0, 2, 1>} : tensor<1x3x2xf32> -> tensor<1x2x3xi8>
  %1 = bnn.quantize %y {steps = [], permutation = array<i64: 0, 1>} : tensor<4x5xf32> -> tensor<4x5xi8>
  bnn.quantize %q into %o {steps = [], permutation = array<i64: 1, 0>} : memref<3x7xf32>, memref<7x3xi8>
  func.return %0, %1 : tensor<1x2x3xi8>, tensor<4x5xi8>
}

// CHECK-LABEL: func.func @reshape_transpose
// CHECK: bnn.reshape %{{.*}} : tensor<2x3x4x5xf32> -> tensor<2x60xf32>
// CHECK: bnn.transpose %{{.*}} {permutation = array<i64: 0, 3, 1, 2>} : tensor<2x3x4x5xf32> -> tensor<2x5x3x4xf32>
// CHECK: bnn.transpose %{{.*}} into %{{.*}} {permutation = array<i64: 1, 0>} : memref<3x7xi8>, memref<7x3xi8>
// GENERIC: "bnn.transpose"(%{{.*}}) <{permutation = array<i64: 0, 3, 1, 2>}> : (tensor<2x3x4x5xf32>) -> tensor<2x5x3x4xf32>
func.func @reshape_transpose(%x: tensor<2x3x4x5xf32>, %q: memref<3x7xi8>, %o: memref<7x3xi8>) -> (tensor<2x60xf32>, tensor<2x5x3x4xf32>) {
  %0 = bnn.reshape %x : tensor<2x3x4x5xf32> -> tensor<2x60xf32>
  %1 = bnn.transpose %x {permutation = array<i64: 0, 3, 1, 2>} : tensor<2x3x4x5xf32> -> tensor<2x5x3x4xf32>
  bnn.transpose %q into %o {permutation = array<i64: 1, 0>} : memref<3x7xi8>, memref<7x3xi8>
  func.return %0, %1 : tensor<2x60xf32>, tensor<2x5x3x4xf32>
}
