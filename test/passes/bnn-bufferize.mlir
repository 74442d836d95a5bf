// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p bnn-bufferize | filecheck %s
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p bnn-bufferize | filecheck %s --check-prefix=ERR
// RUN: not bnnmlir-opt %s -p bnn-bufferize 2>&1 | filecheck %s --check-prefix=TOOL
// TOOL: error: 'bnn.binarize' needs static shapes
// TOOL-NOT: Traceback

// Results are written straight into the output arguments; intermediates get a buffer.
// CHECK-LABEL: memref.global
// CHECK-SAME: sym_name = "__bnn_const_0", type = memref<4x3x3x1xi8>
// CHECK-LABEL: func.func @conv_block
// CHECK-SAME: (%x: memref<1x6x6x8xf32>, %out0: memref<1x4x4x4xi8>) attributes {bnn.num_inputs = 1 : i64, bnn.num_outputs = 1 : i64}
// CHECK-NEXT: %[[W:.*]] = memref.get_global @__bnn_const_0 : memref<4x3x3x1xi8>
// CHECK-NEXT: %[[B:.*]] = memref.alloc() : memref<1x6x6x1xi8>
// CHECK-NEXT: bnn.binarize %x into %[[B]] : memref<1x6x6x8xf32>, memref<1x6x6x1xi8>
// CHECK-NEXT: %[[C:.*]] = memref.alloc() : memref<1x4x4x4xi32>
// CHECK-NEXT: bnn.bconv2d %[[B]], %[[W]] into %[[C]]
// CHECK-NEXT: bnn.clip8 %[[C]] into %out0 : memref<1x4x4x4xi32>, memref<1x4x4x4xi8>
// CHECK-NEXT: func.return
func.func @conv_block(%x: tensor<1x6x6x8xf32>) -> tensor<1x4x4x4xi8> {
  %w = arith.constant dense<3> : tensor<4x3x3x1xi8>
  %b = bnn.binarize %x : tensor<1x6x6x8xf32> -> tensor<1x6x6x1xi8>
  %c = bnn.bconv2d %b, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x6x6x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x4x4x4xi32>
  %q = bnn.clip8 %c : tensor<1x4x4x4xi32> -> tensor<1x4x4x4xi8>
  func.return %q : tensor<1x4x4x4xi8>
}

// -----

// A returned argument is copied into its output buffer.
// CHECK-LABEL: func.func @return_argument
// CHECK-SAME: (%x: memref<2x3xi32>, %out0: memref<2x3xi32>, %out1: memref<2x1xi8>)
// CHECK: bnn.binarize %x into %out1
// CHECK: scf.for
// CHECK: scf.for
// CHECK: %[[V:.*]] = memref.load %x
// CHECK-NEXT: memref.store %[[V]], %out0
func.func @return_argument(%x: tensor<2x3xi32>) -> (tensor<2x3xi32>, tensor<2x1xi8>) {
  %b = bnn.binarize %x : tensor<2x3xi32> -> tensor<2x1xi8>
  func.return %x, %b : tensor<2x3xi32>, tensor<2x1xi8>
}

// -----

// ERR: bnn-bufferize: cannot bufferize 'arith.addi' in @do_not_bufferize_unknown_ops: not a tensor-level bnn op
func.func @do_not_bufferize_unknown_ops(%x: tensor<4xi32>) -> tensor<4xi32> {
  %y = arith.addi %x, %x : tensor<4xi32>
  func.return %y : tensor<4xi32>
}

// -----

// ERR: 'bnn.binarize' needs static shapes, got tensor<?x8xi32>
func.func @do_not_bufferize_dynamic_shapes(%x: tensor<?x8xi32>) -> tensor<?x1xi8> {
  %b = bnn.binarize %x : tensor<?x8xi32> -> tensor<?x1xi8>
  func.return %b : tensor<?x1xi8>
}
