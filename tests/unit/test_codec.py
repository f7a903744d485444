"""The Avro contracts and their codec: framing, fingerprints, old writers, bad bytes."""
from __future__ import annotations

import copy
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import (
    HISTORY_DIR, SCHEMA_NAMES, Codec, CodecError, CorruptMessageError, InMemorySchemaRegistry,
    IncompatibleSchemaError, SchemaStore, UnknownSchemaError, check_compatibility, fingerprint, schema_json,
)

PING = dict(device_id="dev-7", ts_ms=1_700_000_000_123, lat=51.5014, lon=-0.1419, accuracy_m=8.0,
            speed_mps=1.4, heading_deg=270.0, altitude_m=12.5, battery=0.46, received_ms=1_700_000_000_456,
            source="owntracks", extra={"tid": "5t", "t": "u"})


def _crc64_avro(data: bytes) -> int:
    """The Avro spec's reference fingerprint, written out to check the library's."""
    empty = 0xC15D213AA4D7A795
    fp = empty
    for byte in data:
        x = (fp ^ byte) & 0xFF
        for _ in range(8):
            x = (x >> 1) ^ (empty & -(x & 1))
        fp = (fp >> 8) ^ x
    return fp


SAMPLES = {
    "Ping": PING,
    "Hotspot": dict(id="hs-1", name="Market St", briefing="Violence, Fri-Sat nights",
                    geometry_geojson='{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[0,0]]]}',
                    buffer_m=10.0, target_minutes=15.0, active_from_ms=None, active_to_ms=None,
                    stats_json='{"harm": 123}', published_ms=1),
    "PatrolEvent": dict(event_id="e1", type="visit_ended", device_id="dev-7", hotspot_id="hs-1", ts_ms=5, emitted_ms=6,
                        visit=dict(visit_id="v1", entered_ms=1, exited_ms=5, dwell_s=600.0, foot_s=500.0,
                                   vehicle_s=60.0, stationary_s=40.0, stop_count=1, ping_count=120,
                                   end_reason="signal_lost", observed_s=540.0, inferred_s=60.0),
                        stop=None, mode=None),
    "RejectedPing": dict(device_id="dev-7", ping=PING, raw=None, reason="future_ts", detail="ts_ms: 6 min ahead",
                         stage="worker", rejected_ms=9),
    "Assignment": dict(assignment_id="a1", user="pc123", device_id=None, hotspot_id="hs-1", assigned_ms=3,
                       officer_lat=51.0, officer_lon=-1.0, distance_m=350.0, candidates=4, trial_day="2024-05-01",
                       arm="treatment", seed=123456789, eligible=["hs-1", "hs-2"], weights=[0.75, 0.25],
                       dosage_known=True, target_minutes=15.0),
    "Activity": dict(activity_id="x1", user="pc123", device_id="dev-7", ts_ms=4, kind="engagement", hotspot_id="hs-1",
                     assignment_id="a1", note="spoke to shop owners", lat=None, lon=None, attributes={"people": "3"}),
    "Allocation": dict(trial_id="crossover-2024-05-01-seed7", hotspot_id="hs-1", day="2024-05-01",
                       starts_ms=1714539600000, ends_ms=1714626000000, arm="treatment", block="north", design="crossover",
                       seed=7),
    "Audit": dict(audit_id="ab12", ts_ms=5, user="sgt1", role="supervisor", action="signin_ok", subject="sgt1",
                  detail_json='{"session":"x"}', address="10.0.0.1"),
}


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_round_trips_a_realistic_record(name):
    codec = Codec(name)
    data = codec.encode(SAMPLES[name])
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.fingerprint
    assert codec.decode(data) == SAMPLES[name]


def test_fingerprint_is_the_spec_crc64_of_the_canonical_form_little_endian():
    assert fingerprint("int") == _crc64_avro(b'"int"').to_bytes(8, "little")
    # The value from the Avro specification's test vectors for "int".
    assert _crc64_avro(b'"int"') == 0x7275D51A3F395C8F


