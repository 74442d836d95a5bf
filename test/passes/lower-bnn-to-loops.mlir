// RUN: bnnmlir-opt %s -p 'lower-bnn-to-loops{target=aarch64 min_unchecked_rows_macs=0}' | filecheck %s --check-prefixes=CHECK,A64
// RUN: %if host-avx512 %{ bnnmlir-opt %s -p 'lower-bnn-to-loops{target=host min_unchecked_rows_macs=0}' | filecheck %s --check-prefixes=CHECK,HOST %}
// RUN: bnnmlir-opt %s -p 'lower-bnn-to-loops{target=aarch64}' | filecheck %s --check-prefix=SMALL
// RUN: bnnmlir-opt %s -p 'lower-bnn-to-loops{target=aarch64 parallel=true}' | filecheck %s --check-prefix=PAR
// RUN: bnnmlir-opt %s -p 'lower-bnn-to-loops{target=aarch64}' | filecheck %s --check-prefix=GONE
//
// The host of the test machines has AVX-512 (64-byte vectors); the HOST lines assume it.
// With the CHECK prefixes, interior rows get their own copy of a binary convolution's kernel,
// without row checks, whatever their size (min_unchecked_rows_macs=0); with SMALL, the default,
// the small layers of this file run every row through the checked code.
// GONE-NOT: bnn.bconv2d
// GONE-NOT: bnn.binarize
// GONE-NOT: bnn.threshold
// GONE-NOT: bnn.clip8

