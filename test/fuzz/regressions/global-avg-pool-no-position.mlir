// FUZZ-ARGS: -p bnn-to-llvm-pipeline
func.func @f(%x: tensor<1x0x0x5xf32>) -> tensor<1x5xf32> {
  %1 = bnn.global_avg_pool %x : tensor<1x0x0x5xf32> -> tensor<1x5xf32>
  func.return %1 : tensor<1x5xf32>
}
