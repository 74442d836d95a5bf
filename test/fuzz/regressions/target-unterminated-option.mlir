// FUZZ-ARGS: -t 'llvm{target="a}'
builtin.module {}