// 256 channels = 32 bytes per tap, 3x3 taps, no padding: every position is interior, and each
// kernel row is one contiguous run of 3*32 = 96 bytes, read without compares or selects.
// aarch64: M = 16, 6 vectors per row, S = 18; 4 output channels per pass share each activation
// vector, in 16-bit lanes (fan-in 2304 > 255) summed by one vector.reduction.
// host (masked loads): the 288-byte window of a position is read once, before the channel loop,
// as 5 vectors of 64 bytes (M = 64, S = 5): row 0 fills vector 0 and lanes 0..31 of vector 1
// (a zero-masked load), row 1 lanes 32..63 of vector 1 (a masked load merging into it, which
// starts 32 bytes before the run, at column ow - 1) and vector 2; each channel's 288 weight
// bytes are 4 plain vectors and a last one masked to 32 bytes; 4 channels per block in 16-bit
// lanes, the 4 accumulators (each a whole vector) summed together: pairs of accumulators become
// one vector with 16 lanes of each (vector.shuffle of the low and high halves + addi), the two
// pairs one with 8 lanes of each of the 4, then the vector halves itself down to one lane per
// output: only lanes of the same output are added.
// CHECK-LABEL: func.func @small_fan_in
// CHECK-DAG:     %[[K:.*]] = arith.constant 2304 : i32
// CHECK-DAG:     %[[ONE:.*]] = arith.constant 1 : i32
// A64-DAG:       %[[ZERO:.*]] = arith.constant dense<0> : vector<8xi16>
// A64-DAG:       %[[SIXTEEN:.*]] = arith.constant 16 : index
// A64-DAG:       %[[FOUR:.*]] = arith.constant 4 : index
// HOST-DAG:      %[[ZERO:.*]] = arith.constant dense<0> : vector<32xi16>
// HOST-DAG:      %[[NOBYTES:.*]] = arith.constant dense<0> : vector<64xi8>
// HOST-DAG:      %[[MINUS1:.*]] = arith.constant -1 : index
// HOST-DAG:      %[[FOUR:.*]] = arith.constant 4 : index
// CHECK:         scf.for %[[OH:.*]] = {{.*}} {
// CHECK-NEXT:      scf.for %[[OW:.*]] = {{.*}} {
// CHECK-NOT:         arith.cmpi
// HOST:              %[[V0:.*]] = vector.load %{{.*}}[%{{.*}}, %[[OH]], %[[OW]], %{{.*}}] : memref<1x6x6x32xi8>, vector<64xi8>
// HOST:              %[[R0:.*]] = vector.maskedload %{{.*}}[%{{.*}}, %[[OH]], %{{.*}}, %{{.*}}], %{{.*}}, %[[NOBYTES]] : memref<1x6x6x32xi8>, vector<64xi1>, vector<64xi8> into vector<64xi8>
// HOST:              %[[BACK:.*]] = arith.addi %[[OW]], %[[MINUS1]] : index
// HOST:              %[[V1:.*]] = vector.maskedload %{{.*}}[%{{.*}}, %{{.*}}, %[[BACK]], %{{.*}}], %{{.*}}, %[[R0]] : memref<1x6x6x32xi8>, vector<64xi1>, vector<64xi8> into vector<64xi8>
// HOST:              scf.for %[[O:.*]] = %{{.*}} to %{{.*}} step %[[FOUR]] {
// HOST:                %[[B0:.*]] = vector.load %{{.*}}[%[[O]], %{{.*}}, %{{.*}}, %{{.*}}] : memref<8x3x3x32xi8>, vector<64xi8>
// HOST:                bnn.narrow_acc %[[ZERO]], %[[V0]], %[[B0]] max_steps = 5 : vector<64xi8> into vector<32xi16>
// HOST:                bnn.narrow_acc %{{.*}}, %[[V1]], %{{.*}} max_steps = 5 : vector<64xi8> into vector<32xi16>
// HOST:                vector.maskedload %{{.*}}[%[[O]], %{{.*}}, %{{.*}}, %{{.*}}], %{{.*}}, %[[NOBYTES]] : memref<8x3x3x32xi8>
// HOST:                bnn.narrow_acc {{.*}} max_steps = 5 : vector<64xi8> into vector<32xi16>
// HOST:                %[[LO01:.*]] = vector.shuffle %[[A0:.*]], %[[A1:.*]] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47] : vector<32xi16>, vector<32xi16>
// HOST-NEXT:           %[[HI01:.*]] = vector.shuffle %[[A0]], %[[A1]] [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63] : vector<32xi16>, vector<32xi16>
// HOST-NEXT:           %[[P01:.*]] = arith.addi %[[LO01]], %[[HI01]] : vector<32xi16>
// HOST-NEXT:           %[[LO23:.*]] = vector.shuffle %[[A2:.*]], %[[A3:.*]] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 32, {{.*}}] : vector<32xi16>, vector<32xi16>
// HOST-NEXT:           %[[HI23:.*]] = vector.shuffle %[[A2]], %[[A3]] [16, {{.*}}] : vector<32xi16>, vector<32xi16>
// HOST-NEXT:           %[[P23:.*]] = arith.addi %[[LO23]], %[[HI23]] : vector<32xi16>
// HOST-NEXT:           %[[LO:.*]] = vector.shuffle %[[P01]], %[[P23]] [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23, 32, 33, 34, 35, 36, 37, 38, 39, 48, 49, 50, 51, 52, 53, 54, 55] : vector<32xi16>, vector<32xi16>
// HOST-NEXT:           %[[HI:.*]] = vector.shuffle %[[P01]], %[[P23]] [8, {{.*}}] : vector<32xi16>, vector<32xi16>
// HOST-NEXT:           %[[P:.*]] = arith.addi %[[LO]], %[[HI]] : vector<32xi16>
// HOST-NEXT:           vector.shuffle %[[P]], %[[P]] [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27] : vector<32xi16>, vector<32xi16>
// HOST:                %[[Q:.*]] = arith.addi %{{.*}}, %{{.*}} : vector<4xi16>
// HOST-NEXT:           %[[S0:.*]] = vector.extract %[[Q]][0] : i16 from vector<4xi16>
// HOST-COUNT-3:        vector.extract %[[Q]][{{[1-3]}}] : i16 from vector<4xi16>
// HOST-NEXT:           arith.extui %[[S0]] : i16 to i32
// A64-NEXT:          scf.for %[[O:.*]] = %{{.*}} to %{{.*}} step %[[FOUR]] {
// A64-NOT:             arith.cmpi
// A64:                 %[[ACC:[0-9]+]]{{.*}} = scf.for %[[KH:.*]] = {{.*}} iter_args({{.*}} = %[[ZERO]]
// A64-NOT:             arith.cmpi
// A64-NOT:             arith.select
// A64:                 %[[A:.*]] = vector.load %{{.*}}[%{{.*}}, %{{.*}}, %[[OW]], %[[SIXTEEN]]] : memref<1x6x6x32xi8>, vector<16xi8>
// A64-NEXT:            %[[B:.*]] = vector.load %{{.*}}[%[[O]], %[[KH]], %{{.*}}, %[[SIXTEEN]]] : memref<8x3x3x32xi8>, vector<16xi8>
// A64-COUNT-3:         vector.load %{{.*}} : memref<8x3x3x32xi8>, vector<16xi8>
// A64-NEXT:            bnn.narrow_acc %{{.*}}, %[[A]], %[[B]] max_steps = 18 : vector<16xi8> into vector<8xi16>
// A64-COUNT-3:         bnn.narrow_acc %{{.*}}, %[[A]], %{{.*}} max_steps = 18 : vector<16xi8> into vector<8xi16>
// A64:                 vector.reduction <add>, %[[ACC]] : vector<8xi16> into i16
// CHECK:               %[[TWICE:.*]] = arith.shli %{{.*}}, %[[ONE]] : i32
// CHECK-NEXT:          %[[OUT:.*]] = arith.subi %[[K]], %[[TWICE]] : i32
// CHECK:               memref.store %[[OUT]], %{{.*}}[%{{.*}}, %[[OH]], %[[OW]], %[[O]]] : memref<1x4x4x8xi32>
func.func @small_fan_in(%x: memref<1x6x6x32xi8>, %w: memref<8x3x3x32xi8>, %o: memref<1x4x4x8xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 256 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : memref<1x6x6x32xi8>, memref<8x3x3x32xi8>, memref<1x4x4x8xi32>
  func.return
}

