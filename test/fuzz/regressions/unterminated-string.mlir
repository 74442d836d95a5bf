// FUZZ-ARGS:
func.func @f(%x: tensor<1x4x4x8xf32>) -> tensor<1x4x4x8xi8> {
  %0 = "bnn.clip8(%x) : (tensor<1x4x4x8xf32>) -> tensor<1x4x4x8xi8>
  func.return %0 : tensor<1x4x4x8xi8>
}
