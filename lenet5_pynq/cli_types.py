"""argparse `type=` functions shared by the commands, so that every argument is checked before
any work starts and a bad one is a usage error (exit 2, one line naming the option):

    parser.add_argument("--limit", type=positive_int)
    parser.add_argument("--backend", type=backend_name(), default="auto")
"""

from __future__ import annotations

import argparse
import math
import re


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer of at least 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def int_at_least(low: int):
    """An integer of at least `low`."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def int_between(low: int, high: int):
    """An integer from `low` to `high`, both included."""

    def parse(text: str) -> int:
        value = _int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {value}")
        return value

    parse.__name__ = f"integer in {low}..{high}"
    return parse


def positive_float(text: str) -> float:
    """A finite number greater than 0."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number of at least 0."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, not {text}")
    return value


def positive_int_list(maximum: int | None = None, what: str = "values"):
    """A comma-separated list of integers of at least 1 (and at most `maximum`); `what` names
    them in the messages."""

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            values = [int(p, 10) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"empty list: {text!r}")
        if min(values) < 1:
            raise argparse.ArgumentTypeError(f"{what} must be positive: {text!r}")
        if maximum is not None and max(values) > maximum:
            raise argparse.ArgumentTypeError(f"{what}: {max(values):,} is more than {maximum:,}")
        return values

    parse.__name__ = "list of positive integers"
    return parse


def choice_list(choices, what: str = "value"):
    """A comma-separated, non-empty list of names out of `choices` (a sequence, or a function
    returning one, looked up when parsing)."""

    def parse(text: str) -> list[str]:
        known = list(choices() if callable(choices) else choices)
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"no {what} given: {text!r}")
        for name in names:
            if name not in known:
                raise argparse.ArgumentTypeError(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        return names

    parse.__name__ = f"list of {what}s"
    return parse


def backend_name(allowed=None):
    """One backend name of `lenet5_pynq.backends.names()` (or of `allowed`)."""

    def parse(text: str) -> str:
        from . import backends

        known = list(allowed) if allowed is not None else backends.names()
        if text not in known:
            raise argparse.ArgumentTypeError(f"unknown backend {text!r}; choose from {', '.join(known)}")
        return text

    parse.__name__ = "backend"
    return parse


def backend_list(allowed=None):
    """A comma-separated list of backend names (of `allowed`, or of every registered one)."""
    from . import backends

    return choice_list(allowed if allowed is not None else backends.names, "backend")


def matching(pattern: str, what: str):
    """A string that matches the regular expression `pattern` whole (`what` names it)."""
    compiled = re.compile(pattern)

    def parse(text: str) -> str:
        if not compiled.fullmatch(text):
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}")
        return text

    parse.__name__ = what
    return parse


def directory(text: str):
    """A path that is a directory or does not exist yet (a file there is refused)."""
    from pathlib import Path

    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory")
    return path
