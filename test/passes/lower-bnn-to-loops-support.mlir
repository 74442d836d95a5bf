// Loop nests of the integer and float support ops (buffer form in, loop level out).
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p lower-bnn-to-loops | filecheck %s
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p lower-bnn-to-loops | filecheck %s --check-prefix=ONLY-LOOPS
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p 'lower-bnn-to-loops{parallel=true}' | filecheck %s --check-prefix=PAR
// ONLY-LOOPS-NOT: bnn.{{(requant8|cast|batch_norm|affine|conv2d|dense|pool2d|global_avg_pool|add|activation|concat|reshape|transpose) }}

// The per-channel parameters of an affine requant become constant globals; int64 arithmetic.
// CHECK: "memref.global"() <{sym_name = "__bnn_requant_m_0", type = memref<3xi64>, initial_value = dense<[3, -5, 7]> : tensor<3xi64>, sym_visibility = "private", constant}>
// CHECK-LABEL: func.func @requant8_affine
// CHECK: scf.for %[[I:[^ ]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT: scf.for %[[C:[^ ]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT: %[[X:.*]] = memref.load %x[%[[I]], %[[C]]] : memref<4x3xi16>
// CHECK-NEXT: %[[W:.*]] = arith.extsi %[[X]] : i16 to i64
// CHECK-NEXT: %[[M:.*]] = memref.load %{{.*}}[%[[C]]] : memref<3xi64>
// CHECK-NEXT: %[[P:.*]] = arith.muli %[[W]], %[[M]] : i64
// CHECK: arith.addi %[[P]], %{{.*}} : i64
// CHECK-NEXT: arith.shrsi
// CHECK-NEXT: arith.maxsi
// CHECK-NEXT: arith.minsi
// CHECK-NEXT: %[[Q:.*]] = arith.trunci %{{.*}} : i64 to i8
// CHECK-NEXT: memref.store %[[Q]], %o[%[[I]], %[[C]]] : memref<4x3xi8>
func.func @requant8_affine(%x: memref<4x3xi16>, %o: memref<4x3xi8>) {
  bnn.requant8 %x into %o {kind = "affine", multiplier = array<i64: 3, -5, 7>, offset = array<i64: 64, -7, 0>, shift = array<i64: 7, 7, 7>} : memref<4x3xi16>, memref<4x3xi8>
  func.return
}

// -----

// Float convolution: n, oh, ow, o loops; taps that may leave the input are guarded by scf.if;
// the innermost loop runs over the channels with one fused multiply-add per step (math.fma,
// rounded once); the bias is added last.
// CHECK-LABEL: func.func @conv2d
// CHECK: scf.for %[[OH:[^ ]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK: scf.for %[[OW:[^ ]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK: scf.for %[[O:[^ ]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK: %[[ACC:.*]] = scf.for %[[KH:[^ ]+]] = {{.*}} iter_args(%{{.*}} = %{{.*}}) -> (f32) {
// CHECK: scf.for %[[KW:[^ ]+]] = {{.*}} -> (f32) {
// CHECK: arith.cmpi ult
// CHECK: scf.if %{{.*}} -> (f32) {
// CHECK-NEXT: scf.for %[[CH:[^ ]+]] = {{.*}} -> (f32) {
// CHECK-NEXT: %[[XV:.*]] = memref.load %x[%{{.*}}, %{{.*}}, %{{.*}}, %[[CH]]] : memref<1x5x5x3xf32>
// CHECK-NEXT: %[[WV:.*]] = memref.load %w[%[[O]], %[[KH]], %[[KW]], %[[CH]]] : memref<4x3x3x3xf32>
// CHECK-NEXT: %[[S:.*]] = math.fma %[[XV]], %[[WV]], %{{.*}} : f32
// CHECK-NEXT: scf.yield %[[S]] : f32
// CHECK: } else {
// CHECK: %[[B:.*]] = memref.load %b[%[[O]]] : memref<4xf32>
// CHECK-NEXT: %[[R:.*]] = arith.addf %[[ACC]], %[[B]] : f32
// CHECK-NEXT: memref.store %[[R]], %o[%{{.*}}, %[[OH]], %[[OW]], %[[O]]] : memref<1x3x3x4xf32>
func.func @conv2d(%x: memref<1x5x5x3xf32>, %w: memref<4x3x3x3xf32>, %b: memref<4xf32>, %o: memref<1x3x3x4xf32>) {
  bnn.conv2d %x, %w bias %b into %o {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>} : memref<1x5x5x3xf32>, memref<4x3x3x3xf32> bias memref<4xf32>, memref<1x3x3x4xf32>
  func.return
}

// -----

