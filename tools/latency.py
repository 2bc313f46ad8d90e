"""One-image (and few-image) latency, host memory to host memory: the resident path against a
kernel launch per call, through the bare C call and through `GpuNetwork.infer_into`; calls 2 ms
apart (a launch per call, the resident kernel ended or still there); the kernel alone (device
memory).  The source of the one-image tables in cuda/README.md (benchmarks/latency_h100_resident.json);
rerun it, on a GPU machine, after changing the resident path or the host call.

    python tools/latency.py [--json FILE]    (tools/device_check.sh latency)

Needs the built library (python -m lenet5_pynq.gpu build) and lenet5_pynq installed (pip install -e .).
"""

import argparse
import json
import statistics
import sys
import time

import _requires  # noqa: F401  (stops with one line when lenet5_pynq is not installed)
import numpy as np

from lenet5_pynq import fixedspec, golden, gpu, gpu_timing, weights


def timed(fn, calls=500, repeats=15):
    for _ in range(200):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times), min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    pool = gpu_timing.image_pool()
    params, quantized = weights.load()[0], fixedspec.load_quantized()[0]
    net = gpu.GpuNetwork(params, quantized)
    ffi, lib, h = net.ffi, net.lib, net._handle
    print(f"device: {net.device_name}", flush=True)
    rows = []
    for mode in ("float", "fixed"):
        net.set_variant("block")
        t = statistics.median(net.time_device(pool[:4096], 1, mode, 2000, 200, 5))
        rows.append(dict(mode=mode, what="kernel, device memory (block)", n=1, seconds=t))
        print(f"{mode:6s} kernel alone (block, device memory)      n=1 {t * 1e6:7.2f} us", flush=True)
        net.set_variant("auto")
        for idle in (1000, 0):
            path = "resident" if idle else "launch"
            net.set_resident(idle)
            for n in (1, 2, 7):
                img = np.ascontiguousarray(pool[:n])
                classes = np.empty(n, np.int32)
                logits = np.empty((n, 10), net.logits_dtype(mode))
                m = gpu.MODES[mode]
                pi = ffi.from_buffer("uint8_t[]", img)
                pc = ffi.from_buffer("int32_t[]", classes)
                pl = ffi.from_buffer(logits)
                c0 = net.resident_stats()[0]
                calls = (
                    ("C call", lambda m=m, pi=pi, n=n, pc=pc, pl=pl: lib.lenet5_gpu_infer_host(h, m, pi, n, pc, pl)),
                    ("infer_into", lambda mode=mode, img=img, c=classes, lg=logits: net.infer_into(img, mode, c, lg)),
                )
                for call, fn in calls:
                    s0 = net.resident_stats()
                    med, best = timed(fn)
                    s1 = net.resident_stats()
                    # mean GPU-clock time from the kernel seeing the command to its answer
                    gpu_us = (s1[2] * s1[0] - s0[2] * s0[0]) / (s1[0] - s0[0]) if s1[0] > s0[0] else None
                    rows.append(dict(mode=mode, path=path, n=n, call=call, seconds=med, best=best, gpu_us=gpu_us))
                    extra = f", on the GPU {gpu_us:5.2f} us" if gpu_us else ""
                    timing = f"{med * 1e6:7.2f} us (best {best * 1e6:6.2f}{extra})"
                    print(f"{mode:6s} {path:8s} {call:10s} n={n} {timing}", flush=True)
                resident = net.resident_stats()[0] - c0
                assert resident == (0 if idle == 0 else 2 * (200 + 15 * 500)), resident
                if mode == "fixed":
                    ref_c, ref_l = golden.predict_raw(img, quantized)
                    assert (logits == ref_l).all() and (classes == ref_c).all(), "fixed mismatch"
        # Calls 2 ms apart (the GPU idles in between): a launch per call; the resident kernel
        # ended after 100 us idle (each call launches it again); the resident kernel still there.
        img = np.ascontiguousarray(pool[:1])
        classes = np.empty(1, np.int32)
        logits = np.empty((1, 10), net.logits_dtype(mode))
        for label, idle in (("launch, 2 ms apart", 0), ("resident ended, 2 ms apart", 100),
                            ("resident alive, 2 ms apart", 5000)):  # fmt: skip
            net.set_resident(idle)
            net.infer_into(img, mode, classes, logits)
            sparse = []
            l0 = net.resident_stats()[1]
            for _ in range(50):
                time.sleep(0.002)
                t0 = time.perf_counter()
                net.infer_into(img, mode, classes, logits)
                sparse.append(time.perf_counter() - t0)
            launches = net.resident_stats()[1] - l0
            t = statistics.median(sparse)
            rows.append(dict(mode=mode, path=label, n=1, call="infer_into", seconds=t, launches=launches))
            timing = f"{t * 1e6:7.2f} us ({launches} launches in 50 calls)"
            print(f"{mode:6s} {label:27s} infer_into n=1 {timing}", flush=True)
        net.set_resident(1000)
    net.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": net.device_name, "date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
