// RUN: not bnnmlir-opt %s -p lower-bnn-to-loops 2>&1 | filecheck %s --check-prefix=ERR

// Memrefs must have the identity layout: a strided input is rejected, naming the op.
// ERR: error: pass failed: lower-bnn-to-loops: cannot lower 'bnn.binarize' in @strided: expected an identity-layout memref, got memref<4x9xi32, strided<[10, 1]>>
func.func @strided(%x: memref<4x9xi32, strided<[10, 1]>>, %o: memref<4x2xi8>) {
  bnn.binarize %x into %o : memref<4x9xi32, strided<[10, 1]>>, memref<4x2xi8>
  func.return
}
