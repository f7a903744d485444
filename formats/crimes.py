"""Reading crime extracts and writing hot-spot GeoJSON: the I/O around processors.hotspots.

Two input formats, recognised from the header:

- police.uk street-level CSV (`Crime ID, Month, ..., Longitude, Latitude,
  Location, ..., Crime type, ...`). Month is `YYYY-MM` only, so records carry
  MONTH precision and no time of day. Rows without coordinates are counted and
  skipped; a repeated non-empty Crime ID (overlapping downloads) is counted and
  skipped.
- generic CSV: `occurred_at, lat, lon, category` and optional `harm` (days).
  `occurred_at` is ISO-8601 with an offset (taken as given), ISO-8601 without
  one (local time in the force's zone), a date alone (the time of day unknown),
  or the UK `DD/MM/YYYY[ HH:MM[:SS]]`.

Every unusable row is counted under one reason (the first that applies) and
never stops the read; a file whose columns fit neither format raises
`CrimeFileError` naming the file. Parsing is vectorised with pandas (a
million rows in a few seconds).
"""
from __future__ import annotations

import csv
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from processors.hotspots.harm import HarmTable, category_key, parse_harm_table
from processors.hotspots.records import DAY, EXACT, MONTH, CrimeRecords, empty_records

POLICE_UK = "police.uk"
GENERIC = "generic"
POLICE_UK_COLUMNS = ("Month", "Longitude", "Latitude", "Crime type")
GENERIC_COLUMNS = ("occurred_at", "lat", "lon", "category")

# Bad-row reasons, stable strings.
WRONG_FIELD_COUNT = "wrong number of fields"
NO_COORDINATES = "no coordinates"
UNREADABLE_COORDINATES = "unreadable coordinates"
COORDINATES_OUT_OF_RANGE = "coordinates out of range or (0, 0)"
UNREADABLE_MONTH = "unreadable Month (want YYYY-MM)"
UNREADABLE_OCCURRED_AT = "unreadable occurred_at"
NO_CATEGORY = "no crime type or category"
UNREADABLE_HARM = "unreadable or negative harm"
DUPLICATE_CRIME_ID = "repeated Crime ID"


class CrimeFileError(Exception):
    """A file that cannot be read as crime records at all; the message names it."""


@dataclass
class FileReport:
    path: str
    format: str
    rows: int = 0
    records: int = 0
    bad: Counter = field(default_factory=Counter)
    first_bad_row: dict = field(default_factory=dict)  # reason -> 1-based data row of its first case


def _norm(col: str) -> str:
    return category_key(col.lstrip("\ufeff"))


def sniff_format(path: Path) -> tuple[str, dict[str, str]]:
    """('police.uk' | 'generic', {wanted column: actual header}) or CrimeFileError."""
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            header = next(csv.reader(fh, skipinitialspace=True), None)
    except FileNotFoundError:
        raise CrimeFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CrimeFileError(f"{path}: is a directory, not a CSV file") from None
    except csv.Error as exc:
        raise CrimeFileError(f"{path}: not a CSV file ({exc})") from None
    if not header:
        raise CrimeFileError(f"{path}: empty file, expected a header row")
    have = {_norm(h): h for h in header}
    for fmt, wanted, optional in ((POLICE_UK, POLICE_UK_COLUMNS, ("Crime ID", "Location")),
                                  (GENERIC, GENERIC_COLUMNS, ("harm",))):
        if all(_norm(c) in have for c in wanted):
            return fmt, {c: have[_norm(c)] for c in wanted + optional if _norm(c) in have}
    shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
    raise CrimeFileError(f"{path}: not a police.uk street-level CSV ({', '.join(POLICE_UK_COLUMNS)}) nor a generic "
                         f"crime CSV ({', '.join(GENERIC_COLUMNS)}); its columns are: {shown}")


