// FUZZ-ARGS: -p 'bnn-to-llvm-pipeline{target=}'
builtin.module {}
