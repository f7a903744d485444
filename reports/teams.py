"""Officers' teams (`hotspot teams load FILE.csv`): a CSV of user, team into `officer_teams` (0007).

A team is what compliance is grouped by; assignments name only the officer (`user`). The newest load
wins per user (ReplacingMergeTree on updated_at).
"""
from __future__ import annotations

import csv
import datetime as dt
import time

from reports.store import Store


class TeamsFileError(Exception):
    """The file cannot be used; the message names it and the problem."""


def read_teams(path) -> list[tuple[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
            if "user" not in fields or "team" not in fields:
                raise TeamsFileError(f"{path}: needs columns user and team (found: {', '.join(reader.fieldnames or [])})")
            out = {}
            for i, row in enumerate(reader, start=2):
                user, team = (row.get(fields["user"]) or "").strip(), (row.get(fields["team"]) or "").strip()
                if not user:
                    raise TeamsFileError(f"{path}: line {i} has no user")
                out[user] = team
    except FileNotFoundError:
        raise TeamsFileError(f"{path}: no such file") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise TeamsFileError(f"{path}: not a CSV file ({exc})") from None
    return sorted(out.items())


def load_teams(store: Store, path) -> int:
    pairs = read_teams(path)
    if pairs:
        now = dt.datetime.fromtimestamp(time.time(), dt.timezone.utc)
        store.insert("officer_teams", ["user", "team", "updated_at"],
                     [[u for u, _ in pairs], [t for _, t in pairs], [now] * len(pairs)])
    return len(pairs)
