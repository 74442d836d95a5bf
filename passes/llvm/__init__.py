"""Pieces of ``convert-bnn-to-llvm`` (:mod:`bnnmlir.passes.convert_to_llvm`)."""
