// RUN: bnnmlir-opt %s -p 'bnn-batch-entry{threads=2}' | filecheck %s
// RUN: bnnmlir-opt %s -p 'bnn-batch-entry{threads=1}' | filecheck %s --check-prefix=ONE

// The per-image function becomes private @forward_image; @forward takes the batch size and
// runs min(n, 2) slots, each with its own 128-byte arena slice, image i at i * bytes per image.
// CHECK-LABEL: func.func private @forward_image
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%n: index, %{{.*}}: memref<?xi8>, %{{.*}}: memref<?xi8>, %arena: memref<?xi8>)
// CHECK-SAME: bnn.arena_size = 128 : i64, bnn.parallel_images = 2 : i64
// CHECK: %[[SLOTS:.*]] = arith.minsi %n, %{{.*}} : index
// CHECK: "scf.parallel"(%{{.*}}, %[[SLOTS]], %{{.*}})
// CHECK-NEXT: ^{{.*}}(%[[S:.*]]: index):
// CHECK: arith.constant 128 : index
// CHECK: memref.view %arena[%{{.*}}][] : memref<?xi8> to memref<128xi8>
// CHECK: scf.for %[[I:.*]] = %[[S]] to %n step %[[SLOTS]]
// CHECK: arith.constant 32 : index
// CHECK: memref.view %{{.*}} : memref<?xi8> to memref<1x8xi32>
// CHECK: arith.constant 8 : index
// CHECK: memref.view %{{.*}} : memref<?xi8> to memref<1x8xi8>
// CHECK: func.call @forward_image
// ONE-LABEL: func.func @forward
// ONE-NOT: scf.parallel
// ONE: scf.for
func.func @forward(%x: memref<1x8xi32>, %out: memref<1x8xi8>, %arena: memref<128xi8>) attributes {bnn.num_inputs = 1 : i64, bnn.num_outputs = 1 : i64, bnn.arena_size = 128 : i64} {
  bnn.clip8 %x into %out : memref<1x8xi32>, memref<1x8xi8>
  func.return
}
