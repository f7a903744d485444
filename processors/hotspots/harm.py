"""Harm weights: the replaceable table that turns offences into harm.

A `HarmTable` maps a crime category to a weight in days (the Crime Harm Index
convention) and says which categories form the default serious-violence set.
Categories are matched on a normalised key so that "Violence and sexual
offences", "violence_and_sexual_offences" and "VIOLENCE AND SEXUAL OFFENCES"
are the same. Parsing takes the table's text; reading the file is the caller's
job (this package does no I/O).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def category_key(label: str) -> str:
    """Normalise a category label for matching: lower case, words joined by one space."""
    return _NON_ALNUM.sub(" ", label.lower()).strip()


class HarmTableError(ValueError):
    """The harm table text cannot be used; the message names the line."""


@dataclass(frozen=True)
class HarmTable:
    """Weights in days per normalised category key, with the display labels."""

    weights_days: dict[str, float]
    labels: dict[str, str]
    serious_violence: frozenset[str]
    basis: dict[str, str] = field(default_factory=dict)

    def weight_of(self, label: str) -> float | None:
        return self.weights_days.get(category_key(label))

    def label_of(self, label: str) -> str:
        return self.labels.get(category_key(label), label)


def parse_harm_table(text: str) -> HarmTable:
    """Parse CSV text with columns category, harm_days, serious_violence (yes/no), basis.

    `#` comment lines and blank lines are ignored; `serious_violence` and `basis`
    may be missing (then nothing is in the default set unless the caller names
    categories).
    """
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise HarmTableError("the harm table is empty")
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    columns = {category_key(c): c for c in (reader.fieldnames or [])}
    for needed in ("category", "harm days"):
        if needed not in columns:
            raise HarmTableError(f"the harm table needs columns category and harm_days (found: {', '.join(reader.fieldnames or [])})")
    weights: dict[str, float] = {}
    labels: dict[str, str] = {}
    basis: dict[str, str] = {}
    serious: set[str] = set()
    for n, row in enumerate(reader, start=2):
        label = (row.get(columns["category"]) or "").strip()
        raw = (row.get(columns["harm days"]) or "").strip()
        if not label:
            raise HarmTableError(f"harm table row {n}: no category")
        try:
            weight = float(raw)
        except ValueError:
            raise HarmTableError(f"harm table row {n} ({label}): harm_days {raw!r} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise HarmTableError(f"harm table row {n} ({label}): harm_days must be a finite number >= 0")
        key = category_key(label)
        if key in weights:
            raise HarmTableError(f"harm table row {n}: category {label!r} appears twice")
        weights[key] = weight
        labels[key] = label
        if "serious violence" in columns:
            flag = (row.get(columns["serious violence"]) or "").strip().lower()
            if flag in ("yes", "y", "true", "1"):
                serious.add(key)
        if "basis" in columns:
            basis[key] = (row.get(columns["basis"]) or "").strip()
    return HarmTable(weights, labels, frozenset(serious), basis)