def read_crime_file(path: str | Path, *, tz: str = "Europe/London") -> tuple[CrimeRecords, FileReport]:
    import pandas as pd

    path = Path(path)
    fmt, columns = sniff_format(path)
    report = FileReport(str(path), fmt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            # All columns, not usecols: with usecols pandas silently accepts rows with extra fields.
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                             encoding_errors="replace", on_bad_lines="warn", skipinitialspace=True)
        except (pd.errors.ParserError, ValueError) as exc:
            raise CrimeFileError(f"{path}: cannot be parsed as CSV ({str(exc).splitlines()[0]})") from None
    skipped = sum(str(w.message).count("Skipping line") for w in caught)
    if skipped:
        report.bad[WRONG_FIELD_COUNT] += skipped
    col = {k: df[v].str.strip() for k, v in columns.items()}
    n = len(df)
    report.rows = n + skipped
    bad = np.zeros(n, bool)

    def flag(mask: np.ndarray, reason: str) -> None:
        new = mask & ~bad
        if new.any():
            report.bad[reason] += int(new.sum())
            report.first_bad_row.setdefault(reason, int(np.argmax(new)) + 1)
            bad[new] = True

    lat_s, lon_s = (col["Latitude"], col["Longitude"]) if fmt == POLICE_UK else (col["lat"], col["lon"])
    flag(((lat_s == "") | (lon_s == "")).to_numpy(), NO_COORDINATES)
    lat = pd.to_numeric(lat_s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    lon = pd.to_numeric(lon_s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    flag(~(np.isfinite(lat) & np.isfinite(lon)), UNREADABLE_COORDINATES)
    with np.errstate(invalid="ignore"):
        flag((np.abs(lat) > 90) | (np.abs(lon) > 180) | ((lat == 0) & (lon == 0)), COORDINATES_OUT_OF_RANGE)

    if fmt == POLICE_UK:
        month = pd.to_datetime(col["Month"], format="%Y-%m", errors="coerce")
        flag(month.isna().to_numpy(), UNREADABLE_MONTH)
        # A month stands at its 16th, 00:00 UTC, so it falls in a window when its middle does.
        occurred = _epoch_s(month.fillna(pd.Timestamp("1970-01-01"))) + 15 * 86400
        precision = np.full(n, MONTH, np.int8)
        category_s = col["Crime type"]
        harm = np.full(n, np.nan)
    else:
        occurred, precision, unreadable = _parse_occurred_at(col["occurred_at"], tz)
        flag(unreadable, UNREADABLE_OCCURRED_AT)
        category_s = col["category"]
        harm = np.full(n, np.nan)
        if "harm" in col:
            given = (col["harm"] != "").to_numpy()
            harm = pd.to_numeric(col["harm"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                flag(given & ~(np.isfinite(harm) & (harm >= 0)), UNREADABLE_HARM)
            harm = np.where(given, harm, np.nan)
    flag((category_s == "").to_numpy(), NO_CATEGORY)
    if "Crime ID" in col:
        ids = col["Crime ID"]
        dup = (ids != "").to_numpy() & ids.duplicated().to_numpy()
        flag(dup, DUPLICATE_CRIME_ID)

    keep = ~bad
    codes, labels = pd.factorize(category_s[keep])
    if "Location" in col:
        loc_codes, loc_labels = pd.factorize(col["Location"][keep].replace("", None))
    else:
        loc_codes, loc_labels = np.full(int(keep.sum()), -1), []
    records = CrimeRecords(lat[keep], lon[keep], occurred[keep].astype(np.int64), precision[keep],
                           np.asarray(codes, np.int32), tuple(str(v) for v in labels), harm[keep],
                           np.asarray(loc_codes, np.int32), tuple(str(v) for v in loc_labels))
    report.records = len(records)
    return records, report


def _epoch_s(ts) -> np.ndarray:
    """Seconds since the epoch of a tz-naive (UTC) or tz-aware datetime Series."""
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.to_numpy().astype("datetime64[s]").astype(np.int64)


def _parse_occurred_at(s, tz: str):
    """(epoch seconds, precision, unreadable mask) for the generic occurred_at column."""
    import pandas as pd

    n = len(s)
    out = np.zeros(n, np.int64)
    precision = np.full(n, EXACT, np.int8)
    unreadable = np.ones(n, bool)
    date_only = s.str.fullmatch(r"\d{4}-\d{2}-\d{2}").to_numpy(dtype=bool, na_value=False)
    uk = s.str.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?").to_numpy(dtype=bool, na_value=False)
    aware = s.str.contains(r"\d[T ]\d{1,2}:\d{2}.*(?:Z|[+-]\d{2}(?::?\d{2})?)$", regex=True).to_numpy(dtype=bool, na_value=False).copy()
    aware &= ~date_only & ~uk
    naive = ~date_only & ~uk & ~aware

    def localise(parsed, where: np.ndarray, prec: int, shift_s: int = 0) -> None:
        ok = parsed.notna().to_numpy()
        if not ok.any():
            return
        # The repeated hour when clocks go back is read as the first (summer-time) pass; a time in the
        # skipped spring hour is moved forward to the first valid instant.
        local = parsed[ok].dt.tz_localize(tz, ambiguous=np.ones(int(ok.sum()), bool), nonexistent="shift_forward")
        pos = np.nonzero(where)[0][ok]
        out[pos] = _epoch_s(local) + shift_s
        precision[pos] = prec
        unreadable[pos] = False

    if aware.any():
        parsed = pd.to_datetime(s[aware], format="ISO8601", utc=True, errors="coerce")
        ok = parsed.notna().to_numpy()
        pos = np.nonzero(aware)[0][ok]
        out[pos] = _epoch_s(parsed[ok])
        unreadable[pos] = False
    if naive.any():
        localise(pd.to_datetime(s[naive], format="ISO8601", errors="coerce"), naive, EXACT)
    if date_only.any():
        # Noon local: the weekday is right, the hour is not claimed (precision DAY).
        localise(pd.to_datetime(s[date_only], format="%Y-%m-%d", errors="coerce") + pd.Timedelta(hours=12),
                 date_only, DAY)
    if uk.any():
        sub = s[uk]
        has_time = sub.str.contains(":").to_numpy()
        for want_time in (True, False):
            part = sub[has_time == want_time]
            if len(part):
                parsed = pd.to_datetime(part, dayfirst=True, format="mixed", errors="coerce")
                where = np.zeros(n, bool)
                where[np.nonzero(uk)[0][has_time == want_time]] = True
                localise(parsed if want_time else parsed + pd.Timedelta(hours=12), where, EXACT if want_time else DAY)
    return out, precision, unreadable


def read_crime_files(paths, *, tz: str = "Europe/London", progress=None) -> tuple[CrimeRecords, list[FileReport]]:
    """Read and join several files; `progress(report)` is called after each."""
    parts, reports = [], []
    for p in paths:
        records, report = read_crime_file(p, tz=tz)
        parts.append(records)
        reports.append(report)
        if progress:
            progress(report)
    return (CrimeRecords.concat(parts) if parts else empty_records()), reports


def default_harm_table_text() -> str:
    return resources.files("processors").joinpath("data/harm_weights.csv").read_text(encoding="utf-8")


def read_harm_table(path: str | Path | None = None) -> HarmTable:
    """The force's table at `path`, or the shipped default. Raises HarmTableError / OSError."""
    text = default_harm_table_text() if path is None else Path(path).read_text(encoding="utf-8-sig")
    return parse_harm_table(text)


def read_mask(path: str | Path) -> list:
    """Polygons (shapely, WGS84 lon/lat) from a GeoJSON file of areas to exclude."""
    import shapely
    from shapely.geometry import shape

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise CrimeFileError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CrimeFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CrimeFileError(f"{path}: not a GeoJSON object")
    if doc.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features") or []]
    elif doc.get("type") == "Feature":
        geoms = [doc.get("geometry")]
    else:
        geoms = [doc]
    out = []
    for g in geoms:
        if not g or g.get("type") not in ("Polygon", "MultiPolygon"):
            raise CrimeFileError(f"{path}: exclusion areas must be Polygon or MultiPolygon geometries")
        try:
            geom = shape(g)
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise CrimeFileError(f"{path}: unreadable geometry ({exc})") from None
        out.append(geom if geom.is_valid else shapely.make_valid(geom))
    return out


def write_geojson(path: str | Path, collection: dict) -> None:
    """One feature per line: small diffs between rebuilds, still one JSON document."""
    head = {k: v for k, v in collection.items() if k != "features"}
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in collection["features"]]
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n' + ",\n".join(lines) + "\n]}\n"
    Path(path).write_text(text, encoding="utf-8")
