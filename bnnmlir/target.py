"""Target descriptions: the one place that says what a code-generation target is.

Every pass and backend step that depends on the target (vector width, popcount lowering, triple,
CPU and features) reads it from a :class:`TargetInfo` obtained with :func:`get_target`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class TargetInfo:
    name: str
    """Short name used in pass options and the API: ``host`` or ``aarch64``."""
    triple: str
    cpu: str
    features: str
    vector_bytes: int
    """Width of the vector registers the kernels are written for, in bytes."""
    popcount: str
    """How ``bnn.narrow_acc`` is lowered: ``neon`` (cnt + uadalp) or ``ctpop`` (vector ctpop)."""
    masked_loads: bool = False
    """Whether a zero-masked vector load (``vector.maskedload``) is one cheap instruction that
    does not read the masked-off bytes (AVX-512 ``vmovdqu8 {k}{z}``)."""

    @property
    def is_host(self) -> bool:
        return self.name == "host"


AARCH64 = TargetInfo(
    name="aarch64",
    triple="aarch64-unknown-linux-gnu",
    cpu="cortex-a72",
    features="+neon",
    vector_bytes=16,
    popcount="neon",
)


@cache
def host_target() -> TargetInfo:
    """The machine we run on, as llvmlite sees it (CPU name and features included)."""
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_asmparser()
    features = llvm.get_host_cpu_features().flatten()
    triple = llvm.get_process_triple()
    if triple.startswith(("aarch64", "arm64")):
        vector_bytes, popcount = 16, "neon"
    elif "+avx512bw" in features.split(","):
        vector_bytes, popcount = 64, "ctpop"
    elif "+avx2" in features.split(","):
        vector_bytes, popcount = 32, "ctpop"
    else:
        vector_bytes, popcount = 16, "ctpop"
    return TargetInfo(
        name="host",
        triple=triple,
        cpu=llvm.get_host_cpu_name(),
        features=features,
        vector_bytes=vector_bytes,
        popcount=popcount,
        masked_loads=popcount == "ctpop" and "+avx512bw" in features.split(","),
    )


TARGET_NAMES = ("host", "aarch64")


def get_target(name: str) -> TargetInfo:
    """Look a target up by name; raise ``ValueError`` naming the known ones otherwise."""
    if name == "host":
        return host_target()
    if name in ("aarch64", "aarch64-linux-gnu", AARCH64.triple):
        return AARCH64
    raise ValueError(f"unknown target '{name}': expected one of {', '.join(TARGET_NAMES)}")
