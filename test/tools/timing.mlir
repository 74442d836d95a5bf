// RUN: bnnmlir-opt %s -p bnn-fold-to-integer,bnn-fuse-output,bnn-pack-weights --timing 2>&1 >/dev/null | filecheck %s
// RUN: bnnmlir-opt %s -p bnn-fold-to-integer --timing 2>/dev/null | filecheck %s --check-prefix=STDOUT
// RUN: bnnmlir-opt %s -p bnn-fold-to-integer 2>&1 >/dev/null | filecheck %s --check-prefix=NO-TIMING --allow-empty

// --timing prints one row per pass, in pipeline order, then the total, to stderr only.
// CHECK: Execution time report
// CHECK: Total Execution Time: {{[0-9]+\.[0-9]+}} seconds
// CHECK: ----Wall Time----  ----Name----
// CHECK-NEXT: {{[0-9]+\.[0-9]+}} ({{ *[0-9]+\.[0-9]}}%)  bnn-fold-to-integer
// CHECK-NEXT: {{[0-9]+\.[0-9]+}} ({{ *[0-9]+\.[0-9]}}%)  bnn-fuse-output
// CHECK-NEXT: {{[0-9]+\.[0-9]+}} ({{ *[0-9]+\.[0-9]}}%)  bnn-pack-weights
// CHECK-NEXT: {{[0-9]+\.[0-9]+}} (100.0%)  Total

// STDOUT-NOT: Execution time report
// STDOUT: func.func @identity
// STDOUT-NOT: Execution time report

// NO-TIMING-NOT: Execution time report

func.func @identity(%x: tensor<1x4x4x8xi8>) -> tensor<1x4x4x8xi8> {
  func.return %x : tensor<1x4x4x8xi8>
}
