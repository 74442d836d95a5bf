"""Times Larq Compute Engine on larq-zoo's networks: the peer of ``bnnmlir bench --peer lce``.

Run by the interpreter of the LCE environment (``scripts/setup-lce.sh`` makes ``.venv-lce``), in
a subprocess: TensorFlow and PyTorch do not share an environment. It imports nothing from
bnnmlir. For each network named on the command line (``bireal_net18``, ``quicknet``,
``binary_alexnet``): build larq-zoo's model with ``weights=None`` (random weights) for
224x224x3 images, convert it with ``larq_compute_engine.convert_keras_model``, and time LCE's
interpreter with each thread count of ``--threads`` on a random image: median of ``--repeats``
calls after warm-up. Prints one JSON object:
``{name: {"ms": {threads: ms}, "convert_s": ..., "model": ...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # larq needs Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ZOO_MODELS = {
    "bireal_net18": ("literature", "BiRealNet"),
    "quicknet": ("sota", "QuickNet"),
    "binary_alexnet": ("literature", "BinaryAlexNet"),
}


def time_model(name: str, threads: list[int], repeats: int, warmup: int) -> dict[str, object]:
    import larq_compute_engine as lce
    import larq_zoo
    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    family, cls = ZOO_MODELS[name]
    model = getattr(getattr(larq_zoo, family), cls)(weights=None, input_shape=(224, 224, 3))
    start = time.perf_counter()
    flatbuffer = lce.convert_keras_model(model)
    convert_s = time.perf_counter() - start
    image = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    ms = {}
    for count in threads:
        interpreter = Interpreter(flatbuffer, num_threads=count)
        for _ in range(warmup):
            interpreter.predict(image)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            interpreter.predict(image)
            times.append(time.perf_counter() - t0)
        ms[str(count)] = statistics.median(times) * 1e3
    return {"ms": ms, "convert_s": convert_s, "model": f"larq_zoo.{family}.{cls}",
            "repeats": repeats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", choices=sorted(ZOO_MODELS))
    parser.add_argument("--threads", default="1", help="comma-separated thread counts")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    results = {name: time_model(name, threads, args.repeats, args.warmup)
               for name in args.models}
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
