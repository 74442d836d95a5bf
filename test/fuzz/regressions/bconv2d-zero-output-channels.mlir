// FUZZ-ARGS: -p bnn-to-llvm-pipeline
func.func @f(%x: tensor<1x4x4x1xi8>, %w: tensor<0x3x3x1xi8>) -> tensor<1x2x2x0xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : tensor<1x4x4x1xi8>, tensor<0x3x3x1xi8> -> tensor<1x2x2x0xi32>
  func.return %0 : tensor<1x2x2x0xi32>
}
