"""Measurement notes helper (cuda/NOTES.md): every kernel variant at several batch sizes
(device to device), and the parts of the one-image host latency.

    python cuda/sweep.py [--batches 1,100,1000,...] [--json FILE]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lenet5_pynq import fixedspec, gpu, gpu_bench, weights  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,16,100,300,1000,2047,4096,10000,100000,1000000")
    ap.add_argument("--json")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    pool = gpu_bench.image_pool()
    params, quantized = weights.load()[0], fixedspec.load_quantized()[0]
    net = gpu.GpuNetwork(params, quantized)
    print(f"device: {net.device_name}")
    rows = []
    for mode in ("float", "fixed"):
        for variant in ("block", "warp", "warp-small"):
            if variant == "warp-small" and mode == "float":
                continue
            net.set_variant(variant)
            for batch in batches:
                if variant == "block" and batch > 100_000:
                    continue
                sets = gpu_bench._sets(batch, 784)
                images = gpu_bench._tile(pool, sets * batch)
                est = float(np.median(net.time_device(images, batch, mode, 1, 2, 3)))
                calls = gpu_bench._calls_for(est)
                t = statistics.median(net.time_device(images, batch, mode, calls, max(2, calls // 4), 5))
                rows.append(dict(mode=mode, variant=variant, batch=batch, seconds=t, images_per_second=batch / t))
                print(f"{mode:6s} {variant:10s} {batch:>8d} {t * 1e6:10.1f} us {batch / t / 1e6:9.3f} M/s", flush=True)
    net.set_variant("auto")

    # One image, host to host, a launch per call (the resident path is off here: cuda/latency.py
    # measures it): Python wrapper vs the bare C call, spin-wait vs stream sync.
    lat = []
    for wait in ("spin", "sync"):
        os.environ["LENET5_GPU_HOST_WAIT"] = wait
        n2 = gpu.GpuNetwork(params, quantized)
        n2.set_resident(0)
        ffi, lib = n2.ffi, n2.lib
        img = np.ascontiguousarray(pool[:1])
        for mode in ("float", "fixed"):
            classes = np.empty(1, np.int32)
            logits = np.empty((1, 10), n2.logits_dtype(mode))
            m = gpu.MODES[mode]
            pi = ffi.cast("const uint8_t *", ffi.from_buffer(img))
            pc = ffi.cast("int32_t *", ffi.from_buffer(classes))
            pl = ffi.cast("void *", ffi.from_buffer(logits))
            h = n2._handle
            for name, fn in (
                ("C call", lambda: lib.lenet5_gpu_infer_host(h, m, pi, 1, pc, pl)),
                ("infer_into", lambda: n2.infer_into(img, mode, classes, logits)),
            ):
                for _ in range(200):
                    fn()
                times = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    for _ in range(200):
                        fn()
                    times.append((time.perf_counter() - t0) / 200)
                t = statistics.median(times)
                lat.append(dict(wait=wait, mode=mode, call=name, seconds=t))
                print(f"latency {wait:4s} {mode:6s} {name:10s} {t * 1e6:8.2f} us", flush=True)
        n2.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": net.device_name, "variants": rows, "latency": lat}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
