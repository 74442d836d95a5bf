// The binary convolution compiles to the popcount instructions of each target.
// RUN: bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=aarch64}' -t aarch64-asm | filecheck %s --check-prefix=A64
// RUN: bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=aarch64 parallel=true}' -t aarch64-asm | filecheck %s --check-prefix=A64PAR
// RUN: %if host-avx512 %{ bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=host}' -t host-asm | filecheck %s --check-prefix=HOST %}
// RUN: bnnmlir-opt %s -p 'bnn-to-llvm-pipeline{target=aarch64}' -t llvm | filecheck %s --check-prefix=IR

// 80 channels (10 bytes per tap), 1x3 kernel: a kernel row is a run of 30 bytes, 2 steps of 16
// bytes; the fan-in 240 fits 8 bits, so the popcounts accumulate in 8-bit lanes with plain byte
// adds and are summed in 8 bits.
// A64-LABEL: conv_80_1x3_layer2_bconv2d:
// A64:       eor v{{[0-9]+}}.16b
// A64:       cnt v{{[0-9]+}}.16b
// A64:       add v{{[0-9]+}}.16b
// A64:       addv b{{[0-9]+}}, v{{[0-9]+}}.16b
func.func @conv_80_1x3(%x: tensor<1x4x6x80xf32>, %w: tensor<8x1x3x80xf32>) -> tensor<1x4x4x8xi32> {
  %b = bnn.binarize %x : tensor<1x4x6x80xf32> -> tensor<1x4x6x10xi8>
  %p = bnn.binarize %w : tensor<8x1x3x80xf32> -> tensor<8x1x3x10xi8>
  %c = bnn.bconv2d %b, %p {in_channels = 80 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x6x10xi8>, tensor<8x1x3x10xi8> -> tensor<1x4x4x8xi32>
  func.return %c : tensor<1x4x4x8xi32>
}

// 256 channels (32 bytes per tap), 3x3 kernel: a kernel row is a run of 96 bytes. aarch64: 18
// steps of 16 bytes for 4 output channels at a time, in 16-bit lanes (cnt + uadalp) so that each
// output's lanes are summed by one addv (fan-in 2304); host: the 288-byte window as 5 vectors of
// 64 bytes (rows joined by zero-masked loads), 4 output channels at a time in 16-bit lanes
// (vpopcntw on the XOR of whole 64-byte vectors, no widening).
// A64-LABEL: conv_256_layer2_bconv2d:
// A64:       eor v{{[0-9]+}}.16b
// A64:       cnt v{{[0-9]+}}.16b
// A64:       uadalp v{{[0-9]+}}.8h, v{{[0-9]+}}.16b
// A64:       addv h{{[0-9]+}}, v{{[0-9]+}}.8h
// HOST-LABEL: conv_256_layer2_bconv2d:
// HOST:      vmovdqu8 {{.*}}(%{{.*}}), %zmm{{[0-9]+}} {%k{{[0-9]}}}
// HOST:      vpxorq {{.*}}%zmm
// HOST:      vpopcntw %zmm{{[0-9]+}}, %zmm{{[0-9]+}}
// HOST:      vpaddw %zmm
func.func @conv_256(%x: tensor<1x6x6x256xf32>, %w: tensor<32x3x3x256xf32>) -> tensor<1x4x4x32xi32> {
  %b = bnn.binarize %x : tensor<1x6x6x256xf32> -> tensor<1x6x6x32xi8>
  %p = bnn.binarize %w : tensor<32x3x3x256xf32> -> tensor<32x3x3x32xi8>
  %c = bnn.bconv2d %b, %p {in_channels = 256 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x6x6x32xi8>, tensor<32x3x3x32xi8> -> tensor<1x4x4x32xi32>
  func.return %c : tensor<1x4x4x32xi32>
}

// 512 channels, 3x3: 36 steps of 16 bytes exceed 8-bit lanes; 16-bit lanes: cnt + uadalp.
// 10.6 M binary MACs: with parallel=true the rows are a task of the runtime's parallel-for (each
// layer is a function of its own, bnn-outline-layers: the convolution is the third).
// A64-LABEL: conv_512_layer2_bconv2d:
// A64:       eor v{{[0-9]+}}.16b
// A64:       cnt v{{[0-9]+}}.16b
// A64:       uadalp v{{[0-9]+}}.8h, v{{[0-9]+}}.16b
// A64PAR-LABEL: conv_512_layer2_bconv2d:
// A64PAR:    bl bnnmlir_parallel_for
// A64PAR-LABEL: conv_512_layer2_bconv2d_task0:
// A64PAR:    cnt v{{[0-9]+}}.16b
// A64PAR:    uadalp
// HOST-LABEL: conv_512_layer2_bconv2d:
// HOST:      vpopcnt
// IR: target triple = "aarch64-unknown-linux-gnu"
// IR: @llvm.ctpop.v16i8
// IR: @llvm.aarch64.neon.uaddlp.v8i16.v16i8
func.func @conv_512(%x: tensor<1x14x14x512xf32>, %w: tensor<16x3x3x512xf32>) -> tensor<1x12x12x16xi32> {
  %b = bnn.binarize %x : tensor<1x14x14x512xf32> -> tensor<1x14x14x64xi8>
  %p = bnn.binarize %w : tensor<16x3x3x512xf32> -> tensor<16x3x3x64xi8>
  %c = bnn.bconv2d %b, %p {in_channels = 512 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x14x14x64xi8>, tensor<16x3x3x64xi8> -> tensor<1x12x12x16xi32>
  func.return %c : tensor<1x12x12x16xi32>
}

// Constant weights, 256 channels, 3x3: the register-blocked kernel (several pixels x several
// channel vectors). Host: 4-byte chunks of the window broadcast to all lanes (vpbroadcastd),
// one 32-bit lane per output channel (vpopcntd + vpaddd), no lane tree; aarch64: 16-byte chunks,
// 8-bit lanes (cnt + add.16b: 18 steps of at most 8), the lanes of a block widened (uaddlp) and
// summed together by an addp tree.
// A64-LABEL: conv_256_blocked_layer1_bconv2d:
// A64:       eor v{{[0-9]+}}.16b
// A64:       cnt v{{[0-9]+}}.16b
// A64:       add v{{[0-9]+}}.16b
// A64:       uaddlp v{{[0-9]+}}.8h, v{{[0-9]+}}.16b
// A64:       addp v{{[0-9]+}}.8h
// HOST-LABEL: conv_256_blocked_layer1_bconv2d:
// HOST:      vpbroadcastd
// HOST:      vpxorq {{.*}}%zmm
// HOST:      vpopcntd %zmm{{[0-9]+}}, %zmm{{[0-9]+}}
// HOST:      vpaddd %zmm
func.func @conv_256_blocked(%x: tensor<1x8x10x256xf32>) -> tensor<1x8x10x32xi32> {
  %w = arith.constant dense<-1.0> : tensor<32x3x3x256xf32>
  %b = bnn.binarize %x : tensor<1x8x10x256xf32> -> tensor<1x8x10x32xi8>
  %p = bnn.binarize %w : tensor<32x3x3x256xf32> -> tensor<32x3x3x32xi8>
  %c = bnn.bconv2d %b, %p {in_channels = 256 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64} : tensor<1x8x10x32xi8>, tensor<32x3x3x32xi8> -> tensor<1x8x10x32xi32>
  func.return %c : tensor<1x8x10x32xi32>
}
