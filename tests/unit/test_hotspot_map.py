"""The preview map: written, standing alone offline, every mark in the legend, one rank label per hot spot."""
from __future__ import annotations

import io
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from processors.hotspots import BuildOptions, build_hotspots
from formats.preview_map import draw_preview, lon_lat_to_mercator, mercator_to_lon_lat
from tests.unit.test_hotspots_build import HARM, concentrated


@pytest.fixture(scope="module")
def build():
    return build_hotspots(concentrated(), HARM, BuildOptions(top_n=8))


def test_the_map_is_written_alone_with_every_mark_explained(build, tmp_path):
    png = tmp_path / "map.png"
    drawn = draw_preview(build, str(png))
    image = Image.open(png)
    assert image.format == "PNG" and image.size == (1485, 1100)
    assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 50  # not a blank canvas
    assert drawn.hotspots == 8 and drawn.labels == 8  # one rank badge per hot spot, none dropped for lack of room
    legend = [" ".join(e.split()) for e in drawn.legend]  # long entries are wrapped onto two lines
    counts = [int(m.group(1)) for e in legend if (m := re.search(r"\((\d+) in view\)$", e))]
    assert [re.sub(r" \(\d+ in view\)$", "", e) for e in legend] == [
        "hot spot (cell polygon)", "rank by harm (1 = most), line to its hot spot",
        "offence: Violence with injury", "offence: Robbery", "scale bar: 200 m on the ground",
        "north arrow (north is up)"]
    assert counts[1] == 40 and sum(counts) == drawn.offences_shown  # all robberies are in the four top cells
    assert drawn.basemap is None and drawn.notes == []


def test_crowded_hot_spots_each_get_a_label(tmp_path):
    # 30 adjacent cells: the badges must fan out rather than pile up
    spec_build = build_hotspots(concentrated(), HARM, BuildOptions(top_n=30))
    drawn = draw_preview(spec_build, str(tmp_path / "crowded.png"))
    assert drawn.labels == drawn.hotspots == 30


class _Tiles(BaseHTTPRequestHandler):
    def do_GET(self):
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (230, 220, 200)).save(buf, "PNG")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(buf.getvalue())

    def log_message(self, *args):
        pass


def test_a_configured_tile_source_draws_a_basemap_and_a_dead_one_leaves_the_map_standing(build, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png"
        drawn = draw_preview(build, str(tmp_path / "base.png"), tile_url=url)
        assert drawn.basemap == "127.0.0.1" and drawn.legend[-1] == "basemap tiles: 127.0.0.1"
    finally:
        server.shutdown()
    dead = draw_preview(build, str(tmp_path / "dead.png"), tile_url=url)  # nobody listens any more
    assert dead.basemap is None and dead.notes and dead.notes[0].startswith("basemap tiles not available")
    assert dead.labels == 8 and (tmp_path / "dead.png").stat().st_size > 0


def test_mercator_round_trips_degrees():
    x, y = lon_lat_to_mercator([-1.2577, 0.5], [51.752, -33.9])
    lon, lat = mercator_to_lon_lat(x, y)
    assert np.allclose(lon, [-1.2577, 0.5]) and np.allclose(lat, [51.752, -33.9])
