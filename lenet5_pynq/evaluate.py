"""Accuracy of a backend on the MNIST test set, and its agreement with the golden model.

    python -m lenet5_pynq.evaluate --backend NAME [--weights FILE [--spec FILE]] [--mnist DIR] [--limit N] [--json]

Agreement is counted per image: the same class as the golden model, and (for fixed-point
backends) every raw logit bit the same.  With --weights (a `train` archive), the backend and the
golden model both run those weights, with the spec beside them (`quantize`'s fixed_spec.json)
unless --spec names another.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import backends, cli_types, mnist, progress

CHUNK = 2000  # images per predict call: the steps of the progress bar


def _predict(backend, images: np.ndarray, desc: str, quiet: bool) -> tuple[backends.Prediction, float]:
    """The backend's prediction of `images` in chunks of CHUNK (a progress bar on stderr), and
    the seconds spent in its predict calls."""
    if len(images) == 0:
        start = time.perf_counter()
        return backend.predict(images), time.perf_counter() - start
    parts, seconds = [], 0.0
    with progress.bar(total=len(images), desc=desc, quiet=quiet, leave=False) as bar:
        for start_index in range(0, len(images), CHUNK):
            chunk = images[start_index : start_index + CHUNK]
            start = time.perf_counter()
            parts.append(backend.predict(chunk))
            seconds += time.perf_counter() - start
            bar.update(len(chunk))
    joined = backends.Prediction(
        np.concatenate([p.classes for p in parts]), np.concatenate([p.logits for p in parts]), parts[0].logit_scale
    )
    return joined, seconds


def evaluate(backend, images: np.ndarray, labels: np.ndarray, golden=None, quiet: bool = False) -> dict:
    """Accuracy and agreement with the golden model (see the module), `golden` (by default the
    shipped weights'; give the one on the backend's weights for others); a progress bar on
    stderr when it is a terminal and not `quiet`."""
    result, seconds = _predict(backend, images, backend.name, quiet)
    report = {
        "backend": backend.name,
        "images": int(len(images)),
        "correct": int((result.classes == labels).sum()),
        "seconds": seconds,
    }
    report["accuracy"] = report["correct"] / max(len(images), 1)
    if backend.name == "cpu":
        report["golden"] = "this backend is the golden model"
    else:
        golden = golden or backends.load_backend("cpu")
        reference, _ = _predict(golden, images, "golden model", quiet)
        report["same_class_as_golden"] = int((result.classes == reference.classes).sum())
        if backend.exact:
            same = np.all(result.logits == reference.logits, axis=1) & (result.classes == reference.classes)
            report["bit_exact_with_golden"] = int(same.sum())
    return report


def format_report(r: dict) -> str:
    lines = [
        f"backend {r['backend']}: {r['correct']}/{r['images']} correct = {r['accuracy']:.2%} ({r['seconds']:.2f} s)"
    ]
    if "weights" in r:
        lines.append(f"weights {r['weights']}, spec {r['spec']}")
    if "golden" in r:
        lines.append(r["golden"])
    else:
        lines.append(f"same class as the golden model: {r['same_class_as_golden']}/{r['images']}")
        if "bit_exact_with_golden" in r:
            lines.append(
                f"identical to the golden model in every logit bit: {r['bit_exact_with_golden']}/{r['images']}"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backend", default="auto", type=cli_types.backend_name(), help=f"one of {', '.join(backends.names())}"
    )
    parser.add_argument("--weights", metavar="FILE", help="float weights .npz from train (default: the shipped ones)")
    parser.add_argument(
        "--spec", metavar="FILE", help="their fixed-point spec (default: fixed_spec.json beside --weights)"
    )
    parser.add_argument("--mnist", help="MNIST directory (default: $LENET5_MNIST or ../shared/mnist)")
    parser.add_argument("--limit", type=cli_types.positive_int, help="only the first N test images")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    try:
        weight_kwargs = backends.weight_arguments(args.weights, args.spec)
        images, labels = mnist.load(args.mnist, "test")
        backend = backends.load_backend(args.backend, **weight_kwargs)
    except (mnist.MnistFormatError, backends.BackendUnavailable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    with backend:
        golden = None if backend.name == "cpu" else backends.load_backend("cpu", verbose=False, **weight_kwargs)
        report = evaluate(backend, images, labels, golden, quiet=args.quiet)
    if weight_kwargs:
        report.update(weights=str(weight_kwargs["weights_path"]), spec=str(weight_kwargs["spec_path"]))
    print(json.dumps(report) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
