// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p bnn-fuse-elementwise | filecheck %s
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics | filecheck %s --check-prefix=ROUND
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p 'bnn-fuse-elementwise,bnn-bufferize,lower-bnn-to-loops' | filecheck %s --check-prefix=LOOPS

// Cast, alpha scale, BatchNorm and residual add of a binary convolution: one f32 epilogue.
// CHECK-LABEL: func.func @fuse_into_bconv
// CHECK-NEXT: %{{.*}} = bnn.bconv2d %x, %w residual %r {{{.*}}output = "f32", steps = [{kind = "cast"}, {kind = "mul", values = array<f32: 5.000000e-01, 2.500000e-01, 2.000000e+00>}, {kind = "add", values = array<f32: 0.000000e+00, 0.000000e+00, 0.000000e+00>}, {kind = "fma", scale = array<f32: 1.000000e+00, 5.000000e-01, 2.500000e-01>, shift = array<f32: -1.000000e+00, 0.000000e+00, 5.000000e-01>}, {kind = "add_input", input = 1 : i64}]} : tensor<1x4x4x1xi8>, tensor<3x3x3x1xi8> residual tensor<1x4x4x3xf32> -> tensor<1x4x4x3xf32>
// CHECK-NEXT: func.return
// LOOPS-LABEL: func.func @fuse_into_bconv(
// LOOPS-NOT: bnn.{{(bconv2d|elementwise|cast|affine|batch_norm|add) }}
// LOOPS: math.fma
// LOOPS: func.return
func.func @fuse_into_bconv(%x: tensor<1x4x4x1xi8>, %w: tensor<3x3x3x1xi8>, %r: tensor<1x4x4x3xf32>) -> tensor<1x4x4x3xf32> {
  %a = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x4x4x3xi32>
  %c = bnn.cast %a : tensor<1x4x4x3xi32> -> tensor<1x4x4x3xf32>
  %s = bnn.affine %c {scale = array<f32: 0.5, 0.25, 2.0>, bias = array<f32: 0.0, 0.0, 0.0>} : tensor<1x4x4x3xf32> -> tensor<1x4x4x3xf32>
  %b = bnn.batch_norm %s {mean = array<f32: 1.0, 0.0, -2.0>, var = array<f32: 0.0, 3.0, 15.0>, gamma = array<f32: 1.0, 1.0, 1.0>, beta = array<f32: 0.0, 0.0, 0.0>, eps = 1.0 : f32} : tensor<1x4x4x3xf32> -> tensor<1x4x4x3xf32>
  %y = bnn.add %r, %b : tensor<1x4x4x3xf32>, tensor<1x4x4x3xf32> -> tensor<1x4x4x3xf32>
  func.return %y : tensor<1x4x4x3xf32>
}

// -----

// The i32 result is also returned: the cast chain stays a separate bnn.elementwise.
// CHECK-LABEL: func.func @do_not_fuse_used_accumulator
// CHECK-NEXT: %[[A:.*]] = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} :
// CHECK-NEXT: %[[E:.*]] = bnn.elementwise %[[A]] {steps = [{kind = "cast"}, {kind = "max", value = 0.000000e+00 : f32}]} : tensor<1x4x4x3xi32> -> tensor<1x4x4x3xf32>
// CHECK-NEXT: func.return %[[E]], %[[A]]
func.func @do_not_fuse_used_accumulator(%x: tensor<1x4x4x1xi8>, %w: tensor<3x3x3x1xi8>) -> (tensor<1x4x4x3xf32>, tensor<1x4x4x3xi32>) {
  %a = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<3x3x3x1xi8> -> tensor<1x4x4x3xi32>
  %c = bnn.cast %a : tensor<1x4x4x3xi32> -> tensor<1x4x4x3xf32>
  %y = bnn.activation %c {kind = "relu"} : tensor<1x4x4x3xf32> -> tensor<1x4x4x3xf32>
  func.return %y, %a : tensor<1x4x4x3xf32>, tensor<1x4x4x3xi32>
}

// -----

