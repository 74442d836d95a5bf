// RUN: bnnmlir-opt %s -p bnn-profile-layers | filecheck %s
// RUN: not bnnmlir-opt %s -p 'bnn-profile-layers{entry=tensor_level}' 2>&1 | filecheck %s --check-prefix=ERR
// RUN: not bnnmlir-opt %s -p 'bnn-profile-layers,bnn-profile-layers' 2>&1 | filecheck %s --check-prefix=TWICE

// Two layers, the first in two segments: slots 0 ("a") and 1 ("b"), slot 2 the whole call.
// The profile buffer is the last output (before the arena); the clock is the runtime's.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%{{.*}}: memref<1x8xi32>, %{{.*}}: memref<1x8xi8>, %profile: memref<1x3xi64>, %arena: memref<128xi8>)
// CHECK-SAME: bnn.num_outputs = 2 : i64
// CHECK-SAME: bnn.profile_layers = ["a", "b"]
// CHECK: memref.store %[[ZERO:.*]], %profile[%{{.*}}, %{{.*}}] : memref<1x3xi64>
// CHECK: %[[ENTRY:.*]] = func.call @bnnmlir_clock_ns() : () -> i64
// CHECK: %[[T0:.*]] = func.call @bnnmlir_clock_ns() : () -> i64
// CHECK-NEXT: bnn.clip8
// CHECK-NEXT: %[[T1:.*]] = func.call @bnnmlir_clock_ns() : () -> i64
// CHECK-NEXT: %[[D:.*]] = arith.subi %[[T1]], %[[T0]] : i64
// CHECK: %[[OLD:.*]] = memref.load %profile
// CHECK-NEXT: %[[NEW:.*]] = arith.addi %[[OLD]], %[[D]] : i64
// CHECK: memref.store %[[NEW]], %profile
// CHECK-NEXT: func.call @bnnmlir_clock_ns()
// CHECK-NEXT: bnn.clip8 %x into %out
// CHECK: memref.store
// CHECK-NEXT: func.call @bnnmlir_clock_ns()
// CHECK-NEXT: bnn.clip8 %x into %t
// CHECK: memref.store
// CHECK-NEXT: %[[END:.*]] = func.call @bnnmlir_clock_ns() : () -> i64
// CHECK-NEXT: %[[TOTAL:.*]] = arith.subi %[[END]], %[[ENTRY]] : i64
// CHECK: memref.store %[[TOTAL]], %profile
// CHECK-NEXT: func.return
// CHECK-LABEL: func.func private @bnnmlir_clock_ns() -> i64
func.func @forward(%x: memref<1x8xi32>, %out: memref<1x8xi8>, %arena: memref<128xi8>) attributes {bnn.num_inputs = 1 : i64, bnn.num_outputs = 1 : i64, bnn.arena_size = 128 : i64} {
  %c0 = arith.constant 0 : index
  %t = memref.view %arena[%c0][] : memref<128xi8> to memref<1x8xi8>
  bnn.clip8 %x into %t : memref<1x8xi32>, memref<1x8xi8> loc("a")
  bnn.clip8 %x into %out : memref<1x8xi32>, memref<1x8xi8> loc("b")
  bnn.clip8 %x into %t : memref<1x8xi32>, memref<1x8xi8> loc("a")
  func.return
}

// Not at the buffer level yet (no arena): refused; so is a second profile of one function.
// ERR: bnn-profile-layers: @tensor_level has no buffer signature: run bnn-bufferize and bnn-plan-arena first
// TWICE: bnn-profile-layers: @forward is profiled already
func.func @tensor_level(%x: tensor<1x8xi32>) -> tensor<1x8xi8> {
  %y = bnn.clip8 %x : tensor<1x8xi32> -> tensor<1x8xi8>
  func.return %y : tensor<1x8xi8>
}
