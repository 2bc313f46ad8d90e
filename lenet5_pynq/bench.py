"""Throughput and latency of the backends over batch sizes, beside a named peer in the same run.

    python -m lenet5_pynq.bench [--backends cpu,cpu-float,keras] [--batches 1,100,10000]
                                [--peer keras] [--threads N] [--weights FILE [--spec FILE]]
                                [--json FILE] [--plot FILE.png]

Each point is the median of repeated calls after a warm-up call, on MNIST test images (random
bytes when no MNIST directory is found).  Backends whose name starts with "gpu" or "torch" are
measured by lenet5_pynq.gpu_bench (device-resident and host-to-host rows).

`--threads N` goes to every backend that has a thread count (cpu-float's and cpu's worker threads,
onnxruntime's intra_op_num_threads) and is recorded in each row (null: the backend's default).
When cpu-float runs in C, the run also measures one core's fp32 peak (native.fma_peak) and each
cpu-float row gets its share of it: images/s x FLOP per image (2 x the multiply-adds of
network.py) over threads x the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from . import backends, cli_types, mnist, network, progress
from .atomic import OutputError, atomic_write, check_writable, write_text

DEFAULT_BACKENDS = "cpu,cpu-float,keras"
DEFAULT_BATCHES = "1,10,100,1000,10000"
MIN_SECONDS = 1.0  # per point: repeat calls until this much time has been spent
MAX_REPEATS = 200


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def _images(count: int, mnist_dir=None) -> np.ndarray:
    """MNIST test images repeated to `count`.  A directory given by the caller must load (a
    MnistFormatError otherwise); without one, random bytes stand in when no MNIST is found,
    and stderr says so."""
    try:
        images, _ = mnist.load(mnist_dir, "test")
    except mnist.MnistFormatError as e:
        if mnist_dir is not None:
            raise
        print(f"bench: no MNIST ({e}); timing random bytes", file=sys.stderr)
        images = np.random.default_rng(0).integers(0, 256, (10000, 28, 28), dtype=np.uint8)
    reps = -(-count // len(images))
    return np.ascontiguousarray(np.tile(images, (reps, 1, 1))[:count])


def time_backend(backend, images: np.ndarray, batch: int, min_seconds=MIN_SECONDS) -> dict:
    x = images[:batch]
    backend.predict(x)  # warm-up: allocations, library loads, tracing
    times = []
    spent = 0.0
    # At least three calls, unless one call alone takes ten times the budget (a slow peer).
    while (spent < min_seconds or len(times) < 3) and len(times) < MAX_REPEATS:
        if times and spent > 10 * min_seconds:
            break
        start = time.perf_counter()
        backend.predict(x)
        times.append(time.perf_counter() - start)
        spent += times[-1]
    per_call = statistics.median(times)
    return {
        "backend": getattr(backend, "label", backend.name),  # "cpu-float (numpy)" on the fallback
        "batch": batch,
        "where": "host",
        "calls": len(times),
        "seconds_per_call": per_call,
        "images_per_second": batch / per_call,
        "us_per_image": per_call / batch * 1e6,
        "device": backend.device or machine(),
    }


def flop_per_image() -> int:
    """Floating-point operations of one image: 2 per multiply-add of network.py's layers."""
    return 2 * sum(s.macs for s in network.layer_shapes())


def add_peak_share(row: dict, peak: dict) -> None:
    """The share of `threads` cores' measured fp32 peak that a cpu-float row's throughput is."""
    cores = row.get("threads") or os.cpu_count() or 1
    row["fp32_peak_gflops_one_core"] = peak["gflops"]
    row["flop_per_image"] = flop_per_image()
    row["percent_of_fp32_peak"] = (
        100 * row["images_per_second"] * row["flop_per_image"] / (cores * peak["gflops"] * 1e9)
    )
    row["peak_cores"] = cores


def _is_gpu(name: str) -> bool:
    return name.startswith(("gpu", "torch"))


