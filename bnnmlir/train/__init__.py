"""Training BNN-Clip networks on real data (``bnnmlir train``).

* :mod:`bnnmlir.train.datasets`: Fashion-MNIST idx files, CIFAR-10 python batches or image folders;
* :mod:`bnnmlir.train.config`, :mod:`bnnmlir.train.recipe`: the two-stage BNN-Clip recipe and
  its options;
* :mod:`bnnmlir.train.loop`: the deterministic, resumable, DDP-ready training loop;
* :mod:`bnnmlir.train.logs`: CSV/JSON logs and the PNG of the curves;
* :mod:`bnnmlir.train.compiled`: evaluation through the compiled model, the results table;
* :mod:`bnnmlir.train.cli`: the ``bnnmlir train`` command.

The submodules other than ``config`` and ``cli`` import ``torch``.
"""