// 1024 channels = 128 bytes, 5x5 taps, pad -1 on every side. aarch64: M = 16, 8 chunks per tap,
// S = 200 > 31: 16-bit lanes (S*16 <= 65535); host: M = 64, S = 50: 16-bit lanes too. Fan-in
// 25600 fits 16 bits: the lanes are summed in i16. Out-of-range taps read all ones (0xFF).
// CHECK-LABEL: func.func @big_fan_in
// CHECK-DAG:     %[[FIVE:.*]] = arith.constant 5 : index
// A64-DAG:       %[[PAD:.*]] = arith.constant dense<-1> : vector<16xi8>
// HOST-DAG:      %[[PAD:.*]] = arith.constant dense<-1> : vector<64xi8>
// Only output row 2 is interior (scf.if); border rows check rows and columns per tap.
// CHECK:         scf.if %{{.*}} {
// CHECK:         } else {
// CHECK:         %[[OKH:.*]] = arith.cmpi ult, %[[IH:[0-9]+]], %[[FIVE]] : index
// CHECK-NEXT:    %[[IHS:.*]] = arith.select %[[OKH]], %[[IH]], %{{.*}} : index
// CHECK:         %[[OK:.*]] = arith.andi %[[OKH]], %{{.*}} : i1
// CHECK:         %[[X:.*]] = vector.load %{{.*}}[%{{.*}}, %[[IHS]], %{{.*}}, %{{.*}}] : memref<1x5x5x128xi8>
// CHECK:         %[[XP:.*]] = arith.select %[[OK]], %[[X]], %[[PAD]]
// A64-NEXT:      bnn.narrow_acc %{{.*}}, %[[XP]], %{{.*}} max_steps = 200 : vector<16xi8> into vector<8xi16>
// HOST-NEXT:     bnn.narrow_acc %{{.*}}, %[[XP]], %{{.*}} max_steps = 50 : vector<64xi8> into vector<32xi16>
// A64:           vector.reduction <add>, %{{.*}} : vector<8xi16> into i16
// A64-NEXT:      arith.extui %{{.*}} : i16 to i32
// The host's 4 accumulators are whole vectors: summed together (shuffles), one extract each.
// HOST:          vector.shuffle %{{.*}}, %{{.*}} [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 32, {{.*}}] : vector<32xi16>, vector<32xi16>
// HOST:          %[[SUMS:.*]] = arith.addi %{{.*}}, %{{.*}} : vector<4xi16>
// HOST-NEXT:     vector.extract %[[SUMS]][0] : i16 from vector<4xi16>
// HOST:          arith.extui %{{.*}} : i16 to i32
// SMALL-LABEL: func.func @big_fan_in
// 1.6 M MACs in its interior row: no scf.if between interior and border rows, one row code.
// SMALL-NOT:     scf.if
// SMALL:         arith.cmpi ult, %{{.*}}, %{{.*}} : index
// SMALL-NOT:     scf.if
// SMALL-LABEL: func.func @huge_fan_in
func.func @big_fan_in(%x: memref<1x5x5x128xi8>, %w: memref<4x5x5x128xi8>, %o: memref<1x5x5x4xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 1024 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 2, 2, 2, 2>, pad_value = -1 : i64} : memref<1x5x5x128xi8>, memref<4x5x5x128xi8>, memref<1x5x5x4xi32>
  func.return
}

// 240128 channels = 30016 bytes, 3x3 taps: the chain overflows 16-bit lanes and is split.
// aarch64: 1876 chunks per tap, a row of taps (5628) is too long: flushed after every tap.
// host: 469 chunks per tap, S = 4221 > 4095, a row (1407) fits: flushed after every row.
// CHECK-LABEL: func.func @huge_fan_in
// CHECK:         %[[TOTAL:.*]] = scf.for {{.*}} -> (i32) {
// A64:             scf.for {{.*}} -> (i32) {
// A64:               scf.for {{.*}} -> (vector<8xi16>) {
// A64:                 bnn.narrow_acc {{.*}} max_steps = 1876 : vector<16xi8> into vector<8xi16>
// A64:               vector.extract %{{.*}}[7] : i16 from vector<8xi16>
// HOST:            scf.for {{.*}} -> (vector<32xi16>) {
// HOST:              scf.for {{.*}} -> (vector<32xi16>) {
// HOST:                bnn.narrow_acc {{.*}} max_steps = 1407 : vector<64xi8> into vector<32xi16>
// HOST:            vector.extract %{{.*}}[31] : i16 from vector<32xi16>
// CHECK:         arith.shli %[[TOTAL]], %{{.*}} : i32
func.func @huge_fan_in(%x: memref<1x3x3x30016xi8>, %w: memref<1x3x3x30016xi8>, %o: memref<1x1x1x1xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 240128 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : memref<1x3x3x30016xi8>, memref<1x3x3x30016xi8>, memref<1x1x1x1xi32>
  func.return
}

