// Round trip of every bnn op, in custom and generic form.
// RUN: bnnmlir-opt %s | bnnmlir-opt | filecheck %s
// RUN: bnnmlir-opt %s --print-op-generic | bnnmlir-opt | filecheck %s
// RUN: bnnmlir-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// CHECK-LABEL: func.func @binarize_tensor
// CHECK: bnn.binarize %{{.*}} : tensor<2x37xf32> -> tensor<2x5xi8>
// CHECK: bnn.binarize %{{.*}} : tensor<1x3x3x8xi32> -> tensor<1x3x3x1xi8>
// GENERIC-LABEL: sym_name = "binarize_tensor"
// GENERIC: "bnn.binarize"(%{{.*}}) : (tensor<2x37xf32>) -> tensor<2x5xi8>
func.func @binarize_tensor(%x: tensor<2x37xf32>, %y: tensor<1x3x3x8xi32>) -> (tensor<2x5xi8>, tensor<1x3x3x1xi8>) {
  %0 = bnn.binarize %x : tensor<2x37xf32> -> tensor<2x5xi8>
  %1 = bnn.binarize %y : tensor<1x3x3x8xi32> -> tensor<1x3x3x1xi8>
  func.return %0, %1 : tensor<2x5xi8>, tensor<1x3x3x1xi8>
}

// CHECK-LABEL: func.func @binarize_buffer
// CHECK: bnn.binarize %{{.*}} into %{{.*}} : memref<4x9xi8>, memref<4x2xi8>
func.func @binarize_buffer(%x: memref<4x9xi8>, %o: memref<4x2xi8>) {
  bnn.binarize %x into %o : memref<4x9xi8>, memref<4x2xi8>
  func.return
}

// CHECK-LABEL: func.func @bconv2d_tensor
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} {in_channels = 37 : i64, strides = array<i64: 2, 1>, dilations = array<i64: 1, 2>, padding = array<i64: 1, 0, 2, 1>, pad_value = -1 : i64} : tensor<2x9x9x5xi8>, tensor<16x3x3x5xi8> -> tensor<2x4x8x16xi32>
// GENERIC: "bnn.bconv2d"(%{{.*}}, %{{.*}}) <{in_channels = 37 : i64, strides = array<i64: 2, 1>, dilations = array<i64: 1, 2>, padding = array<i64: 1, 0, 2, 1>, pad_value = -1 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}>
func.func @bconv2d_tensor(%x: tensor<2x9x9x5xi8>, %w: tensor<16x3x3x5xi8>) -> tensor<2x4x8x16xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 37 : i64, strides = array<i64: 2, 1>, dilations = array<i64: 1, 2>, padding = array<i64: 1, 0, 2, 1>, pad_value = -1 : i64} : tensor<2x9x9x5xi8>, tensor<16x3x3x5xi8> -> tensor<2x4x8x16xi32>
  func.return %0 : tensor<2x4x8x16xi32>
}

// CHECK-LABEL: func.func @bconv2d_buffer
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} into %{{.*}} {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : memref<1x3x3x1xi8>, memref<4x3x3x1xi8>, memref<1x1x1x4xi32>
func.func @bconv2d_buffer(%x: memref<1x3x3x1xi8>, %w: memref<4x3x3x1xi8>, %o: memref<1x1x1x4xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : memref<1x3x3x1xi8>, memref<4x3x3x1xi8>, memref<1x1x1x4xi32>
  func.return
}

// CHECK-LABEL: func.func @bconv2d_fused
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} {{{.*}}output = "clip8"} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} {{{.*}}output = "threshold", thresholds = array<i32: 0, 1, -2, 3, 0, 0, 0, 0, 9>, directions = array<i8: 1, -1, 1, 1, 1, 1, 1, 1, -1>} : tensor<1x3x3x1xi8>, tensor<9x3x3x1xi8> -> tensor<1x1x1x2xi8>
func.func @bconv2d_fused(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>, %w9: tensor<9x3x3x1xi8>) -> (tensor<1x1x1x4xi8>, tensor<1x1x1x2xi8>) {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8"} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi8>
  %1 = bnn.bconv2d %x, %w9 {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "threshold", thresholds = array<i32: 0, 1, -2, 3, 0, 0, 0, 0, 9>, directions = array<i8: 1, -1, 1, 1, 1, 1, 1, 1, -1>} : tensor<1x3x3x1xi8>, tensor<9x3x3x1xi8> -> tensor<1x1x1x2xi8>
  func.return %0, %1 : tensor<1x1x1x4xi8>, tensor<1x1x1x2xi8>
}

