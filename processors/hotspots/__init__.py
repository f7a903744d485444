"""Hot spots from crime records: harm weights, metric grids, selection, Gi*, briefings, ids.

Pure code: callers pass records and a harm table (already read) and get
plain data back; the "as of" date is an argument, never the clock.

    table = parse_harm_table(text)
    build = build_hotspots(records, table, BuildOptions(top_n=20))
    geojson = build.feature_collection()
"""
from processors.hotspots.build import (
    ALL_CATEGORIES,
    NO_HARM_WEIGHT,
    NO_TIME_OF_DAY,
    NOT_PROJECTABLE,
    BuildOptions,
    Hotspot,
    HotspotBuild,
    build_hotspots,
)
from processors.hotspots.grid import BNG_EPSG, Grid, choose_metric_epsg, os_grid_reference, to_metric, to_wgs84
from processors.hotspots.harm import HarmTable, HarmTableError, category_key, parse_harm_table
from processors.hotspots.ids import cell_id, hotspot_id, parse_cell_id
from processors.hotspots.records import DAY, EXACT, MONTH, CrimeRecords, make_records

__all__ = [
    "ALL_CATEGORIES", "NO_HARM_WEIGHT", "NO_TIME_OF_DAY", "NOT_PROJECTABLE", "BuildOptions", "Hotspot",
    "HotspotBuild", "build_hotspots", "BNG_EPSG", "Grid", "choose_metric_epsg", "os_grid_reference", "to_metric",
    "to_wgs84", "HarmTable", "HarmTableError", "category_key", "parse_harm_table", "cell_id", "hotspot_id",
    "parse_cell_id", "DAY", "EXACT", "MONTH", "CrimeRecords", "make_records",
]
