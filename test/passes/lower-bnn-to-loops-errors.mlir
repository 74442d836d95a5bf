// RUN: not bnnmlir-opt %s -p lower-bnn-to-loops 2>&1 | filecheck %s --check-prefix=ERR
// RUN: not bnnmlir-opt %s -p 'lower-bnn-to-loops{target=riscv}' 2>&1 | filecheck %s --check-prefix=TARGET
// RUN: not bnnmlir-opt %s -p 'lower-bnn-to-loops{min_unchecked_rows_macs=-2}' 2>&1 | filecheck %s --check-prefix=ROWS
// RUN: not bnnmlir-opt %s -p 'lower-bnn-to-loops{min_unchecked_rows_macs=lots}' 2>&1 | filecheck %s --check-prefix=ROWS-TYPE
// RUN: not bnnmlir-opt %s -p 'lower-bnn-to-loops{min_blocked_macs=-5}' 2>&1 | filecheck %s --check-prefix=BLOCKED

// A value-form (tensor) op has not been bufferized: the pass names it and stops.
// ERR: error: pass failed: lower-bnn-to-loops: cannot lower 'bnn.bconv2d' in @tensor_form: expected the buffer form (memref operands, 'into' buffer); run bnn-bufferize first
// ROWS: error: pass failed: lower-bnn-to-loops: min_unchecked_rows_macs must be a number of MACs >= 0, or -1 for the default, got -2
// BLOCKED: error: pass failed: lower-bnn-to-loops: min_blocked_macs must be a number of MACs >= 0, or -1 for the default, got -5
// ROWS-TYPE: bnnmlir-opt: error: -p/--passes 'lower-bnn-to-loops{min_unchecked_rows_macs=lots}': Incompatible types: given ('lots',), expected <class 'int'>
// TARGET: error: pass failed: lower-bnn-to-loops: unknown target 'riscv': expected one of host, host-novnni, aarch64, aarch64-dotprod
func.func @tensor_form(%x: tensor<1x3x3x1xi8>, %w: tensor<4x3x3x1xi8>) -> tensor<1x1x1x4xi32> {
  %0 = bnn.bconv2d %x, %w {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : tensor<1x3x3x1xi8>, tensor<4x3x3x1xi8> -> tensor<1x1x1x4xi32>
  func.return %0 : tensor<1x1x1x4xi32>
}
