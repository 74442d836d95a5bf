// RUN: bnnmlir-opt %s -p bnn-pack-weights | filecheck %s

// Bit c%8 of word c/8 is set for negative values; -0.0 and 0.0 are +1 (bit 0).
// CHECK-LABEL: func.func @pack_constant_weights
// CHECK-NEXT: %[[W:.*]] = arith.constant dense<{{\[\[\[\[}}34, 1]]], {{\[\[\[}}-1, 1]]]]> : tensor<2x1x1x2xi8>
// CHECK-NOT: bnn.binarize %{{.*}} : tensor<2x1x1x9xf32>
// CHECK: bnn.bconv2d %{{.*}}, %[[W]]
func.func @pack_constant_weights(%x: tensor<1x4x4x2xi8>) -> tensor<1x4x4x2xi32> {
  %w = arith.constant dense<[[[[1.0, -1.0, -0.0, 0.0, 2.0, -3.0, 1.0, 1.0, -1.0]]], [[[-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0]]]]> : tensor<2x1x1x9xf32>
  %p = bnn.binarize %w : tensor<2x1x1x9xf32> -> tensor<2x1x1x2xi8>
  %c = bnn.bconv2d %x, %p {in_channels = 9 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x2xi8>, tensor<2x1x1x2xi8> -> tensor<1x4x4x2xi32>
  func.return %c : tensor<1x4x4x2xi32>
}

// Integer constants pack the same way.
// CHECK-LABEL: func.func @pack_integer_constant
// CHECK-NEXT: arith.constant dense<{{\[}}5, -128]> : tensor<2xi8>
func.func @pack_integer_constant() -> tensor<2xi8> {
  %w = arith.constant dense<[-1, 0, -7, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, -9]> : tensor<16xi32>
  %p = bnn.binarize %w : tensor<16xi32> -> tensor<2xi8>
  func.return %p : tensor<2xi8>
}

// A binarize of a function argument is a run-time op and stays.
// CHECK-LABEL: func.func @do_not_pack_arguments
// CHECK: bnn.binarize %{{.*}} : tensor<3x9xf32> -> tensor<3x2xi8>
func.func @do_not_pack_arguments(%x: tensor<3x9xf32>) -> tensor<3x2xi8> {
  %p = bnn.binarize %x : tensor<3x9xf32> -> tensor<3x2xi8>
  func.return %p : tensor<3x2xi8>
}
