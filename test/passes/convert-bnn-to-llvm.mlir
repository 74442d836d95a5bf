// RUN: bnnmlir-opt %s -p 'convert-bnn-to-llvm{target=aarch64}' | filecheck %s --check-prefixes=CHECK,NEON
// RUN: bnnmlir-opt %s -p 'convert-bnn-to-llvm{target=host}' | filecheck %s --check-prefixes=CHECK,HOST
// RUN: bnnmlir-opt %s -p 'convert-bnn-to-llvm{target=aarch64}' -t 'llvm{target=aarch64 optimize=false}' | filecheck %s --check-prefix=IR
// RUN: bnnmlir-opt %s -p 'convert-bnn-to-llvm{target=aarch64}' -t 'llvm{target=aarch64}' | filecheck %s --check-prefix=IR-O3
// RUN: bnnmlir-opt %s -p 'convert-bnn-to-llvm{target=host}' -t 'llvm{target=host}' | filecheck %s --check-prefix=IR-HOST
// RUN: bnnmlir-opt %s -p 'convert-bnn-to-llvm{target=aarch64}' | filecheck %s --check-prefix=ONLY-LLVM

// NEON: builtin.module attributes {llvm.target_triple = "aarch64-unknown-linux-gnu", bnn.target = "aarch64"}
// ONLY-LLVM-NOT: {{= (arith|memref|vector|scf|cf|func|bnn|builtin)[.]}}
// ONLY-LLVM-NOT: {{^ *(arith|memref|vector|scf|cf|func|bnn)[.]}}

// Constants become internal constant globals of a flat array, in row-major order.
// CHECK: llvm.mlir.global internal constant @weights(dense<[1, 2, 3, 4, 5, 6]> : tensor<6xi8>) {{.*}} : !llvm.array<6 x i8>
"memref.global"() <{sym_name = "weights", sym_visibility = "private", type = memref<2x3xi8>,
    initial_value = dense<[[1, 2, 3], [4, 5, 6]]> : tensor<2x3xi8>, constant}> : () -> ()

// Scalar arith maps one to one; index is i64; max/min are intrinsics.
// CHECK-LABEL: llvm.func @scalar_arith(
// CHECK-SAME: %[[A:.*]]: i32, %[[B:.*]]: i32, %[[I:.*]]: i64) -> i32
// CHECK: %[[S:.*]] = llvm.add %[[A]], %[[B]] : i32
// CHECK: %[[Q:.*]] = llvm.sdiv %[[S]], %[[B]] : i32
// CHECK: %[[R:.*]] = llvm.urem %[[Q]], %[[A]] : i32
// CHECK: %[[X:.*]] = llvm.lshr %[[R]], %[[B]] : i32
// CHECK: %[[T:.*]] = llvm.trunc %[[I]] : i64 to i32
// CHECK: %[[M:.*]] = llvm.call_intrinsic "llvm.smax.i32"(%[[X]], %[[T]]) : (i32, i32) -> i32
// CHECK: %[[C:.*]] = llvm.icmp "sgt" %[[M]], %[[A]] : i32
// CHECK: %[[SEL:.*]] = llvm.select %[[C]], %[[M]], %[[B]] : i1, i32
// CHECK: llvm.return %[[SEL]] : i32
func.func @scalar_arith(%a: i32, %b: i32, %i: index) -> i32 {
  %s = arith.addi %a, %b : i32
  %q = arith.divsi %s, %b : i32
  %r = arith.remui %q, %a : i32
  %x = arith.shrui %r, %b : i32
  %t = arith.index_cast %i : index to i32
  %m = arith.maxsi %x, %t : i32
  %c = arith.cmpi sgt, %m, %a : i32
  %sel = arith.select %c, %m, %b : i32
  func.return %sel : i32
}

// f32 binarization compares ordered: x < 0.0 (-0.0 is not < 0.0, so it binarizes to +1).
// CHECK-LABEL: llvm.func @float_sign(
// CHECK: %[[Z:.*]] = llvm.mlir.constant(0.000000e+00 : f32) : f32
// CHECK: %[[N:.*]] = llvm.fcmp "olt" %{{.*}}, %[[Z]] : f32
// CHECK: llvm.zext %[[N]] : i1 to i8
func.func @float_sign(%x: f32) -> i8 {
  %z = arith.constant 0.0 : f32
  %n = arith.cmpf olt, %x, %z : f32
  %b = arith.extui %n : i1 to i8
  func.return %b : i8
}