// Integer convolution (i8 x i8): an i32 accumulator from 0; both factors extsi to i32, muli, addi;
// no scf.if when every tap is in range; the i32 sum is stored as is.
// CHECK-LABEL: func.func @conv2d_integer
// CHECK: %[[ACC:.*]] = scf.for %[[KH:[^ ]+]] = {{.*}} iter_args(%{{.*}} = %{{.*}}) -> (i32) {
// CHECK: scf.for %[[KW:[^ ]+]] = {{.*}} -> (i32) {
// CHECK-NOT: scf.if
// CHECK: scf.for %[[CH:[^ ]+]] = {{.*}} iter_args(%[[S0:.*]] = %{{.*}}) -> (i32) {
// CHECK-NEXT: %[[XV:.*]] = memref.load %x[%{{.*}}, %{{.*}}, %{{.*}}, %[[CH]]] : memref<1x4x4x3xi8>
// CHECK-NEXT: %[[XE:.*]] = arith.extsi %[[XV]] : i8 to i32
// CHECK-NEXT: %[[WV:.*]] = memref.load %w[%{{.*}}, %[[KH]], %[[KW]], %[[CH]]] : memref<2x2x2x3xi8>
// CHECK-NEXT: %[[WE:.*]] = arith.extsi %[[WV]] : i8 to i32
// CHECK-NEXT: %[[PR:.*]] = arith.muli %[[XE]], %[[WE]] : i32
// CHECK-NEXT: %[[S:.*]] = arith.addi %[[S0]], %[[PR]] : i32
// CHECK-NEXT: scf.yield %[[S]] : i32
// CHECK: memref.store %[[ACC]], %o[{{.*}}] : memref<1x3x3x2xi32>
func.func @conv2d_integer(%x: memref<1x4x4x3xi8>, %w: memref<2x2x2x3xi8>, %o: memref<1x3x3x2xi32>) {
  bnn.conv2d %x, %w into %o {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>} : memref<1x4x4x3xi8>, memref<2x2x2x3xi8>, memref<1x3x3x2xi32>
  func.return
}

// -----

// CHECK-LABEL: func.func @dense_integer
// CHECK: %[[ZERO:.*]] = arith.constant 0 : i32
// CHECK: %[[ACC:.*]] = scf.for %[[C:[^ ]+]] = {{.*}} iter_args(%[[S0:.*]] = %[[ZERO]]) -> (i32) {
// CHECK-NEXT: %[[XV:.*]] = memref.load %x[%{{.*}}, %[[C]]] : memref<2x5xi8>
// CHECK-NEXT: %[[XE:.*]] = arith.extsi %[[XV]] : i8 to i32
// CHECK-NEXT: %[[WV:.*]] = memref.load %w[%{{.*}}, %[[C]]] : memref<3x5xi8>
// CHECK-NEXT: %[[WE:.*]] = arith.extsi %[[WV]] : i8 to i32
// CHECK-NEXT: %[[PR:.*]] = arith.muli %[[XE]], %[[WE]] : i32
// CHECK-NEXT: arith.addi %[[S0]], %[[PR]] : i32
// CHECK: memref.store %[[ACC]], %o[%{{.*}}, %{{.*}}] : memref<2x3xi32>
func.func @dense_integer(%x: memref<2x5xi8>, %w: memref<3x5xi8>, %o: memref<2x3xi32>) {
  bnn.dense %x, %w into %o : memref<2x5xi8>, memref<3x5xi8>, memref<2x3xi32>
  func.return
}

// -----

// The division form of bnn.affine divides (divf), it does not multiply by a reciprocal.
// CHECK: "memref.global"() <{sym_name = "__bnn_divisor_0", type = memref<2xf32>, initial_value = dense<[3.000000e+00, 1.230000e-02]> : tensor<2xf32>, sym_visibility = "private", constant}>
// CHECK-LABEL: func.func @affine_divisor
// CHECK-DAG: %[[D:.*]] = memref.get_global @__bnn_divisor_0 : memref<2xf32>
// CHECK-DAG: %[[NZ:.*]] = arith.constant -0.000000e+00 : f32
// CHECK: %[[X:.*]] = memref.load %x[%{{.*}}, %[[C:.*]]] : memref<4x2xf32>
// CHECK-NEXT: %[[DV:.*]] = memref.load %[[D]][%[[C]]] : memref<2xf32>
// CHECK-NEXT: %[[Q:.*]] = arith.divf %[[X]], %[[DV]] : f32
// CHECK-NEXT: %[[R:.*]] = arith.addf %[[Q]], %[[NZ]] : f32
// CHECK-NEXT: memref.store %[[R]], %o[%{{.*}}, %[[C]]] : memref<4x2xf32>
func.func @affine_divisor(%x: memref<4x2xf32>, %o: memref<4x2xf32>) {
  bnn.affine %x into %o {divisor = array<f32: 3.0, 0.0123>, bias = array<f32: -0.0, -0.0>} : memref<4x2xf32>, memref<4x2xf32>
  func.return
}

// -----