// Hardtanh, residual add (the chain on either side), ReLU: one op; the extra input follows.
// CHECK-LABEL: func.func @fuse_chain
// CHECK-NEXT: %[[E:.*]] = bnn.elementwise %x, %r {steps = [{kind = "max", value = -1.000000e+00 : f32}, {kind = "min", value = 1.000000e+00 : f32}, {kind = "add_input", input = 1 : i64}, {kind = "prelu", values = array<f32: 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01, 2.500000e-01>}]} : tensor<2x5xf32>, tensor<2x5xf32> -> tensor<2x5xf32>
// CHECK-NEXT: func.return %[[E]]
// LOOPS-LABEL: func.func @fuse_chain
// LOOPS: arith.maximumf
// LOOPS: arith.minimumf
// LOOPS: arith.addf
// LOOPS: arith.select
func.func @fuse_chain(%x: tensor<2x5xf32>, %r: tensor<2x5xf32>) -> tensor<2x5xf32> {
  %a = bnn.activation %x {kind = "hardtanh", min = -1.0 : f32, max = 1.0 : f32} : tensor<2x5xf32> -> tensor<2x5xf32>
  %b = bnn.add %r, %a : tensor<2x5xf32>, tensor<2x5xf32> -> tensor<2x5xf32>
  %c = bnn.activation %b {kind = "prelu", slopes = array<f32: 0.25, 0.25, 0.25, 0.25, 0.25>} : tensor<2x5xf32> -> tensor<2x5xf32>
  func.return %c : tensor<2x5xf32>
}

// -----

// A lone op stays; an intermediate with a second use ends the chain.
// CHECK-LABEL: func.func @do_not_fuse_lone_or_shared
// CHECK-NEXT: %[[A:.*]] = bnn.activation %x {kind = "relu"}
// CHECK-NEXT: %[[C:.*]] = bnn.elementwise %[[A]] {steps = [{kind = "mul", {{.*}}}, {kind = "add", values = array<f32: -0.000000e+00, -0.000000e+00>}, {kind = "mul", {{.*}}}, {kind = "add", {{.*}}}]}
// CHECK-NEXT: %[[D:.*]] = bnn.activation %x {kind = "hardtanh"
// CHECK-NEXT: func.return %[[C]], %[[A]], %[[D]]
func.func @do_not_fuse_lone_or_shared(%x: tensor<3x2xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>, tensor<3x2xf32>) {
  %a = bnn.activation %x {kind = "relu"} : tensor<3x2xf32> -> tensor<3x2xf32>
  %b = bnn.affine %a {scale = array<f32: 2.0, 3.0>, bias = array<f32: -0.0, -0.0>} : tensor<3x2xf32> -> tensor<3x2xf32>
  %c = bnn.affine %b {scale = array<f32: 2.0, 3.0>, bias = array<f32: 1.0, 1.0>} : tensor<3x2xf32> -> tensor<3x2xf32>
  %d = bnn.activation %x {kind = "hardtanh", min = -1.0 : f32, max = 1.0 : f32} : tensor<3x2xf32> -> tensor<3x2xf32>
  func.return %c, %a, %d : tensor<3x2xf32>, tensor<3x2xf32>, tensor<3x2xf32>
}

// -----

// Round trip of the op (value and buffer form) and of a bconv2d with an f32 output.
// ROUND-LABEL: func.func @round_trip
// ROUND-NEXT: %{{.*}} = bnn.elementwise %x {steps = [{kind = "cast"}, {kind = "div", values = array<f32: 3.000000e+00, -0.000000e+00>}]} : tensor<4x2xi16> -> tensor<4x2xf32>
// ROUND-NEXT: bnn.elementwise %y, %z into %o {steps = [{kind = "add_input", input = 1 : i64}]} : memref<4x2xf32>, memref<4x2xf32> into memref<4x2xf32>
// ROUND-NEXT: %{{.*}} = bnn.bconv2d %p, %w {{{.*}}output = "f32", steps = [{kind = "cast"}]} : tensor<1x3x3x1xi8>, tensor<2x1x1x1xi8> -> tensor<1x3x3x2xf32>
// GENERIC-LABEL: sym_name = "round_trip"
// GENERIC: "bnn.elementwise"(%{{.*}}) <{steps = [{kind = "cast"}, {kind = "div", values = array<f32: 3.000000e+00, -0.000000e+00>}], operandSegmentSizes = array<i32: 1, 0>}> : (tensor<4x2xi16>) -> tensor<4x2xf32>
func.func @round_trip(%x: tensor<4x2xi16>, %y: memref<4x2xf32>, %z: memref<4x2xf32>, %o: memref<4x2xf32>, %p: tensor<1x3x3x1xi8>, %w: tensor<2x1x1x1xi8>) -> (tensor<4x2xf32>, tensor<1x3x3x2xf32>) {
  %0 = bnn.elementwise %x {steps = [{kind = "cast"}, {kind = "div", values = array<f32: 3.0, -0.0>}]} : tensor<4x2xi16> -> tensor<4x2xf32>
  bnn.elementwise %y, %z into %o {steps = [{kind = "add_input", input = 1 : i64}]} : memref<4x2xf32>, memref<4x2xf32> into memref<4x2xf32>
  %1 = bnn.bconv2d %p, %w {in_channels = 3 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64, output = "f32", steps = [{kind = "cast"}]} : tensor<1x3x3x1xi8>, tensor<2x1x1x1xi8> -> tensor<1x3x3x2xf32>
  func.return %0, %1 : tensor<4x2xf32>, tensor<1x3x3x2xf32>
}

