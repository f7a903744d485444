"""The preview map of a hot-spot build (`hotspot hotspots build --preview map.png`): a map to brief from.

It owns the drawing: hot spots as their polygons, each ranked with a numbered badge placed where it
overlaps no other badge and tied to its polygon by a leader line; the offences of the window coloured by
category; a scale bar, a north arrow, latitude/longitude ticks and a legend explaining every mark. The map
is drawn in Web Mercator (EPSG:3857) so north is up, meridians are vertical and, when a tile source is
configured (`HOTSPOT_MAP_TILE_URL`), basemap tiles sit exactly under the data; without one, or when the
tiles cannot be fetched (no internet), the map stands on its own. `draw_preview` returns what it drew, so
callers and tests can check the legend and the labels without reading pixels.
"""
from __future__ import annotations

import io
import math
import textwrap
import urllib.request
from dataclasses import dataclass, field

import numpy as np

EARTH_RADIUS_M = 6_378_137.0  # the Web Mercator sphere
WORLD_M = 2 * math.pi * EARTH_RADIUS_M
PERIOD_COLOURS = {None: "#c0142b", "day": "#e66a00", "night": "#1f3a93"}
# Offence colours: muted, distinct from the hot-spot reds, readable on white and on a pale basemap.
CATEGORY_COLOURS = ["#4e79a7", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2", "#edc948"]
OTHER_COLOUR = "#8c8c8c"
MAX_TILES = 36
TILE_TIMEOUT_S = 5.0


@dataclass
class PreviewReport:
    """What the preview shows: legend entries in order, how many hot spots got a rank label, the basemap."""

    legend: list[str] = field(default_factory=list)
    labels: int = 0
    hotspots: int = 0
    offences_shown: int = 0
    basemap: str | None = None  # the tile host, when tiles were drawn
    notes: list[str] = field(default_factory=list)


def lon_lat_to_mercator(lon_deg, lat_deg):
    lon, lat = np.radians(np.asarray(lon_deg, float)), np.radians(np.asarray(lat_deg, float))
    return EARTH_RADIUS_M * lon, EARTH_RADIUS_M * np.log(np.tan(np.pi / 4 + lat / 2))


def mercator_to_lon_lat(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return np.degrees(x / EARTH_RADIUS_M), np.degrees(2 * np.arctan(np.exp(y / EARTH_RADIUS_M)) - np.pi / 2)


def _to_mercator(epsg: int):
    from pyproj import Transformer

    t = Transformer.from_crs(epsg, 3857, always_xy=True)
    return lambda x, y: t.transform(np.asarray(x, float), np.asarray(y, float))


def draw_preview(build, path: str, *, tile_url: str = "", max_points: int = 200_000, dpi: int = 110) -> PreviewReport:
    """Write the preview PNG of `build` (processors.hotspots.HotspotBuild) to `path`; return what was drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shapely
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    report = PreviewReport(hotspots=len(build.hotspots))
    merc = _to_mercator(build.grid.epsg)
    x, y, _ = build.points_xy
    cat, cat_names = build.points_category if build.points_category is not None else (np.zeros(len(x), int), ["offence"])
    px, py = merc(x, y)
    polys = [[np.column_stack(merc(*shapely.get_coordinates(p.exterior).T))
              for p in getattr(h.geometry_xy, "geoms", [h.geometry_xy])] for h in build.hotspots]
    if polys:
        allxy = np.vstack([ring for rings in polys for ring in rings])
        x0, y0 = allxy.min(axis=0)
        x1, y1 = allxy.max(axis=0)
    elif len(px):
        x0, y0, x1, y1 = px.min(), py.min(), px.max(), py.max()
    else:
        x0, y0, x1, y1 = -500.0, -500.0, 500.0, 500.0
    pad = max(800.0, 0.08 * max(x1 - x0, y1 - y0))
    x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    # square extent: the map fills its square axes and the scale bar reads the same both ways
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
    x0, x1, y0, y1 = cx - half, cx + half, cy - half, cy + half
    near = (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
    px, py, cat = px[near], py[near], cat[near]
    if len(px) > max_points:
        pick = np.random.default_rng(0).choice(len(px), max_points, replace=False)  # same picture each run
        px, py, cat = px[pick], py[pick], cat[pick]

    fig = plt.figure(figsize=(13.5, 10), dpi=dpi)
    ax = fig.add_axes((0.10, 0.07, 0.60, 0.86))  # room on the left for latitude ticks to 0.001 degree and their label
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    handles: list = []

    if tile_url:
        host = _draw_basemap(ax, tile_url, (x0, y0, x1, y1), report)
        if host:
            report.basemap = host

    # Offences by category, most frequent first; beyond six colours the rest share grey.
    codes, counts = np.unique(cat, return_counts=True)
    order = codes[np.argsort(-counts, kind="stable")]
    size = 3 if len(px) > 20_000 else 7 if len(px) > 2_000 else 14
    for k, code in enumerate(order):
        inside = cat == code
        colour = CATEGORY_COLOURS[k] if k < len(CATEGORY_COLOURS) else OTHER_COLOUR
        name = cat_names[int(code)] if int(code) < len(cat_names) else "other"
        if k >= len(CATEGORY_COLOURS):
            name = "other categories"
            inside = np.isin(cat, order[k:])
        # above the hot spots' fill: what happened inside a hot spot is the point of the map
        ax.scatter(px[inside], py[inside], s=size, c=colour, alpha=0.7, linewidths=0, zorder=5, rasterized=True)
        handles.append(Line2D([], [], marker="o", linestyle="", markersize=5, markerfacecolor=colour,
                              markeredgewidth=0, label=textwrap.fill(f"offence: {name} ({int(inside.sum()):,} in view)", 40,
                                                    subsequent_indent="  ")))
        if k >= len(CATEGORY_COLOURS):
            break
    report.offences_shown = int(len(px))

    # Hot spots: their polygons, outlined so a 150 m cell stays visible on a force-wide map.
    for h, rings in zip(build.hotspots, polys):
        colour = PERIOD_COLOURS.get(h.period, PERIOD_COLOURS[None])
        for ring in rings:
            ax.fill(ring[:, 0], ring[:, 1], facecolor=colour, alpha=0.4, edgecolor="none", zorder=4)
            # the outline again over the offences, so a cell stays visible inside a dense cloud of points
            ax.plot(ring[:, 0], ring[:, 1], color=colour, linewidth=2.2, zorder=6)
    for period, colour in PERIOD_COLOURS.items():
        if any(h.period == period for h in build.hotspots):
            what = "hot spot (cell polygon)" + (f", {period} ranking" if period else "")
            handles.insert(0, Patch(facecolor=colour, alpha=0.5, edgecolor=colour, linewidth=1.8, label=what))

    report.labels = _place_rank_badges(fig, ax, build.hotspots, polys)
    if build.hotspots:
        handles.insert(sum(1 for p in PERIOD_COLOURS if any(h.period == p for h in build.hotspots)),
                       Line2D([], [], marker="o", linestyle="-", color="0.25", markersize=13, markerfacecolor="white",
                              markeredgecolor="#c0142b", linewidth=0.8,
                              label="rank by harm (1 = most), line to its hot spot"))

    _ticks_in_degrees(ax)
    scale_m = _scale_bar(ax, (x0, y0, x1, y1))
    _north_arrow(ax)
    handles.append(Line2D([], [], color="black", linewidth=3, label=f"scale bar: {_distance(scale_m)} on the ground"))
    handles.append(Line2D([], [], marker=r"$\uparrow$", linestyle="", color="black", markersize=12,
                          label="north arrow (north is up)"))
    if report.basemap:
        handles.append(Patch(facecolor="#eeeeee", edgecolor="0.6", label=f"basemap tiles: {report.basemap}"))
    legend = fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.715, 0.93), fontsize=9, frameon=True,
                        title="Legend", title_fontsize=10, borderpad=0.8, labelspacing=0.9)
    report.legend = [t.get_text() for t in legend.get_texts()]

    selection = f"{len(build.hotspots)} hot spot{'s' if len(build.hotspots) != 1 else ''} ranked by harm"
    ax.set_title(f"{selection}, offences {build.window_from:%d %b %Y} to {build.window_to:%d %b %Y}", fontsize=13,
                 loc="left", pad=10)
    ax.set_xlabel("longitude (WGS84)")
    ax.set_ylabel("latitude (WGS84)")
    footer = [f"Cells: {build.grid.shape} {build.grid.size_m:g} m in EPSG:{build.grid.epsg}; drawn in Web Mercator."]
    footer.append(f"Offences shown: {report.offences_shown:,} in view"
                  + (f" (a fixed sample of {max_points:,})" if report.offences_shown == max_points else "") + ".")
    if tile_url and not report.basemap:
        footer.append("Basemap configured but not drawn: " + "; ".join(report.notes) + ".")
    fig.text(0.72, 0.06, "\n".join(footer), fontsize=8, color="0.3", va="bottom", wrap=True)
    fig.savefig(path)
    plt.close(fig)
    return report


def _place_rank_badges(fig, ax, hotspots, polys) -> int:
    """A numbered badge per hot spot, in rank order, at the nearest free spot around it (display space),
    with a leader line when moved off its polygon. Returns the number of badges placed."""
    fig.canvas.draw()  # fixes the data-to-pixel transform
    to_px = ax.transData.transform
    to_data = ax.transData.inverted().transform
    bbox = ax.get_window_extent()
    radius_px = 10.0
    taken: list[tuple[float, float]] = []  # badge centres, pixels
    anchors_px = []
    for rings in polys:
        ring = rings[0]
        anchors_px.append(to_px(np.array([[ring[:, 0].mean(), ring[:, 1].mean()]]))[0])
    placed = 0
    for h, anchor in zip(hotspots, anchors_px):
        # Candidates on rings around the hot spot, never on it (the badge would hide the polygon), up and
        # right first; a badge keeps clear of other badges and of every hot spot.
        spot = None
        for ring_k in range(1, 8):
            ring_r = 2.2 * radius_px * ring_k
            for a_k in range(16):
                a = math.pi / 4 + a_k * math.pi / 8
                c = anchor + ring_r * np.array([math.cos(a), math.sin(a)])
                inside = bbox.x0 + radius_px < c[0] < bbox.x1 - radius_px and bbox.y0 + radius_px < c[1] < bbox.y1 - radius_px
                clear = all(math.hypot(c[0] - t[0], c[1] - t[1]) >= 2.2 * radius_px for t in taken) and \
                    all(math.hypot(c[0] - p[0], c[1] - p[1]) >= 1.5 * radius_px for p in anchors_px)
                if inside and clear:
                    spot = c
                    break
            if spot is not None:
                break
        if spot is None:
            continue
        taken.append((float(spot[0]), float(spot[1])))
        colour = PERIOD_COLOURS.get(h.period, PERIOD_COLOURS[None])
        sx, sy = to_data(np.array([spot]))[0]
        ax_, ay_ = to_data(np.array([anchor]))[0]
        ax.plot([ax_, sx], [ay_, sy], color="0.2", linewidth=0.9, zorder=5)
        ax.annotate(str(h.rank), (sx, sy), ha="center", va="center", fontsize=8, weight="bold", color="black", zorder=7,
                    bbox=dict(boxstyle="circle,pad=0.25", facecolor="white", edgecolor=colour, linewidth=1.5))
        placed += 1
    return placed


def _nice(value: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above `value`."""
    p = 10 ** math.floor(math.log10(value))
    return max(m * p for m in (1, 2, 5) if m * p <= value)


def _distance(m: float) -> str:
    return f"{m / 1000:g} km" if m >= 1000 else f"{m:g} m"


def _scale_bar(ax, extent) -> float:
    """A bar of a round ground distance, about a fifth of the width, at the lower left; returns its length in m."""
    x0, y0, x1, y1 = extent
    _, lat = mercator_to_lon_lat((x0 + x1) / 2, (y0 + y1) / 2)
    k = 1 / math.cos(math.radians(float(lat)))  # Mercator metres per ground metre at this latitude
    ground_m = _nice((x1 - x0) / k / 5)
    length = ground_m * k
    bx, by = x0 + 0.04 * (x1 - x0), y0 + 0.04 * (y1 - y0)
    ax.fill([bx - 0.01 * (x1 - x0), bx + length + 0.01 * (x1 - x0), bx + length + 0.01 * (x1 - x0),
             bx - 0.01 * (x1 - x0)], [by - 0.015 * (y1 - y0)] * 2 + [by + 0.05 * (y1 - y0)] * 2,
            facecolor="white", alpha=0.8, edgecolor="none", zorder=8)
    ax.plot([bx, bx + length], [by, by], color="black", linewidth=4, solid_capstyle="butt", zorder=9)
    ax.plot([bx, bx + length / 2], [by, by], color="white", linewidth=2, solid_capstyle="butt", zorder=9)
    ax.text(bx + length / 2, by + 0.012 * (y1 - y0), _distance(ground_m), ha="center", va="bottom", fontsize=9,
            zorder=9)
    return ground_m


def _north_arrow(ax) -> None:
    ax.annotate("N", xy=(0.95, 0.95), xytext=(0.95, 0.86), xycoords="axes fraction", ha="center", va="center",
                fontsize=12, weight="bold", zorder=9,
                arrowprops=dict(arrowstyle="-|>", color="black", linewidth=1.5),
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))


def _ticks_in_degrees(ax) -> None:
    """Round longitudes and latitudes as ticks (exact in Mercator: meridians vertical, parallels horizontal)."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    (lon0, lon1), (lat0, lat1) = mercator_to_lon_lat([x0, x1], [y0, y1])
    for lo, hi, axis, setter in ((lon0, lon1, "lon", ax.set_xticks), (lat0, lat1, "lat", ax.set_yticks)):
        step = _nice((hi - lo) / 4)
        values = np.arange(math.ceil(lo / step) * step, hi, step)
        digits = max(0, -math.floor(math.log10(step)))
        if axis == "lon":
            pos, _ = lon_lat_to_mercator(values, np.zeros_like(values))
            labels = [f"{abs(v):.{digits}f}°{'W' if v < 0 else 'E'}" for v in values]
        else:
            _, pos = lon_lat_to_mercator(np.zeros_like(values), values)
            labels = [f"{abs(v):.{digits}f}°{'S' if v < 0 else 'N'}" for v in values]
        setter(pos, labels)
    ax.tick_params(labelsize=9)
    ax.grid(color="0.85", linewidth=0.6, zorder=0)


def _draw_basemap(ax, tile_url: str, extent, report: PreviewReport) -> str | None:
    """Fetch XYZ tiles (`{z}/{x}/{y}` in the URL) covering `extent` and draw them; None when they cannot be had."""
    from urllib.parse import urlsplit

    from PIL import Image

    x0, y0, x1, y1 = extent
    zoom = max(0, min(19, int(math.floor(math.log2(WORLD_M / ((x1 - x0) / 5))))))  # about five tiles across
    n = 2 ** zoom
    tx0, tx1 = int((x0 + WORLD_M / 2) // (WORLD_M / n)), int((x1 + WORLD_M / 2) // (WORLD_M / n))
    ty0, ty1 = int((WORLD_M / 2 - y1) // (WORLD_M / n)), int((WORLD_M / 2 - y0) // (WORLD_M / n))
    if (tx1 - tx0 + 1) * (ty1 - ty0 + 1) > MAX_TILES:
        report.notes.append("too many tiles for this extent")
        return None
    size = WORLD_M / n
    try:
        for tx in range(tx0, tx1 + 1):
            for ty in range(ty0, ty1 + 1):
                url = tile_url.format(z=zoom, x=tx % n, y=ty)
                req = urllib.request.Request(url, headers={"User-Agent": "hotspot-patrol preview map"})
                with urllib.request.urlopen(req, timeout=TILE_TIMEOUT_S) as resp:
                    img = np.asarray(Image.open(io.BytesIO(resp.read())).convert("RGB"))
                left = tx * size - WORLD_M / 2
                top = WORLD_M / 2 - ty * size
                ax.imshow(img, extent=(left, left + size, top - size, top), zorder=0, interpolation="bilinear",
                          alpha=0.75)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        report.notes.append(f"basemap tiles not available ({type(exc).__name__}: {exc})"[:200])
        for im in list(ax.images):
            im.remove()
        return None
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    return urlsplit(tile_url).hostname or tile_url
