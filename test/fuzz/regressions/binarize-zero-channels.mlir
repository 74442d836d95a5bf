// FUZZ-ARGS: -p bnn-to-llvm-pipeline
func.func @f(%x: tensor<2x0xf32>) -> tensor<2x0xi8> {
  %0 = bnn.binarize %x : tensor<2x0xf32> -> tensor<2x0xi8>
  func.return %0 : tensor<2x0xi8>
}
