// RUN: bnnmlir-opt %s -t 'aarch64-obj{path="%t.aarch64.o"}' | filecheck %s --check-prefix=EMPTY --allow-empty
// RUN: %python -c "import sys; d = open(sys.argv[1], 'rb').read(); sys.exit(not (d[:4] == b'\x7fELF' and d[18] == 183))" %t.aarch64.o
// RUN: bnnmlir-opt %s -t 'host-obj{path="%t.host.o"}'
// RUN: %python -c "import sys; d = open(sys.argv[1], 'rb').read(); sys.exit(d[:4] != b'\x7fELF')" %t.host.o
// RUN: bnnmlir-opt %s -t aarch64-obj -o %t.o.2
// RUN: %python -c "import sys; d = open(sys.argv[1], 'rb').read(); sys.exit(not (d[:4] == b'\x7fELF' and d[18] == 183))" %t.o.2
// RUN: bnnmlir-opt %s -t aarch64-obj | %python -c "import sys; sys.exit(sys.stdin.buffer.read(4) != b'\x7fELF')"

// Object targets write ELF bytes to the file named by `path` or `-o`, else to binary stdout.
// EMPTY-NOT: {{.}}

builtin.module {
  llvm.func @negate(%p: !llvm.ptr) {
    %v = llvm.load %p {alignment = 1 : i64} : !llvm.ptr -> vector<16xi8>
    %ones = llvm.mlir.constant(dense<-1> : vector<16xi8>) : vector<16xi8>
    %n = llvm.xor %v, %ones : vector<16xi8>
    llvm.store %n, %p {alignment = 1 : i64} : vector<16xi8>, !llvm.ptr
    llvm.return
  }
}