// 65600 bytes in one 1x1 tap. aarch64: 4100 chunks > 4095 even for one tap: 32-bit lanes.
// host: 1025 chunks fit 16-bit lanes.
// CHECK-LABEL: func.func @enormous_tap
// A64:           bnn.narrow_acc {{.*}} max_steps = 4100 : vector<16xi8> into vector<4xi32>
// A64:           vector.reduction <add>, %{{.*}} : vector<4xi32> into i32
// HOST:          bnn.narrow_acc {{.*}} max_steps = 1025 : vector<64xi8> into vector<32xi16>
func.func @enormous_tap(%x: memref<1x1x1x65600xi8>, %w: memref<2x1x1x65600xi8>, %o: memref<1x1x1x2xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 524800 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : memref<1x1x1x65600xi8>, memref<2x1x1x65600xi8>, memref<1x1x1x2xi32>
  func.return
}

// 130 channels = 17 bytes, pad 0 on the left only, so output column 0 is a border column: one
// full chunk of 16 (the largest power of two <= 17) and a scalar tail of 1 byte per tap, both
// output channels in one pass, in 16-bit lanes as the fan-in 260 exceeds 8 bits (both targets).
// Out-of-range taps select the weight bytes (XOR = 0) and are not counted:
// K = 130 * (in-range taps). Only columns are checked.
// CHECK-LABEL: func.func @tail_and_zero_padding
// CHECK-DAG:     %[[C:.*]] = arith.constant 130 : i32
// CHECK:         %[[N:.*]] = arith.divui %{{.*}}, %{{.*}} : index
// CHECK-NEXT:    %[[OH:.*]] = arith.remui %{{.*}}, %{{.*}} : index
// CHECK:         %{{[0-9]+}}, %{{[0-9]+}}, %[[COUNT:[0-9]+]] = scf.for {{.*}} iter_args(%{{[0-9]+}} = %{{[0-9]+}}, %{{[0-9]+}} = %{{[0-9]+}}, %[[CNT:[0-9]+]] = %{{[0-9]+}})
// CHECK:           %[[OKW:.*]] = arith.cmpi ult
// CHECK:           %[[W:.*]] = vector.load %{{.*}} : memref<2x1x2x17xi8>, vector<16xi8>
// CHECK:           arith.select %[[OKW]], %{{.*}}, %[[W]] : vector<16xi8>
// CHECK:           bnn.narrow_acc {{.*}} max_steps = 4 : vector<16xi8> into vector<8xi16>
// CHECK:           %[[T:.*]] = memref.load %{{.*}}[%[[N]], %[[OH]], %{{.*}}, %{{.*}}] : memref<2x3x3x17xi8>
// CHECK-NEXT:      vector.insert %[[T]], %{{.*}} [0] : i8 into vector<16xi8>
// CHECK:           bnn.narrow_acc {{.*}} max_steps = 4 : vector<16xi8> into vector<8xi16>
// CHECK:           %[[ONE_TAP:.*]] = arith.extui %[[OKW]] : i1 to i32
// CHECK-NEXT:      arith.addi %[[CNT]], %[[ONE_TAP]] : i32
// CHECK:         %[[K:.*]] = arith.muli %[[COUNT]], %[[C]] : i32
// CHECK:         arith.subi %[[K]], %{{.*}} : i32
func.func @tail_and_zero_padding(%x: memref<2x3x3x17xi8>, %w: memref<2x1x2x17xi8>, %o: memref<2x3x2x2xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 130 : i64, strides = array<i64: 1, 2>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 1, 0>, pad_value = 0 : i64} : memref<2x3x3x17xi8>, memref<2x1x2x17xi8>, memref<2x3x2x2xi32>
  func.return
}

// pad -1 with 13 channels (2 bytes, M = 2 everywhere, no tail): the last byte of a padded tap is
// the mask 0x1F of the 5 valid channels, not 0xFF.
// CHECK-LABEL: func.func @minus_one_padding_mask
// CHECK:         %[[MASK:.*]] = arith.constant dense<[-1, 31]> : vector<2xi8>
// CHECK:         arith.select %{{.*}}, %{{.*}}, %[[MASK]] : vector<2xi8>
// CHECK-NEXT:    bnn.narrow_acc {{.*}} max_steps = 9 : vector<2xi8> into vector<2xi8>
func.func @minus_one_padding_mask(%x: memref<1x5x5x2xi8>, %w: memref<4x3x3x2xi8>, %o: memref<1x5x5x4xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 13 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = -1 : i64} : memref<1x5x5x2xi8>, memref<4x3x3x2xi8>, memref<1x5x5x4xi32>
  func.return
}