def test_timestamps_stay_epoch_milliseconds_not_datetimes():
    out = Codec("Ping").decode(Codec("Ping").encode(PING))
    assert type(out["ts_ms"]) is int and out["ts_ms"] == 1_700_000_000_123


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_current_schema_is_kept_in_history_and_can_read_every_older_version(name):
    """Changing a schema without keeping the published version breaks old readers: this stops it."""
    current = schema_json(name)
    versions = sorted(HISTORY_DIR.glob(f"{name}.v*.avsc"))
    fps = {fingerprint(json.loads(p.read_text())): p.name for p in versions}
    assert fingerprint(current) in fps, f"add schemas/history/{name}.v{len(versions) + 1}.avsc"
    for path in versions:
        assert check_compatibility(json.loads(path.read_text()), current) == [], path.name


def _old_ping_schema() -> dict:
    """Ping as an earlier producer might have written it: no battery, no extra, fewer sources."""
    old = copy.deepcopy(schema_json("Ping"))
    old["fields"] = [f for f in old["fields"] if f["name"] not in ("battery", "extra")]
    source = next(f for f in old["fields"] if f["name"] == "source")
    source["type"] = {"type": "enum", "name": "PingSource", "symbols": ["native", "owntracks", "osmand"]}
    return old


def test_a_record_from_an_old_writer_is_read_by_the_new_reader_with_defaults(tmp_path):
    (tmp_path / "Ping.v0.avsc").write_text(json.dumps(_old_ping_schema()))
    store = SchemaStore([tmp_path])
    writer = Codec("Ping", store=store, reader_schema=_old_ping_schema())
    old_record = {k: v for k, v in PING.items() if k not in ("battery", "extra")}
    data = writer.encode(old_record)
    reader = Codec("Ping", store=store)
    assert data[2:10] != reader.fingerprint
    assert reader.decode(data) == {**old_record, "battery": None, "extra": {}}
    assert reader.decode_many([data, reader.encode(PING)]) == [{**old_record, "battery": None, "extra": {}}, PING]


def test_an_old_reader_whose_enum_lacks_a_default_refuses_a_newer_writer_up_front(tmp_path):
    """Why every enum in schemas/ has a default: a reader without one cannot take new symbols."""
    old_reader = Codec("Ping", store=SchemaStore([tmp_path]), reader_schema=_old_ping_schema())
    new = Codec("Ping").encode({**PING, "source": "native"})
    with pytest.raises(IncompatibleSchemaError, match=r"source: reader enum PingSource lacks symbols \['replay'"):
        old_reader.decode(new)


def test_a_new_writer_is_read_by_a_reader_of_the_previous_shape_that_has_defaults(tmp_path):
    previous = copy.deepcopy(schema_json("Ping"))
    previous["fields"] = [f for f in previous["fields"] if f["name"] != "extra"]
    reader = Codec("Ping", store=SchemaStore([tmp_path]), reader_schema=previous)
    assert reader.decode(Codec("Ping").encode(PING)) == {k: v for k, v in PING.items() if k != "extra"}


def test_unknown_fingerprint_is_a_clear_error():
    data = b"\xc3\x01" + b"\x01\x02\x03\x04\x05\x06\x07\x08" + Codec("Ping").encode(PING)[10:]
    with pytest.raises(UnknownSchemaError, match="unknown writer schema fingerprint 0102030405060708"):
        Codec("Ping").decode(data)


def test_a_writer_that_cannot_be_resolved_is_refused_with_the_field_named(tmp_path):
    incompatible = copy.deepcopy(schema_json("Ping"))
    next(f for f in incompatible["fields"] if f["name"] == "lat")["type"] = "string"
    store = SchemaStore([tmp_path])
    data = Codec("Ping", store=store, reader_schema=incompatible).encode({**PING, "lat": "north"})
    with pytest.raises(IncompatibleSchemaError, match="lat: writer string cannot be read as double"):
        Codec("Ping", store=store).decode(data)


@pytest.mark.parametrize("data, message", [
    (b"", "no schema identifier"),
    (b"{\"lat\": 1}", "no schema identifier"),
    (b"\xc3\x01\xf3\x9a", "truncated single-object header"),
    (b"\x00\x00", "truncated Confluent header"),
])
def test_bytes_without_a_proper_header_are_a_clear_error(data, message):
    with pytest.raises(CorruptMessageError, match=message):
        Codec("Ping").decode(data)


def test_truncated_and_padded_bodies_are_corrupt_not_a_crash():
    good = Codec("Ping").encode(PING)
    with pytest.raises(CorruptMessageError, match="corrupt Avro body"):
        Codec("Ping").decode(good[:-5])
    with pytest.raises(CorruptMessageError, match="trailing bytes"):
        Codec("Ping").decode(good + b"\x00")
    with pytest.raises(CorruptMessageError):
        Codec("Ping").decode_many([good, good[:20]])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(min_value=0, max_value=200))