// Max pooling accumulates in the output row: filled with the lowest value, then one
// contiguous loop over the channels per in-range tap.
// CHECK-LABEL: func.func @max_pool
// CHECK-DAG: %[[LOW:.*]] = arith.constant -128 : i8
// CHECK-DAG: %[[FIVE:.*]] = arith.constant 5 : index
// CHECK: scf.for %[[C0:[^ ]+]] = %{{.*}} to %[[FIVE]] step %{{.*}} {
// CHECK-NEXT: memref.store %[[LOW]], %o[%{{.*}}, %{{.*}}, %{{.*}}, %[[C0]]] : memref<2x2x2x5xi8>
// CHECK: scf.if %{{.*}} {
// CHECK-NEXT: scf.for %[[C:[^ ]+]] = %{{.*}} to %[[FIVE]] step %{{.*}} {
// CHECK-NEXT: %[[A:.*]] = memref.load %o[%{{.*}}, %{{.*}}, %{{.*}}, %[[C]]] : memref<2x2x2x5xi8>
// CHECK-NEXT: %[[V:.*]] = memref.load %x[%{{.*}}, %{{.*}}, %{{.*}}, %[[C]]] : memref<2x3x3x5xi8>
// CHECK-NEXT: %[[M:.*]] = arith.maxsi %[[A]], %[[V]] : i8
// CHECK-NEXT: memref.store %[[M]], %o
func.func @max_pool(%x: memref<2x3x3x5xi8>, %o: memref<2x2x2x5xi8>) {
  bnn.pool2d %x into %o {kind = "max", kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : memref<2x3x3x5xi8>, memref<2x2x2x5xi8>
  func.return
}

// -----

// Average pooling without counted padding divides by a compile-time table of window sizes.
// CHECK: "memref.global"() <{sym_name = "__bnn_pool_count_0", type = memref<2x2xf32>, initial_value = dense<{{\[\[}}1.000000e+00, 2.000000e+00], [2.000000e+00, 4.000000e+00]]> : tensor<2x2xf32>
// CHECK-LABEL: func.func @avg_pool
// CHECK: arith.sitofp %{{.*}} : i32 to f32
// CHECK: %[[N:.*]] = memref.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<2x2xf32>
// CHECK: arith.divf %{{.*}}, %[[N]] : f32
func.func @avg_pool(%x: memref<1x3x3x2xi32>, %o: memref<1x2x2x2xf32>) {
  bnn.pool2d %x into %o {kind = "avg", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 1, 0, 1, 0>} : memref<1x3x3x2xi32>, memref<1x2x2x2xf32>
  func.return
}

// -----

// Transpose loops over the output, the innermost loop on its contiguous last dimension.
// CHECK-LABEL: func.func @transpose
// CHECK: scf.for %[[A:[^ ]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT: scf.for %[[B:[^ ]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT: %[[V:.*]] = memref.load %x[%[[B]], %[[A]]] : memref<3x7xf32>
// CHECK-NEXT: memref.store %[[V]], %o[%[[A]], %[[B]]] : memref<7x3xf32>
func.func @transpose(%x: memref<3x7xf32>, %o: memref<7x3xf32>) {
  bnn.transpose %x into %o {permutation = array<i64: 1, 0>} : memref<3x7xf32>, memref<7x3xf32>
  func.return
}

// -----

// A value-form op is rejected: bufferize first.
// CHECK: lower-bnn-to-loops: cannot lower 'bnn.pool2d' in @do_not_lower_tensors: expected the buffer form
func.func @do_not_lower_tensors(%x: tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32> {
  %0 = bnn.pool2d %x {kind = "max", kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 0, 0>} : tensor<1x4x4x2xf32> -> tensor<1x2x2x2xf32>
  func.return %0 : tensor<1x2x2x2xf32>
}

// -----

// With parallel=true, a support op of at least 2**16 elements runs its first two dimensions as
// one scf.parallel over the N*H rows (here 2*128 = 256, n = r / 128, h = r % 128); a smaller one
// stays a loop nest.
// PAR-LABEL: func.func @split_support_ops
// PAR:         "scf.parallel"(%{{.*}}, %{{.*}}, %{{.*}}) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
// PAR-NEXT:    ^{{.*}}(%[[ROW:.*]]: index):
// PAR-NEXT:      arith.divui %[[ROW]]
// PAR-NEXT:      arith.remui %[[ROW]]
// PAR:           scf.reduce
// PAR-NOT:     scf.parallel
// PAR:         func.return
func.func @split_support_ops(%x: memref<2x128x16x16xi16>, %o: memref<2x128x16x16xi8>, %y: memref<2x8x16x16xi16>, %p: memref<2x8x16x16xi8>) {
  bnn.clip8 %x into %o : memref<2x128x16x16xi16>, memref<2x128x16x16xi8>
  bnn.clip8 %y into %p : memref<2x8x16x16xi16>, memref<2x8x16x16xi8>
  func.return
}