// The outer loop over the N*OH = 64 output rows is an scf.parallel with one induction variable
// and no reductions (aarch64, parallel=true; 75 M binary MACs); without the option it is an
// scf.for. A layer of fewer than 2**23 MACs stays one loop even with the option.
// PAR-LABEL: func.func @parallel_rows
// PAR-DAG:     %[[ZERO:.*]] = arith.constant 0 : index
// PAR-DAG:     %[[ONE:.*]] = arith.constant 1 : index
// PAR-DAG:     %[[ROWS:.*]] = arith.constant 64 : index
// PAR:         "scf.parallel"(%[[ZERO]], %[[ROWS]], %[[ONE]]) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
// PAR-NEXT:    ^{{.*}}(%[[ROW:.*]]: index):
// PAR-NEXT:      arith.divui %[[ROW]]
// PAR-NEXT:      arith.remui %[[ROW]]
// PAR:           bnn.narrow_acc
// PAR:           scf.reduce
// PAR-NEXT:    })
// PAR-LABEL: func.func @small_layer_not_split
// PAR-NOT:     scf.parallel
// PAR:         func.return
// CHECK-LABEL: func.func @parallel_rows
// CHECK-NOT:     scf.parallel
// CHECK:         scf.for
func.func @parallel_rows(%x: memref<2x34x34x8xi8>, %w: memref<64x3x3x8xi8>, %o: memref<2x32x32x64xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 64 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : memref<2x34x34x8xi8>, memref<64x3x3x8xi8>, memref<2x32x32x64xi32>
  func.return
}
func.func @small_layer_not_split(%x: memref<2x4x4x1xi8>, %w: memref<3x3x3x1xi8>, %o: memref<2x2x2x3xi32>) {
  bnn.bconv2d %x, %w into %o {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64} : memref<2x4x4x1xi8>, memref<3x3x3x1xi8>, memref<2x2x2x3xi32>
  func.return
}

// 37 f32 channels: vectors of L channels (NEON 8, AVX-512 16) decided on their bits (not x >= 0
// iff u > 0x7F800000 and u != 0x80000000) and stored as L/8 packed bytes; then a last word of 5
// channels, bit b = (x < 0 or NaN) shifted by b.
// CHECK-LABEL: func.func @binarize_f32
// CHECK-DAG:     %[[FZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG:     %[[INF:.*]] = arith.constant dense<2139095040> : vector<[[L:[0-9]+]]xi32>
// CHECK-DAG:     %[[MZERO:.*]] = arith.constant dense<-2147483648> : vector<[[L]]xi32>
// CHECK:         scf.for %[[R:.*]] = {{.*}} {
// CHECK:           scf.for %[[C:.*]] = {{.*}} {
// CHECK-NEXT:        %[[V:.*]] = vector.load %{{.*}}[%[[R]], %[[C]]] : memref<3x37xf32>, vector<[[L]]xf32>
// CHECK-NEXT:        %[[U:.*]] = llvm.bitcast %[[V]] : vector<[[L]]xf32> to vector<[[L]]xi32>
// CHECK-NEXT:        %[[A:.*]] = llvm.icmp "ugt" %[[U]], %[[INF]] : vector<[[L]]xi32>
// CHECK-NEXT:        %[[N:.*]] = llvm.icmp "ne" %[[U]], %[[MZERO]] : vector<[[L]]xi32>
// CHECK-NEXT:        %[[B:.*]] = arith.andi %[[A]], %[[N]] : vector<[[L]]xi1>
// CHECK-NEXT:        %[[P:.*]] = llvm.bitcast %[[B]] : vector<[[L]]xi1> to vector<{{[12]}}xi8>
// CHECK:             vector.store %[[P]], %{{.*}}[%[[R]], %{{.*}}] : memref<3x5xi8>, vector<{{[12]}}xi8>
// CHECK:           %[[X0:.*]] = memref.load %{{.*}}[%[[R]], %{{.*}}] : memref<3x37xf32>
// CHECK-NEXT:      %[[NEG0:.*]] = arith.cmpf ult, %[[X0]], %[[FZERO]] : f32
// CHECK-NEXT:      %[[BIT0:.*]] = arith.extui %[[NEG0]] : i1 to i8
// CHECK:           arith.shli %{{.*}}, %{{.*}} : i8
// CHECK-NEXT:      arith.ori %[[BIT0]], %{{.*}} : i8
// CHECK-COUNT-3:   arith.cmpf ult
// CHECK-NOT:       arith.cmpf
// CHECK:           memref.store %{{.*}}, %{{.*}}[%[[R]], %{{.*}}] : memref<3x5xi8>
func.func @binarize_f32(%x: memref<3x37xf32>, %o: memref<3x5xi8>) {
  bnn.binarize %x into %o : memref<3x37xf32>, memref<3x5xi8>
  func.return
}

