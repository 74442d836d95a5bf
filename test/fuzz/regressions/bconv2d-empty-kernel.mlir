// FUZZ-ARGS: -p bnn-to-llvm-pipeline
func.func @f(%x: tensor<1x4x4x1xi8>, %w: tensor<2x0x0x1xi8>) -> tensor<1x5x5x2xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<2x0x0x1xi8> -> tensor<1x5x5x2xi32>
  func.return %0 : tensor<1x5x5x2xi32>
}
