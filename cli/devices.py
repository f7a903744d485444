"""`hotspot devices add|list|revoke` and `hotspot users add|list|revoke`: gateway credentials.

Secrets are generated, printed once and stored hashed in
`<data_dir>/credentials.sqlite3`; a running gateway picks changes up within a second.
"""
from __future__ import annotations

import argparse

DEVICE_EXAMPLES = """examples:
  hotspot devices add pc-1234-phone           # prints the device id and its secret, once
  hotspot devices add pc-1234-phone --json    # {"device_id": "...", "secret": "..."}
  hotspot devices add pc-1234-traccar --osmand  # prints the OsmAnd identifier, once
  hotspot devices list
  hotspot devices revoke pc-1234-phone

The native API takes the secret as 'Authorization: Bearer <secret>'; OwnTracks as
HTTP Basic with the device id as user name. OsmAnd / Traccar Client carry only an
identifier, so a device added with --osmand gets a long random identifier instead
of a secret: type it into Traccar Client's "Device identifier" field. Its pings are
stored under NAME; the identifier is the secret and is never stored in clear.
"""

USER_EXAMPLES = """examples:
  hotspot users add pc1234 --role officer
  hotspot users add sgt42 --role supervisor --json   # {"user": "...", "role": "...", "secret": "..."}
  hotspot users list
  hotspot users revoke pc1234
"""


def register(sub) -> None:
    for kind, command, examples in (("device", "devices", DEVICE_EXAMPLES), ("user", "users", USER_EXAMPLES)):
        p = sub.add_parser(command, help=f"{kind} credentials for the gateway",
                           description=f"Add, list and revoke {kind} credentials of the gateway.",
                           epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter)
        actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
        add = actions.add_parser("add", help=f"register a {kind} and print its secret once", epilog=examples,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        add.add_argument("name", metavar="NAME", help="device id" if kind == "device" else "user name")
        if kind == "user":
            add.add_argument("--role", required=True, choices=("officer", "supervisor", "analyst", "admin"))
        else:
            add.add_argument("--osmand", action="store_true",
                             help="an OsmAnd / Traccar Client device: print a random identifier to set as its "
                                  "device identifier, instead of a secret")
        add.add_argument("--json", action="store_true", help="print one JSON object")
        add.set_defaults(handler=_add, kind=kind)
        ls = actions.add_parser("list", help=f"list {command} (never their secrets)", epilog=examples,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        ls.add_argument("--json", action="store_true", help="print a JSON array")
        ls.set_defaults(handler=_list, kind=kind)
        rv = actions.add_parser("revoke", help=f"revoke a {kind}'s secret (effective within a second)", epilog=examples,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        rv.add_argument("name", metavar="NAME")
        rv.set_defaults(handler=_revoke, kind=kind)


def _store():
    from gateway.credentials import CredentialStore, path_in
    from core.settings import get_settings

    return CredentialStore(path_in(get_settings().data_dir))


def _add(args) -> int:
    import json

    from gateway.credentials import CredentialError
    from cli import CommandError

    store = _store()
    try:
        principal, secret = store.add(args.name, args.kind, getattr(args, "role", None),
                                      osmand=getattr(args, "osmand", False))
    except CredentialError as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    if args.kind == "device" and principal.osmand:
        record = {"device_id": principal.name, "osmand_id": secret}
    elif args.kind == "device":
        record = {"device_id": principal.name, "secret": secret}
    else:
        record = {"user": principal.name, "role": principal.role, "secret": secret}
    if args.json:
        print(json.dumps(record))
    else:
        for key, value in record.items():
            print(f"{key:10} {value}")
        if principal.osmand:
            print("the OsmAnd identifier is the device's secret and is shown only this once: set it as the "
                  "Traccar Client's \"Device identifier\" now")
        else:
            print("the secret is shown only this once: give it to the device or user now")
    return 0


def _list(args) -> int:
    import json
    from datetime import datetime, timezone

    store = _store()
    try:
        rows = store.list(args.kind)
    finally:
        store.close()
    items = [{("device_id" if args.kind == "device" else "user"): p.name, "role": p.role, "revoked": p.revoked,
              "created": datetime.fromtimestamp(p.created_ms / 1000, timezone.utc).isoformat(timespec="seconds")}
             for p in rows]
    if args.kind == "device":
        for item, p in zip(items, rows):
            item.pop("role")
            item["protocols"] = "osmand" if p.osmand else "native,owntracks"
    if args.json:
        print(json.dumps(items))
    else:
        from cli.sql import print_rows

        columns = list(items[0]) if items else (
            ["device_id", "revoked", "created", "protocols"] if args.kind == "device"
            else ["user", "role", "revoked", "created"])
        print_rows(columns, [["yes" if c == "revoked" and item[c] else "no" if c == "revoked" else item[c]
                             for c in columns] for item in items], "table")
    return 0


def _revoke(args) -> int:
    from gateway.credentials import CredentialError
    from cli import CommandError

    store = _store()
    try:
        store.revoke(args.name, args.kind)
    except CredentialError as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    print(f"{args.kind} {args.name} revoked")
    return 0