// CHECK-LABEL: func.func @binarize_i16
// CHECK:         %[[X:.*]] = memref.load %{{.*}} : memref<4x16xi16>
// CHECK-NEXT:    arith.cmpi slt, %[[X]], %{{.*}} : i16
func.func @binarize_i16(%x: memref<4x16xi16>, %o: memref<4x2xi8>) {
  bnn.binarize %x into %o : memref<4x16xi16>, memref<4x2xi8>
  func.return
}

// Mixed directions: thresholds and directions become private constant globals; bit 1 (-1) iff
// x < t (d = +1) or x > t (d = -1), selected by d < 0.
// CHECK:       "memref.global"() <{sym_name = "[[T:__bnn_thresholds_[0-9]+]]", type = memref<3xi32>, initial_value = dense<[-3, 0, 5]> : tensor<3xi32>, sym_visibility = "private", constant}>
// CHECK:       "memref.global"() <{sym_name = "[[D:__bnn_directions_[0-9]+]]", type = memref<3xi8>, initial_value = dense<[1, -1, 1]> : tensor<3xi8>, sym_visibility = "private", constant}>
// CHECK-LABEL: func.func @threshold_mixed
// CHECK-DAG:     %[[DS:.*]] = memref.get_global @[[D]] : memref<3xi8>
// CHECK-DAG:     %[[TS:.*]] = memref.get_global @[[T]] : memref<3xi32>
// CHECK:         %[[X:.*]] = memref.load %{{.*}} : memref<2x3xi16>
// CHECK-NEXT:    %[[XW:.*]] = arith.extsi %[[X]] : i16 to i32
// CHECK-NEXT:    %[[TC:.*]] = memref.load %[[TS]][%{{.*}}] : memref<3xi32>
// CHECK-NEXT:    %[[DC:.*]] = memref.load %[[DS]][%{{.*}}] : memref<3xi8>
// CHECK-NEXT:    %[[DOWN:.*]] = arith.cmpi slt, %[[DC]], %{{.*}} : i8
// CHECK-NEXT:    %[[ABOVE:.*]] = arith.cmpi sgt, %[[XW]], %[[TC]] : i32
// CHECK-NEXT:    %[[BELOW:.*]] = arith.cmpi slt, %[[XW]], %[[TC]] : i32
// CHECK-NEXT:    arith.select %[[DOWN]], %[[ABOVE]], %[[BELOW]] : i1
func.func @threshold_mixed(%x: memref<2x3xi16>, %o: memref<2x1xi8>) {
  bnn.threshold %x into %o {thresholds = array<i32: -3, 0, 5>, directions = array<i8: 1, -1, 1>} : memref<2x3xi16>, memref<2x1xi8>
  func.return
}

// All directions +1: no directions global, bit 1 iff x < t.
// CHECK-NOT:   __bnn_directions
// CHECK-LABEL: func.func @threshold_upward
// CHECK:         %[[X:.*]] = memref.load %{{.*}} : memref<9xi32>
// CHECK-NEXT:    %[[T:.*]] = memref.load
// CHECK-NEXT:    arith.cmpi slt, %[[X]], %[[T]] : i32
func.func @threshold_upward(%x: memref<9xi32>, %o: memref<2xi8>) {
  bnn.threshold %x into %o {thresholds = array<i32: 1, 2, 3, 4, 5, 6, 7, 8, 9>, directions = array<i8: 1, 1, 1, 1, 1, 1, 1, 1, 1>} : memref<9xi32>, memref<2xi8>
  func.return
}

// CHECK-LABEL: func.func @clip8
// CHECK-DAG:     %[[LO:.*]] = arith.constant -127 : i32
// CHECK-DAG:     %[[HI:.*]] = arith.constant 127 : i32
// CHECK:         %[[X:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<7xi32>
// CHECK-NEXT:    %[[A:.*]] = arith.maxsi %[[X]], %[[LO]] : i32
// CHECK-NEXT:    %[[B:.*]] = arith.minsi %[[A]], %[[HI]] : i32
// CHECK-NEXT:    %[[C:.*]] = arith.trunci %[[B]] : i32 to i8
// CHECK-NEXT:    memref.store %[[C]], %{{.*}}[%{{.*}}] : memref<7xi8>
func.func @clip8(%x: memref<7xi32>, %o: memref<7xi8>) {
  bnn.clip8 %x into %o : memref<7xi32>, memref<7xi8>
  func.return
}

