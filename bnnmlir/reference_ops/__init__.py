"""Numpy references of the support ops, registered with :mod:`bnnmlir.reference_ir`."""
