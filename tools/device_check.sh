#!/usr/bin/env bash
# The CUDA library's checks and measurements on a GPU machine (a copy of this checkout, possibly
# without network access): build it, run tests/test_gpu.py, benchmark it against PyTorch.
#
#   tools/device_check.sh [STEP ...]        (default: build test bench)
#
# Steps: build (sm_90) | buildall | test | quicktest | bench | latency (tools/latency.py) |
# sweep (tools/sweep.py) | hostsweep (tools/sweep.py --host) | exact (tools/exactness.py) |
# tensor (tools/tensor_check.py) | clocks |
# ncu | ncu-lat (tools/profile_one.py).
# Logs and JSON go to $OUT (default cuda/build/out); copy to benchmarks/ only what a README cites.
# Before: tools/prepare_device_data.py fills .gpu_data/ (MNIST, Keras's logits), and wheels of
# cffi and pycparser go in .whl/ where the GPU machine lacks them.  lenet5_pynq is used installed
# (pip install -e .); a copy that is not installed is put on PYTHONPATH below.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-cuda/build/out}"
mkdir -p "$OUT"
steps="${*:-build test bench}"
export PYTHONUNBUFFERED=1 LENET5_MNIST="$PWD/.gpu_data/mnist"
PY="${PYTHON:-python3}"
if ! $PY -c "import cffi" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! (cd / && $PY -c "import lenet5_pynq") 2>/dev/null; then
    echo "lenet5_pynq is not installed here: using $PWD through PYTHONPATH"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv | tee "$OUT/gpu.txt"
status=0
for step in $steps; do
    case "$step" in
    build)
        $PY -m lenet5_pynq.gpu build --arch sm_90 2>&1 | tee "$OUT/build.log" | grep -E "registers|spill|error|warning" ;
        [ -f cuda/build/liblenet5_gpu.so ] || { echo "build failed"; exit 1; } ;;
    buildall)
        $PY -m lenet5_pynq.gpu build 2>&1 | tee "$OUT/build.log" | grep -E "error|warning" ;;
    test)
        $PY -m pytest -q -rs -x -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/test.log" | tail -25 || status=1 ;;
    quicktest)
        $PY -m pytest -q -rs -x -p no:cacheprovider tests/test_gpu.py -k "bit_exact_on_mnist or float_matches or any_batch" 2>&1 | tee "$OUT/test.log" | tail -25 || status=1 ;;
    bench)
        $PY -m lenet5_pynq.gpu_bench --backends "${BENCH_BACKENDS:-gpu,gpu-float,gpu-fp16,torch,torch-fp16,torch-compile}" \
            --batches "${BENCH_BATCHES:-1,100,10000,100000,1000000}" --repeats "${BENCH_REPEATS:-7}" \
            --json "$OUT/bench.json" 2> "$OUT/bench.log" || status=1
        tail -5 "$OUT/bench.log" ;;
    latency)  # resident path vs a launch per call, C call and Python call, n = 1, 2, 7
        timeout 300 $PY tools/latency.py --json "$OUT/latency.json" 2>&1 | tee "$OUT/latency.log" || status=1 ;;
    sweep)
        $PY tools/sweep.py --batches "${SWEEP_BATCHES:-1,16,100,300,1000,2047,4096,10000,100000,1000000}" --json "$OUT/sweep.json" 2>&1 | tee "$OUT/sweep.log" ;;
    hostsweep)
        $PY tools/sweep.py --host --json "$OUT/hostsweep.json" 2>&1 | tee "$OUT/hostsweep.log" || status=1 ;;
    exact)
        $PY tools/exactness.py 2>&1 | tee "$OUT/exactness.log" ;;
    tensor)  # the tensor kernels against the references and the CUDA-core kernels, by batch size
        $PY tools/tensor_check.py 2>&1 | tee "$OUT/tensor_check.log" ;;
    clocks)  # SM clock and power while fixed mode runs 1M-image batches
        nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 200 > "$OUT/clocks.csv" &
        smi=$!
        $PY -c "
import numpy as np
from lenet5_pynq import fixedspec, gpu, weights
net = gpu.GpuNetwork(weights.load()[0], fixedspec.load_quantized()[0])
imgs = np.random.default_rng(0).integers(0, 256, (1_000_000, 28, 28), dtype=np.uint8)
for mode in ('float', 'fixed'):
    for b in (100_000, 1_000_000):
        t = net.time_device(imgs[:b * (1_000_000 // b)], b, mode, 1_000_000 // b, 2, 10)
        print(mode, b, 'M/s per repeat:', ' '.join(f'{b / x / 1e6:.1f}' for x in t), flush=True)
" 2>&1 | tee "$OUT/clocks.log"
        kill $smi; sort "$OUT/clocks.csv" | uniq -c | sort -rn | head -8 ;;
    ncu-lat)
        ncu --set full --import-source yes --launch-skip 1 --launch-count 1 --kernel-name regex:fused -o "$OUT/lat_float" -f \
            $PY tools/profile_one.py block 1 > "$OUT/ncu_lat.log" 2>&1
        ncu --set full --import-source yes --launch-skip 3 --launch-count 1 --kernel-name regex:fused -o "$OUT/lat_fixed" -f \
            $PY tools/profile_one.py block 1 >> "$OUT/ncu_lat.log" 2>&1
        for m in float fixed; do
            ncu --import "$OUT/lat_$m.ncu-rep" --page details > "$OUT/lat_${m}_details.txt" 2>&1
            ncu --import "$OUT/lat_$m.ncu-rep" --page source --csv --print-source sass > "$OUT/lat_${m}_sass.csv" 2>&1
            grep -E "Duration|SM Frequency|Issue Slots Busy|Warp Cycles Per Issued|Registers Per" "$OUT/lat_${m}_details.txt"
        done ;;
    ncu)
        $PY tools/profile_one.py > /dev/null 2>&1  # warm
        ncu --set full --launch-count "${NCU_COUNT:-2}" --kernel-name regex:fused -o "$OUT/profile" -f \
            $PY tools/profile_one.py > "$OUT/ncu.log" 2>&1 || status=1
        ncu --import "$OUT/profile.ncu-rep" --page details > "$OUT/ncu_details.txt" 2>&1
        grep -E "fused_network|Duration|Registers|Achieved Occupancy|Compute \(SM\) Throughput|Issue Slots Busy|Executed Ipc A|Bank Conflicts|L1/TEX Hit|Warp Cycles Per Issued|Stall" "$OUT/ncu_details.txt" | head -60 ;;
    esac
done
exit $status
