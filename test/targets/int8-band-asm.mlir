// The integer convolution with few input channels takes the band layout on AVX-512
// (passes/loops/int8_band.py) when its cost model prefers it: each output row's windows built
// into a stack buffer with byte shuffles, each pixel's window one contiguous run of groups.
// RUN: %if host-vnni %{ bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=host}' -t host-asm | filecheck %s --check-prefix=VNNI %}
// RUN: %if host-avx512 %{ bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=host-novnni}' -t host-asm | filecheck %s --check-prefix=NOVNNI %}
// RUN: %if host-vnni %{ bnnmlir-opt %s -p 'bnn-lower-to-loops-pipeline{target=host}' | filecheck %s --check-prefix=LOOPS %}

// A stem with 64 output channels and 16 output columns: the 147-byte window is read as 37
// groups of 4 bytes (4 x 2368 bytes of re-laid weights) instead of 7 rows x 6 groups.
// VNNI-LABEL: stem_band_layer0_conv2d:
// VNNI:       vpermt2b
// VNNI:       vpdpbusd {{.*}}, %zmm{{[0-9]+}}, %zmm{{[0-9]+}}
// NOVNNI-LABEL: stem_band_layer0_conv2d:
// NOVNNI:     vpermt2b
// NOVNNI:     vpmaddwd {{.*}}%zmm
// LOOPS-LABEL: func.func private @stem_band_layer0_conv2d
// LOOPS:      memref.get_global @__bnn_int8_weights_{{[0-9]+}} : memref<4x2368xi8>
// LOOPS:      llvm.call_intrinsic "llvm.stacksave.p0"
// LOOPS:      llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// LOOPS:      llvm.call_intrinsic "llvm.stackrestore.p0"
func.func @stem_band(%x: tensor<1x16x32x3xi8>) -> tensor<1x8x16x64xi32> {
  %w = arith.constant dense<-3> : tensor<64x7x7x3xi8>
  %y = bnn.conv2d %x, %w {strides = array<i64: 2, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 3, 3, 3, 3>} : tensor<1x16x32x3xi8>, tensor<64x7x7x3xi8> -> tensor<1x8x16x64xi32>
  func.return %y : tensor<1x8x16x64xi32>
}