// -----

// CHECK: 'bnn.elementwise' an integer input needs 'cast' as its first step, and only it (step 0 is mul)
// ROUND: 'bnn.elementwise' an integer input needs 'cast' as its first step
func.func @do_not_accept_integer_without_cast(%x: tensor<2x2xi32>) -> tensor<2x2xf32> {
  %0 = bnn.elementwise %x {steps = [{kind = "mul", values = array<f32: 1.0, 2.0>}]} : tensor<2x2xi32> -> tensor<2x2xf32>
  func.return %0 : tensor<2x2xf32>
}

// -----

// CHECK: 'bnn.elementwise' step 0 (add_input): 'input' must be an i64 in [1, 0]
func.func @do_not_accept_missing_input(%x: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %0 = bnn.elementwise %x {steps = [{kind = "add_input", input = 1 : i64}]} : tensor<2x2xf32> -> tensor<2x2xf32>
  func.return %0 : tensor<2x2xf32>
}

// -----

// CHECK: 'bnn.elementwise' step 0 (fma): 'scale' must be an f32 array of 2 values
func.func @do_not_accept_short_array(%x: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %0 = bnn.elementwise %x {steps = [{kind = "fma", scale = array<f32: 1.0>, shift = array<f32: 1.0, 2.0>}]} : tensor<2x2xf32> -> tensor<2x2xf32>
  func.return %0 : tensor<2x2xf32>
}

// -----

// CHECK: 'bnn.bconv2d' steps go with output = "f32" only, and it needs them
func.func @do_not_accept_f32_without_steps(%p: tensor<1x3x3x1xi8>, %w: tensor<2x1x1x1xi8>) -> tensor<1x3x3x2xf32> {
  %1 = bnn.bconv2d %p, %w {in_channels = 3 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64, output = "f32"} : tensor<1x3x3x1xi8>, tensor<2x1x1x1xi8> -> tensor<1x3x3x2xf32>
  func.return %1 : tensor<1x3x3x2xf32>
}

// -----

// BatchNorm and ReLU after a float convolution (a float stem): one conv2d whose steps run on
// each sum after the bias; the loops apply them before the single store.
// CHECK-LABEL: func.func @fuse_into_float_conv
// CHECK-NEXT: %{{.*}} = bnn.conv2d %x, %w bias %b {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, steps = [{kind = "fma", scale = array<f32: {{.*}}>, shift = array<f32: {{.*}}>}, {kind = "max", value = 0.000000e+00 : f32}]} : tensor<1x5x5x3xf32>, tensor<2x3x3x3xf32> bias tensor<2xf32> -> tensor<1x3x3x2xf32>
// CHECK-NEXT: func.return
// LOOPS-LABEL: func.func @fuse_into_float_conv(
// LOOPS-NOT: bnn.{{(conv2d|elementwise|batch_norm|activation) }}
// LOOPS: math.fma
// LOOPS: arith.maximumf
// LOOPS: func.return
func.func @fuse_into_float_conv(%x: tensor<1x5x5x3xf32>, %w: tensor<2x3x3x3xf32>, %b: tensor<2xf32>) -> tensor<1x3x3x2xf32> {
  %a = bnn.conv2d %x, %w bias %b {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>} : tensor<1x5x5x3xf32>, tensor<2x3x3x3xf32> bias tensor<2xf32> -> tensor<1x3x3x2xf32>
  %n = bnn.batch_norm %a {mean = array<f32: 1.0, -2.0>, var = array<f32: 3.0, 15.0>, gamma = array<f32: 1.0, -0.5>, beta = array<f32: 0.25, 0.0>, eps = 1.0e-05 : f32} : tensor<1x3x3x2xf32> -> tensor<1x3x3x2xf32>
  %y = bnn.activation %n {kind = "relu"} : tensor<1x3x3x2xf32> -> tensor<1x3x3x2xf32>
  func.return %y : tensor<1x3x3x2xf32>
}

