#!/bin/bash
# Where the time of bireal_net18 (224x224, host) goes, by generated function (perf samples).
#
#   bash scripts/perf_layers.sh [DIR] [REPEATS]
#
# Compiles bnnmlir.examples.models.bireal_net18() with threads=2 (every split layer becomes a
# function forward_taskK, the rest stays in forward), saves the host object into DIR (default
# /tmp/bnnmlir-perf-layers), links a C loop that calls forward() REPEATS times (default 300) on
# one thread, and prints `perf report --sort symbol`: each task's share of the samples.
# Needs gcc and perf (Debian: linux-perf); works on a loaded machine (shares, not times).
set -euo pipefail
dir=${1:-/tmp/bnnmlir-perf-layers}
repeats=${2:-300}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${BNNMLIR_PYTHON:-$here/.venv/bin/python}
mkdir -p "$dir"
"$python" - "$dir" <<'EOF'
import sys, torch, bnnmlir
from bnnmlir.examples.models import bireal_net18
compiled = bnnmlir.compile(bireal_net18(), (torch.randn(1, 3, 224, 224),), threads=2)
compiled.save(sys.argv[1], target="host", threads=2)
EOF
cat > "$dir/main.c" <<'EOF'
#include "model.h"
#include <stdlib.h>
int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 300;
    float *in = aligned_alloc(64, BNNMLIR_INPUT0_BYTES), *out = aligned_alloc(64, BNNMLIR_OUTPUT0_BYTES);
    void *arena = aligned_alloc(64, BNNMLIR_ARENA_BYTES);
    for (int i = 0; i < BNNMLIR_INPUT0_BYTES / 4; ++i) in[i] = (float)(i % 1000) / 300.0f - 1.5f;
    bnnmlir_set_num_threads(1);
    for (int i = 0; i < repeats; ++i) forward(in, out, arena);
    return 0;
}
EOF
gcc -O2 -o "$dir/prog" "$dir/main.c" "$dir/model.o" "$dir"/runtime/*.c -lpthread -lm
perf record -q -o "$dir/perf.data" "$dir/prog" "$repeats"
perf report -i "$dir/perf.data" --stdio --sort symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
