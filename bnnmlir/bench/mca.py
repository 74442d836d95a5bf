"""ARM model: llvm-mca throughput of the generated aarch64 popcount loop against reference loops.

The layer is compiled for ``target="aarch64"`` (cortex-a72, NEON); :func:`innermost_popcount_loop`
finds, in its assembly, the innermost loop (a label and the backward branch to it) that contains
a ``cnt``; its instructions are fed to ``llvm-mca`` as a straight-line loop body. A loop made of
several basic blocks is linearized, so every block counts as executed (an upper bound; the table
says how many blocks the loop has).

Every peer loop is ``ldp`` x4, ``eor`` x4, ``cnt`` x4, then its accumulation, ``subs``, ``b.ne``.

Reported per loop iteration: cycles, packed bytes popcounted (16 per ``cnt vN.16b``, 8 per
``.8b``), cycles per 16 bytes and binary ops per cycle, where 16 packed bytes are 128 binary MACs =
256 binary ops (the ``2 * MACs`` of :mod:`bnnmlir.bench.layers`).

The peers are small NEON loops written here, each reading 64 bytes of activations and 64 bytes of
weights per iteration (post-incremented loads, a counted branch) and differing only in how the
byte popcounts are accumulated:

* ``uadalp``: ``eor; cnt; uadalp v.8h`` into two 16-bit accumulators (the usual BNN inner loop);
* ``add.16b``: ``eor; cnt; add v.16b`` into 8-bit lanes (exact for at most 31 steps);
* ``uaddw``: ``eor; cnt; uaddw`` + ``uaddw2`` widening both halves into 16-bit lanes;
* ``uaddlv``: ``eor; cnt; uaddlv h`` (a horizontal sum per vector) moved to a general register
  and added there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

LLVM_MCA = ("llvm-mca-19", "llvm-mca")
"""The ``llvm-mca`` used, first found: llvm-19's (Debian ``llvm-19``: real Cortex-A72 and
Neoverse N1 scheduling models), else the default ``llvm`` package's (14: it accepts
``-mcpu=neoverse-n1`` but schedules it with the Cortex-A57 model)."""
MCA_ARGS = ("-mtriple=aarch64-unknown-linux-gnu", "-mcpu=cortex-a72", "-iterations=1000")
OPS_PER_BYTE = 16  # 8 binary MACs per packed byte, 2 ops per MAC

_LABEL = re.compile(r"^([.\w$]+):")
_BRANCH = re.compile(r"^(b(\.\w+)?|cbn?z|tbn?z)\s+(.*)$")


def find_llvm_mca() -> str | None:
    return next((path for name in LLVM_MCA if (path := shutil.which(name))), None)


def llvm_mca_version(mca: str) -> int | None:
    """The major version of the ``llvm-mca`` at ``mca``."""
    proc = subprocess.run([mca, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"LLVM version (\d+)", proc.stdout)
    return int(match.group(1)) if match else None


def neoverse_n1_modeled(mca: str) -> bool:
    """Whether ``mca`` schedules ``-mcpu=neoverse-n1`` with a Neoverse N1 model (LLVM 15 and
    later; 14 uses the Cortex-A57 model)."""
    version = llvm_mca_version(mca)
    return version is not None and version >= 15


@dataclass(frozen=True)
class LoopBody:
    """A loop of the assembly: its instructions (labels and directives dropped)."""

    instructions: tuple[str, ...]
    blocks: int

    @property
    def cnt_bytes(self) -> int:
        """Packed bytes popcounted per iteration."""
        total = 0
        for ins in self.instructions:
            if ins.split()[0] == "cnt":
                total += 16 if ".16b" in ins else 8
        return total

    @property
    def accumulate(self) -> str:
        """How the byte counts are accumulated (the mnemonics seen)."""
        kinds = []
        for mnemonic in ("uadalp", "uaddw", "uaddlv", "addp"):
            if any(i.split()[0].startswith(mnemonic) for i in self.instructions):
                kinds.append(mnemonic)
        if any(re.match(r"add\s+v\d+\.(16|8)b", i) for i in self.instructions):
            kinds.append("add.b")
        return "+".join(kinds) or "-"

    def text(self) -> str:
        return "".join(f"\t{i}\n" for i in self.instructions)


def _instructions(asm: str) -> list[tuple[str, str]]:
    """``(kind, text)`` per meaningful line: kind is ``label`` or ``ins``."""
    lines = []
    for raw in asm.splitlines():
        line = raw.split("//")[0].strip()
        if not line:
            continue
        m = _LABEL.match(line)
        if m:
            lines.append(("label", m.group(1)))
        elif not line.startswith("."):
            lines.append(("ins", line))
    return lines


def innermost_popcount_loop(asm: str) -> LoopBody | None:
    """The smallest loop (label ... backward branch to it) that contains a ``cnt``."""
    lines = _instructions(asm)
    label_at = {text: i for i, (kind, text) in enumerate(lines) if kind == "label"}
    best: tuple[int, int] | None = None
    for i, (kind, text) in enumerate(lines):
        m = _BRANCH.match(text) if kind == "ins" else None
        if m is None:
            continue
        target = m.group(3).split(",")[-1].strip()
        start = label_at.get(target)
        if start is None or start >= i:
            continue
        body = lines[start : i + 1]
        if not any(k == "ins" and t.split()[0] == "cnt" for k, t in body):
            continue
        if best is None or i - start < best[1] - best[0]:
            best = (start, i)
    if best is None:
        return None
    body = lines[best[0] : best[1] + 1]
    blocks = sum(1 for k, _ in body if k == "label")
    return LoopBody(tuple(t for k, t in body if k == "ins"), blocks)


def mca_cycles_per_iteration(body: str, mca: str | None = None) -> float:
    """``llvm-mca`` total cycles / iterations of a straight-line loop body (cortex-a72)."""
    mca = mca or find_llvm_mca()
    if mca is None:
        raise RuntimeError("llvm-mca not found (Debian package 'llvm')")
    text = "# LLVM-MCA-BEGIN loop\n" + body + "# LLVM-MCA-END\n"
    proc = subprocess.run(
        [mca, *MCA_ARGS], input=text, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"llvm-mca failed: {proc.stderr.strip()}")
    iterations = int(re.search(r"^Iterations:\s+(\d+)", proc.stdout, re.MULTILINE).group(1))  # type: ignore[union-attr]
    cycles = int(re.search(r"^Total Cycles:\s+(\d+)", proc.stdout, re.MULTILINE).group(1))  # type: ignore[union-attr]
    return cycles / iterations


def _peer(accumulate: list[str]) -> str:
    """A loop over 64 + 64 bytes: x0 activations, x1 weights, x2 the trip count."""
    head = [
        "ldp q0, q1, [x0], #32",
        "ldp q2, q3, [x0], #32",
        "ldp q4, q5, [x1], #32",
        "ldp q6, q7, [x1], #32",
        "eor v0.16b, v0.16b, v4.16b",
        "eor v1.16b, v1.16b, v5.16b",
        "eor v2.16b, v2.16b, v6.16b",
        "eor v3.16b, v3.16b, v7.16b",
        "cnt v0.16b, v0.16b",
        "cnt v1.16b, v1.16b",
        "cnt v2.16b, v2.16b",
        "cnt v3.16b, v3.16b",
    ]
    tail = ["subs x2, x2, #1", "b.ne .Lpeer"]
    return "".join(f"\t{i}\n" for i in head + accumulate + tail)


PEERS: dict[str, str] = {
    "uadalp (16-bit lanes)": _peer(
        [f"uadalp v{16 + i % 2}.8h, v{i}.16b" for i in range(4)]
    ),
    "add.16b (8-bit lanes)": _peer([f"add v{16 + i % 2}.16b, v{16 + i % 2}.16b, v{i}.16b" for i in range(4)]),
    "uaddw + uaddw2": _peer(
        [f"uaddw v{16 + i % 2}.8h, v{16 + i % 2}.8h, v{i}.8b" for i in range(4)]
        + [f"uaddw2 v{18 + i % 2}.8h, v{18 + i % 2}.8h, v{i}.16b" for i in range(4)]
    ),
    "uaddlv (scalar sum)": _peer(
        [f"uaddlv h{i}, v{i}.16b" for i in range(4)]
        + [f"fmov w{9 + i}, s{i}" for i in range(4)]
        + ["add w9, w9, w10", "add w11, w11, w12", "add x3, x3, x9", "add x4, x4, x11"]
    ),
}
PEER_BYTES = 64


@dataclass
class McaResult:
    """One loop: generated (``source`` = a layer) or a peer (``source`` = ``peer``)."""

    name: str
    source: str
    accumulate: str
    blocks: int
    instructions: int
    bytes_per_iteration: int
    cycles_per_iteration: float

    @property
    def cycles_per_16_bytes(self) -> float:
        return self.cycles_per_iteration * 16 / self.bytes_per_iteration

    @property
    def ops_per_cycle(self) -> float:
        return self.bytes_per_iteration * OPS_PER_BYTE / self.cycles_per_iteration

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(cycles_per_16_bytes=self.cycles_per_16_bytes, ops_per_cycle=self.ops_per_cycle)
        return d


def peer_results(mca: str | None = None) -> list[McaResult]:
    results = []
    for name, body in PEERS.items():
        loop = LoopBody(tuple(line.strip() for line in body.splitlines()), 1)
        results.append(
            McaResult(name, "peer", loop.accumulate, 1, len(loop.instructions), PEER_BYTES,
                      mca_cycles_per_iteration(body, mca))
        )
    return results


def layer_result(layer, mca: str | None = None) -> McaResult | None:
    """Compile ``layer`` for aarch64 and model its innermost popcount loop (None: no loop)."""
    from bnnmlir.bench.layers import bconv_module, random_data
    from bnnmlir.compiler import compile_module

    data = random_data(layer)
    program = compile_module(bconv_module(layer, data.w_packed), target="aarch64", threads=1)
    loop = innermost_popcount_loop(program.assembly())
    if loop is None or loop.cnt_bytes == 0:
        return None
    return McaResult(
        layer.name, layer.describe(), loop.accumulate, loop.blocks, len(loop.instructions),
        loop.cnt_bytes, mca_cycles_per_iteration(loop.text(), mca),
    )


# Whole layer ----------------------------------------------------------------------------------

LAYER_CPUS = ("cortex-a72", "neoverse-n1")
"""CPUs of the whole-layer model (a real Neoverse N1 model with llvm-19's ``llvm-mca``, see
:data:`LLVM_MCA`)."""
BOUND_CYCLES_PER_16_BYTES = 1.5
"""The NEON bound: one ``eor`` + ``cnt`` + accumulate per 16 bytes and output channel, three
instructions on two SIMD pipes."""

_OBJDUMP = "aarch64-linux-gnu-objdump"
_TRACE = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
_DISASSEMBLY = re.compile(r"^\s*([0-9a-f]+):\s+(\S.*)$")
_REGION = re.compile(r"Code Region - (b\d+)\n.*?Total Cycles:\s+(\d+)", re.DOTALL)


@dataclass
class LayerModel:
    """The whole generated layer under ``llvm-mca``: every block the layer executes (counted
    under qemu) modelled as a steady-state loop, times its count."""

    name: str
    cpu: str
    cycles: float
    bound_cycles: float
    blocks: int

    @property
    def of_bound(self) -> float:
        return self.bound_cycles / self.cycles

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"of_bound": self.of_bound}


def _function_blocks(program: str, entry: str) -> dict[int, list[str]]:
    """Instructions of ``entry`` and of its layer functions (``{entry}_layer<k>_<op>``) by address
    (``objdump`` syntax, branches and address operands dropped: ``llvm-mca`` cannot resolve them,
    and they are not SIMD work)."""
    text = subprocess.run([_OBJDUMP, "-d", "--no-show-raw-insn", program], capture_output=True,
                          text=True, check=True).stdout
    symbol = re.compile(rf"^[0-9a-f]+ <({re.escape(entry)}(_layer\d+_\w+)?)>:$")
    inside, code = False, {}
    for line in text.splitlines():
        if line.strip().endswith(">:"):
            inside = bool(symbol.match(line))
        elif inside and (m := _DISASSEMBLY.match(line)):
            code[int(m.group(1), 16)] = m.group(2).split("//")[0].strip()
    return code


def _is_branch(instruction: str) -> bool:
    return bool(_BRANCH.match(instruction)) or instruction.split()[0] in ("ret", "br", "blr")


def layer_model(layer, cpus: tuple[str, ...] = LAYER_CPUS, mca: str | None = None
                ) -> list[LayerModel]:
    """Model the whole layer (``layer``: :class:`bnnmlir.bench.layers.ConvLayer`) on each CPU:
    run it once under ``qemu-aarch64 -d exec,nochain`` to count how often each translated block
    of the kernel runs, then ``llvm-mca`` every block (its instructions up to its branch) as a
    steady-state loop; cycles = sum of count x cycles per iteration. The bound is
    ``BOUND_CYCLES_PER_16_BYTES`` per 16 packed bytes of every output's receptive field."""
    import tempfile
    from collections import Counter
    from pathlib import Path

    from bnnmlir.backend import cross
    from bnnmlir.bench.layers import bconv_module, random_data
    from bnnmlir.bits import packed_words
    from bnnmlir.compiler import compile_module

    mca = mca or find_llvm_mca()
    if mca is None or not cross.available() or shutil.which(_OBJDUMP) is None:
        return []
    data = random_data(layer)
    program = compile_module(bconv_module(layer, data.w_packed), target="aarch64", threads=1)
    _, outputs, arena = program._call_arguments([data.x_packed])
    with tempfile.TemporaryDirectory(prefix="bnnmlir-mca-") as work:
        directory = Path(work)
        cross.run_aarch64(program.object_code(), program.signature.entry, [data.x_packed],
                          outputs, arena, workdir=directory)
        buffers = sorted(p.name for p in directory.glob("buffer*.bin"))
        subprocess.run([cross.QEMU, "-d", "exec,nochain", "-D", "trace.txt", "./prog", *buffers],
                       cwd=directory, check=True, capture_output=True)
        counts = Counter()
        with open(directory / "trace.txt", encoding="utf-8") as trace:
            for line in trace:
                if m := _TRACE.match(line):
                    counts[int(m.group(1), 16)] += 1
        code = _function_blocks(str(directory / "prog"), program.signature.entry)
    addresses = sorted(code)
    regions, executed = [], {}
    for start, count in counts.items():
        if start not in code:
            continue
        body = []
        for address in addresses[addresses.index(start):]:
            if _is_branch(code[address]):
                break
            if "<" not in code[address]:
                body.append(code[address])
        if body:
            name = f"b{len(regions)}"
            regions.append(f"# LLVM-MCA-BEGIN {name}\n" + "".join(f"\t{i}\n" for i in body)
                           + "# LLVM-MCA-END\n")
            executed[name] = count
    oh, ow = layer.out_hw
    field = layer.kernel * layer.kernel * packed_words(layer.in_channels)
    bound = layer.batch * oh * ow * layer.out_channels * field / 16 * BOUND_CYCLES_PER_16_BYTES
    results = []
    for cpu in cpus:
        proc = subprocess.run(
            [mca, "-mtriple=aarch64-unknown-linux-gnu", f"-mcpu={cpu}", "-iterations=100"],
            input="".join(regions), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"llvm-mca failed: {proc.stderr.strip()[:500]}")
        cycles = sum(executed[name] * int(total) / 100
                     for name, total in _REGION.findall(proc.stdout))
        results.append(LayerModel(layer.name, cpu, cycles, bound, len(regions)))
    return results