def test_random_bodies_after_a_valid_header_only_ever_raise_codec_errors(body, cut):
    codec = Codec("Ping")
    for data in (codec.encode(PING)[:10] + body, codec.encode(PING)[:cut] + body):
        try:
            out = codec.decode(data)
        except CodecError:
            continue
        assert set(out) == set(PING)


def test_encode_names_the_problem_when_a_record_does_not_fit():
    with pytest.raises(CodecError, match="Ping record does not fit"):
        Codec("Ping").encode({**PING, "source": "carrier-pigeon"})
    with pytest.raises(CodecError):
        Codec("Ping").encode({**PING, "lat": "north"})


def test_confluent_framing_carries_the_registry_id_and_decodes_both_framings():
    registry = InMemorySchemaRegistry()
    confluent = Codec("Ping", registry=registry, subject="pings-value")
    data = confluent.encode(PING)
    assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == 1
    assert confluent.decode(data) == PING
    assert confluent.decode(Codec("Ping").encode(PING)) == PING  # a reader takes both while a fleet migrates
    with pytest.raises(UnknownSchemaError, match="no schema registry is configured"):
        Codec("Ping").decode(data)


@pytest.mark.parametrize("writer, reader, problem", [
    ({"type": "record", "name": "R", "fields": []},
     {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}, "x: new reader field has no default"),
    ({"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]},
     {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}, "x: writer long cannot be read as int"),
    ({"type": "enum", "name": "E", "symbols": ["a", "b"]}, {"type": "enum", "name": "E", "symbols": ["a"]},
     "lacks symbols ['b']"),
    (["null", "string"], "string", "writer null cannot be read as string"),
])
def test_evolution_check_names_what_breaks(writer, reader, problem):
    problems = check_compatibility(writer, reader)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("writer, reader", [
    ("int", "long"), ("long", "double"), ("string", ["null", "string"]),
    ({"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]},
     {"type": "record", "name": "R", "fields": [{"name": "y", "type": "int", "default": 0}]}),
    ({"type": "enum", "name": "E", "symbols": ["a", "b"]}, {"type": "enum", "name": "E", "symbols": ["a"], "default": "a"}),
])
def test_evolution_check_accepts_the_avro_resolution_rules(writer, reader):
    assert check_compatibility(writer, reader) == []


_opt_double = st.one_of(st.none(), st.floats(allow_nan=False))
_pings = st.fixed_dictionaries({
    "device_id": st.text(max_size=20), "ts_ms": st.integers(-2 ** 63, 2 ** 63 - 1),
    "lat": st.floats(allow_nan=False), "lon": st.floats(allow_nan=False), "accuracy_m": _opt_double,
    "speed_mps": _opt_double, "heading_deg": _opt_double, "altitude_m": _opt_double, "battery": _opt_double,
    "received_ms": st.integers(-2 ** 63, 2 ** 63 - 1),
    "source": st.sampled_from(["native", "owntracks", "osmand", "replay", "simulator", "other"]),
    "extra": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
})


@settings(max_examples=300, deadline=None)
@given(_pings)
def test_the_generated_ping_encoder_writes_exactly_what_fastavro_writes(ping):
    import io

    from fastavro import schemaless_writer

    codec = Codec("Ping")
    assert codec._fast is not None  # the fast path is what the gateway uses; make sure it is the one tested
    buf = io.BytesIO()
    schemaless_writer(buf, codec._parsed, ping)
    assert codec.encode(ping) == codec._so_header + buf.getvalue()


def test_the_fast_encoder_refuses_integers_outside_an_avro_long():
    with pytest.raises(CodecError):
        Codec("Ping").encode({**PING, "ts_ms": 2 ** 64})


# Assignment carries arrays since issue 14 (eligible set, weights): it is encoded by fastavro, a few per minute.
@pytest.mark.parametrize("name", ["Ping", "Hotspot", "Activity"])
def test_every_flat_schema_gets_a_generated_encoder_identical_to_fastavro(name):
    import io

    from fastavro import schemaless_writer

    codec = Codec(name)
    assert codec._fast is not None
    buf = io.BytesIO()
    schemaless_writer(buf, codec._parsed, SAMPLES[name])
    assert codec.encode(SAMPLES[name])[10:] == buf.getvalue()
