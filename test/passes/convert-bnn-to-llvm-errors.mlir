// RUN: bnnmlir-opt %s --split-input-file --verify-diagnostics -p 'convert-bnn-to-llvm{target=aarch64}' | filecheck %s
// RUN: not bnnmlir-opt %s -p 'convert-bnn-to-llvm{target=aarch64}' 2>&1 | filecheck %s --check-prefix=EXIT
// RUN: not bnnmlir-opt %s -p 'convert-bnn-to-llvm{target=riscv}' 2>&1 | filecheck %s --check-prefix=TARGET

// EXIT: error: pass failed: convert-bnn-to-llvm: 'memref.alloc' is not an op of the loop level
// TARGET: convert-bnn-to-llvm: unknown target 'riscv': expected one of host, host-novnni, aarch64, aarch64-dotprod

// CHECK: convert-bnn-to-llvm: 'memref.alloc' is not an op of the loop level (docs/lowering.md)
func.func @do_not_lower_allocations() {
  %m = memref.alloc() : memref<4xi8>
  func.return
}

// -----

// CHECK: convert-bnn-to-llvm: memref shapes must be static, got memref<?xi8>
func.func @do_not_lower_dynamic_shapes(%m: memref<?xi8>, %i: index) -> i8 {
  %v = memref.load %m[%i] : memref<?xi8>
  func.return %v : i8
}

// -----

// CHECK: convert-bnn-to-llvm: memrefs must have the identity layout, got memref<4x4xi8, strided<[8, 1]>>
func.func @do_not_lower_strided_layouts(%m: memref<4x4xi8, strided<[8, 1]>>, %i: index) -> i8 {
  %v = memref.load %m[%i, %i] : memref<4x4xi8, strided<[8, 1]>>
  func.return %v : i8
}

// -----

// CHECK: convert-bnn-to-llvm: 'vector.reduction' supports <add> on integers, got #vector.kind<mul>
func.func @do_not_lower_other_reductions(%v: vector<4xi32>) -> i32 {
  %r = vector.reduction <mul>, %v : vector<4xi32> into i32
  func.return %r : i32
}

// -----

// CHECK: outline-parallel-loops: 'scf.parallel' must run from the constant 0 with the constant step 1
func.func @do_not_outline_offset_loops(%m: memref<8xi8>, %v: i8) {
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  "scf.parallel"(%c1, %c8, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
  ^bb0(%i: index):
    memref.store %v, %m[%i] : memref<8xi8>
    "scf.reduce"() : () -> ()
  }) : (index, index, index) -> ()
  func.return
}

// -----

// The lowered module is complete even after rejected neighbours.
// CHECK: llvm.func @lowered_after_errors
func.func @lowered_after_errors() {
  func.return
}
