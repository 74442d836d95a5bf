// REQUIRES: mlir-opt
// The generic form of the lowered module is valid upstream MLIR (llvm dialect of LLVM 22).
// RUN: bnnmlir-opt %S/convert-bnn-to-llvm.mlir -p 'convert-bnn-to-llvm{target=aarch64}' --print-op-generic | %mlir-opt | filecheck %s
// RUN: bnnmlir-opt %S/convert-bnn-to-llvm.mlir -p 'convert-bnn-to-llvm{target=host}' --print-op-generic | %mlir-opt | filecheck %s

// CHECK: llvm.func @scalar_arith
// CHECK: llvm.func @narrow_acc_16x8xi16
// CHECK: llvm.call_intrinsic "llvm.ctpop.v16i8"
// CHECK: llvm.func internal @parallel_rows_task0
// CHECK: llvm.func @bnnmlir_parallel_for(!llvm.ptr, !llvm.ptr, i64)
