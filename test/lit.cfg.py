"""lit configuration of the bnnmlir test suite."""

import os
import shutil
import sys

import lit.formats

config.name = "bnnmlir"
config.test_format = lit.formats.ShTest()
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["lit.cfg.py", "python", "Inputs"]

config.environment["PYTHONDONTWRITEBYTECODE"] = "1"
for var in ("HOME", "XDG_CACHE_HOME", "PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    if var in os.environ:
        config.environment[var] = os.environ[var]

config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))

# Optional tools: each one found adds a feature that `// REQUIRES:` lines can gate on.
MLIR_BIN = "/usr/lib/llvm-22/bin"


def _find(tool, extra_dirs=()):
    for d in extra_dirs:
        path = os.path.join(d, tool)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(tool)


mlir_opt = _find("mlir-opt", [MLIR_BIN])
if mlir_opt:
    config.available_features.add("mlir-opt")
    config.substitutions.append(("%mlir-opt", mlir_opt))
if _find("qemu-aarch64") and _find("aarch64-linux-gnu-gcc"):
    config.available_features.add("qemu-aarch64")
if _find("llvm-mca"):
    config.available_features.add("llvm-mca")

# In CI (CI set) scripts/setup.sh installs every tool: a missing one is an error, not a test
# silently reported as UNSUPPORTED.
missing = sorted({"mlir-opt", "qemu-aarch64", "llvm-mca"} - config.available_features)
if os.environ.get("CI") and missing:
    lit_config.fatal(f"CI is set but these tools are missing: {', '.join(missing)}")


def _host_has(feature: str) -> bool:
    try:
        from bnnmlir.target import host_target

        return feature in host_target().features.split(",")
    except Exception:  # no llvmlite: the host tests cannot run anyway
        return False


if _host_has("+avx512bitalg"):
    config.available_features.add("host-avx512")
if _host_has("+avx512vnni"):
    config.available_features.add("host-vnni")
