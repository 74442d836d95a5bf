// FUZZ-ARGS: -p ',,'
builtin.module {}
