// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p outline-parallel-loops | filecheck %s
// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p outline-parallel-loops | filecheck %s --check-prefix=ERR

// The body moves into a task over [begin, end); captured values travel in a stack struct
// (index as i64, memrefs as pointers), constants are re-created inside the task.
// CHECK-LABEL: func.func @rows(
// CHECK-SAME: %[[M:.*]]: memref<4x8xi8>, %[[V:.*]]: i8, %[[J:.*]]: index)
// CHECK-NEXT: %[[ONE:.*]] = llvm.mlir.constant(1) : i64
// CHECK-NEXT: %[[CTX:.*]] = llvm.alloca %[[ONE]] x !llvm.struct<(i8, !llvm.ptr, i64)> {alignment = 64 : i64} : (i64) -> !llvm.ptr
// CHECK-NEXT: %[[PCTX:.*]] = llvm.bitcast %[[CTX]] : !llvm.ptr to !llvm.ptr
// CHECK: %[[F0:.*]] = llvm.getelementptr %[[PCTX]][0, 0]
// CHECK-NEXT: llvm.store %[[V]], %[[F0]] : i8, !llvm.ptr
// CHECK: %[[MP:.*]] = builtin.unrealized_conversion_cast %[[M]] : memref<4x8xi8> to !llvm.ptr
// CHECK-NEXT: %[[F1:.*]] = llvm.getelementptr %[[PCTX]][0, 1]
// CHECK-NEXT: llvm.store %[[MP]], %[[F1]] : !llvm.ptr, !llvm.ptr
// CHECK: %[[JI:.*]] = builtin.unrealized_conversion_cast %[[J]] : index to i64
// CHECK: llvm.store %[[JI]], %{{.*}} : i64, !llvm.ptr
// CHECK-NEXT: %[[TASK:.*]] = llvm.mlir.addressof @rows_task0 : !llvm.ptr
// CHECK-NEXT: %[[N:.*]] = arith.index_cast %{{.*}} : index to i64
// CHECK-NEXT: llvm.call @bnnmlir_parallel_for(%[[TASK]], %[[PCTX]], %[[N]]) : (!llvm.ptr, !llvm.ptr, i64) -> ()
// CHECK-NOT: scf.parallel
// CHECK: func.return

// CHECK: func.func private @rows_task0(%[[C:.*]]: !llvm.ptr, %[[B:.*]]: i64, %[[E:.*]]: i64)
// CHECK-NEXT: %[[C0:.*]] = arith.constant 0 : index
// CHECK: llvm.load %{{.*}} : !llvm.ptr -> i8
// CHECK: builtin.unrealized_conversion_cast %{{.*}} : !llvm.ptr to memref<4x8xi8>
// CHECK: builtin.unrealized_conversion_cast %{{.*}} : i64 to index
// CHECK: %[[LB:.*]] = arith.index_cast %[[B]] : i64 to index
// CHECK-NEXT: %[[UB:.*]] = arith.index_cast %[[E]] : i64 to index
// CHECK: scf.for %[[R:.*]] = %[[LB]] to %[[UB]] step %{{.*}} {
// CHECK-NEXT: memref.store %{{.*}}, %{{.*}}[%[[R]], %{{.*}}] : memref<4x8xi8>
// CHECK: llvm.func @bnnmlir_parallel_for(!llvm.ptr, !llvm.ptr, i64)
func.func @rows(%m: memref<4x8xi8>, %v: i8, %j: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  "scf.parallel"(%c0, %c4, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
  ^bb0(%r: index):
    memref.store %v, %m[%r, %c0] : memref<4x8xi8>
    memref.store %v, %m[%r, %j] : memref<4x8xi8>
    "scf.reduce"() : () -> ()
  }) : (index, index, index) -> ()
  func.return
}

// -----

// A parallel loop inside another one runs sequentially in the outer task.
// CHECK-LABEL: func.func @nested(
// CHECK: llvm.call @bnnmlir_parallel_for
// CHECK: func.func private @nested_task0(
// CHECK: scf.for
// CHECK: scf.for
// CHECK-NOT: scf.parallel
// A loop without captured values passes a null context.
// CHECK-LABEL: func.func @no_captures(
// CHECK: %[[NULL:.*]] = llvm.mlir.zero : !llvm.ptr
// CHECK: llvm.call @bnnmlir_parallel_for(%{{.*}}, %[[NULL]], %{{.*}})
func.func @nested(%m: memref<4x8xi8>, %v: i8) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  "scf.parallel"(%c0, %c4, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
  ^bb0(%r: index):
    "scf.parallel"(%c0, %c8, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
    ^bb1(%c: index):
      memref.store %v, %m[%r, %c] : memref<4x8xi8>
      "scf.reduce"() : () -> ()
    }) : (index, index, index) -> ()
    "scf.reduce"() : () -> ()
  }) : (index, index, index) -> ()
  func.return
}
func.func @no_captures() {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  "scf.parallel"(%c0, %c4, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
  ^bb0(%r: index):
    "scf.reduce"() : () -> ()
  }) : (index, index, index) -> ()
  func.return
}

// -----

// ERR: outline-parallel-loops: 'scf.parallel' must have one induction variable, got 2
func.func @do_not_outline_2d_loops(%m: memref<4x8xi8>, %v: i8) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  "scf.parallel"(%c0, %c0, %c4, %c4, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}> ({
  ^bb0(%r: index, %c: index):
    memref.store %v, %m[%r, %c] : memref<4x8xi8>
    "scf.reduce"() : () -> ()
  }) : (index, index, index, index, index, index) -> ()
  func.return
}
