"""Device protocol decoders, Traccar style: one real request per case, the expected ping beside it,
every decoded ping checked by the same plausibility checker."""
from __future__ import annotations

import math
from urllib.parse import parse_qsl

import pytest

from gateway.protocols import (
    KNOT_MPS, FieldError, osmand_device_id, parse_native, parse_osmand, parse_owntracks, parse_traccar_json,
    timestamp_ms, traccar_json_device_id,
)
from core.codecs import codec_for

RECEIVED_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def assert_plausible(ping: dict) -> None:
    """Physical limits every decoded ping must respect, whatever the protocol."""
    codec_for("Ping").encode(ping)  # fits the Avro contract
    assert -90 <= ping["lat"] <= 90 and -180 <= ping["lon"] <= 180
    assert 946_684_800_000 <= ping["ts_ms"] <= ping["received_ms"] + 24 * 3600 * 1000, "fix time far in the future"
    if ping["speed_mps"] is not None:
        assert 0 <= ping["speed_mps"] < 350, "faster than any patrol vehicle: units?"
    if ping["heading_deg"] is not None:
        assert 0 <= ping["heading_deg"] < 360
    if ping["accuracy_m"] is not None:
        assert 0 < ping["accuracy_m"] <= 10_000, "an impossible accuracy must be None, not a (perfect) fix"
    if ping["battery"] is not None:
        assert 0 <= ping["battery"] <= 1, "battery is a fraction"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in ping["extra"].items())


def _ping(**fields) -> dict:
    base = dict(accuracy_m=None, speed_mps=None, heading_deg=None, altitude_m=None, battery=None,
                received_ms=RECEIVED_MS, extra={})
    return {**base, **fields}


def _osmand(query: str, speed_unit: str = "kn") -> dict:
    params = dict(parse_qsl(query.lstrip("/?"), keep_blank_values=True))
    ping = parse_osmand(params, device_id=osmand_device_id(params), received_ms=RECEIVED_MS, speed_unit=speed_unit)
    assert_plausible(ping)
    return ping


# --------------------------------------------------------------------------- OsmAnd: DOMAIN.md's four examples

OSMAND_CASES = [
    ("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0",
     _ping(device_id="902064", ts_ms=1453920947000, lat=42.06288, lon=-88.23412, altitude_m=224.0, speed_mps=0.0,
           source="osmand", extra={"hdop": "6.0"})),
    ("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0",
     _ping(device_id="902064", ts_ms=1442068686579, lat=42.06288, lon=-88.23412, altitude_m=224.0, speed_mps=0.0,
           source="osmand", extra={"hdop": "6.0"})),
    ("/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0&id=353861053849681",
     _ping(device_id="353861053849681", ts_ms=1401873011000, lat=49.60688, lon=6.15788, altitude_m=384.7,
           speed_mps=0.0, source="osmand")),
    ("/?id=123456&timestamp=1377177267&location=60.0,30.0",
     _ping(device_id="123456", ts_ms=1377177267000, lat=60.0, lon=30.0, source="osmand")),
]


@pytest.mark.parametrize("query, expected", OSMAND_CASES, ids=["iso8601", "epoch-ms", "space-separated", "location"])
def test_osmand_examples_from_traccar(query, expected):
    assert _osmand(query) == expected


def test_osmand_speed_is_knots_by_default_and_other_units_on_request():
    q = "/?id=7&lat=51.5&lon=-0.1&timestamp=1700000000&speed=10"
    assert _osmand(q)["speed_mps"] == pytest.approx(10 * 0.514444, rel=1e-5)
    assert _osmand(q, "kmh")["speed_mps"] == pytest.approx(10 / 3.6)
    assert _osmand(q, "mps")["speed_mps"] == 10.0
    assert KNOT_MPS == pytest.approx(0.514444, rel=1e-5)


def test_osmand_traccar_client_full_request_maps_every_known_parameter():
    ping = _osmand("/?deviceid=pc-17&timestamp=1699999990&lat=51.50140&lon=-0.14190&speed=2.5&bearing=359.5"
                   "&altitude=31.2&accuracy=12.0&batt=87.5&charge=true&valid=true&driverUniqueId=A1")
    assert ping == _ping(device_id="pc-17", ts_ms=1699999990000, lat=51.5014, lon=-0.1419, speed_mps=2.5 * KNOT_MPS,
                         heading_deg=359.5, altitude_m=31.2, accuracy_m=12.0, battery=0.875, source="osmand",
                         extra={"charge": "true", "valid": "true", "driverUniqueId": "A1"})


