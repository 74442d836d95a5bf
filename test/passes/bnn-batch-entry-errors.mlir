// RUN: not bnnmlir-opt %s -p 'bnn-batch-entry{entry=do_not_wrap_batch_of_two}' 2>&1 | filecheck %s
// RUN: not bnnmlir-opt %s -p 'bnn-batch-entry{entry=missing}' 2>&1 | filecheck %s --check-prefix=MISSING

// A buffer whose dimension 0 is not 1 is not one image.
// CHECK: bnn-batch-entry: argument 0 of @do_not_wrap_batch_of_two has type memref<2x8xi32>: every input and output must be a memref whose leading (batch) dimension is 1
func.func @do_not_wrap_batch_of_two(%x: memref<2x8xi32>, %out: memref<2x8xi8>, %arena: memref<0xi8>) attributes {bnn.num_inputs = 1 : i64, bnn.num_outputs = 1 : i64, bnn.arena_size = 0 : i64} {
  bnn.clip8 %x into %out : memref<2x8xi32>, memref<2x8xi8>
  func.return
}
// MISSING: bnn-batch-entry: no function @missing in the module
