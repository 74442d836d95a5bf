// FUZZ-ARGS:
func.func @f() -> tensor<1000000x3x3x8xi8> {
  %w = arith.constant dense<1> : tensor<1000000x3x3x8xi8>
  func.return %w : tensor<1000000x3x3x8xi8>
}
