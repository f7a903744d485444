"""Every command answers --help with an example, and `hotspot` alone lists them."""
from __future__ import annotations

import subprocess

import pytest

from streams.cli import build_parser
from tests.conftest import HOTSPOT


def _leaf_parsers(parser, path=()):
    subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaf_parsers(child, path + (name,))


LEAVES = list(_leaf_parsers(build_parser()))


def test_there_are_commands():
    assert len(LEAVES) >= 5


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_help_has_an_example(path):
    proc = subprocess.run([HOTSPOT, *path, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "example" in proc.stdout.lower(), proc.stdout
