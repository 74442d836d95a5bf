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
    """Canonical name used in pass options and the API: ``host`` or ``aarch64``."""
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
"""The canonical target names; :func:`target_spellings` gives every accepted spelling."""


@cache
def _host_triple() -> str:
    import llvmlite.binding as llvm

    return llvm.get_process_triple()


def target_spellings() -> dict[str, tuple[str, ...]]:
    """Every accepted spelling of each target, by canonical name.

    ``aarch64``: also its GNU name ``aarch64-linux-gnu`` and its triple. ``host``: also the
    host's architecture (``x86_64``), its GNU name (``x86_64-linux-gnu``) and its triple, except
    where these would name the aarch64 target (an aarch64 host runs aarch64 code as ``host``
    only under that name).
    """
    aarch64 = ("aarch64", "aarch64-linux-gnu", AARCH64.triple)
    triple = _host_triple()
    arch = triple.split("-", 1)[0]
    host = tuple(dict.fromkeys(s for s in ("host", arch, f"{arch}-linux-gnu", triple)
                               if s not in aarch64))
    return {"host": host, "aarch64": aarch64}


def canonical_target_name(name: str) -> str:
    """``host`` or ``aarch64`` for any accepted spelling of a target (see
    :func:`target_spellings`); ``ValueError`` listing every accepted spelling otherwise."""
    for canonical, names in target_spellings().items():
        if name in names:
            return canonical
    raise ValueError(f"unknown target '{name}': expected one of {', '.join(TARGET_NAMES)} "
                     f"({describe_target_spellings()})")


def describe_target_spellings() -> str:
    """The other spellings of each target, for help texts and errors."""
    return "; ".join(f"{canonical} also as {', '.join(names[1:])}"
                     for canonical, names in target_spellings().items())


def get_target(name: str) -> TargetInfo:
    """Look a target up by any accepted spelling; raise ``ValueError`` naming them otherwise."""
    return host_target() if canonical_target_name(name) == "host" else AARCH64
