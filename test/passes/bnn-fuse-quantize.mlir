// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p bnn-fuse-quantize | filecheck %s
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics | filecheck %s --check-prefix=ROUND
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p 'bnn-fuse-quantize,bnn-bufferize,lower-bnn-to-loops' | filecheck %s --check-prefix=LOOPS

// The input quantization of an image: affine, clip8 and the NCHW -> NHWC layout change become one
// bnn.quantize with the affine's steps; its loops interleave the channels (a vector shuffle).
// CHECK-LABEL: func.func @quantize_nchw_input
// CHECK-NEXT: %[[Q:.*]] = bnn.quantize %x {steps = [{kind = "mul", values = array<f32: 6.400000e+01{{.*}}>}, {kind = "add", values = array<f32: 5.000000e-01{{.*}}>}], permutation = array<i64: 0, 2, 3, 1>} : tensor<1x3x4x16xf32> -> tensor<1x4x16x3xi8>
// CHECK-NEXT: func.return %[[Q]]
// ROUND-LABEL: func.func @quantize_nchw_input
// ROUND: bnn.transpose
// LOOPS-LABEL: func.func @quantize_nchw_input(
// LOOPS-NOT: bnn.{{(quantize|affine|clip8|transpose) }}
// LOOPS: math.roundeven {{.*}} : vector<
// LOOPS: vector.shuffle
// LOOPS: func.return
func.func @quantize_nchw_input(%x: tensor<1x3x4x16xf32>) -> tensor<1x4x16x3xi8> {
  %a = bnn.affine %x {scale = array<f32: 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0>, bias = array<f32: 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5>} : tensor<1x3x4x16xf32> -> tensor<1x3x4x16xf32>
  %q = bnn.clip8 %a : tensor<1x3x4x16xf32> -> tensor<1x3x4x16xi8>
  %t = bnn.transpose %q {permutation = array<i64: 0, 2, 3, 1>} : tensor<1x3x4x16xi8> -> tensor<1x4x16x3xi8>
  func.return %t : tensor<1x4x16x3xi8>
}

// -----

// Two transposes compose (r[k] = p[t[k]]); a lone clip8 before a transpose takes no steps.
// CHECK-LABEL: func.func @compose_permutations
// CHECK-NEXT: %[[Q:.*]] = bnn.quantize %x {steps = [], permutation = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> -> tensor<4x2x3xi8>
// CHECK-NEXT: func.return %[[Q]]
func.func @compose_permutations(%x: tensor<2x3x4xf32>) -> tensor<4x2x3xi8> {
  %q = bnn.clip8 %x : tensor<2x3x4xf32> -> tensor<2x3x4xi8>
  %t = bnn.transpose %q {permutation = array<i64: 1, 2, 0>} : tensor<2x3x4xi8> -> tensor<3x4x2xi8>
  %u = bnn.transpose %t {permutation = array<i64: 1, 2, 0>} : tensor<3x4x2xi8> -> tensor<4x2x3xi8>
  func.return %u : tensor<4x2x3xi8>
}

// -----

// A chain before the clip8 without a layout change: an identity permutation; the loops run on
// vectors along the contiguous last dimension.
// CHECK-LABEL: func.func @chain_then_clip8
// CHECK-NEXT: %[[Q:.*]] = bnn.quantize %x {steps = [{kind = "max", value = 0.000000e+00 : f32}], permutation = array<i64: 0, 1>} : tensor<2x40xf32> -> tensor<2x40xi8>
// LOOPS-LABEL: func.func @chain_then_clip8(
// LOOPS: arith.maximumf {{.*}} : vector<
// LOOPS: func.return
func.func @chain_then_clip8(%x: tensor<2x40xf32>) -> tensor<2x40xi8> {
  %r = bnn.activation %x {kind = "relu"} : tensor<2x40xf32> -> tensor<2x40xf32>
  %q = bnn.clip8 %r : tensor<2x40xf32> -> tensor<2x40xi8>
  func.return %q : tensor<2x40xi8>
}

// -----

// A chain whose result is also returned, an integer clip8, a clip8 with neither a chain nor a
// transpose, and a transpose of a clip8 used twice all stay.
// CHECK-LABEL: func.func @do_not_fuse_shared_or_integer
// CHECK-NEXT: %[[A:.*]] = bnn.affine %x
// CHECK-NEXT: %[[Q:.*]] = bnn.clip8 %[[A]]
// CHECK-NEXT: %[[I:.*]] = bnn.clip8 %n
// CHECK-NEXT: %[[T:.*]] = bnn.transpose %[[I]]
// CHECK-NEXT: %[[P:.*]] = bnn.clip8 %x
// CHECK-NEXT: %[[S:.*]] = bnn.clip8 %y
// CHECK-NEXT: %[[ST:.*]] = bnn.transpose %[[S]]
// CHECK-NEXT: func.return %[[Q]], %[[A]], %[[T]], %[[P]], %[[S]], %[[ST]]
// CHECK-NOT: bnn.quantize
func.func @do_not_fuse_shared_or_integer(%x: tensor<2x3xf32>, %n: tensor<2x3xi32>, %y: tensor<2x3xf32>) -> (tensor<2x3xi8>, tensor<2x3xf32>, tensor<3x2xi8>, tensor<2x3xi8>, tensor<2x3xi8>, tensor<3x2xi8>) {
  %a = bnn.affine %x {scale = array<f32: 2.0, 2.0, 2.0>, bias = array<f32: 0.0, 0.0, 0.0>} : tensor<2x3xf32> -> tensor<2x3xf32>
  %q = bnn.clip8 %a : tensor<2x3xf32> -> tensor<2x3xi8>
  %i = bnn.clip8 %n : tensor<2x3xi32> -> tensor<2x3xi8>
  %t = bnn.transpose %i {permutation = array<i64: 1, 0>} : tensor<2x3xi8> -> tensor<3x2xi8>
  %p = bnn.clip8 %x : tensor<2x3xf32> -> tensor<2x3xi8>
  %s = bnn.clip8 %y : tensor<2x3xf32> -> tensor<2x3xi8>
  %st = bnn.transpose %s {permutation = array<i64: 1, 0>} : tensor<2x3xi8> -> tensor<3x2xi8>
  func.return %q, %a, %t, %p, %s, %st : tensor<2x3xi8>, tensor<2x3xf32>, tensor<3x2xi8>, tensor<2x3xi8>, tensor<2x3xi8>, tensor<3x2xi8>
}

// -----

// A float residual add carries an extra operand: no bnn.quantize.
// CHECK-LABEL: func.func @do_not_fuse_extra_operands
// CHECK: bnn.add
// CHECK-NEXT: bnn.clip8
// CHECK-NOT: bnn.quantize
func.func @do_not_fuse_extra_operands(%x: tensor<2x3xf32>, %r: tensor<2x3xf32>) -> tensor<2x3xi8> {
  %s = bnn.add %x, %r : tensor<2x3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %q = bnn.clip8 %s : tensor<2x3xf32> -> tensor<2x3xi8>
  func.return %q : tensor<2x3xi8>
}