// Memref element [i, j] of memref<4x16xi8> is base + i*16 + j; the arena view is a byte offset.
// CHECK-LABEL: llvm.func @memref_access(
// CHECK-SAME: %[[M:.*]]: !llvm.ptr, %[[ARENA:.*]]: !llvm.ptr, %[[I:.*]]: i64, %[[J:.*]]: i64)
// The strides are constants of the function's entry block, made once per function.
// CHECK: %[[S16:.*]] = llvm.mlir.constant(16) : i64
// CHECK: %[[OFF:.*]] = llvm.mlir.constant(64) : i64
// CHECK: %[[VIEW:.*]] = llvm.getelementptr inbounds %[[ARENA]][%[[OFF]]] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: %[[W:.*]] = llvm.mlir.addressof @weights : !llvm.ptr
// CHECK: %[[ROW:.*]] = llvm.mul %[[I]], %[[S16]] : i64
// CHECK: %[[LIN:.*]] = llvm.add %[[ROW]], %[[J]] : i64
// CHECK: %[[P:.*]] = llvm.getelementptr inbounds %[[M]][%[[LIN]]] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: %[[V:.*]] = llvm.load %[[P]] : !llvm.ptr -> i8
// CHECK: llvm.getelementptr inbounds %[[W]][%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: %[[Q:.*]] = llvm.getelementptr inbounds %[[VIEW]][%[[J]]] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: llvm.store %{{.*}}, %[[Q]] : i8, !llvm.ptr
func.func @memref_access(%m: memref<4x16xi8>, %arena: memref<128xi8>, %i: index, %j: index) {
  %c64 = arith.constant 64 : index
  %c1 = arith.constant 1 : index
  %view = memref.view %arena[%c64][] : memref<128xi8> to memref<16xi8>
  %w = memref.get_global @weights : memref<2x3xi8>
  %v = memref.load %m[%i, %j] : memref<4x16xi8>
  %k = memref.load %w[%c1, %c1] : memref<2x3xi8>
  %s = arith.addi %v, %k : i8
  memref.store %s, %view[%j] : memref<16xi8>
  func.return
}

// Vector loads and stores always carry alignment 1; extract is a one-lane shuffle + bitcast.
// CHECK-LABEL: llvm.func @vector_ops(
// CHECK: %[[V:.*]] = llvm.load %{{.*}} {alignment = 1 : i64} : !llvm.ptr -> vector<8xi32>
// CHECK: %[[INS:.*]] = llvm.insertelement %{{.*}}, %{{.*}}[%{{.*}} : i64] : vector<8xi32>
// CHECK: %[[SPLAT:.*]] = llvm.shufflevector %[[INS]], %[[INS]] [0, 0, 0, 0, 0, 0, 0, 0] : vector<8xi32>
// CHECK: %[[SUM:.*]] = llvm.add %[[V]], %[[SPLAT]] : vector<8xi32>
// CHECK: llvm.insertelement %{{.*}}, %[[SUM]][%{{.*}} : i64] : vector<8xi32>
// CHECK: %[[ONE:.*]] = llvm.shufflevector %{{.*}}, %{{.*}} [5] : vector<8xi32>
// CHECK: llvm.bitcast %[[ONE]] : vector<1xi32> to i32
// CHECK: llvm.call_intrinsic "llvm.vector.reduce.add.v8i32"(%{{.*}}) : (vector<8xi32>) -> i32
// CHECK: llvm.store %{{.*}}, %{{.*}} {alignment = 1 : i64} : vector<8xi32>, !llvm.ptr
func.func @vector_ops(%m: memref<16xi32>, %s: i32) -> i32 {
  %c0 = arith.constant 0 : index
  %c8 = arith.constant 8 : index
  %v = vector.load %m[%c0] : memref<16xi32>, vector<8xi32>
  %b = vector.broadcast %s : i32 to vector<8xi32>
  %sum = arith.addi %v, %b : vector<8xi32>
  %ins = vector.insert %s, %sum[2] : i32 into vector<8xi32>
  %e = vector.extract %ins[5] : i32 from vector<8xi32>
  %r = vector.reduction <add>, %ins : vector<8xi32> into i32
  %t = arith.addi %r, %e : i32
  vector.store %ins, %m[%c8] : memref<16xi32>, vector<8xi32>
  func.return %t : i32
}

// vector.shuffle is llvm.shufflevector with the same mask (two sources, any result length).
// CHECK-LABEL: llvm.func @shuffle(
// CHECK-SAME:    %[[A:.*]]: vector<8xi16>, %[[B:.*]]: vector<8xi16>) -> vector<4xi16>
// CHECK-NEXT:    %[[LO:.*]] = llvm.shufflevector %[[A]], %[[B]] [0, 1, 8, 9] : vector<8xi16>
// CHECK-NEXT:    %[[HI:.*]] = llvm.shufflevector %[[A]], %[[B]] [2, 3, 10, 11] : vector<8xi16>
// CHECK-NEXT:    llvm.add %[[LO]], %[[HI]] : vector<4xi16>
func.func @shuffle(%a: vector<8xi16>, %b: vector<8xi16>) -> vector<4xi16> {
  %lo = vector.shuffle %a, %b [0, 1, 8, 9] : vector<8xi16>, vector<8xi16>
  %hi = vector.shuffle %a, %b [2, 3, 10, 11] : vector<8xi16>, vector<8xi16>
  %s = arith.addi %lo, %hi : vector<4xi16>
  func.return %s : vector<4xi16>
}

