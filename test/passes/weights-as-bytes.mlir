// Weights are dense constants stored as bytes: a constant of more than 100 elements prints as a
// hex string that parses back to the same bytes, and reaches LLVM as one byte-array initializer.
// RUN: bnnmlir-opt %s --split-input-file | bnnmlir-opt --split-input-file --print-op-generic > %t.roundtrip
// RUN: bnnmlir-opt %s --split-input-file --print-op-generic > %t.direct
// RUN: diff %t.roundtrip %t.direct
// RUN: bnnmlir-opt %s --split-input-file | filecheck %s
// RUN: bnnmlir-opt %s --split-input-file -p convert-bnn-to-llvm | filecheck %s --check-prefix=LLVM
// RUN: bnnmlir-opt %s --split-input-file -p convert-bnn-to-llvm -t 'llvm{optimize=false}' | filecheck %s --check-prefix=IR

// CHECK: initial_value = dense<"0x00020406{{[0-9A-F]*}}FAFCFE"> : tensor<2x64xi8>
// The global keeps the bytes of the memref global, in the same hex form; LLVM gets one
// [128 x i8] initializer holding them (0x00, 0x02, ..., 0xFE).
// LLVM: llvm.mlir.global internal constant @weights(dense<"0x00020406080A0C0E10121416181A1C1E20222426282A2C2E30323436383A3C3E40424446484A4C4E50525456585A5C5E60626466686A6C6E70727476787A7C7E80828486888A8C8E90929496989A9C9EA0A2A4A6A8AAACAEB0B2B4B6B8BABCBEC0C2C4C6C8CACCCED0D2D4D6D8DADCDEE0E2E4E6E8EAECEEF0F2F4F6F8FAFCFE"> : tensor<128xi8>) {{.*}} : !llvm.array<128 x i8>
// IR: @"weights" = internal constant [128 x i8] c"\00\02\04\06\08\0a\0c\0e
// IR-SAME: \f8\fa\fc\fe"
"memref.global"() <{sym_name = "weights", type = memref<2x64xi8>, sym_visibility = "private",
    initial_value = dense<"0x00020406080A0C0E10121416181A1C1E20222426282A2C2E30323436383A3C3E40424446484A4C4E50525456585A5C5E60626466686A6C6E70727476787A7C7E80828486888A8C8E90929496989A9C9EA0A2A4A6A8AAACAEB0B2B4B6B8BABCBEC0C2C4C6C8CACCCED0D2D4D6D8DADCDEE0E2E4E6E8EAECEEF0F2F4F6F8FAFCFE"> : tensor<2x64xi8>, constant}> : () -> ()

// -----

// CHECK: initial_value = dense<1> : tensor<200xi8>
// A splat stays one element up to LLVM, which repeats it.
// LLVM: llvm.mlir.global internal constant @ones(dense<1> : tensor<200xi8>) {{.*}} : !llvm.array<200 x i8>
// IR: @"ones" = internal constant [200 x i8] c"\01\01\01
"memref.global"() <{sym_name = "ones", type = memref<200xi8>, sym_visibility = "private",
    initial_value = dense<1> : tensor<200xi8>, constant}> : () -> ()

// -----

// Not a byte array (i32 per-channel parameters): an LLVM array of i32 values.
// CHECK: initial_value = dense<[3, -5, 7]> : tensor<3xi32>
// LLVM: llvm.mlir.global internal constant @do_not_use_bytes_for_i32(dense<[3, -5, 7]> : tensor<3xi32>) {{.*}} : !llvm.array<3 x i32>
// IR: @"do_not_use_bytes_for_i32" = internal constant [3 x i32] [i32 3, i32 -5, i32 7]
"memref.global"() <{sym_name = "do_not_use_bytes_for_i32", type = memref<3xi32>, sym_visibility = "private",
    initial_value = dense<[3, -5, 7]> : tensor<3xi32>, constant}> : () -> ()