// The requant8 map is a dictionary property: kind and the arrays of bnn.requant8, one row per
// output channel.
// CHECK-LABEL: func.func @bconv2d_fused_requant8
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} {{{.*}}output = "requant8", requant = {kind = "affine", multiplier = array<i64: 3, -5, 7>, offset = array<i64: 64, -7, 0>, shift = array<i64: 7, 0, 2>}} : tensor<1x3x3x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x1x1x3xi8>
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} {{{.*}}output = "requant8", requant = {kind = "breakpoints", base = array<i8: -127, 5, 0>, step = array<i8: 1, -1, 1>, breakpoints = array<i32: -3, 0, 4, 2147483647, 4, 9>}} : tensor<1x3x3x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x1x1x3xi8>
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} into %{{.*}} {{{.*}}output = "requant8", requant = {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>}} : memref<1x3x3x1xi8>, memref<3x3x3x1xi8>, memref<1x1x1x3xi8>
// GENERIC-LABEL: sym_name = "bconv2d_fused_requant8"
// GENERIC: "bnn.bconv2d"(%{{.*}}, %{{.*}}) <{{{.*}}output = "requant8", requant = {kind = "affine", multiplier = array<i64: 3, -5, 7>, offset = array<i64: 64, -7, 0>, shift = array<i64: 7, 0, 2>}, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x3x3x1xi8>, tensor<3x3x3x1xi8>) -> tensor<1x1x1x3xi8>
// GENERIC: "bnn.bconv2d"(%{{.*}}, %{{.*}}) <{{{.*}}output = "requant8", requant = {kind = "breakpoints", base = array<i8: -127, 5, 0>, step = array<i8: 1, -1, 1>, breakpoints = array<i32: -3, 0, 4, 2147483647, 4, 9>}, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x3x3x1xi8>, tensor<3x3x3x1xi8>) -> tensor<1x1x1x3xi8>
// GENERIC: "bnn.bconv2d"(%{{.*}}, %{{.*}}, %{{.*}}) <{{{.*}}output = "requant8", requant = {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>}, operandSegmentSizes = array<i32: 1, 1, 0, 1>}> : (memref<1x3x3x1xi8>, memref<3x3x3x1xi8>, memref<1x1x1x3xi8>) -> ()
func.func @bconv2d_fused_requant8(%x: tensor<1x3x3x1xi8>, %w: tensor<3x3x3x1xi8>, %xb: memref<1x3x3x1xi8>, %wb: memref<3x3x3x1xi8>, %o: memref<1x1x1x3xi8>) -> (tensor<1x1x1x3xi8>, tensor<1x1x1x3xi8>) {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "affine", multiplier = array<i64: 3, -5, 7>, offset = array<i64: 64, -7, 0>, shift = array<i64: 7, 0, 2>}} : tensor<1x3x3x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x1x1x3xi8>
  %1 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "breakpoints", base = array<i8: -127, 5, 0>, step = array<i8: 1, -1, 1>, breakpoints = array<i32: -3, 0, 4, 2147483647, 4, 9>}} : tensor<1x3x3x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x1x1x3xi8>
  bnn.bconv2d %xb, %wb into %o {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>}} : memref<1x3x3x1xi8>, memref<3x3x3x1xi8>, memref<1x1x1x3xi8>
  func.return %0, %1 : tensor<1x1x1x3xi8>, tensor<1x1x1x3xi8>
}