def test_osmand_heading_alias_and_fix_without_time_uses_arrival():
    ping = _osmand("/?id=7&lat=51.5&lon=-0.1&heading=360")
    assert ping["heading_deg"] == 0.0
    assert ping["ts_ms"] == RECEIVED_MS and ping["extra"] == {"ts_from": "gateway"}


@pytest.mark.parametrize("query, field, problem", [
    ("/?lat=1&lon=2", "id", "required"),
    ("/?id=7&lon=2&timestamp=1700000000", "lat", "required"),
    ("/?id=7&lat=91&lon=2", "lat", "between -90 and 90"),
    ("/?id=7&lat=1&lon=abc", "lon", "must be a number"),
    ("/?id=7&location=1;2", "location", "must be 'lat,lon'"),
    ("/?id=7&lat=1&lon=2&timestamp=yesterday", "timestamp", "ISO-8601"),
    ("/?id=7&lat=1&lon=2&timestamp=1", "timestamp", "between 2000-01-01"),
    ("/?id=7&lat=1&lon=2&speed=nan", "speed", "must be a number"),
    ("/?id=7&lat=1&lon=2&batt=250", "batt", "between 0 and 100"),
])
def test_osmand_errors_name_the_parameter(query, field, problem):
    with pytest.raises(FieldError) as err:
        _osmand(query)
    assert err.value.field == field and problem in err.value.problem


# --------------------------------------------------------------------------- Traccar Client JSON body

TRACCAR_JSON = {
    "location": {
        "timestamp": "2023-11-14T22:13:10.250Z",
        "coords": {"latitude": 51.5014, "longitude": -0.1419, "accuracy": 6.5, "speed": 1.4, "heading": 271.0,
                   "altitude": 12.0},
        "is_moving": True, "odometer": 1234.5, "event": "motionchange",
        "battery": {"level": 0.52, "is_charging": False},
        "activity": {"type": "on_foot"},
    },
    "device_id": "pc-17",
}


def test_traccar_json_body_is_already_si_units():
    ping = parse_traccar_json(TRACCAR_JSON, device_id=traccar_json_device_id(TRACCAR_JSON), received_ms=RECEIVED_MS)
    assert_plausible(ping)
    assert ping == _ping(device_id="pc-17", ts_ms=1699999990250, lat=51.5014, lon=-0.1419, accuracy_m=6.5,
                         speed_mps=1.4, heading_deg=271.0, altitude_m=12.0, battery=0.52, source="osmand",
                         extra={"is_moving": "true", "odometer": "1234.5", "charge": "false", "activity": "on_foot",
                                "event": "motionchange"})


def test_traccar_json_minus_one_means_unknown():
    body = {"device_id": "x", "location": {"timestamp": "2023-11-14T22:13:10Z", "coords": {
        "latitude": 1.0, "longitude": 2.0, "speed": -1, "heading": -1, "accuracy": -1}, "battery": {"level": -1}}}
    ping = parse_traccar_json(body, device_id="x", received_ms=RECEIVED_MS)
    assert_plausible(ping)
    assert (ping["speed_mps"], ping["heading_deg"], ping["accuracy_m"], ping["battery"]) == (None, None, None, None)


def test_traccar_json_errors_name_the_nested_field():
    with pytest.raises(FieldError, match="location.coords.latitude: required"):
        parse_traccar_json({"device_id": "x", "location": {"timestamp": 1, "coords": {"longitude": 1}}},
                           device_id="x", received_ms=RECEIVED_MS)
    with pytest.raises(FieldError, match="device_id: required"):
        traccar_json_device_id({"location": {}})


# --------------------------------------------------------------------------- OwnTracks

OWNTRACKS_EXAMPLE = {"_type": "location", "acc": 15, "alt": 440, "batt": 46, "conn": "w", "lat": 46.0681247,
                     "lon": 11.1512805, "t": "u", "tid": "5t", "tst": 1551874878, "vac": 2, "vel": 0}


