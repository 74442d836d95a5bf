// The integer convolution and dense compile to the dot-product instructions of each target
// (passes/loops/int8_conv.py): AVX-512 VNNI vpdpbusd, vpmaddwd without VNNI, NEON sdot with the
// dot-product extension, smull + sadalp without it.
// RUN: %if host-vnni %{ bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=host}' -t host-asm | filecheck %s --check-prefix=VNNI %}
// RUN: %if host-avx512 %{ bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=host-novnni}' -t host-asm | filecheck %s --check-prefix=NOVNNI %}
// RUN: bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=aarch64-dotprod}' -t aarch64-asm | filecheck %s --check-prefix=SDOT
// RUN: bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=aarch64}' -t aarch64-asm | filecheck %s --check-prefix=SMULL
// RUN: %if host-vnni %{ bnnmlir-opt %s -p 'bnn-lower-to-loops-pipeline{target=host}' | filecheck %s --check-prefix=LOOPS %}

// The stem shape in small: 3 channels, 7x7 stride 2: a kernel row is a run of 21 bytes, read as
// 5 groups of 4 bytes and one overlapping group at byte 17: 7 rows x 6 groups x 64 bytes of
// re-laid weights; the start value is -128 * (147 * -3) = 56448 per channel.
// VNNI-LABEL: stem_3x7x7_layer0_conv2d:
// VNNI:       vpxor{{[dq]?}} {{.*}}%{{[xyz]}}mm
// VNNI:       vpdpbusd {{.*}}, %zmm{{[0-9]+}}, %zmm{{[0-9]+}}
// VNNI-NOT:   vpmaddwd
// NOVNNI-LABEL: stem_3x7x7_layer0_conv2d:
// NOVNNI:     vpmovsxbw
// NOVNNI:     vpmaddwd {{.*}}%zmm
// NOVNNI-NOT: vpdpbusd
// SDOT-LABEL: stem_3x7x7_layer0_conv2d:
// SDOT:       sdot v{{[0-9]+}}.4s, v{{[0-9]+}}.16b, v{{[0-9]+}}.16b
// SMULL-LABEL: stem_3x7x7_layer0_conv2d:
// SMULL:      smull v{{[0-9]+}}.8h, v{{[0-9]+}}.8b, v{{[0-9]+}}.8b
// SMULL:      sadalp v{{[0-9]+}}.4s, v{{[0-9]+}}.8h
// SMULL-NOT:  smlal
// LOOPS:      "memref.global"() <{sym_name = "__bnn_int8_weights_0", type = memref<1x2688xi8>
// LOOPS:      "memref.global"() <{sym_name = "__bnn_int8_start_0", type = memref<16xi32>, initial_value = dense<56448>
// LOOPS:      func.func private @stem_3x7x7_layer0_conv2d
// LOOPS:      llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
func.func @stem_3x7x7(%x: tensor<1x16x16x3xi8>) -> tensor<1x8x8x16xi32> {
  %w = arith.constant dense<-3> : tensor<16x7x7x3xi8>
  %y = bnn.conv2d %x, %w {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 3, 3, 3, 3>} : tensor<1x16x16x3xi8>, tensor<16x7x7x3xi8> -> tensor<1x8x8x16xi32>
  func.return %y : tensor<1x8x8x16xi32>
}

// A dense head: 64 inputs, 10 classes (one partial block of channels).
// VNNI-LABEL: head_64x10_layer0_dense:
// VNNI:       vpdpbusd
// NOVNNI-LABEL: head_64x10_layer0_dense:
// NOVNNI:     vpmaddwd
// SDOT-LABEL: head_64x10_layer0_dense:
// SDOT:       sdot
// SMULL-LABEL: head_64x10_layer0_dense:
// SMULL:      sadalp
func.func @head_64x10(%x: tensor<1x64xi8>) -> tensor<1x10xi32> {
  %w = arith.constant dense<5> : tensor<10x64xi8>
  %y = bnn.dense %x, %w : tensor<1x64xi8>, tensor<10x64xi8> -> tensor<1x10xi32>
  func.return %y : tensor<1x10xi32>
}

// Weights that are not a constant keep the scalar loops.
// LOOPS-LABEL: func.func private @do_not_vectorize_argument_weights_layer0_dense
// LOOPS-NOT:  llvm.call_intrinsic
// LOOPS:      arith.muli
func.func @do_not_vectorize_argument_weights(%x: tensor<1x8xi8>, %w: tensor<4x8xi8>) -> tensor<1x4xi32> {
  %y = bnn.dense %x, %w : tensor<1x8xi8>, tensor<4x8xi8> -> tensor<1x4xi32>
  func.return %y : tensor<1x4xi32>
}