def run(
    names: list[str],
    batches: list[int],
    mnist_dir=None,
    min_seconds=MIN_SECONDS,
    log=print,
    quiet: bool = False,
    backend_kwargs: dict | None = None,
    threads: int | None = None,
    peak: dict | None = None,
) -> list[dict]:
    """Rows of every backend and batch; a progress bar over the host points on stderr (a
    terminal, not `quiet`).  `backend_kwargs` (`backends.weight_arguments`) go to every
    backend; one that cannot run them is skipped with the reason.  `threads` goes to the
    backends that take a thread count (recorded in every row, None where not taken).  `peak`
    (`native.fma_peak()`) adds the share of it to the cpu-float rows that ran in C."""
    backend_kwargs = backend_kwargs or {}
    rows: list[dict] = []
    host_names = [n for n in names if not _is_gpu(n)]
    gpu_names = [n for n in names if _is_gpu(n)]
    if host_names:
        images = _images(max(batches), mnist_dir)
        with progress.bar(
            total=len(host_names) * len(batches), desc="bench", unit="point", quiet=quiet, leave=False
        ) as bar:
            for name in host_names:
                takes_threads = threads is not None and backends.takes_argument(name, "threads")
                kwargs = {**backend_kwargs, **({"threads": threads} if takes_threads else {})}
                try:
                    backend = backends.load_backend(name, verbose=False, **kwargs)
                except (backends.BackendUnavailable, ValueError) as e:  # ValueError: weights it cannot run
                    log(f"skipped {name}: {e}")
                    bar.update(len(batches))
                    continue
                with backend:
                    for batch in batches:
                        bar.set_postfix_str(f"{name} batch {batch}")
                        row = time_backend(backend, images, batch, min_seconds)
                        row["threads"] = threads if takes_threads else None
                        if getattr(backend, "version", None):
                            row["version"] = backend.version
                        if peak and getattr(backend, "engine", None) == "c" and backend.name == "cpu-float":
                            add_peak_share(row, peak)
                        log(f"  {row['backend']:14s} batch {batch:>8d}: {row['us_per_image']:10.2f} us/image")
                        rows.append(row)
                        bar.update(1)
    if gpu_names:
        try:
            from . import gpu_timing
        except ImportError as e:
            log(f"skipped {', '.join(gpu_names)}: {e}")
        else:
            rows += gpu_timing.run(gpu_names, batches, repeats=20, backend_kwargs=backend_kwargs)
    return rows


def add_ratios(rows: list[dict], peers: list[str]) -> None:
    """rows[i]["vs"][peer]: throughput over the peer's at the same batch and placement."""
    index = {(r["backend"], r["batch"], r["where"]): r for r in rows}
    for r in rows:
        r["vs"] = {}
        for peer in peers:
            base = index.get((peer, r["batch"], r["where"]))
            if base:
                r["vs"][peer] = r["images_per_second"] / base["images_per_second"]


def table(rows: list[dict], peers: list[str]) -> str:
    header = f"{'backend':14s} {'where':6s} {'batch':>8s} {'ms/call':>10s} {'us/image':>10s} {'images/s':>12s}"
    lines = [header + "".join(f" {'x ' + p:>14s}" for p in peers) + f" {'% fp32 peak':>12s}"]
    for r in rows:
        ratios = "".join(f" {r['vs'][p]:>14.2f}" if p in r["vs"] else f" {'-':>14s}" for p in peers)
        share = f" {r['percent_of_fp32_peak']:>12.1f}" if "percent_of_fp32_peak" in r else f" {'-':>12s}"
        lines.append(
            f"{r['backend']:14s} {r['where']:6s} {r['batch']:>8d} {r['seconds_per_call'] * 1e3:>10.3f} "
            f"{r['us_per_image']:>10.2f} {r['images_per_second']:>12,.0f}" + ratios + share
        )
    return "\n".join(lines)


