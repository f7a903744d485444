"""Argument types shared by the commands: numbers within bounds and dates, refused in one line by argparse."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date


def bounded(kind: type, ok: Callable[[float], bool], problem: str) -> Callable[[str], float]:
    """An argparse type: `kind(text)` (int or float) for which `ok` holds, else `problem`."""
    what = "whole number" if kind is int else "number"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(problem)
        return v

    return parse


def iso_date(example: str) -> Callable[[str], date]:
    """An argparse type: a date like `example` (ISO-8601, YYYY-MM-DD)."""
    def parse(text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a date like {example}") from None

    return parse
