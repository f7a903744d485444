"""The pieces of reports/ that need no store: intervals, pseudonyms, the salt, coarsening options."""
from __future__ import annotations

import math
import os

import pytest

from reports.export import Pseudonymiser, coarsen_time_ms, load_salt, parse_resolution, select_names
from reports.stats import t_interval


def test_t_interval_of_a_small_sample():
    # 2, 4, 6: mean 4, sd 2, t(0.975, 2) = 4.3027: half width 4.3027 * 2 / sqrt(3) = 4.968
    ci = t_interval([2, 4, 6])
    assert (ci.n, ci.mean) == (3, 4.0)
    assert ci.low == pytest.approx(4 - 4.9683, abs=1e-4) and ci.high == pytest.approx(4 + 4.9683, abs=1e-4)
    one = t_interval([7.0])   # one value: no spread to measure, no interval
    assert one.mean == 7.0 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(t_interval([]).mean)


def test_pseudonyms_are_stable_per_salt_and_kind_and_hide_the_name():
    p, q = Pseudonymiser(b"s1"), Pseudonymiser(b"s2")
    assert p("officer", "alice") == Pseudonymiser(b"s1")("officer", "alice")
    assert p("officer", "alice") != q("officer", "alice")
    assert p("officer", "alice") != p("device", "alice")   # kinds never collide
    assert p("officer", "alice").startswith("officer-") and "alice" not in p("officer", "alice")
    assert p("device", "") == "" and p("device", None) == ""
    with pytest.raises(Exception, match="salt is empty"):
        Pseudonymiser(b"")


def test_salt_is_made_once_private_and_the_setting_wins(tmp_path):
    from core.settings import Settings

    s = Settings(data_dir=tmp_path / "d")
    first = load_salt(s)
    assert len(first) == 64 and load_salt(s) == first
    assert os.stat(tmp_path / "d" / "export.salt").st_mode & 0o777 == 0o600
    assert load_salt(Settings(data_dir=tmp_path / "d", export_salt="given")) == b"given"
    assert "given" not in str(Settings(data_dir=tmp_path, export_salt="given").masked())


def test_time_resolution_and_flooring():
    assert [parse_resolution(x) for x in ("15min", "1h", "30s", "1d", "900")] == [900, 3600, 30, 86400, 900]
    for bad in ("", "0min", "fifteen", "15 years"):
        with pytest.raises(ValueError):
            parse_resolution(bad)
    import datetime as dt

    nine = int(dt.datetime(2026, 1, 12, 9, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert coarsen_time_ms(nine + 14 * 60_000 + 59_999, 900) == nine   # 09:14:59.999 -> 09:00
    assert coarsen_time_ms(nine + 15 * 60_000, 900) == nine + 900_000
    assert coarsen_time_ms(123, 0) == 123 and coarsen_time_ms(None, 900) is None


def test_select_names_take_aliases_and_skip_commas_in_calls():
    assert select_names("a, if(x IS NULL, NULL, f(y, z)) AS b_ms, `user`, c AS d") == ["a", "b_ms", "user", "d"]
