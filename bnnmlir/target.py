"""Target descriptions: the one place that says what a code-generation target is.

Every pass and backend step that depends on the target (vector width, popcount lowering, triple,
CPU and features) reads it from a :class:`TargetInfo` obtained with :func:`get_target`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    int8_dot: str = "scalar"
    """The instruction path of the integer (i8 x i8 -> i32) convolution and dense kernels
    (:mod:`bnnmlir.passes.loops.int8_conv`): ``vnni`` (AVX-512 ``vpdpbusd``), ``pmaddwd``
    (AVX-512BW / AVX2 ``vpmaddwd`` on sign-extended i16), ``sdot`` (NEON dot product,
    ``+dotprod``), ``smull`` (NEON ``smull`` + ``sadalp``) or ``scalar`` (plain loops)."""

    @property
    def is_host(self) -> bool:
        return self.name in HOST_NAMES


AARCH64 = TargetInfo(
    name="aarch64",
    triple="aarch64-unknown-linux-gnu",
    cpu="cortex-a72",
    features="+neon",
    vector_bytes=16,
    popcount="neon",
    int8_dot="smull",
)

AARCH64_DOTPROD = replace(
    AARCH64, name="aarch64-dotprod", cpu="cortex-a76", features="+neon,+dotprod", int8_dot="sdot"
)
"""aarch64 with the dot-product extension (Armv8.2 ``sdot``, e.g. Cortex-A76, Neoverse N1)."""


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
    flags = features.split(",")
    if vector_bytes == 64 and "+avx512vnni" in flags:
        int8_dot = "vnni"
    elif vector_bytes >= 32 and popcount == "ctpop":
        int8_dot = "pmaddwd"
    else:
        int8_dot = "smull" if popcount == "neon" else "scalar"
    return TargetInfo(
        name="host",
        triple=triple,
        cpu=llvm.get_host_cpu_name(),
        features=features,
        vector_bytes=vector_bytes,
        popcount=popcount,
        masked_loads=popcount == "ctpop" and "+avx512bw" in features.split(","),
        int8_dot=int8_dot,
    )


@cache
def host_without_vnni() -> TargetInfo:
    """The host with AVX-512 VNNI switched off (``-avx512vnni``, ``-avxvnni``): the integer
    kernels take the ``pmaddwd`` path, and LLVM may not select VNNI instructions either. Lets
    a VNNI machine test and time the path of the hosts without it."""
    host = host_target()
    flags = [f for f in host.features.split(",") if f and "vnni" not in f]
    flags += ["-avx512vnni", "-avxvnni"]
    return replace(
        host, name="host-novnni", features=",".join(flags),
        int8_dot="pmaddwd" if host.int8_dot == "vnni" else host.int8_dot,
    )


TARGET_ATTR = "bnn.target"
"""Module attribute naming the target (:attr:`TargetInfo.name`) the module was lowered for."""

HOST_NAMES = ("host", "host-novnni")
TARGET_NAMES = (*HOST_NAMES, "aarch64", "aarch64-dotprod")
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
    only under that name). The feature variants (``host-novnni``, ``aarch64-dotprod``) have one
    spelling each.
    """
    aarch64 = ("aarch64", "aarch64-linux-gnu", AARCH64.triple)
    triple = _host_triple()
    arch = triple.split("-", 1)[0]
    host = tuple(dict.fromkeys(s for s in ("host", arch, f"{arch}-linux-gnu", triple)
                               if s not in aarch64))
    return {"host": host, "host-novnni": ("host-novnni",), "aarch64": aarch64,
            "aarch64-dotprod": (AARCH64_DOTPROD.name,)}


def canonical_target_name(name: str) -> str:
    """The canonical name (:data:`TARGET_NAMES`) for any accepted spelling of a target (see
    :func:`target_spellings`); ``ValueError`` listing every accepted spelling otherwise."""
    for canonical, names in target_spellings().items():
        if name in names:
            return canonical
    raise ValueError(f"unknown target '{name}': expected one of {', '.join(TARGET_NAMES)} "
                     f"({describe_target_spellings()})")


def describe_target_spellings() -> str:
    """The other spellings of each target, for help texts and errors."""
    return "; ".join(f"{canonical} also as {', '.join(names[1:])}"
                     for canonical, names in target_spellings().items() if len(names) > 1)


def get_target(name: str) -> TargetInfo:
    """Look a target up by any accepted spelling; raise ``ValueError`` naming them otherwise."""
    return {
        "host": host_target,
        "host-novnni": host_without_vnni,
        "aarch64": lambda: AARCH64,
        "aarch64-dotprod": lambda: AARCH64_DOTPROD,
    }[canonical_target_name(name)]()
