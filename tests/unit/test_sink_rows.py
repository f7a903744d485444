"""The column-at-once builders of formats/records.py and the writer's column input, without ClickHouse."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats.records import PING_COLUMNS, ping_row, ping_rows_arrow, ping_rows_columns
from sinks.writer import ClickHouseWriter, _ArrowColumn, _NotForArrow, _python_values


def record(i: int, **over) -> dict:
    rec = {"device_id": f"dev-{i % 3}", "ts_ms": 1_700_000_000_000 + i, "lat": 51.5 + i / 1e4, "lon": -1.25,
           "accuracy_m": 12.5 if i % 2 else None, "speed_mps": 1.0 * i, "heading_deg": None, "altitude_m": 50.0,
           "battery": 0.5 if i % 5 == 0 else None, "received_ms": 1_700_000_000_500 + i,
           "source": ("simulator", "other", None, "")[i % 4], "extra": {}}
    rec.update(over)
    return rec


def rows_as_columns(rows: list[dict]) -> list[list]:
    return [[r[name] for r in rows] for name in PING_COLUMNS]


def test_ping_rows_columns_are_ping_row_column_by_column():
    recs = [record(i) for i in range(40)]
    hotspots = [("hs-1",) if i % 3 == 0 else () for i in range(40)]
    low = [i % 7 == 0 for i in range(40)]
    late = [i % 11 == 0 for i in range(40)]
    names, columns = ping_rows_columns(recs, hotspots, low, late)
    expected = [ping_row(r, hotspot_ids=h, low_accuracy=lo, late=la) for r, h, lo, la in zip(recs, hotspots, low, late)]
    assert names == PING_COLUMNS == tuple(expected[0])
    assert [list(c) for c in columns] == rows_as_columns(expected)
    # same Python types too: lists for the arrays, ints for the flags, "other" for a missing source
    assert all(type(h) is list for h in columns[11])
    assert {type(v) for v in columns[12]} == {int} and {type(v) for v in columns[13]} == {int}
    assert set(columns[10]) == {"simulator", "other"}


def arrow_columns(batch) -> list[list]:
    """A batch of ping_rows_arrow as the Python values the standard path would write (timestamps as ticks)."""
    assert tuple(batch.schema.names) == PING_COLUMNS
    return [_python_values(col) for col in batch.columns]


def test_ping_rows_arrow_are_ping_row_column_by_column():
    import pyarrow as pa

    recs = [record(i) for i in range(40)]
    hotspots = [("hs-1",) if i % 3 == 0 else () for i in range(40)]
    low = [i % 7 == 0 for i in range(40)]
    late = [i % 11 == 0 for i in range(40)]
    batch = ping_rows_arrow(recs, hotspots, low, late)
    expected = rows_as_columns([ping_row(r, hotspot_ids=h, low_accuracy=lo, late=la)
                                for r, h, lo, la in zip(recs, hotspots, low, late)])
    # Float32 columns hold the float32 nearest to each value, as the standard path writes it
    f32 = [[None if v is None else pa.scalar(v, pa.float32()).as_py() for v in col] if batch.schema.field(j).type == pa.float32()
           else col for j, col in enumerate(expected)]
    assert arrow_columns(batch) == f32
    assert [str(t) for t in batch.schema.types] == [
        "string", "timestamp[ms, tz=UTC]", "timestamp[ms, tz=UTC]", "double", "double", "float", "float", "float", "float",
        "float", "string", "list<item: string>", "uint8", "uint8"]
    assert arrow_columns(ping_rows_arrow(recs[:3]))[11:] == [[[], [], []], [0, 0, 0], [0, 0, 0]]
    assert arrow_columns(ping_rows_arrow(recs[:2], None, [1, 0]))[12] == [1, 0]  # ints, as int() in ping_row
    assert ping_rows_arrow([]).num_rows == 0


def test_ping_rows_arrow_takes_ping_objects_as_ping_record_would_make_them():
    from processors.model import Ping
    from formats.records import ping_record

    pings = [Ping("dev-1", 1_700_000_000_000 + i, 51.5, -1.25, 12.5 if i % 2 else None, 1.5, None, 60.0, None,
                  None if i % 3 == 0 else 1_700_000_000_900 + i, ("owntracks", None, "")[i % 3]) for i in range(6)]
    mixed = [record(i) if i % 2 else p for i, p in enumerate(pings)]
    hotspots = [("hs-1",) if i % 2 else () for i in range(6)]
    expected = rows_as_columns([ping_row(m if isinstance(m, dict) else ping_record(m), hotspot_ids=h)
                                for m, h in zip(mixed, hotspots)])
    assert arrow_columns(ping_rows_arrow(mixed, hotspots)) == expected
    assert arrow_columns(ping_rows_arrow(pings)) == rows_as_columns([ping_row(ping_record(p)) for p in pings])
    # a held-over Ping keeps the source it came with; none (or "") is "other", as for a record
    assert arrow_columns(ping_rows_arrow(pings))[PING_COLUMNS.index("source")] == ["owntracks", "other", "other"] * 2
    with pytest.raises((TypeError, ValueError)):  # a record with a value of the wrong type is not taken for a Ping
        ping_rows_arrow([record(0, lat="north")])


def test_ping_rows_arrow_refuses_what_ping_row_refuses_and_keeps_float32_overflow_for_the_standard_path():
    with pytest.raises(ValueError, match="no received_ms"):
        ping_rows_arrow([{k: v for k, v in record(0).items() if k != "received_ms"}])
    with pytest.raises(ValueError, match="no lat"):
        ping_rows_arrow([record(0, lat=None)])
    with pytest.raises(ValueError, match="hotspot_ids"):
        ping_rows_arrow([record(0)], [None])
    with pytest.raises(TypeError):
        ping_rows_arrow([record(0)], None, [None])
    with pytest.raises(ValueError, match="late has 0 values"):
        ping_rows_arrow([record(0)], None, None, [])
    batch = ping_rows_arrow([record(0, accuracy_m=1e39), record(1, accuracy_m=float("inf"))])
    assert str(batch.schema.field("accuracy_m").type) == "double"  # the writer refuses it for Arrow: standard path
    from processors.model import Ping

    batch = ping_rows_arrow([Ping("d", 1, 0.5, 0.5, accuracy_m=1e39, received_ms=2), record(1)])
    assert str(batch.schema.field("accuracy_m").type) == "double" and batch.column("accuracy_m")[0].as_py() == 1e39
    assert str(batch.schema.field("battery").type) == "float"
    assert str(ping_rows_arrow([record(1, battery=float("-inf"))]).schema.field("battery").type) == "float"  # a real inf


def test_defaults_and_records_without_the_optional_fields():
    full = [record(0), record(1)]
    assert ping_rows_columns(full)[1][11:] == [[[], []], [0, 0], [0, 0]]
    bare = [{"device_id": "d", "ts_ms": 1, "received_ms": 2, "lat": 1.0, "lon": 2.0}, record(3)]
    _, columns = ping_rows_columns(bare, [["hs-2"], ()], [True, False])
    assert [list(c) for c in columns] == rows_as_columns(
        [ping_row(bare[0], hotspot_ids=["hs-2"], low_accuracy=True), ping_row(bare[1])])
    with pytest.raises(KeyError):  # required fields stay required, as in ping_row
        ping_rows_columns([{"device_id": "d", "ts_ms": 1, "lat": 1.0, "lon": 2.0}])


def test_lengths_must_match_and_nothing_gives_empty_columns():
    with pytest.raises(ValueError, match="hotspot_ids has 1 values for 2 pings"):
        ping_rows_columns([record(0), record(1)], [()])
    with pytest.raises(ValueError, match="low_accuracy"):
        ping_rows_columns([record(0)], None, [])
    names, columns = ping_rows_columns([])
    assert names == PING_COLUMNS and [list(c) for c in columns] == [[] for _ in PING_COLUMNS]


optional_float = st.none() | st.floats(allow_nan=False, width=32)


@given(st.lists(st.fixed_dictionaries({
    "device_id": st.text(min_size=1, max_size=8), "ts_ms": st.integers(0, 2**45), "received_ms": st.integers(0, 2**45),
    "lat": st.floats(-90, 90), "lon": st.floats(-180, 180), "accuracy_m": optional_float, "speed_mps": optional_float,
    "heading_deg": optional_float, "altitude_m": optional_float, "battery": optional_float,
    "source": st.none() | st.sampled_from(["", "native", "owntracks"]),
}), max_size=20), st.data())
def test_ping_rows_columns_match_ping_row_for_any_records(recs, data):
    n = len(recs)
    hotspots = data.draw(st.lists(st.lists(st.sampled_from(["a", "b"]), max_size=2), min_size=n, max_size=n))
    low = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    _, columns = ping_rows_columns(recs, hotspots, low)
    expected = rows_as_columns([ping_row(r, hotspot_ids=h, low_accuracy=lo) for r, h, lo in zip(recs, hotspots, low)])
    assert [list(c) for c in columns] == expected
    assert arrow_columns(ping_rows_arrow(recs, hotspots, low)) == expected  # the float32 values are float32 already


# --------------------------------------------------------------------------- writer input
class NoClient:
    def insert(self, *a, **k):
        raise AssertionError("not flushed in these tests")


def writer() -> ClickHouseWriter:
    return ClickHouseWriter(client_factory=NoClient, name="test-columns")


def test_add_columns_buffers_like_add_in_any_column_order():
    by_row, by_col = writer(), writer()
    names, columns = ping_rows_columns([record(i) for i in range(5)], [["x"]] * 5, [False] * 5)
    for row in zip(*columns):
        by_row.add("pings", dict(zip(names, row)))
    by_col.add_columns("pings", names, columns)
    by_col.add_columns("pings", names[::-1], columns[::-1])  # another order maps onto the buffer's
    assert by_col.pending_rows == 10
    ours, theirs = by_row._pending["pings"], by_col._pending["pings"]
    assert ours.names == theirs.names and [c * 2 for c in ours.columns] == theirs.columns


def test_add_arrow_buffers_batches_in_the_buffer_column_order():
    w = writer()
    recs = [record(i) for i in range(5)]
    w.add_columns("pings", *ping_rows_columns(recs))
    batch = ping_rows_arrow(recs)
    w.add_arrow("pings", batch.select(list(PING_COLUMNS[::-1])))
    w.add_arrow("pings", batch.slice(0, 0))
    assert w.pending_rows == 10
    buf = w._pending["pings"]
    assert len(buf.batches) == 1 and tuple(buf.batches[0].schema.names) == PING_COLUMNS
    assert buf.python_columns() == [c * 2 for c in rows_as_columns([ping_row(r) for r in recs])]
    with pytest.raises(ValueError, match="missing"):
        w.add_arrow("pings", batch.select(["device_id"]))


def test_add_columns_refuses_what_add_many_refuses():
    w = writer()
    w.add_columns("stops", ("stop_id", "lat"), (["a"], [1.0]))
    with pytest.raises(ValueError, match="differ in length"):
        w.add_columns("stops", ("stop_id", "lat"), (["a", "b"], [1.0]))
    with pytest.raises(ValueError, match="2 column names for 1 columns"):
        w.add_columns("stops", ("stop_id", "lat"), (["a"],))
    with pytest.raises(ValueError, match="twice"):
        w.add_columns("stops", ("stop_id", "stop_id"), (["a"], ["b"]))
    with pytest.raises(ValueError, match=r"missing \['lat'\], unexpected \['lon'\]"):
        w.add_columns("stops", ("stop_id", "lon"), (["a"], [1.0]))
    w.add_columns("stops", ("stop_id", "lat"), ([], []))
    assert w.pending_rows == 1


# --------------------------------------------------------------------------- Arrow columns
@pytest.mark.parametrize("ch_type", ["Map(String, String)", "Date", "Nullable(Date)", "DateTime('UTC')", "Bool",
                                     "Decimal(10, 2)", "Array(Array(String))", "Nullable(Array(String))",
                                     "DateTime64(2, 'UTC')", "UUID", "FixedString(3)", "Array(Date)"])
def test_types_without_an_exact_arrow_form_are_left_to_the_standard_path(ch_type):
    with pytest.raises(_NotForArrow):
        _ArrowColumn(ch_type)


@pytest.mark.parametrize("ch_type, values", [
    ("UInt8", [1, 2.5]),                       # pyarrow would truncate the float
    ("UInt64", [1, True]),
    ("DateTime64(3, 'UTC')", [1.5, 2]),        # not ticks: clickhouse-connect reads a float as a datetime
    ("DateTime64(3, 'UTC')", [1_700_000_000_000, 2.0]),
    ("Nullable(DateTime64(3, 'UTC'))", [None, 1.0]),
    ("Float32", [1.0, 1e39]),                  # overflows float32: clickhouse-connect raises
    ("Float64", [1.0, None]),                  # NULL where the column is not Nullable
    ("String", ["a", None]),
    ("LowCardinality(String)", ["a", b"b"]),  # clickhouse-connect refuses str and bytes mixed
    ("Array(String)", [["a"], [None]]),
    ("Array(String)", [["a"], None]),
])
def test_values_pyarrow_would_take_differently_are_refused(ch_type, values):
    with pytest.raises((_NotForArrow, TypeError, ValueError)):  # or a pyarrow error: the standard path decides
        _ArrowColumn(ch_type).array(values)


def test_the_pings_types_have_arrow_columns():
    import pyarrow as pa

    t = 1_700_000_000_000
    assert _ArrowColumn("DateTime64(3, 'UTC')").array([t, t + 1]).to_pylist()[1].timestamp() == (t + 1) / 1000
    assert _ArrowColumn("Nullable(Float32)").array([None, 1.5]).type == pa.float32()
    assert _ArrowColumn("LowCardinality(String)").array(["a"]).type == pa.string()
    assert _ArrowColumn("Array(String)").array([[], ("a", "b")]).to_pylist() == [[], ["a", "b"]]
    assert _ArrowColumn("UInt64").array([2**63 - 1]).to_pylist() == [2**63 - 1]
    with pytest.raises(OverflowError):  # beyond Int64: the standard path writes it
        _ArrowColumn("UInt64").array([2**63 + 5])
    assert _ArrowColumn("UInt8").array([0, 1]).type == pa.uint8()