def test_owntracks_example_from_domain_notes():
    ping = parse_owntracks(OWNTRACKS_EXAMPLE, device_id="pc-17", received_ms=RECEIVED_MS)
    assert_plausible(ping)
    assert ping == _ping(device_id="pc-17", ts_ms=1551874878000, lat=46.0681247, lon=11.1512805, accuracy_m=15.0,
                         altitude_m=440.0, battery=0.46, speed_mps=0.0, source="owntracks",
                         extra={"conn": "w", "t": "u", "tid": "5t", "vac": "2"})


def test_owntracks_velocity_is_kmh_and_course_is_heading():
    ping = parse_owntracks({**OWNTRACKS_EXAMPLE, "vel": 36, "cog": 90, "inregions": ["Market St"]},
                           device_id="d", received_ms=RECEIVED_MS)
    assert_plausible(ping)
    assert ping["speed_mps"] == pytest.approx(10.0)
    assert ping["heading_deg"] == 90.0
    assert ping["extra"]["inregions"] == '["Market St"]'


@pytest.mark.parametrize("kind", ["transition", "waypoint", "lwt", "card"])
def test_owntracks_messages_without_a_position_are_acknowledged_without_a_ping(kind):
    assert parse_owntracks({"_type": kind, "desc": "home"}, device_id="d", received_ms=RECEIVED_MS) is None


@pytest.mark.parametrize("message, field", [
    ({"_type": "location", "lat": 1, "lon": 2}, "tst"),
    ({"_type": "location", "lat": "x", "lon": 2, "tst": 1551874878}, "lat"),
    ({"_type": "location", "lat": 1, "lon": 2, "tst": 1551874878, "batt": 146}, "batt"),
    ({"lat": 1, "lon": 2, "tst": 1551874878}, "_type"),
    ([1, 2], "body"),
])
def test_owntracks_errors_name_the_field(message, field):
    with pytest.raises(FieldError) as err:
        parse_owntracks(message, device_id="d", received_ms=RECEIVED_MS)
    assert err.value.field == field


# --------------------------------------------------------------------------- native

def test_native_ping_in_si_units_with_iso_time():
    ping = parse_native({"ts": "2023-11-14T23:13:00+01:00", "lat": 51.5, "lon": -0.1, "accuracy_m": 5,
                         "speed_mps": 1.2, "heading_deg": 10, "altitude_m": 20, "battery": 0.9,
                         "extra": {"on_duty": True, "shift": "B"}},
                        device_id="pc-17", received_ms=RECEIVED_MS)
    assert_plausible(ping)
    assert ping == _ping(device_id="pc-17", ts_ms=1699999980000, lat=51.5, lon=-0.1, accuracy_m=5.0, speed_mps=1.2,
                         heading_deg=10.0, altitude_m=20.0, battery=0.9, source="native",
                         extra={"on_duty": "true", "shift": "B"})


@pytest.mark.parametrize("ts, expected", [
    (1699999980, 1699999980000), (1699999980.5, 1699999980500), (1699999980123, 1699999980123),
    ("1699999980", 1699999980000), ("2023-11-14T22:13:00Z", 1699999980000),
    ("2023-11-14 22:13:00", 1699999980000), ("2023-11-14T22:13:00.123456+00:00", 1699999980123),
])
def test_timestamps_in_every_accepted_form(ts, expected):
    assert timestamp_ms(ts) == expected


@pytest.mark.parametrize("item, field, problem", [
    ({"lat": 1, "lon": 2}, "ts", "required"),
    ({"ts_ms": 1.5e12, "lat": 1, "lon": 2}, "ts_ms", "must be an integer"),
    ({"ts": 1699999980, "lat": True, "lon": 2}, "lat", "boolean"),
    ({"ts": 1699999980, "lat": 1, "lon": 2, "battery": 46}, "battery", "between 0 and 1"),
    ({"ts": 1699999980, "lat": 1, "lon": 2, "speed_mps": -1}, "speed_mps", "between 0 and 1000"),
    ({"ts": 1699999980, "lat": 1, "lon": 2, "speed": 3}, "speed", "unknown field"),
    ({"ts": 1699999980, "lat": 1, "lon": 2, "device_id": "someone-else"}, "device_id", "differs"),
    ({"ts": 1699999980, "lat": 1, "lon": 2, "extra": {"k": "x" * 600}}, "extra.k", "at most"),
    ({"ts": 1699999980, "lat": 1, "lon": 2, "extra": [1]}, "extra", "must be an object"),
    ("ping", "ping", "must be an object"),
])
def test_native_errors_name_the_field(item, field, problem):
    with pytest.raises(FieldError) as err:
        parse_native(item, device_id="pc-17", received_ms=RECEIVED_MS)
    assert err.value.field == field and problem in err.value.problem