def plot(rows: list[dict], path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_tput) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = sorted({(r["backend"], r["where"]) for r in rows})
    for name, where in series:
        pts = sorted((r["batch"], r) for r in rows if r["backend"] == name and r["where"] == where)
        label = name if where == "host" else f"{name} ({where})"
        ax_lat.plot([b for b, _ in pts], [r["seconds_per_call"] * 1e3 for _, r in pts], "o-", label=label)
        ax_tput.plot([b for b, _ in pts], [r["images_per_second"] for _, r in pts], "o-", label=label)
    for ax, ylabel in ((ax_lat, "latency per call (ms)"), (ax_tput, "images per second")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_tput.legend(fontsize=8)
    fig.suptitle(f"LeNet-5 on MNIST: {rows[0]['device'] if rows else ''}", fontsize=9)
    fig.tight_layout()
    path = plot_path(path)
    with atomic_write(path, "wb", what="--plot") as f:
        fig.savefig(f, dpi=110, format=path.suffix[1:].lower())
    return path


def plot_path(path) -> Path:
    """The file `plot` really writes: `path`, with .png added when it has no extension."""
    path = Path(path)
    return path if path.suffix else path.with_name(path.name + ".png")


MAX_BATCH = 1_000_000  # the images are held in memory: 784 MB at this size


_int_list = cli_types.positive_int_list(MAX_BATCH, "batch sizes")


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backends",
        default=DEFAULT_BACKENDS,
        type=cli_types.backend_list(),
        help="comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--batches", type=_int_list, default=_int_list(DEFAULT_BATCHES), help="default: " + DEFAULT_BATCHES
    )
    parser.add_argument(
        "--peer",
        default="keras",
        type=cli_types.backend_list(),
        help="comma-separated backends the ratios are against (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default=None,
        help="threads of the backends that have a thread count: cpu-float, onnxruntime (default: theirs)",
    )
    parser.add_argument("--weights", metavar="FILE", help="float weights .npz from train (default: the shipped ones)")
    parser.add_argument(
        "--spec", metavar="FILE", help="their fixed-point spec (default: fixed_spec.json beside --weights)"
    )
    parser.add_argument("--mnist", help="MNIST directory for the images (default: $LENET5_MNIST or ../shared/mnist)")
    parser.add_argument(
        "--min-seconds",
        type=cli_types.nonnegative_float,
        default=MIN_SECONDS,
        help="time spent per point (0: the minimum of three calls)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON ('-' for stdout)")
    parser.add_argument("--plot", metavar="FILE.png", help="latency and throughput against batch size")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    # Outputs are checked before the benchmark, not after it.
    if args.plot and Path(args.plot).is_dir():
        parser.error(f"--plot {args.plot} is a directory, not a file")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'lenet5-pynq[bench]'")
    for option, path in (("--json", args.json), ("--plot", plot_path(args.plot) if args.plot else None)):
        if path and path != "-":
            try:
                check_writable(path, option)
            except OutputError as e:
                parser.error(str(e))
    names = args.backends  # checked by argparse: known names
    quiet = args.json == "-"
    log = (lambda *a: print(*a, file=sys.stderr)) if quiet else print
    try:
        weight_kwargs = backends.weight_arguments(args.weights, args.spec)
    except ValueError as e:  # WeightsError, SpecError
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(f"machine: {machine()}")
    peak = _measure_peak(log) if "cpu-float" in names else None
    try:
        rows = run(
            names,
            args.batches,
            args.mnist,
            args.min_seconds,
            log,
            quiet=args.quiet,
            backend_kwargs=weight_kwargs,
            threads=args.threads,
            peak=peak,
        )
    except mnist.MnistFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    peers = args.peer
    add_ratios(rows, peers)
    if args.json:
        text = json.dumps(rows, indent=1)
        if args.json == "-":
            print(text)
        else:
            try:
                write_text(args.json, text + "\n", what="--json")
            except OutputError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
    if not quiet:
        print(table(rows, peers))
    if args.plot and rows:
        try:
            written = plot(rows, args.plot)
        except OutputError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        log(f"wrote {written}")
    return 0 if rows else 1


def _measure_peak(log) -> dict | None:
    """native.fma_peak(), said on the log; None (said why) without a C compiler."""
    from . import native

    try:
        peak = native.fma_peak()
    except native.BuildError as e:
        log(f"fp32 peak not measured: {e}")
        return None
    log(f"fp32 peak: {peak['gflops']:.1f} GFLOP/s, {peak['measures']}")
    return peak


if __name__ == "__main__":
    sys.exit(main())
