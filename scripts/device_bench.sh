#!/usr/bin/env bash
# The GPU benchmark in one call of the workplace's device machine (issue 30, item 4):
# JAX training steps of every family at its paper preset's sizes, then ONNX Runtime with the
# CUDA provider against the CPU provider. That machine has JAX, onnxruntime and onnx but no
# TensorFlow, no Keras and no network (.library/device/KINDS.md), so Keras travels as wheels.
#
#   1. here, with PyPI reachable:   scripts/device_bench.sh prepare [EXPORT_DIR ...]
#   2. there, in one `run` call:    command "bash scripts/device_bench.sh run", carry [".devbench"],
#                                   timeout_s 600
#   3. here: copy backends_paper.json and BACKENDS_PAPER.md from the call's files into benchmarks/,
#      then `python -m benchmarks.report` (RESULTS.md's "Paper sizes on an accelerator").
#
# prepare: downloads the wheels of the Keras installed here and of the two packages Keras needs
# that the device image lacks (namex, optree), for CPython 3.12 on x86-64, into .devbench/wheels
# (about 2.9 MB for keras 3.15.1), and writes weight-less copies of the model.onnx files under
# each EXPORT_DIR into .devbench/onnx (`python -m benchmarks.providers --strip`: the weights are
# drawn again there; a paper-size export's weights are 50-220 MB, over the 64 MiB a call takes).
# Without a TensorFlow-free ONNX export there, the ONNX rows need these copies.
#
# run: where Keras is missing, installs the wheels into $SITE (/tmp/site; no index, no
# dependencies); logs nvidia-smi and the versions; runs `python -m benchmarks.backends --backends
# jax --preset paper` (each family in its own process, out of memory = that family's error row)
# with `--onnx .devbench/onnx`, writing
# backends_paper.json, BACKENDS_PAPER.md and log.txt into $OUT (the JSON after every row, so a
# run cut short keeps what it measured). Knobs (environment): STEPS (20), FAMILIES (all),
# BUDGET (330 s: no family starts later), FAMILY_TIMEOUT (120 s), ONNX_TIMEOUT (90 s),
# ONNX_REPEATS (10), PYTHON (python3), SITE, DEVBENCH (.devbench). The defaults end within
# the 600 s a call may take.
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=${DEVBENCH:-.devbench}
PY=${PYTHON:-python3}

prepare() {
    local keras namex optree
    keras=$($PY -c 'from importlib.metadata import version; print(version("keras"))') || exit 2
    namex=$($PY -c 'from importlib.metadata import version; print(version("namex"))') || exit 2
    optree=$($PY -c 'from importlib.metadata import version; print(version("optree"))') || exit 2
    rm -rf "$DEV/wheels" && mkdir -p "$DEV/wheels" || exit 2
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$DEV/wheels" "keras==$keras" "namex==$namex" "optree==$optree" || exit 2
    rm -rf "$DEV/onnx"
    local i=0
    for exports in "$@"; do
        i=$((i + 1))
        $PY -m benchmarks.providers "$exports" --strip "$DEV/onnx/$i" || exit 2
    done
    ls -l "$DEV/wheels"
    du -sh "$DEV"
    echo "carry [\"$DEV\"]; the repository's tracked files travel too: 64 MiB in all"
}

run() {
    local out=${OUT:-/tmp/device_bench} site=${SITE:-/tmp/site}
    mkdir -p "$out"
    export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
    if ! $PY -c 'import keras' 2>/dev/null; then  # the device image has no Keras
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            "$DEV"/wheels/*.whl || { echo "error: no wheels in $DEV/wheels: run prepare here first"; exit 2; }
        export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
    fi
    { nvidia-smi || echo "no nvidia-smi"
      $PY -c 'import jax, keras, onnxruntime as o
print("jax", jax.__version__, jax.devices(), "keras", keras.__version__, "onnxruntime", o.__version__,
      o.get_available_providers())'; } 2>&1 | tee "$out/log.txt"
    local onnx=()
    [ -d "$DEV/onnx" ] && onnx=(--onnx "$DEV/onnx" --onnx-timeout "${ONNX_TIMEOUT:-90}"
                                --onnx-repeats "${ONNX_REPEATS:-10}")
    local families=()
    [ -n "${FAMILIES:-}" ] && families=(--families "$FAMILIES")
    $PY -m benchmarks.backends --backends jax --preset paper --steps "${STEPS:-20}" "${families[@]}" \
        --budget "${BUDGET:-330}" --family-timeout "${FAMILY_TIMEOUT:-120}" "${onnx[@]}" \
        --out "$out/backends_paper.json" --report "$out/BACKENDS_PAPER.md" 2>&1 | tee -a "$out/log.txt"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) run ;;
    *) echo "usage: scripts/device_bench.sh prepare [EXPORT_DIR ...] | run" >&2; exit 2 ;;
esac