// -----

// The convolution's result has a second use, a residual add brings an extra operand, an
// integer convolution has no float steps: nothing moves into the convolutions.
// CHECK-LABEL: func.func @do_not_fuse_into_shared_or_integer_conv
// CHECK-NEXT: %[[A:.*]] = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} :
// CHECK-NEXT: %[[R:.*]] = bnn.activation %[[A]] {kind = "relu"}
// CHECK-NEXT: %[[B:.*]] = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} :
// CHECK-NEXT: %[[S:.*]] = bnn.add %[[B]], %r
// CHECK-NEXT: %[[I:.*]] = bnn.conv2d %q, %v {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} :
// CHECK-NEXT: %[[C:.*]] = bnn.cast %[[I]]
// CHECK-NEXT: func.return %[[R]], %[[A]], %[[S]], %[[C]]
func.func @do_not_fuse_into_shared_or_integer_conv(%x: tensor<1x2x2x3xf32>, %w: tensor<2x1x1x3xf32>, %r: tensor<1x2x2x2xf32>, %q: tensor<1x2x2x3xi8>, %v: tensor<2x1x1x3xi8>) -> (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) {
  %a = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x2x2x3xf32>, tensor<2x1x1x3xf32> -> tensor<1x2x2x2xf32>
  %y = bnn.activation %a {kind = "relu"} : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %b = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x2x2x3xf32>, tensor<2x1x1x3xf32> -> tensor<1x2x2x2xf32>
  %s = bnn.add %b, %r : tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %i = bnn.conv2d %q, %v {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x2x2x3xi8>, tensor<2x1x1x3xi8> -> tensor<1x2x2x2xi32>
  %c = bnn.cast %i : tensor<1x2x2x2xi32> -> tensor<1x2x2x2xf32>
  func.return %y, %a, %s, %c : tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>
}

// -----

// Round trip of a float convolution with fused steps.
// ROUND-LABEL: func.func @round_trip_float_conv_steps
// ROUND-NEXT: %{{.*}} = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, steps = [{kind = "mul", values = array<f32: 2.000000e+00, -0.000000e+00>}, {kind = "min", value = 1.000000e+00 : f32}]} : tensor<1x2x2x3xf32>, tensor<2x1x1x3xf32> -> tensor<1x2x2x2xf32>
// GENERIC-LABEL: sym_name = "round_trip_float_conv_steps"
// GENERIC: "bnn.conv2d"(%{{.*}}, %{{.*}}) <{strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, steps = [{kind = "mul", values = array<f32: 2.000000e+00, -0.000000e+00>}, {kind = "min", value = 1.000000e+00 : f32}], operandSegmentSizes = array<i32: 1, 1, 0, 0>}>
func.func @round_trip_float_conv_steps(%x: tensor<1x2x2x3xf32>, %w: tensor<2x1x1x3xf32>) -> tensor<1x2x2x2xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, steps = [{kind = "mul", values = array<f32: 2.0, -0.0>}, {kind = "min", value = 1.0 : f32}]} : tensor<1x2x2x3xf32>, tensor<2x1x1x3xf32> -> tensor<1x2x2x2xf32>
  func.return %0 : tensor<1x2x2x2xf32>
}

// -----

// CHECK: 'bnn.conv2d' fused float steps need the float form
func.func @do_not_accept_steps_on_integer_conv(%q: tensor<1x2x2x3xi8>, %v: tensor<2x1x1x3xi8>) -> tensor<1x2x2x2xi32> {
  %0 = bnn.conv2d %q, %v {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, steps = [{kind = "max", value = 0.0 : f32}]} : tensor<1x2x2x3xi8>, tensor<2x1x1x3xi8> -> tensor<1x2x2x2xi32>
  func.return %0 : tensor<1x2x2x2xi32>
}

// -----

// CHECK: 'bnn.conv2d' steps step 0 (add_input): 'input' must be an i64 in [1, 0]
func.func @do_not_accept_add_input_in_conv_steps(%x: tensor<1x2x2x3xf32>, %w: tensor<2x1x1x3xf32>) -> tensor<1x2x2x2xf32> {
  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, steps = [{kind = "add_input", input = 1 : i64}]} : tensor<1x2x2x3xf32>, tensor<2x1x1x3xf32> -> tensor<1x2x2x2xf32>
  func.return %0 : tensor<1x2x2x2xf32>
}
