// RUN: bnnmlir-opt %s --split-input-file -p bnn-plan-arena | filecheck %s
// RUN: not bnnmlir-opt %s --split-input-file -p 'bnn-plan-arena{alignment=3}' 2>&1 | filecheck %s --check-prefix=ERR

// %a (1024 B) dies when %c is made, so %c (1024 B) reuses its bytes; %b (512 B) lives across both.
// CHECK-LABEL: func.func @reuse_dead_buffers
// CHECK-SAME: %arena: memref<1536xi8>) attributes {{{.*}}bnn.arena_size = 1536 : i64}
// CHECK: %[[OA:.*]] = arith.constant 0 : index
// CHECK-NEXT: memref.view %arena[%[[OA]]][] : memref<1536xi8> to memref<256xi32>
// CHECK: %[[OB:.*]] = arith.constant 1024 : index
// CHECK-NEXT: memref.view %arena[%[[OB]]][] : memref<1536xi8> to memref<512xi8>
// CHECK: %[[OC:.*]] = arith.constant 0 : index
// CHECK-NEXT: memref.view %arena[%[[OC]]][] : memref<1536xi8> to memref<256xi32>
// CHECK-NOT: memref.alloc
func.func @reuse_dead_buffers(%x: memref<256xi32>, %out: memref<256xi8>) {
  %a = memref.alloc() : memref<256xi32>
  bnn.clip8 %x into %out : memref<256xi32>, memref<256xi8>
  %b = memref.alloc() : memref<512xi8>
  "test.op"(%a, %b) : (memref<256xi32>, memref<512xi8>) -> ()
  %c = memref.alloc() : memref<256xi32>
  "test.op"(%b, %c) : (memref<512xi8>, memref<256xi32>) -> ()
  func.return
}

// -----

// Without intermediates the arena is empty.
// CHECK-LABEL: func.func @no_intermediates
// CHECK-SAME: %arena: memref<0xi8>) attributes {bnn.arena_size = 0 : i64}
// ERR: bnn-plan-arena: alignment must be a power of two
func.func @no_intermediates(%x: memref<8xi32>, %out: memref<8xi8>) {
  bnn.clip8 %x into %out : memref<8xi32>, memref<8xi8>
  func.return
}
