// RUN: bnnmlir-opt %s --split-input-file -p bnn-outline-layers | filecheck %s --check-prefix=OUT
// RUN: bnnmlir-opt %s --split-input-file -p 'bnn-outline-layers,lower-bnn-to-loops{min_blocked_macs=0},bnn-merge-layer-functions' | filecheck %s --check-prefix=MERGE
// RUN: bnnmlir-opt %s --split-input-file -p bnn-outline-layers | bnnmlir-opt --split-input-file | filecheck %s --check-prefix=OUT
// RUN: bnnmlir-opt %s --split-input-file -p 'bnn-outline-layers,lower-bnn-to-loops{min_blocked_macs=0},bnn-merge-layer-functions' | bnnmlir-opt --split-input-file | filecheck %s --check-prefix=MERGE
// RUN: bnnmlir-opt %s --split-input-file -p 'bnn-outline-layers,lower-bnn-to-loops{global_tag=_p1 min_blocked_macs=0},bnn-merge-layer-functions{wrappers=true}' | filecheck %s --check-prefix=WRAP

// Two binary convolutions of the same shape on disjoint arena ranges, with different constant
// weights: each becomes a layer function (the weights read inside, the buffers passed, noalias
// where the ranges are disjoint); after lowering (with the register-blocked kernel, which these
// small layers only get with min_blocked_macs=0), the two loop nests are equal up to their
// weight globals, so one function remains and each call passes its own globals.
// OUT-LABEL: func.func private @two_layers_layer0_bconv2d(
// OUT-SAME:    %{{.*}}: memref<1x6x6x8xi8> {llvm.noalias}, %{{.*}}: memref<1x4x4x16xi32> {llvm.noalias})
// OUT-SAME:    attributes {bnn.layer}
// OUT-NEXT:  %[[W:.*]] = memref.get_global @w0 : memref<16x3x3x8xi8>
// OUT-NEXT:  bnn.bconv2d %{{.*}}, %[[W]] into
// OUT-NEXT:  func.return
// OUT-LABEL: func.func private @two_layers_layer1_bconv2d(
// OUT-SAME:    {llvm.noalias}, %{{.*}}: memref<1x4x4x16xi32> {llvm.noalias})
// OUT:         memref.get_global @w1
// OUT-LABEL: func.func @two_layers(
// OUT-NOT:     bnn.bconv2d
// OUT:         func.call @two_layers_layer0_bconv2d(%{{.*}}, %{{.*}}) : (memref<1x6x6x8xi8>, memref<1x4x4x16xi32>) -> ()
// OUT:         func.call @two_layers_layer1_bconv2d(
// MERGE-LABEL: func.func private @two_layers_layer0_bconv2d(
// MERGE-SAME:    memref<1x6x6x8xi8> {llvm.noalias}, %{{.*}}: memref<1x4x4x16xi32> {llvm.noalias}, %{{.*}}: memref<1x18x64xi8> {llvm.noalias})
// MERGE-NOT:   memref.get_global
// MERGE-NOT:   func.func private @two_layers_layer1_bconv2d
// MERGE-LABEL: func.func @two_layers(
// MERGE:         %[[G0:.*]] = memref.get_global @__bnn_wvectors_0
// MERGE-NEXT:    func.call @two_layers_layer0_bconv2d(%x0, %y0, %[[G0]])
// MERGE:         %[[G1:.*]] = memref.get_global @__bnn_wvectors_1
// MERGE-NEXT:    func.call @two_layers_layer0_bconv2d(%x1, %y1, %[[G1]])
// With wrappers (a part of a module lowered in its own process: the callers may be elsewhere),
// the body moves to @..._shared and both layer functions call it with the globals they read;
// the lowering's globals carry the part's tag.
// WRAP:          sym_name = "__bnn_wvectors_p1_0"
// WRAP-LABEL:    func.func private @two_layers_layer0_bconv2d_shared(
// WRAP-SAME:     %{{.*}}: memref<1x18x64xi8> {llvm.noalias}) attributes {bnn.layer}
// WRAP-LABEL:    func.func private @two_layers_layer0_bconv2d(
// WRAP-NEXT:       %[[G0:.*]] = memref.get_global @__bnn_wvectors_p1_0
// WRAP-NEXT:       func.call @two_layers_layer0_bconv2d_shared(%0, %1, %[[G0]])
// WRAP-LABEL:    func.func private @two_layers_layer1_bconv2d(
// WRAP-NEXT:       %[[G1:.*]] = memref.get_global @__bnn_wvectors_p1_1
// WRAP-NEXT:       func.call @two_layers_layer0_bconv2d_shared(%0, %1, %[[G1]])
// WRAP-LABEL:    func.func @two_layers(
// WRAP:            func.call @two_layers_layer0_bconv2d(%x0, %y0)
// WRAP-NEXT:       func.call @two_layers_layer1_bconv2d(%x1, %y1)
"memref.global"() <{sym_name = "w0", type = memref<16x3x3x8xi8>, initial_value = dense<5> : tensor<16x3x3x8xi8>, sym_visibility = "private", constant}> : () -> ()
"memref.global"() <{sym_name = "w1", type = memref<16x3x3x8xi8>, initial_value = dense<-77> : tensor<16x3x3x8xi8>, sym_visibility = "private", constant}> : () -> ()
func.func @two_layers(%arena: memref<3072xi8>) {
  %c0 = arith.constant 0 : index
  %c288 = arith.constant 288 : index
  %c1536 = arith.constant 1536 : index
  %c2048 = arith.constant 2048 : index
  %x0 = memref.view %arena[%c0][] : memref<3072xi8> to memref<1x6x6x8xi8>
  %y0 = memref.view %arena[%c288][] : memref<3072xi8> to memref<1x4x4x16xi32>
  %x1 = memref.view %arena[%c1536][] : memref<3072xi8> to memref<1x6x6x8xi8>
  %y1 = memref.view %arena[%c2048][] : memref<3072xi8> to memref<1x4x4x16xi32>
  %w0 = memref.get_global @w0 : memref<16x3x3x8xi8>
  %w1 = memref.get_global @w1 : memref<16x3x3x8xi8>
  bnn.bconv2d %x0, %w0 into %y0 {in_channels = 64 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : memref<1x6x6x8xi8>, memref<16x3x3x8xi8>, memref<1x4x4x16xi32>
  bnn.bconv2d %x1, %w1 into %y1 {in_channels = 64 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64} : memref<1x6x6x8xi8>, memref<16x3x3x8xi8>, memref<1x4x4x16xi32>
  func.return
}

// -----

// Overlapping ranges (a clip8 whose output view covers the upper half of its input's bytes) and
// function arguments (which the caller may make overlap): no noalias.
// OUT-LABEL: func.func private @do_not_mark_overlapping_layer0_clip8(
// OUT-SAME:    %{{.*}}: memref<64xi16>, %{{.*}}: memref<64xi8>) attributes {bnn.layer}
// OUT-LABEL: func.func private @do_not_mark_overlapping_layer1_clip8(
// OUT-SAME:    %{{.*}}: memref<64xi16>, %{{.*}}: memref<64xi8>) attributes {bnn.layer}
// Both clip8 loops are equal (no globals): one function, called twice, still without noalias.
// MERGE-LABEL: func.func private @do_not_mark_overlapping_layer0_clip8(
// MERGE-SAME:    %{{.*}}: memref<64xi16>, %{{.*}}: memref<64xi8>) attributes {bnn.layer}
// MERGE-NOT:   @do_not_mark_overlapping_layer1_clip8
// MERGE:         func.call @do_not_mark_overlapping_layer0_clip8(%x, %y)
// MERGE-NEXT:    func.call @do_not_mark_overlapping_layer0_clip8(%a, %b)
func.func @do_not_mark_overlapping(%arena: memref<256xi8>, %a: memref<64xi16>, %b: memref<64xi8>) {
  %c0 = arith.constant 0 : index
  %c64 = arith.constant 64 : index
  %x = memref.view %arena[%c0][] : memref<256xi8> to memref<64xi16>
  %y = memref.view %arena[%c64][] : memref<256xi8> to memref<64xi8>
  bnn.clip8 %x into %y : memref<64xi16>, memref<64xi8>
  bnn.clip8 %a into %b : memref<64xi16>, memref<64xi8>
  func.return
}

// -----

// Layers whose loop nests differ (60 of the 64 channels of the second: another tail mask) stay
// two functions, each reading its globals itself (no argument to pass).
// WRAP-LABEL:   func.func private @do_not_merge_different_layer0_bconv2d(
// WRAP-NOT:     _shared
// WRAP-LABEL:   func.func @do_not_merge_different(
// MERGE-LABEL: func.func private @do_not_merge_different_layer0_bconv2d(
// MERGE-SAME:    %{{.*}}: memref<1x6x6x8xi8> {llvm.noalias}, %{{.*}}: memref<1x6x6x16xi32> {llvm.noalias}) attributes {bnn.layer}
// MERGE:         memref.get_global @__bnn_wvectors_0
// MERGE-LABEL: func.func private @do_not_merge_different_layer1_bconv2d(
// MERGE-SAME:    %{{.*}}: memref<1x6x6x8xi8> {llvm.noalias}, %{{.*}}: memref<1x6x6x16xi32> {llvm.noalias}) attributes {bnn.layer}
// MERGE:         memref.get_global @__bnn_wvectors_1
// MERGE-LABEL: func.func @do_not_merge_different(
// MERGE:         func.call @do_not_merge_different_layer0_bconv2d(%{{.*}}, %{{.*}}) :
// MERGE:         func.call @do_not_merge_different_layer1_bconv2d(%{{.*}}, %{{.*}}) :
"memref.global"() <{sym_name = "w", type = memref<16x3x3x8xi8>, initial_value = dense<5> : tensor<16x3x3x8xi8>, sym_visibility = "private", constant}> : () -> ()
func.func @do_not_merge_different(%arena: memref<8192xi8>) {
  %c0 = arith.constant 0 : index
  %c512 = arith.constant 512 : index
  %c4096 = arith.constant 4096 : index
  %x = memref.view %arena[%c0][] : memref<8192xi8> to memref<1x6x6x8xi8>
  %y0 = memref.view %arena[%c512][] : memref<8192xi8> to memref<1x6x6x16xi32>
  %y1 = memref.view %arena[%c4096][] : memref<8192xi8> to memref<1x6x6x16xi32>
  %w = memref.get_global @w : memref<16x3x3x8xi8>
  bnn.bconv2d %x, %w into %y0 {in_channels = 64 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 1 : i64} : memref<1x6x6x8xi8>, memref<16x3x3x8xi8>, memref<1x6x6x16xi32>
  bnn.bconv2d %x, %w into %y1 {in_channels = 60 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 1 : i64} : memref<1x6x6x8xi8>, memref<16x3x3x8xi8>, memref<1x6x6x16xi32>
  func.return
}
