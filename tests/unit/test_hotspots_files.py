"""Reading police.uk and generic crime files, and `hotspot hotspots build` end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from processors.hotspots import DAY, EXACT, MONTH, HarmTableError, parse_harm_table
from cli import main
from formats.crimes import (COORDINATES_OUT_OF_RANGE, DUPLICATE_CRIME_ID, NO_CATEGORY, NO_COORDINATES,
                                UNREADABLE_COORDINATES, UNREADABLE_HARM, UNREADABLE_MONTH, UNREADABLE_OCCURRED_AT,
                                WRONG_FIELD_COUNT, CrimeFileError, read_crime_file, read_harm_table, read_mask)
from tests.data.generate import epoch

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "police_uk_sample.csv"


def test_police_uk_sample_is_read_with_bad_rows_counted_by_reason():
    records, report = read_crime_file(SAMPLE)
    assert report.format == "police.uk" and report.rows == 43 and report.records == 39
    assert report.bad == {NO_COORDINATES: 2, DUPLICATE_CRIME_ID: 1, UNREADABLE_MONTH: 1}
    assert set(records.precision) == {MONTH}
    # a month stands at its 16th, 00:00 UTC
    first = int(np.argmin(records.occurred_s))
    assert records.occurred_s[first] == epoch("2022-06-16T00:00:00+00:00")
    assert "On or near Broad Street" in records.locations
    assert "Anti-social behaviour" in records.categories


def test_generic_csv_reads_offsets_local_times_dates_and_uk_dates(tmp_path):
    src = tmp_path / "generic.csv"
    src.write_text(
        "occurred_at,lat,lon,category,harm\n"
        "2024-07-05T22:30:00+01:00,51.5,-0.12,Robbery,\n"           # offset given
        "2024-07-05T22:30:00Z,51.5,-0.12,Robbery,400\n"             # UTC
        "2024-07-05 22:30,51.5,-0.12,Robbery,\n"                     # local (BST)
        "2024-01-05T22:30:00,51.5,-0.12,Robbery,\n"                  # local (GMT)
        "2024-07-05,51.5,-0.12,Robbery,\n"                           # a date: noon local, day precision
        "05/07/2024 22:30,51.5,-0.12,Robbery,\n"                     # UK day-first
        "2024-10-27T01:30:00,51.5,-0.12,Robbery,\n")                 # the repeated hour: first (BST) pass
    records, report = read_crime_file(src)
    assert report.format == "generic" and report.bad == {}
    assert records.occurred_s.tolist() == [
        epoch("2024-07-05T22:30:00+01:00"), epoch("2024-07-05T22:30:00+00:00"), epoch("2024-07-05T22:30:00+01:00"),
        epoch("2024-01-05T22:30:00+00:00"), epoch("2024-07-05T12:00:00+01:00"), epoch("2024-07-05T22:30:00+01:00"),
        epoch("2024-10-27T01:30:00+01:00")]
    assert records.precision.tolist() == [EXACT, EXACT, EXACT, EXACT, DAY, EXACT, EXACT]
    assert np.isnan(records.harm_days[0]) and records.harm_days[1] == 400


def test_generic_bad_rows_are_counted_never_fatal(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text(
        "occurred_at,lat,lon,category,harm\n"
        "2024-07-05T22:30:00Z,51.5,-0.12,Robbery,\n"
        "2024-07-05T22:30:00Z,,-0.12,Robbery,\n"
        "2024-07-05T22:30:00Z,north,-0.12,Robbery,\n"
        "2024-07-05T22:30:00Z,0,0,Robbery,\n"
        "2024-07-05T22:30:00Z,91,-0.12,Robbery,\n"
        "yesterday,51.5,-0.12,Robbery,\n"
        "2024-13-45T22:30:00Z,51.5,-0.12,Robbery,\n"
        "2024-07-05T22:30:00Z,51.5,-0.12,,\n"
        "2024-07-05T22:30:00Z,51.5,-0.12,Robbery,-3\n"
        "2024-07-05T22:30:00Z,51.5,-0.12,Robbery,lots\n"
        "2024-07-05T22:30:00Z,51.5,-0.12,Robbery,,extra,fields\n"
        "2024-07-05T23:30:00Z,51.5,-0.12,Robbery,\n")
    records, report = read_crime_file(src)
    assert len(records) == 2 and report.rows == 12
    assert report.bad == {NO_COORDINATES: 1, UNREADABLE_COORDINATES: 1, COORDINATES_OUT_OF_RANGE: 2,
                          UNREADABLE_OCCURRED_AT: 2, NO_CATEGORY: 1, UNREADABLE_HARM: 2, WRONG_FIELD_COUNT: 1}
    assert report.first_bad_row[NO_COORDINATES] == 2


@pytest.mark.parametrize("content", ["", "Crime ID,Month,Location\nabc,2024-01,On or near X\n", "just text\n"])
def test_a_file_with_the_wrong_columns_is_one_clear_error_naming_it(tmp_path, content):
    src = tmp_path / "outcomes.csv"
    src.write_text(content)
    with pytest.raises(CrimeFileError, match="outcomes.csv"):
        read_crime_file(src)


def test_shipped_harm_table_has_a_reason_for_every_weight_and_a_force_table_replaces_it():
    table = read_harm_table()
    assert all(table.basis[k] for k in table.weights_days)
    assert table.weight_of("VIOLENCE AND SEXUAL OFFENCES") == 120 and table.weight_of("robbery") == 365
    assert {"violence with injury", "robbery", "possession of weapons", "sexual offences",
            "violence and sexual offences"} <= table.serious_violence
    own = parse_harm_table("# our CHI\ncategory,harm_days\nRobbery,100\n")
    assert own.weight_of("Robbery") == 100 and own.serious_violence == frozenset()
    with pytest.raises(HarmTableError, match="row 2"):
        parse_harm_table("category,harm_days\nRobbery,lots\n")


def test_exclusion_mask_reads_polygons_and_refuses_points(tmp_path):
    good = tmp_path / "prison.geojson"
    good.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                    "geometry": {"type": "Polygon", "coordinates": [[[0, 51], [0.01, 51], [0.01, 51.01], [0, 51]]]}}]}))
    assert read_mask(good)[0].area > 0
    bad = tmp_path / "point.geojson"
    bad.write_text(json.dumps({"type": "Point", "coordinates": [0, 51]}))
    with pytest.raises(CrimeFileError, match="point.geojson"):
        read_mask(bad)


def test_build_command_on_the_police_uk_sample(tmp_path, capsys):
    out, png = tmp_path / "hs.geojson", tmp_path / "map.png"
    assert main(["hotspots", "build", "--crimes", str(SAMPLE), "--out", str(out), "--top", "3", "--preview", str(png)]) == 0
    doc = json.loads(out.read_text())
    assert [f["id"] for f in doc["features"]] == ["sq150m_27700_3143_1156", "sq150m_27700_3143_1157",
                                                   "sq150m_27700_3146_1155"]
    first = doc["features"][0]["properties"]
    assert first["name"] == "On or near Broad Street"
    assert first["briefing"] == (
        "Most of the harm here is robbery (2 of the 8 offences). The police.uk category 'violence and sexual offences' "
        "does not say whether anyone was injured. The data gives only the month of each offence (police.uk), so no "
        "busy days or times can be given. 8 serious violence offences in the 12 months to 30 June 2024, up from 3 in "
        "the 12 months before.")
    assert first["stats"]["by_category"] == {"Robbery": {"offences": 2, "harm_days": 730.0},
                                             "Violence and sexual offences": {"offences": 6, "harm_days": 720.0}}
    assert first["stats"]["share_of_harm"] == round(1450 / 3260, 5) and first["stats"]["peak_hours"] is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    captured = capsys.readouterr()
    assert "On or near Broad Street" in captured.out.splitlines()[1]  # the summary table
    assert "2 rows skipped: no coordinates" in captured.err and "1 row skipped: repeated Crime ID" in captured.err


def test_build_command_fails_in_one_line_on_a_malformed_file(tmp_path, capsys):
    src = tmp_path / "stop-and-search.csv"
    src.write_text("Type,Date,Part of a policing operation\nPerson search,2024-01-01T10:00:00,False\n")
    assert main(["hotspots", "build", "--crimes", str(SAMPLE), str(src), "--out", str(tmp_path / "x.geojson")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hotspot hotspots: ") and "stop-and-search.csv" in err[-1]
    assert not (tmp_path / "x.geojson").exists()


def test_day_night_on_police_uk_data_explains_that_it_has_no_times(tmp_path, capsys):
    assert main(["hotspots", "build", "--crimes", str(SAMPLE), "--out", str(tmp_path / "x.geojson"), "--day-night"]) == 1
    assert "police.uk data gives only the month" in capsys.readouterr().err.strip().splitlines()[-1]


def test_build_command_with_hexagons_merge_and_harm_share(tmp_path, capsys):
    out = tmp_path / "hs.geojson"
    assert main(["hotspots", "build", "--crimes", str(SAMPLE), "--out", str(out), "--shape", "hex",
                 "--harm-share", "0.5", "--merge-adjacent", "--as-of", "2024-06-30"]) == 0
    doc = json.loads(out.read_text())
    assert doc["generator"]["cell"]["shape"] == "hex" and doc["generator"]["as_of"] == "2024-06-30"
    shares = [f["properties"]["stats"]["cumulative_share_of_harm"] for f in doc["features"]]
    assert shares[-1] >= 0.5 and (len(shares) == 1 or shares[-2] < 0.5)
