"""`hotspot teams load FILE.csv`: which team each officer belongs to, for compliance by team.

Thin: reports/teams.py reads the file and writes ClickHouse table officer_teams (migration 0007).
"""
from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  hotspot teams load teams.csv

input: CSV with columns user, team (user as in assignments: the officer's sign-in name).
A later load replaces an officer's team; history is filed under the team the officer has now.
"""


def register(sub) -> None:
    p = sub.add_parser("teams", help="officers' teams, for compliance by team",
                       description="Officers' teams into ClickHouse table officer_teams.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser("load", help="load a user,team CSV", epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("file", metavar="FILE.csv")
    load.set_defaults(handler=_load)


def _load(args) -> int:
    from reports.store import Store, StoreError
    from reports.teams import TeamsFileError, load_teams
    from cli import CommandError

    store = Store()
    try:
        n = load_teams(store, args.file)
    except (TeamsFileError, StoreError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    print(f"{n} officers' teams loaded into the {store.describe()}", file=sys.stderr)
    return 0