// scf.for becomes a loop of blocks with an i64 induction variable.
// CHECK-LABEL: llvm.func @loop(
// CHECK: llvm.br ^[[HEAD:.*]](%{{.*}} : i64)
// CHECK: ^[[HEAD]](%[[IV:.*]]: i64):
// CHECK: llvm.icmp "slt" %[[IV]], %{{.*}} : i64
// CHECK: llvm.cond_br
func.func @loop(%m: memref<8xi8>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %z = arith.constant 0 : i8
  scf.for %i = %c0 to %c8 step %c1 {
    memref.store %z, %m[%i] : memref<8xi8>
  }
  func.return
}

// 16 bytes into 8 x i16: neon is cnt + uaddlp (+ add = uadalp); on the host a lane is exactly
// two bytes, so the popcount is taken in 16-bit lanes (vpopcntw), with no widening.
// CHECK-LABEL: llvm.func @narrow_acc_16x8xi16(
// CHECK: %[[X:.*]] = llvm.xor %{{.*}}, %{{.*}} : vector<16xi8>
// NEON: %[[P:.*]] = llvm.call_intrinsic "llvm.ctpop.v16i8"(%[[X]]) : (vector<16xi8>) -> vector<16xi8>
// NEON: %[[W:.*]] = llvm.call_intrinsic "llvm.aarch64.neon.uaddlp.v8i16.v16i8"(%[[P]]) : (vector<16xi8>) -> vector<8xi16>
// NEON: llvm.add %{{.*}}, %[[W]] : vector<8xi16>
// HOST: %[[L:.*]] = llvm.bitcast %[[X]] : vector<16xi8> to vector<8xi16>
// HOST-NEXT: %[[P:.*]] = llvm.call_intrinsic "llvm.ctpop.v8i16"(%[[L]]) : (vector<8xi16>) -> vector<8xi16>
// HOST-NEXT: llvm.add %{{.*}}, %[[P]] : vector<8xi16>
// HOST-NOT: llvm.shufflevector
// CHECK: llvm.return
func.func @narrow_acc_16x8xi16(%acc: vector<8xi16>, %a: vector<16xi8>, %b: vector<16xi8>) -> vector<8xi16> {
  %r = bnn.narrow_acc %acc, %a, %b max_steps = 2047 : vector<16xi8> into vector<8xi16>
  func.return %r : vector<8xi16>
}

// One byte per lane: a plain add of the byte counts.
// CHECK-LABEL: llvm.func @narrow_acc_bytes(
// CHECK: %[[P:.*]] = llvm.call_intrinsic "llvm.ctpop.v16i8"
// CHECK-NEXT: llvm.add %{{.*}}, %[[P]] : vector<16xi8>
// CHECK-NEXT: llvm.return
func.func @narrow_acc_bytes(%acc: vector<16xi8>, %a: vector<16xi8>, %b: vector<16xi8>) -> vector<16xi8> {
  %r = bnn.narrow_acc %acc, %a, %b max_steps = 31 : vector<16xi8> into vector<16xi8>
  func.return %r : vector<16xi8>
}

// Four bytes per 32-bit lane: two widening pairwise steps (neon: two uaddlp); the host takes
// the popcount in 32-bit lanes (vpopcntd).
// CHECK-LABEL: llvm.func @narrow_acc_16x4xi32(
// NEON: "llvm.aarch64.neon.uaddlp.v8i16.v16i8"
// NEON: "llvm.aarch64.neon.uaddlp.v4i32.v8i16"
// HOST: llvm.bitcast %{{.*}} : vector<16xi8> to vector<4xi32>
// HOST-NEXT: llvm.call_intrinsic "llvm.ctpop.v4i32"
// CHECK: llvm.add %{{.*}}, %{{.*}} : vector<4xi32>
func.func @narrow_acc_16x4xi32(%acc: vector<4xi32>, %a: vector<16xi8>, %b: vector<16xi8>) -> vector<4xi32> {
  %r = bnn.narrow_acc %acc, %a, %b max_steps = 1000 : vector<16xi8> into vector<4xi32>
  func.return %r : vector<4xi32>
}

