"""`hotspot config`: the effective settings, secrets masked."""
from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("config", help="print the effective settings (secrets masked)",
                       description="Print the settings in effect: defaults, then the TOML file, then HOTSPOT_* variables.",
                       epilog="example:\n  HOTSPOT_PARTITIONS=8 hotspot config --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_config)


def _config(args) -> int:
    from pydantic import ValidationError

    from cli import CommandError
    from core.settings import describe_validation_error, get_settings

    try:
        values = get_settings().masked()
    except ValidationError as exc:
        raise CommandError(describe_validation_error(exc)) from None
    if args.json:
        print(json.dumps(values))
    else:
        width = max(map(len, values))
        for k, v in values.items():
            print(f"{k.ljust(width)}  {v}")
    return 0
