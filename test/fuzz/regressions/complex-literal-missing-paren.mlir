// FUZZ-ARGS:
"test.op"() {a = dense<[(1, 2, 3)]> : tensor<1xcomplex<i32>>} : () -> ()
