"""Classify pictures of handwritten digits from the command line.

    python -m lenet5_pynq.classify IMAGE... [--backend NAME] [--weights FILE [--spec FILE]] [--json] [--top K] [--debug-dir DIR]
    python -m lenet5_pynq.classify --samples

Each image is brought into MNIST form by `preprocess` (which finds the digit in a photo), then
all readable images go to the backend in one batch.  With ``--debug-dir DIR``, each classified
image leaves two files there: ``NAME.input.png``, the 28x28 the network saw, and
``NAME.mask.png``, what preprocessing found (the digit white, other ink grey, the paper's
printed lines blue).  Exit status: 0 all classified, 1 some file could not be read (the others
are still classified) or a debug file could not be written, 2 usage error or no backend.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from . import atomic, cli_types, network, preprocess, progress, sample_digits
from .backends import BackendUnavailable, load_backend, names, weight_arguments

EXIT_OK = 0
EXIT_BAD_FILE = 1
EXIT_USAGE = 2
PROGRESS_FROM = 20  # files: fewer are read in about a second, with no bar


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lenet5_pynq.classify",
        description="Classify images of single handwritten digits with LeNet-5.",
    )
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--samples", action="store_true", help="also classify the ten shipped sample digits")
    parser.add_argument(
        "--backend",
        default="auto",
        type=cli_types.backend_name(),
        help=f"where to run the network: {', '.join(names())} (default: auto)",
    )
    parser.add_argument("--weights", metavar="FILE", help="float weights .npz from train (default: the shipped ones)")
    parser.add_argument(
        "--spec", metavar="FILE", help="their fixed-point spec (default: fixed_spec.json beside --weights)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    parser.add_argument(
        "--top",
        type=cli_types.int_between(1, network.NUM_CLASSES),
        metavar="K",
        help=f"also list the K most likely digits (1..{network.NUM_CLASSES})",
    )
    parser.add_argument(
        "--debug-dir",
        type=cli_types.directory,
        metavar="DIR",
        help="write, per image, the 28x28 the network saw (NAME.input.png) and what preprocessing "
        "found (NAME.mask.png: the digit white, other ink grey, printed lines blue)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return parser


def _parse(argv) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.images and not args.samples:
        parser.error("give at least one IMAGE, or --samples")
    return args


def main(argv=None) -> int:
    """Run the command line; returns the exit status instead of exiting."""
    try:
        args = _parse(argv)
    except SystemExit as e:  # argparse exits on --help and on usage errors
        return e.code if isinstance(e.code, int) else EXIT_USAGE

    paths = [Path(p) for p in args.images]
    if args.samples:
        shipped = sample_digits.paths()
        if not shipped:
            print(f"error: no sample digits in {sample_digits.SAMPLES_DIR}", file=sys.stderr)
            return EXIT_USAGE
        paths += shipped
    if args.debug_dir is not None:
        try:
            atomic.check_outside_package(args.debug_dir, "--debug-dir")
            args.debug_dir.mkdir(parents=True, exist_ok=True)
            if not os.access(args.debug_dir, os.W_OK | os.X_OK):
                raise PermissionError("permission denied")
        except OSError as e:
            print(f"error: --debug-dir {args.debug_dir}: {preprocess.one_line(e)}", file=sys.stderr)
            return EXIT_USAGE
    try:
        weight_kwargs = weight_arguments(args.weights, args.spec)
    except ValueError as e:  # WeightsError, SpecError
        print(f"error: {preprocess.one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        backend = load_backend(args.backend, **weight_kwargs)
    except (BackendUnavailable, ImportError, OSError, ValueError) as e:
        print(f"error: backend {args.backend}: {preprocess.one_line(e)}", file=sys.stderr)
        return EXIT_USAGE

    with backend:
        results = _classify(backend, paths, args.top or network.NUM_CLASSES, args.debug_dir, args.quiet)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        sample_paths = set(sample_digits.paths()) if args.samples else set()
        for result in results:
            if "digit" in result:
                print(_line(result, args.top, short=Path(result["path"]) in sample_paths))
    return EXIT_BAD_FILE if any("error" in result for result in results) else EXIT_OK


def _read(path: Path) -> preprocess.Digit:
    """The digit found in one file; any failure, even one of ours, is that file's ImageError,
    so that one picture never stops the others."""
    try:
        return preprocess.load(path)
    except preprocess.ImageError:
        raise
    except MemoryError:
        raise preprocess.ImageError(f"{path}: not enough memory to read it") from None
    except Exception as e:  # a fault in preprocessing: report it with the file, go on
        raise preprocess.ImageError(f"{path}: cannot read it ({type(e).__name__}: {preprocess.one_line(e)})") from e


def _classify(backend, paths: list[Path], top: int, debug_dir: Path | None = None, quiet: bool = False) -> list[dict]:
    """One result per path, in order: the `top` best digits, or the error that stopped it.

    Errors are reported on stderr as they happen; all readable images go in one batch.  With
    `debug_dir`, each classified image's debug files are written once it is classified.  A bar
    on stderr shows the reading of many files (`progress`).
    """
    results: list[dict] = []
    found: list[preprocess.Digit] = []
    readable: list[dict] = []
    for path in progress.bar(
        paths, desc="reading", unit="file", quiet=quiet or len(paths) < PROGRESS_FROM, leave=False
    ):
        result: dict = {"path": str(path)}
        try:
            found.append(_read(path))
            readable.append(result)
        except preprocess.ImageError as e:
            result["error"] = str(e)
            progress.message(f"error: {e}")
        results.append(result)
    if not found:
        return results
    prediction = backend.predict(np.stack([digit.frame for digit in found]))
    for result, digit, p in zip(readable, prediction.classes, prediction.probabilities()):
        ranked = np.argsort(-p, kind="stable")[:top]
        result.update(
            digit=int(digit),
            confidence=float(p[digit]),
            top=[{"digit": int(d), "probability": float(p[d])} for d in ranked],
            backend=backend.name,
        )
    if debug_dir is not None:
        stems: set[str] = set()
        for result, digit in zip(readable, found):
            try:
                result["debug"] = _write_debug(debug_dir, _unique_stem(Path(result["path"]), stems), digit)
            except OSError as e:
                result["error"] = (
                    f"{debug_dir}: cannot write the debug files of {result['path']} ({preprocess.one_line(e)})"
                )
                print(f"error: {result['error']}", file=sys.stderr)
    return results


def _unique_stem(path: Path, taken: set[str]) -> str:
    """The file's stem, with -2, -3 ... appended where another input had it already."""
    stem, n = path.stem, 1
    while stem in taken:
        n += 1
        stem = f"{path.stem}-{n}"
    taken.add(stem)
    return stem


def _write_debug(directory: Path, stem: str, digit: preprocess.Digit) -> dict:
    """Write STEM.input.png and STEM.mask.png into `directory`, each whole or not at all."""
    written = {}
    for kind, picture in (("input", Image.fromarray(digit.frame)), ("mask", digit.mask_image())):
        with atomic.atomic_write(directory / f"{stem}.{kind}.png", what="debug file") as f:
            picture.save(f, "PNG")
        written[kind] = str(directory / f"{stem}.{kind}.png")
    return written


def _line(result: dict, top: int | None, short: bool) -> str:
    """``digit_3.png: 3 (99.8%) [cpu]``, with ``top: 3 99.8%, 8 0.1%`` appended when asked."""
    name = Path(result["path"]).name if short else result["path"]
    line = f"{name}: {result['digit']} ({result['confidence']:.1%}) [{result['backend']}]"
    if top:
        ranked = ", ".join(f"{t['digit']} {t['probability']:.1%}" for t in result["top"])
        line += f"  top: {ranked}"
    return line


if __name__ == "__main__":
    sys.exit(main())