// Fused requant8, affine, vector epilogue: the i32 results of a block of output channels go into
// one vector; multipliers, offsets and shifts are [O] private constant globals (zero-padded to a multiple of
// 16 channels) read as vectors at
// the block's first channel; the code of bnn.requant8 (muli, addi, shrsi, clamp to [-127, 127])
// runs lane-wise, then one vector store of i8. Here |acc| <= 72 and 72*5 + 64 fits i32, so the
// arrays and the arithmetic are i32; a multiplier of 2**30 needs i64 (sext first, trunc after).
// CHECK:       "memref.global"() <{sym_name = "[[M:__bnn_requant_vm_[0-9]+]]", type = memref<16xi32>, initial_value = dense<[3, -5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]> : tensor<16xi32>, sym_visibility = "private", constant}>
// CHECK:       "memref.global"() <{sym_name = "[[B:__bnn_requant_vo_[0-9]+]]", type = memref<16xi32>, initial_value = dense<[64, -7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]> : tensor<16xi32>, sym_visibility = "private", constant}>
// CHECK:       "memref.global"() <{sym_name = "[[S:__bnn_requant_vs_[0-9]+]]", type = memref<16xi32>, initial_value = dense<[2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]> : tensor<16xi32>, sym_visibility = "private", constant}>
// CHECK-LABEL: func.func @fused_requant8_affine
// CHECK-DAG:     %[[MS:.*]] = memref.get_global @[[M]] : memref<16xi32>
// CHECK-DAG:     %[[BS:.*]] = memref.get_global @[[B]] : memref<16xi32>
// CHECK-DAG:     %[[SS:.*]] = memref.get_global @[[S]] : memref<16xi32>
// CHECK-DAG:     %[[LO:.*]] = arith.constant dense<-127> : vector<2xi32>
// CHECK-DAG:     %[[HI:.*]] = arith.constant dense<127> : vector<2xi32>
// CHECK:         %[[ACC0:.*]] = vector.insert %{{.*}}, %{{.*}} [0] : i32 into vector<2xi32>
// CHECK-NEXT:    %[[ACC:.*]] = vector.insert %{{.*}}, %[[ACC0]] [1] : i32 into vector<2xi32>
// CHECK-NEXT:    %[[MV:.*]] = vector.load %[[MS]][%[[O:.*]]] : memref<16xi32>, vector<2xi32>
// CHECK-NEXT:    %[[BV:.*]] = vector.load %[[BS]][%[[O]]] : memref<16xi32>, vector<2xi32>
// CHECK-NEXT:    %[[SV:.*]] = vector.load %[[SS]][%[[O]]] : memref<16xi32>, vector<2xi32>
// CHECK-NEXT:    %[[P:.*]] = arith.muli %[[ACC]], %[[MV]] : vector<2xi32>
// CHECK-NEXT:    %[[V:.*]] = arith.addi %[[P]], %[[BV]] : vector<2xi32>
// CHECK-NEXT:    %[[SH:.*]] = arith.shrsi %[[V]], %[[SV]] : vector<2xi32>
// CHECK-NEXT:    %[[C1:.*]] = arith.maxsi %[[SH]], %[[LO]] : vector<2xi32>
// CHECK-NEXT:    %[[C2:.*]] = arith.minsi %[[C1]], %[[HI]] : vector<2xi32>
// CHECK-NEXT:    %[[Q:.*]] = llvm.trunc %[[C2]] : vector<2xi32> to vector<2xi8>
// CHECK-NEXT:    vector.store %[[Q]], %o[%{{.*}}, %{{.*}}, %{{.*}}, %[[O]]] : memref<1x1x1x2xi8>, vector<2xi8>
// CHECK-NOT:     memref.store %{{.*}} : memref<1x1x1x2xi32>
func.func @fused_requant8_affine(%x: memref<1x3x3x1xi8>, %w: memref<2x3x3x1xi8>, %o: memref<1x1x1x2xi8>) {
  bnn.bconv2d %x, %w into %o {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "affine", multiplier = array<i64: 3, -5>, offset = array<i64: 64, -7>, shift = array<i64: 2, 2>}} : memref<1x3x3x1xi8>, memref<2x3x3x1xi8>, memref<1x1x1x2xi8>
  func.return
}
// CHECK-LABEL: func.func @fused_requant8_affine_i64
// CHECK:         %[[X:.*]] = llvm.sext %{{.*}} : vector<2xi32> to vector<2xi64>
// CHECK-NEXT:    arith.muli %[[X]], %{{.*}} : vector<2xi64>
// CHECK:         %[[T:.*]] = llvm.trunc %{{.*}} : vector<2xi64> to vector<2xi32>
// CHECK-NEXT:    llvm.trunc %[[T]] : vector<2xi32> to vector<2xi8>
func.func @fused_requant8_affine_i64(%x: memref<1x3x3x1xi8>, %w: memref<2x3x3x1xi8>, %o: memref<1x1x1x2xi8>) {
  bnn.bconv2d %x, %w into %o {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "affine", multiplier = array<i64: 1073741824, -5>, offset = array<i64: 64, -7>, shift = array<i64: 40, 2>}} : memref<1x3x3x1xi8>, memref<2x3x3x1xi8>, memref<1x1x1x2xi8>
  func.return
}

