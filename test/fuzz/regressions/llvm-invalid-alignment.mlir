// FUZZ-ARGS: -t 'aarch64-obj{path="%t.aarch64.o"}'
builtin.module {
  llvm.func @load(%p: !llvm.ptr) -> vector<16xi8> {
    %v = llvm.load %p {alignment = 5 : i64} : !llvm.ptr -> vector<16xi8>
    llvm.return %v : vector<16xi8>
  }
}