// Eight bytes per 32-bit lane: no lane type holds exactly 8 bytes here, so the host sums the
// byte popcounts by three pairwise steps (shuffles, zext to 16 then 32 bits, add).
// CHECK-LABEL: llvm.func @narrow_acc_16x2xi32(
// CHECK: %[[P:.*]] = llvm.call_intrinsic "llvm.ctpop.v16i8"
// HOST: llvm.shufflevector %[[P]], %[[P]] [0, 2, 4, 6, 8, 10, 12, 14] : vector<16xi8>
// HOST: llvm.shufflevector %[[P]], %[[P]] [1, 3, 5, 7, 9, 11, 13, 15] : vector<16xi8>
// HOST: llvm.zext %{{.*}} : vector<8xi8> to vector<8xi16>
// HOST: llvm.zext %{{.*}} : vector<4xi16> to vector<4xi32>
// CHECK: llvm.add %{{.*}}, %{{.*}} : vector<2xi32>
func.func @narrow_acc_16x2xi32(%acc: vector<2xi32>, %a: vector<16xi8>, %b: vector<16xi8>) -> vector<2xi32> {
  %r = bnn.narrow_acc %acc, %a, %b max_steps = 1000 : vector<16xi8> into vector<2xi32>
  func.return %r : vector<2xi32>
}

// 64 bytes on neon: uaddlp works on 128-bit halves, concatenated by shuffles.
// CHECK-LABEL: llvm.func @narrow_acc_64x32xi16(
// NEON: "llvm.ctpop.v64i8"
// HOST: "llvm.ctpop.v32i16"
// NEON-COUNT-4: "llvm.aarch64.neon.uaddlp.v8i16.v16i8"
// CHECK: llvm.add %{{.*}}, %{{.*}} : vector<32xi16>
func.func @narrow_acc_64x32xi16(%acc: vector<32xi16>, %a: vector<64xi8>, %b: vector<64xi8>) -> vector<32xi16> {
  %r = bnn.narrow_acc %acc, %a, %b max_steps = 100 : vector<64xi8> into vector<32xi16>
  func.return %r : vector<32xi16>
}

// A zero-masked load: llvm.masked.load with alignment 1, the mask and the pass-through value.
// CHECK-LABEL: llvm.func @masked_load(
// CHECK: %[[ADDR:.*]] = llvm.getelementptr inbounds %{{.*}}[%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: %[[ALIGN:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK: llvm.call_intrinsic "llvm.masked.load.v16i8.p0"(%[[ADDR]], %[[ALIGN]], %{{.*}}, %{{.*}}) : (!llvm.ptr, i32, vector<16xi1>, vector<16xi8>) -> vector<16xi8>
func.func @masked_load(%m: memref<4x8xi8>, %i: index) -> vector<16xi8> {
  %c0 = arith.constant 0 : index
  %mask = arith.constant dense<[true, true, true, true, true, true, true, true, true, true, true, true, false, false, false, false]> : vector<16xi1>
  %zero = arith.constant dense<0> : vector<16xi8>
  %v = vector.maskedload %m[%i, %c0], %mask, %zero : memref<4x8xi8>, vector<16xi1>, vector<16xi8> into vector<16xi8>
  func.return %v : vector<16xi8>
}

// scf.parallel is outlined into a task and run by the runtime.
// CHECK-LABEL: llvm.func @parallel_rows(
// CHECK: llvm.alloca
// CHECK: %[[TASK:.*]] = llvm.mlir.addressof @parallel_rows_task0 : !llvm.ptr
// CHECK: llvm.call @bnnmlir_parallel_for(%[[TASK]], %{{.*}}, %{{.*}}) : (!llvm.ptr, !llvm.ptr, i64) -> ()
// CHECK-LABEL: llvm.func internal @parallel_rows_task0(
// CHECK-SAME: %{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// CHECK: llvm.func @bnnmlir_parallel_for(!llvm.ptr, !llvm.ptr, i64)
func.func @parallel_rows(%m: memref<4x8xi8>, %v: i8) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  "scf.parallel"(%c0, %c4, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
  ^bb0(%r: index):
    memref.store %v, %m[%r, %c0] : memref<4x8xi8>
    "scf.reduce"() : () -> ()
  }) : (index, index, index) -> ()
  func.return
}

// The translated module: ctpop (cnt) and uaddlp for aarch64, with the target triple set.
// IR: target triple = "aarch64-unknown-linux-gnu"
// IR: load <8 x i32>, ptr %{{.*}}, align 1
// IR: call <16 x i8> @"llvm.ctpop.v16i8"
// IR: call <8 x i16> @"llvm.aarch64.neon.uaddlp.v8i16.v16i8"
// IR-O3: llvm.ctpop.v16i8
// IR-O3: llvm.aarch64.neon.uaddlp.v8i16.v16i8
// IR-HOST: llvm.ctpop.v16i8