// Fused requant8, table: one [O, D] global, indexed by the channel and clamp(acc, lo, lo+D-1) - lo.
// CHECK:       "memref.global"() <{sym_name = "[[T:__bnn_requant_table_[0-9]+]]", type = memref<2x3xi8>, initial_value = dense<{{\[\[}}1, 2, 3], [-4, -5, -6]]> : tensor<2x3xi8>, sym_visibility = "private", constant}>
// CHECK-LABEL: func.func @fused_requant8_table
// CHECK-DAG:     %[[TS:.*]] = memref.get_global @[[T]] : memref<2x3xi8>
// CHECK-DAG:     %[[LO:.*]] = arith.constant -1 : i64
// CHECK-DAG:     %[[HI:.*]] = arith.constant 1 : i64
// CHECK:         %[[X:.*]] = arith.extsi %{{.*}} : i32 to i64
// CHECK-NEXT:    %[[A:.*]] = arith.maxsi %[[X]], %[[LO]] : i64
// CHECK-NEXT:    %[[B:.*]] = arith.minsi %[[A]], %[[HI]] : i64
// CHECK-NEXT:    %[[I:.*]] = arith.subi %[[B]], %[[LO]] : i64
// CHECK-NEXT:    %[[IDX:.*]] = arith.index_cast %[[I]] : i64 to index
// CHECK-NEXT:    %{{.*}} = memref.load %[[TS]][%{{.*}}, %[[IDX]]] : memref<2x3xi8>
// CHECK:         memref.store %{{.*}}, %o[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x1x1x2xi8>
func.func @fused_requant8_table(%x: memref<1x3x3x1xi8>, %w: memref<2x3x3x1xi8>, %o: memref<1x1x1x2xi8>) {
  bnn.bconv2d %x, %w into %o {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "requant8", requant = {kind = "table", lo = -1 : i64, table = array<i8: 1, 2, 3, -4, -5, -6>}} : memref<1x3x3x1xi8>, memref<2x3x3x1xi8>, memref<1x1x1x2xi8>
  func.return
}

// Fused residual: the block's i8 shortcut is read at the position written and added to the i8
// output with a saturating byte add, then max(., -127): clip8(t + r) lane-wise (vector epilogue);
// a single channel takes the scalar form (sign-extend, add in i32, clamp).
// CHECK-LABEL: func.func @fused_residual
// CHECK:         %[[T:.*]] = llvm.trunc %{{.*}} : vector<2xi32> to vector<2xi8>
// CHECK-NEXT:    %[[R:.*]] = vector.load %r[%{{.*}}, %{{.*}}, %{{.*}}, %[[O:.*]]] : memref<1x1x1x2xi8>, vector<2xi8>
// CHECK-NEXT:    %[[SUM:.*]] = llvm.call_intrinsic "llvm.sadd.sat.v2i8"(%[[T]], %[[R]]) : (vector<2xi8>, vector<2xi8>) -> vector<2xi8>
// CHECK-NEXT:    %[[Q:.*]] = arith.maxsi %[[SUM]], %{{.*}} : vector<2xi8>
// CHECK-NEXT:    vector.store %[[Q]], %o[%{{.*}}, %{{.*}}, %{{.*}}, %[[O]]] : memref<1x1x1x2xi8>, vector<2xi8>
// CHECK:         %[[R1:.*]] = memref.load %r1[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x1x1x1xi8>
// CHECK:         arith.extsi %[[R1]] : i8 to i32
// CHECK:         memref.store %{{.*}}, %o1[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x1x1x1xi8>
// CHECK-NOT:     memref.alloc
func.func @fused_residual(%x: memref<1x3x3x1xi8>, %w: memref<2x3x3x1xi8>, %r: memref<1x1x1x2xi8>, %o: memref<1x1x1x2xi8>, %w1: memref<1x3x3x1xi8>, %r1: memref<1x1x1x1xi8>, %o1: memref<1x1x1x1xi8>) {
  bnn.bconv2d %x, %w residual %r into %o {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8"} : memref<1x3x3x1xi8>, memref<2x3x3x1xi8> residual memref<1x1x1x2xi8>, memref<1x1x1x2xi8>
  bnn.bconv2d %x, %w1 residual %r1 into %o1 {in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64, output = "clip8"} : memref<1x3x3x1xi8>, memref<1x3x3x1xi8> residual memref<1x1x1x1xi8>, memref<1x1x1x1xi8>
  func.return
}
