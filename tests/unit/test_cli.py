"""Every command answers --help with an example, and `hotspot` alone lists them."""
from __future__ import annotations

import subprocess

import pytest

from cli import build_parser
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


def test_devices_add_osmand_prints_a_random_identifier_once_and_lists_the_device_as_osmand(tmp_path):
    import json
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    env["HOTSPOT_DATA_DIR"] = str(tmp_path)
    added = subprocess.run([HOTSPOT, "devices", "add", "pc-1234-traccar", "--osmand", "--json"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    record = json.loads(added.stdout)
    assert record["device_id"] == "pc-1234-traccar" and len(record["osmand_id"]) >= 32 and "secret" not in record
    listed = subprocess.run([HOTSPOT, "devices", "list", "--json"], env=env, capture_output=True, text=True, timeout=60)
    [item] = json.loads(listed.stdout)
    assert item["device_id"] == "pc-1234-traccar" and item["protocols"] == "osmand"
    assert record["osmand_id"] not in listed.stdout
