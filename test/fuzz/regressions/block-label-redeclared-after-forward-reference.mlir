// FUZZ-ARGS: 
// RUN: bnnmlir-opt %s -t aarch64-asm | filecheck %s
// RUN: bnnmlir-opt %s -t 'llvm{target=aarch64}' | filecheck %s --check-prefix=IR
// RUN: not bnnmlir-opt %s -t host-asm 2>&1 | filecheck %s --check-prefix=HOST

// acc[j] (8 x i16) = sum over 4 blocks of 16 bytes of popcount(a ^ b) of bytes 2j and 2j+1:
// the xor + cnt + uadalp inner loop of a binary dot product (test_backend.py runs it in qemu).

// CHECK-LABEL: popcount_accumulate:
// CHECK: eor v{{[0-9]+}}.16b
// CHECK: cnt v{{[0-9]+}}.16b
// CHECK: uadalp v{{[0-9]+}}.8h, v{{[0-9]+}}.16b
// CHECK: ret

// IR: target datalayout = "e-m:e
// IR: target triple = "aarch64-unknown-linux-gnu"
// IR: define void @p'opcount_accumulate(ptr {{.*}}, ptr {{.*}}, ptr {{.*}})
// IR: @llvm.ctpop.v56i8
// IR: @llvm.aarch64.neon.uaddlp.v8i16.v16i8

// An aarch64 intrinsic cannot be compiled for the host: a diagnostic, not an LLVM abort.
// HOST: error: intrinsic 'llvm.aarch64.neon.uaddlp.v8i16.v16i8' is specific to aarch64 and cannot be compiled for host
// HOST-NOT: LLVM ERROR

builtin.module {
  llvm.func @popcount_accumulate(%a: !llvm.ptr, %b: !llvm.ptr, %out: !llvm.ptr) {
    %zero = llvm.mlir.constant(0 : i64) : i64
    %acc0 = llvm.mlir.constant(dense<0> : vector<8xi16>) : vector<8xi16>
    llvm.br ^loop(%zero, %acc0 : i64, vector<8xi16>)
  ^loop(%i: i64, %acc: vector<8xi16>):
    %pa = llvm.getelementptr %a[%i] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %pb = llvm.getelementptr %b[%i] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %va = llvm.load %pa {alignment = 1 : i64} : !llvm.ptr -> vector<16xi8>
    %vb = llvm.load %pb {alignment = 1 : i64} : !llvm.ptr -> vector<16xi8>
    %x = llvm.xor %va, %vb : vector<16xi8>
    %c = llvm.call_intrinsic "llvm.ctpop.v16i8"(%x) : (vector<16xi8>) -> vector<16xi8>
    %w = llvm.call_intrinsic "llvm.aarch64.neon.uaddlp.v8i16.v16i8"(%c) : (vector<16xi8>) -> vector<8xi16>
    %sum = llvm.add %acc, %w : vector<8xi16>
    %step = llvm.mlir.constant(16 : i64) : i64
    %next = llvm.add %i, %step : i64
    %n = llvm.mlir.constant(64 : i64) : i64
    %more = llvm.icmp "ult" %next, %n : i64
    llvm.cond_br %more, ^loop(%next, %sum : i64, vector<8xi16>), ^done
  ^loop(%i: i64, %acc: vector<8xi16>):
  ^done:
    llvm.store %sum, %out {alignment = 1 : i64} : vector<8xi16>, !llvm.ptr
    llvm.return
  }
}