def test_plausibility_checker_catches_unconverted_units():
    """The checker must be able to fail: a ping with km/h left in speed and percent battery."""
    bad = _ping(device_id="d", ts_ms=RECEIVED_MS, lat=1.0, lon=2.0, speed_mps=400.0, battery=46.0, source="native")
    with pytest.raises(AssertionError):
        assert_plausible(bad)
    assert not math.isnan(bad["lat"])


# --------------------------------------------------------------------------- impossible accuracies mean "unknown"

def test_traccar_client_accuracy_zero_is_unknown_not_a_perfect_fix():
    # What the classic Traccar Client (Android) sends for every GPS fix: accuracy=0.0.
    ping = _osmand("/?id=pc-17&timestamp=1699999990&lat=51.50140&lon=-0.14190&speed=0.0&bearing=0.0"
                   "&altitude=31.0&accuracy=0.0&batt=81.0")
    assert ping == _ping(device_id="pc-17", ts_ms=1699999990000, lat=51.5014, lon=-0.1419, speed_mps=0.0,
                         heading_deg=0.0, altitude_m=31.0, accuracy_m=None, battery=0.81, source="osmand")


@pytest.mark.parametrize("accuracy", ["0", "0.0", "-1", "-17.5", "NaN", "nan", "inf", "-Infinity", "10000.1", "1e7"])
def test_osmand_impossible_accuracy_is_unknown(accuracy):
    ping = _osmand(f"/?id=7&lat=51.5&lon=-0.1&timestamp=1700000000&accuracy={accuracy}")
    assert ping["accuracy_m"] is None


def test_osmand_hdop_is_kept_as_sent_and_never_becomes_metres():
    ping = _osmand("/?id=7&lat=51.5&lon=-0.1&timestamp=1700000000&hdop=0.0&accuracy=4.0")
    assert ping["accuracy_m"] == 4.0 and ping["extra"] == {"hdop": "0.0"}


def test_plausible_accuracies_are_kept_up_to_ten_km():
    assert _osmand("/?id=7&lat=51.5&lon=-0.1&timestamp=1700000000&accuracy=0.5")["accuracy_m"] == 0.5
    assert _osmand("/?id=7&lat=51.5&lon=-0.1&timestamp=1700000000&accuracy=10000")["accuracy_m"] == 10_000.0


def test_osmand_accuracy_that_is_not_a_number_is_still_a_field_error():
    with pytest.raises(FieldError) as err:
        _osmand("/?id=7&lat=51.5&lon=-0.1&timestamp=1700000000&accuracy=good")
    assert err.value.field == "accuracy"


@pytest.mark.parametrize("acc", [0, -1, 25_000])
def test_owntracks_impossible_acc_is_unknown(acc):
    message = {"_type": "location", "acc": acc, "alt": 440, "batt": 46, "conn": "w", "lat": 46.0681247,
               "lon": 11.1512805, "t": "u", "tid": "5t", "tst": 1551874878, "vac": 2, "vel": 0}
    ping = parse_owntracks(message, device_id="pc-17", received_ms=RECEIVED_MS)
    assert_plausible(ping)
    assert ping["accuracy_m"] is None and ping["lat"] == 46.0681247


@pytest.mark.parametrize("acc", [0, 0.0, -5, 1e9, float("nan")])
def test_native_impossible_accuracy_m_is_unknown(acc):
    ping = parse_native({"ts": "2023-11-14T22:13:00Z", "lat": 51.5014, "lon": -0.1419, "accuracy_m": acc},
                        device_id="pc-17", received_ms=RECEIVED_MS)
    assert_plausible(ping)
    assert ping["accuracy_m"] is None


def test_traccar_json_accuracy_zero_is_unknown():
    body = {"device_id": "x", "location": {"timestamp": "2023-11-14T22:13:10Z", "coords": {
        "latitude": 1.0, "longitude": 2.0, "speed": 0, "heading": 90, "accuracy": 0}, "battery": {"level": 0.5}}}
    ping = parse_traccar_json(body, device_id="x", received_ms=RECEIVED_MS)
    assert_plausible(ping)
    assert ping["accuracy_m"] is None and ping["heading_deg"] == 90.0