// A fused residual: clip8(t + r), an i8 operand of the output's shape.
// CHECK-LABEL: func.func @bconv2d_residual
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} residual %{{.*}} {{{.*}}output = "clip8"} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> residual tensor<1x1x1x4xi8> -> tensor<1x1x1x4xi8>
// CHECK: bnn.bconv2d %{{.*}}, %{{.*}} residual %{{.*}} into %{{.*}} {{{.*}}output = "clip8"} : memref<1x3x3x1xi8>, memref<4x3x3x1xi8> residual memref<1x1x1x4xi8>, memref<1x1x1x4xi8>
// GENERIC-LABEL: sym_name = "bconv2d_residual"
// GENERIC: "bnn.bconv2d"(%{{.*}}, %{{.*}}, %{{.*}}) <{{{.*}}output = "clip8", operandSegmentSizes = array<i32: 1, 1, 1, 0>}>
// GENERIC: "bnn.bconv2d"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{{{.*}}output = "clip8", operandSegmentSizes = array<i32: 1, 1, 1, 1>}>
func.func @bconv2d_residual(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>, %r: tensor<1x1x1x4xi8>, %xb: memref<1x3x3x1xi8>, %wb: memref<4x3x3x1xi8>, %rb: memref<1x1x1x4xi8>, %o: memref<1x1x1x4xi8>) -> tensor<1x1x1x4xi8> {
  %0 = bnn.bconv2d %x, %w residual %r {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8"} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> residual tensor<1x1x1x4xi8> -> tensor<1x1x1x4xi8>
  bnn.bconv2d %xb, %wb residual %rb into %o {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8"} : memref<1x3x3x1xi8>, memref<4x3x3x1xi8> residual memref<1x1x1x4xi8>, memref<1x1x1x4xi8>
  func.return %0 : tensor<1x1x1x4xi8>
}

// CHECK-LABEL: func.func @clip8
// CHECK: bnn.clip8 %{{.*}} : tensor<1x4x4x3xi32> -> tensor<1x4x4x3xi8>
// CHECK: bnn.clip8 %{{.*}} into %{{.*}} : memref<7xi16>, memref<7xi8>
// CHECK: bnn.clip8 %{{.*}} : tensor<5xf32> -> tensor<5xi8>
func.func @clip8(%x: tensor<1x4x4x3xi32>, %y: memref<7xi16>, %o: memref<7xi8>, %f: tensor<5xf32>) -> tensor<1x4x4x3xi8> {
  %0 = bnn.clip8 %x : tensor<1x4x4x3xi32> -> tensor<1x4x4x3xi8>
  bnn.clip8 %y into %o : memref<7xi16>, memref<7xi8>
  %1 = bnn.clip8 %f : tensor<5xf32> -> tensor<5xi8>
  func.return %0 : tensor<1x4x4x3xi8>
}

// CHECK-LABEL: func.func @threshold
// CHECK: bnn.threshold %{{.*}} {thresholds = array<i32: -3, 0, 5>, directions = array<i8: 1, -1, 1>} : tensor<2x3xi32> -> tensor<2x1xi8>
// GENERIC: "bnn.threshold"(%{{.*}}) <{thresholds = array<i32: -3, 0, 5>, directions = array<i8: 1, -1, 1>}>
func.func @threshold(%x: tensor<2x3xi32>) -> tensor<2x1xi8> {
  %0 = bnn.threshold %x {thresholds = array<i32: -3, 0, 5>, directions = array<i8: 1, -1, 1>} : tensor<2x3xi32> -> tensor<2x1xi8>
  func.return %0 : tensor<2x1xi8>
}

// CHECK-LABEL: func.func @narrow_acc
// CHECK: bnn.narrow_acc %{{.*}}, %{{.*}}, %{{.*}} max_steps = 4095 : vector<16xi8> into vector<8xi16>
// CHECK: bnn.narrow_acc %{{.*}}, %{{.*}}, %{{.*}} max_steps = 31 : vector<16xi8> into vector<16xi8>
// GENERIC: "bnn.narrow_acc"(%{{.*}}, %{{.*}}, %{{.*}}) <{max_steps = 4095 : i64}> : (vector<8xi16>, vector<16xi8>, vector<16xi8>) -> vector<8xi16>
func.func @narrow_acc(%acc: vector<8xi16>, %acc8: vector<16xi8>, %a: vector<16xi8>, %b: vector<16xi8>) -> (vector<8xi16>, vector<16xi8>) {
  %0 = bnn.narrow_acc %acc, %a, %b max_steps = 4095 : vector<16xi8> into vector<8xi16>
  %1 = bnn.narrow_acc %acc8, %a, %b max_steps = 31 : vector<16xi8> into vector<16xi8>
  func.return %0, %1 : vector<8xi16>, vector<16xi8>
}
