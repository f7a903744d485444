// The control room page: a Leaflet map fed by /v1/live (server-sent events).
// State lives in `room` (exposed as window.controlRoom for the browser tests and the benchmark):
// hot spots and officers keyed by id, the ticker, and the ids of every event received, so a test
// can check that a resumed feed left no gap. Officer markers are canvas circle markers
// (preferCanvas): a thousand moving markers redraw as one canvas, not a thousand DOM nodes.
"use strict";
(function () {
  const config = JSON.parse(document.body.dataset.config || "{}");
  const room = window.controlRoom = {
    hotspots: {}, officers: {}, ticker: [], seqs: [], instance: null, lastEventId: null, firstTs: {}, insideAt: {},
    snapshots: 0, connects: 0, shownAt: {}, filters: {team: "", hotspot: ""},
  };
  const TICKER_MAX = 300;

  // ------------------------------------------------------------------ map
  const map = L.map("map", {preferCanvas: true, zoomControl: true, attributionControl: true});
  map.setView([51.5, -0.12], 13);
  L.control.scale({imperial: false}).addTo(map);
  const legend = L.control({position: "bottomright"});
  legend.onAdd = () => document.getElementById("legend");
  legend.addTo(map);
  map.attributionControl.setPrefix(false);
  if (config.tileUrl) {
    const tiles = L.tileLayer(config.tileUrl, {attribution: config.attribution || "", maxZoom: 19});
    let failed = 0;
    tiles.on("tileerror", () => {
      failed += 1;
      if (failed === 1) map.attributionControl.addAttribution('<span class="tiles-note">basemap unreachable: hot spots and officers still shown</span>');
    });
    tiles.addTo(map);
  }
  const hotspotLayer = L.layerGroup().addTo(map);
  const officerLayer = L.layerGroup().addTo(map);
  let pathLayer = null;
  let fitted = false;

  function dosageClass(h) {
    if (h.arm === "control") return "control";
    const target = h.target_minutes || 0, minutes = h.minutes_today || 0;
    if (minutes <= 0) return "d0";
    if (!target) return "d2";
    const share = minutes / target;
    return share >= 1 ? "d3" : share >= 0.5 ? "d2" : "d1";
  }
  const COLOURS = {d0: "#d7301f", d1: "#fc8d59", d2: "#fee08b", d3: "#1a9850", control: "#bbbbbb"};

  function hotspotStyle(h) {
    const cls = dosageClass(h);
    const hidden = room.filters.hotspot && room.filters.hotspot !== h.id;
    return {color: cls === "control" ? "#666" : "#333", weight: hidden ? 0.5 : 1.5, dashArray: cls === "control" ? "4 3" : null,
            fillColor: COLOURS[cls], fillOpacity: hidden ? 0.08 : 0.45, opacity: hidden ? 0.3 : 1};
  }

  function hotspotLabel(h) {
    const target = h.target_minutes ? ` / ${h.target_minutes} min` : " min";
    const arm = h.arm ? ` (${h.arm})` : "";
    return `${esc(h.name || h.id)}${arm}: ${(h.minutes_today || 0).toFixed(1)}${target} today`;
  }

  function upsertHotspot(h) {
    const known = room.hotspots[h.id] || {};
    const merged = Object.assign(known, h);
    room.hotspots[h.id] = merged;
    if (h.geometry && !merged.layer) {
      merged.layer = L.geoJSON(h.geometry, {style: hotspotStyle(merged)}).addTo(hotspotLayer);
      merged.layer.on("click", () => showHotspot(h.id));
      merged.layer.bindTooltip(() => hotspotLabel(room.hotspots[h.id]), {sticky: true});
      addOption("hotspot-filter", h.id, h.name || h.id);
    }
    if (merged.layer) merged.layer.setStyle(hotspotStyle(merged));
  }

  function removeHotspot(id) {
    const h = room.hotspots[id];
    if (h && h.layer) hotspotLayer.removeLayer(h.layer);
    delete room.hotspots[id];
  }

  function officerVisible(o) {
    if (room.filters.team && o.team !== room.filters.team) return false;
    if (room.filters.hotspot && o.hotspot_id !== room.filters.hotspot && o.assignment_hotspot_id !== room.filters.hotspot) return false;
    return true;
  }

  function officerStyle(o) {
    const inside = !!o.hotspot_id;
    return {radius: o.mode === "vehicle" ? 7 : 5, weight: 2, color: o.signal_lost ? "#888" : inside ? "#08306b" : "#2171b5",
            fillColor: o.signal_lost ? "#ddd" : inside ? "#fdd835" : "#ffffff", fillOpacity: 0.95};
  }

  function officerLabel(o) {
    const where = o.hotspot_id ? `inside ${esc(hotspotName(o.hotspot_id))}` : "outside hot spots";
    const lost = o.signal_lost ? ", signal lost" : "";
    return `${esc(o.user || o.device_id)}: ${where}, ${o.mode}, ${ageText(o)}${lost}`;
  }

  function upsertOfficer(o) {
    const known = room.officers[o.device_id];
    const merged = Object.assign(known || {}, o);
    if (o.ts_ms) merged.seenMs = Date.now();  // age_s was the fix's age when the server sent it
    if (o.ts_ms && !(o.device_id in room.firstTs)) room.firstTs[o.device_id] = o.ts_ms;
    room.officers[o.device_id] = merged;
    if (!merged.marker) {
      merged.marker = L.circleMarker([o.lat, o.lon], officerStyle(merged));
      merged.marker.on("click", () => showOfficer(o.device_id));
      merged.marker.bindTooltip(() => officerLabel(room.officers[o.device_id]));
    } else {
      merged.marker.setLatLng([merged.lat, merged.lon]);
      merged.marker.setStyle(officerStyle(merged));
    }
    const visible = officerVisible(merged);
    if (visible && !officerLayer.hasLayer(merged.marker)) officerLayer.addLayer(merged.marker);
    if (!visible && officerLayer.hasLayer(merged.marker)) officerLayer.removeLayer(merged.marker);
    if (o.received_ms) room.shownAt[o.device_id] = {received_ms: o.received_ms, shown_ms: Date.now(), hotspot_id: merged.hotspot_id};
    if (o.team) addOption("team-filter", o.team, o.team);
    officersDirty = true;
  }

  function removeOfficer(id) {
    const o = room.officers[id];
    if (o && o.marker) officerLayer.removeLayer(o.marker);
    delete room.officers[id];
    officersDirty = true;
  }

  // ------------------------------------------------------------------ ticker
  function tickerText(kind, d) {
    const who = esc(d.user || d.device_id || "");
    const where = d.hotspot_id ? esc(hotspotName(d.hotspot_id, d.hotspot_name)) : "";
    switch (kind) {
      case "patrol":
        if (d.type === "visit_started") return `${who} entered ${where}`;
        if (d.type === "visit_ended") return `${who} left ${where} after ${minutes(d.dwell_s)}${d.end_reason === "signal_lost" ? " (signal lost)" : ""}`;
        if (d.type === "stop_started") return `${who} stopped in ${where}`;
        if (d.type === "stop_ended") return `${who} ended a ${minutes(d.duration_s)} stop in ${where}`;
        return `${who}: ${esc(d.type)}`;
      case "assignment": return `${who} assigned to ${where}${d.arm ? " (" + esc(d.arm) + ")" : ""}`;
      case "activity": return `${who}: ${esc(String(d.kind).replace("_", " "))}${d.note ? " - " + esc(d.note) : ""}`;
      case "signal_lost": return `${who}: signal lost${where ? " in " + where : ""}`;
      case "officer_off": return `${who} went off duty`;
      default: return null;
    }
  }

  function addTicker(kind, d, ts) {
    const text = tickerText(kind, d);
    if (!text) return;
    const item = {kind, type: d.type || kind, device_id: d.device_id, hotspot_id: d.hotspot_id || null, team: d.team || null,
                  text, ts_ms: ts || d.ts_ms || Date.now(), dwell_s: d.dwell_s};
    room.ticker.unshift(item);
    if (room.ticker.length > TICKER_MAX) room.ticker.pop();
    tickerDirty = true;
  }

  function renderTicker() {
    const list = document.getElementById("ticker");
    const items = room.ticker.filter(t => (!room.filters.team || t.team === room.filters.team) &&
                                          (!room.filters.hotspot || t.hotspot_id === room.filters.hotspot)).slice(0, 100);
    list.innerHTML = items.map(t => `<li data-kind="${t.type}" data-device="${esc(t.device_id || "")}"><time>${clock(t.ts_ms)}</time>${t.text}</li>`).join("");
  }

  function renderOfficers() {
    const body = document.querySelector("#officers tbody");
    const rows = Object.values(room.officers).filter(officerVisible)
      .sort((a, b) => (b.hotspot_id ? 1 : 0) - (a.hotspot_id ? 1 : 0) || String(a.device_id).localeCompare(b.device_id)).slice(0, 60);
    body.innerHTML = rows.map(o => `<tr data-device="${esc(o.device_id)}" data-inside="${esc(o.hotspot_id || "")}"><td>${esc(o.user || o.device_id)}</td>` +
      `<td>${o.hotspot_id ? "in " + esc(hotspotName(o.hotspot_id)) : o.signal_lost ? "signal lost" : "outside"}</td><td>${o.mode}</td><td>${ageText(o)}</td></tr>`).join("");
    const n = Object.keys(room.officers).length, inside = Object.values(room.officers).filter(o => o.hotspot_id).length;
    document.getElementById("counts").textContent = `${n} on duty, ${inside} in hot spots`;
  }
  document.querySelector("#officers tbody").addEventListener("click", e => {
    const row = e.target.closest("tr");
    if (row) showOfficer(row.dataset.device);
  });

  let tickerDirty = false, officersDirty = false;
  setInterval(() => {
    if (tickerDirty) { tickerDirty = false; renderTicker(); }
    officersDirty = false; renderOfficers();  // ages move on even without events
  }, 1000);

  // ------------------------------------------------------------------ the feed
  let source = null, lastSeq = null;

  function remember(e) {
    if (!e.lastEventId) return;
    room.lastEventId = e.lastEventId;
    const [instance, seq] = e.lastEventId.split(".");
    if (instance !== room.instance) { room.instance = instance; room.seqs = []; }
    lastSeq = Number(seq);
  }

  function onSnapshot(e) {
    const snap = JSON.parse(e.data);
    room.snapshots += 1;
    for (const id of Object.keys(room.officers)) removeOfficer(id);
    for (const id of Object.keys(room.hotspots)) if (!snap.hotspots.some(h => h.id === id)) removeHotspot(id);
    for (const team of snap.teams || []) addOption("team-filter", team, team);
    snap.hotspots.forEach(upsertHotspot);
    snap.officers.forEach(upsertOfficer);
    if (!room.ticker.length) (snap.recent || []).forEach(item => addTicker(item.kind, item.data));
    remember(e);
    room.snapshotSeq = lastSeq;
    if (!fitted && snap.hotspots.length) {
      const bounds = L.latLngBounds([]);
      Object.values(room.hotspots).forEach(h => h.layer && bounds.extend(h.layer.getBounds()));
      // maxZoom: a single small hot spot should still show the streets around it
      if (bounds.isValid()) { map.fitBounds(bounds.pad(0.2), {maxZoom: 16}); fitted = true; }
    }
    renderTicker(); renderOfficers();
  }

  function handler(kind, apply) {
    return e => {
      remember(e);
      room.seqs.push(lastSeq);
      const d = JSON.parse(e.data);
      apply(d);
      addTicker(kind, d);
    };
  }

  function connect() {
    const url = room.lastEventId ? `/v1/live?last_event_id=${encodeURIComponent(room.lastEventId)}` : "/v1/live";
    source = new EventSource(url);
    room.connects += 1;
    source.addEventListener("open", () => setStatus("live", "live"));
    source.addEventListener("snapshot", onSnapshot);
    source.addEventListener("position", handler("position", d => {
      upsertOfficer(d);
      if (room.lags) room.lags.push(Date.now() - d.received_ms);  // set by bench/control_room.py to measure
    }));
    source.addEventListener("officer_off", handler("officer_off", d => removeOfficer(d.device_id)));
    source.addEventListener("patrol", handler("patrol", d => {
      const o = room.officers[d.device_id];
      if (d.type === "visit_started") room.insideAt[d.device_id] = Date.now();  // for the tests' timings
      if (o && d.type === "visit_started") upsertOfficer({device_id: d.device_id, hotspot_id: d.hotspot_id});
      if (o && d.type === "visit_ended" && o.hotspot_id === d.hotspot_id) upsertOfficer({device_id: d.device_id, hotspot_id: null});
    }));
    source.addEventListener("dosage", handler("dosage", upsertHotspot));
    source.addEventListener("hotspot", handler("hotspot", d => d.retired ? removeHotspot(d.id) : upsertHotspot(d)));
    source.addEventListener("assignment", handler("assignment", d => {
      if (room.officers[d.device_id]) upsertOfficer({device_id: d.device_id, assignment_hotspot_id: d.hotspot_id});
    }));
    source.addEventListener("activity", handler("activity", () => {}));
    source.addEventListener("signal_lost", handler("signal_lost", d => {
      if (room.officers[d.device_id]) upsertOfficer({device_id: d.device_id, signal_lost: true});
    }));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an answer that was not the stream): reconnect ourselves, resuming from the last id.
        setStatus("reconnecting", "reconnecting…");
        setTimeout(connect, 2000);
      } else {
        setStatus("reconnecting", "reconnecting…");  // the browser retries with Last-Event-ID itself
      }
    });
  }

  function setStatus(state, text) {
    const el = document.getElementById("status");
    el.dataset.state = state; el.textContent = text;
  }

  // ------------------------------------------------------------------ details
  async function getJson(url) {
    const r = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!r.ok) throw new Error(`${r.status}`);
    return r.json();
  }

  async function showHotspot(id) {
    try {
      const h = await getJson(`/v1/live/hotspots/${encodeURIComponent(id)}`);
      const visits = h.visits.map(v => `<li>${esc(v.device_id)} ${clock(v.entered_ms)}–${v.exited_ms ? clock(v.exited_ms) : "now"}` +
        `${v.dwell_s != null ? ", " + minutes(v.dwell_s) : ""}</li>`).join("") || "<li>none yet</li>";
      detail(`<h3>${esc(h.name || h.id)}</h3><p data-minutes="${h.minutes_today}">${h.minutes_today.toFixed(1)} of ` +
             `${h.target_minutes ?? "?"} min today${h.arm ? " · " + esc(h.arm) : ""}</p><pre>${esc(h.briefing || "")}</pre>` +
             `<h4>Visits today</h4><ul class="visits">${visits}</ul>` +
             (h.visits_off_duty ? `<p>and ${h.visits_off_duty} by officers off duty (counted, not shown)</p>` : ""));
    } catch (err) { detail(`<p>Could not load the hot spot (${esc(err.message)})</p>`); }
  }

  async function showOfficer(deviceId) {
    try {
      const o = await getJson(`/v1/live/officers/${encodeURIComponent(deviceId)}`);
      const a = o.assignment;
      if (pathLayer) map.removeLayer(pathLayer);
      pathLayer = L.polyline(o.path.map(p => [p[1], p[2]]), {color: "#6a3d9a", weight: 3}).addTo(map);
      detail(`<h3>${esc(o.officer.user || o.officer.device_id)}</h3><p>${officerLabel(o.officer)}</p>` +
             `<p>Assignment: ${a ? esc(hotspotName(a.hotspot_id)) + " since " + clock(a.assigned_ms) : "none"}</p>` +
             `<p class="path">Path today: ${o.path.length} fixes${o.path_problem ? " (" + esc(o.path_problem) + ")" : ""}</p>`);
    } catch (err) { detail(`<p>Could not load the officer (${esc(err.message)})</p>`); }
  }

  function detail(htmlText) {
    document.getElementById("detail-body").innerHTML = htmlText;
    document.getElementById("detail").hidden = false;
  }
  document.getElementById("detail-close").addEventListener("click", () => {
    document.getElementById("detail").hidden = true;
    if (pathLayer) { map.removeLayer(pathLayer); pathLayer = null; }
  });

  // ------------------------------------------------------------------ filters and sign-out
  function addOption(selectId, value, label) {
    const select = document.getElementById(selectId);
    if ([...select.options].some(o => o.value === value)) return;
    const option = document.createElement("option");
    option.value = value; option.textContent = label;
    select.appendChild(option);
  }
  function applyFilters() {
    room.filters.team = document.getElementById("team-filter").value;
    room.filters.hotspot = document.getElementById("hotspot-filter").value;
    Object.values(room.hotspots).forEach(h => h.layer && h.layer.setStyle(hotspotStyle(h)));
    Object.values(room.officers).forEach(o => upsertOfficer({device_id: o.device_id}));
    const h = room.hotspots[room.filters.hotspot];
    if (h && h.layer) map.fitBounds(h.layer.getBounds().pad(0.5), {maxZoom: 17});
    renderTicker(); renderOfficers();
  }
  document.getElementById("team-filter").addEventListener("change", applyFilters);
  document.getElementById("hotspot-filter").addEventListener("change", applyFilters);
  document.getElementById("signout").addEventListener("click", async () => {
    try {
      const s = await getJson("/v1/session");
      await fetch("/v1/session", {method: "DELETE", credentials: "same-origin", headers: {"X-CSRF-Token": s.csrf_token || ""}});
    } finally { location.href = "/control/signin"; }
  });

  // ------------------------------------------------------------------ helpers
  function hotspotName(id, fallback) { return (room.hotspots[id] && room.hotspots[id].name) || fallback || id; }
  function minutes(s) { if (s == null) return "?"; const m = Math.floor(s / 60), r = Math.round(s % 60); return m ? `${m} min ${r} s` : `${r} s`; }
  function clock(ms) { return new Date(ms).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"}); }
  function ageText(o) {
    const since = o.seenMs ? (Date.now() - o.seenMs) / 1000 : 0;
    const age = Math.max(0, since + (o.age_s || 0));
    return age < 90 ? `${Math.round(age)} s ago` : `${Math.round(age / 60)} min ago`;
  }
  function esc(s) { return String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c])); }

  room.map = map;
  connect();
})();
