// The officer app: screens, duty, location sharing and the activity log (issue 14).
//
// Location is recorded only while the officer is on duty: the watch starts when the duty switch goes on
// and is cleared at once when it goes off or the officer signs out. Every fix goes into the durable outbox
// (outbox.js) first and is sent from there in batches, so offline or refused positions wait in order.
import * as api from "./api.js";
import * as outbox from "./outbox.js";
import { bearingText, distanceText } from "./geo.js";

const FLUSH_INTERVAL_MS = 5000;     // how often waiting positions are sent while on duty
const STATUS_INTERVAL_MS = 5000;    // how often the live visit state is asked for
const NEARBY_REFRESH_M = 50;        // re-list nearby hot spots after moving this far
const NEARBY_REFRESH_MS = 60000;    // ... or after this long
const POSITION_TIMEOUT_MS = 20000;

const $ = (id) => document.getElementById(id);
const state = {
  session: null,         // {user, role, device_id}
  onDuty: false,
  watchId: null,
  pos: null,             // newest fix {lat, lon, accuracy_m, ts_ms}
  assignment: null,      // newest direction
  nearbyAt: null,        // {lat, lon, ms} of the last nearby listing
  timers: [],
  recorded: 0,           // fixes recorded since the page opened
  screen: null,          // the screen shown
};

// ---- screens -------------------------------------------------------------------------------------------

const SCREENS = ["signin", "home", "direction", "activity"];

function show(name) {
  $("loading").hidden = true;
  for (const s of SCREENS) $(`screen-${s}`).hidden = s !== name;
  const signedIn = Boolean(state.session);
  $("who").hidden = $("sign-out").hidden = !signedIn;
  if (state.screen && state.screen !== name) {
    // A new screen: move focus to its heading so a screen reader announces it (and Tab starts there).
    const heading = $(`screen-${name}`).querySelector("h2");
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  state.screen = name;
}

function route() {
  if (!state.session) return show("signin");
  const hash = location.hash.replace(/^#\/?/, "");
  if (hash === "direction" && state.assignment) return show("direction");
  if (hash === "activity") { loadCategories(); return show("activity"); }
  show("home");
}

function setText(id, text) { $(id).textContent = text ?? ""; }

function offlineNotice() {
  $("net").hidden = navigator.onLine;
  setText("net", navigator.onLine ? "" : "Offline: positions and activity are kept on this phone and sent when back online.");
}

// ---- session -------------------------------------------------------------------------------------------

async function start() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch(() => undefined); // the app works without it, only not offline
  }
  addEventListener("hashchange", route);
  addEventListener("online", () => { offlineNotice(); flushNow(); });
  addEventListener("offline", offlineNotice);
  offlineNotice();
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", onSignOut);
  $("duty").addEventListener("change", onDutySwitch);
  $("take-me").addEventListener("click", onTakeMe);
  $("open-activity").addEventListener("click", () => { location.hash = "#/activity"; });
  $("activity-form").addEventListener("submit", onActivity);
  for (const b of document.querySelectorAll(".back")) b.addEventListener("click", () => { location.hash = ""; });

  try {
    const session = await api.currentSession();
    if (localStorage.getItem("hp_sign_out_pending")) {
      // Signed out while offline: finish it now rather than carry on in the old session.
      if (localStorage.getItem("hp_duty_off_unsent") === session.user) {
        await api.setDuty(false);
        localStorage.removeItem("hp_duty_off_unsent");
      }
      await api.signOut();
      localStorage.removeItem("hp_sign_out_pending");
      localStorage.removeItem("hp_session");
      throw new api.ApiError(401, null);
    }
    await signedIn(session);
  } catch (err) {
    const remembered = localStorage.getItem("hp_session");
    if (err.status === 0 && remembered) {
      await signedIn(JSON.parse(remembered), { offline: true }); // opened with no network: the shell still works
    } else {
      state.session = null;
      route();
    }
  }
}

async function signedIn(session, { offline = false } = {}) {
  state.session = { user: session.user, role: session.role, device_id: session.device_id };
  localStorage.setItem("hp_session", JSON.stringify(state.session));
  setText("who", session.user);
  dutyNote();
  if (session.role !== "officer") {
    setText("take-me-error", "This app is for officers: your role cannot take directions.");
  }
  route();
  state.timers.push(setInterval(pollStatus, STATUS_INTERVAL_MS), setInterval(flushNow, FLUSH_INTERVAL_MS));
  pollStatus();
  updateOutbox();
  if (offline) {
    // Opened with no network while on duty (a reload in a dead spot): keep recording, as before the reload.
    if (localStorage.getItem("hp_on_duty") === session.user) startSharing();
    return;
  }
  loadCategories(); // now, so the activity log works later even if the phone is offline then
  try {
    if (localStorage.getItem("hp_duty_off_unsent") === session.user) {
      // Went off duty while offline, then the page was reloaded: the officer's "off" stands.
      await api.setDuty(false);
      localStorage.removeItem("hp_duty_off_unsent");
    }
    const duty = await api.getDuty();
    if (duty.on_duty) startSharing();
    else localStorage.removeItem("hp_on_duty");
  } catch (err) { /* shown as off duty; the switch says so */ }
  flushNow();
}

async function onSignIn(event) {
  event.preventDefault();
  setText("signin-error", "");
  const name = $("signin-name").value.trim();
  const secret = $("signin-secret").value;
  try {
    const session = await api.signIn(name, secret);
    $("signin-secret").value = "";
    location.hash = "";
    await signedIn(session);
  } catch (err) {
    setText("signin-error", err.status === 401 ? "Name or password not recognised."
      : err.status === 429 ? "Too many attempts: wait a minute and try again."
      : err.status === 0 ? "No connection: signing in needs the network." : `Sign-in failed (${err.message}).`);
  }
}

async function onSignOut() {
  const wasOnDuty = state.onDuty;
  stopSharing(); // at once, before anything that waits on the network
  await flushNow(); // what cannot go now stays in the outbox for this user's next sign-in
  if (wasOnDuty) {
    try { await api.setDuty(false); } catch (err) {
      localStorage.setItem("hp_duty_off_unsent", state.session.user); // told at the next start online
    }
  }
  try {
    await api.signOut();
    localStorage.removeItem("hp_sign_out_pending");
  } catch (err) {
    // The HttpOnly cookie can only be ended by the server: remembered, and done at the next start.
    if (err.status !== 401) localStorage.setItem("hp_sign_out_pending", "1");
  }
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  state.session = null;
  state.assignment = null;
  localStorage.removeItem("hp_session");
  $("visit").hidden = true;
  location.hash = "";
  route();
}

// ---- duty and location ---------------------------------------------------------------------------------

function dutyNote() {
  $("duty").checked = state.onDuty;
  $("duty").dataset.watching = String(state.watchId !== null); // whether the location watch runs (read by tests)
  setText("duty-note", state.onDuty
    ? "On duty: your location is shared with your force while this is on. Turn it off to stop at once."
    : "Off duty: your location is not shared.");
  setText("nearby-note", state.onDuty ? (state.pos ? "" : "Finding your position…") : "Go on duty to see the hot spots near you.");
}

async function onDutySwitch() {
  const wanted = $("duty").checked;
  setText("geo-error", "");
  if (!wanted) {
    stopSharing();
    try { await api.setDuty(false); } catch (err) {
      // Sharing has stopped on the phone already; the server is told when back (even after a reload).
      localStorage.setItem("hp_duty_off_unsent", state.session.user);
    }
    return;
  }
  try {
    await api.setDuty(true, state.pos);
  } catch (err) {
    $("duty").checked = false;
    setText("geo-error", err.status === 0 ? "No connection: going on duty needs the network."
      : err.status === 403 ? "Your role cannot go on duty in this app: it is for officers."
      : `Could not go on duty (${err.message}).`);
    return;
  }
  startSharing();
}

function startSharing() {
  state.onDuty = true;
  localStorage.setItem("hp_on_duty", state.session.user);
  dutyNote();
  if (!("geolocation" in navigator)) {
    setText("geo-error", "This browser cannot share its location.");
    return;
  }
  if (state.watchId === null) {
    state.watchId = navigator.geolocation.watchPosition(onPosition, onPositionError,
      { enableHighAccuracy: true, maximumAge: 0, timeout: POSITION_TIMEOUT_MS });
  }
  dutyNote();
}

function stopSharing() {
  if (state.watchId !== null) navigator.geolocation.clearWatch(state.watchId);
  state.watchId = null;
  state.onDuty = false;
  localStorage.removeItem("hp_on_duty");
  dutyNote();
}

function fix(position) {
  const c = position.coords;
  const ping = { ts_ms: Math.round(position.timestamp || Date.now()), lat: c.latitude, lon: c.longitude };
  if (Number.isFinite(c.accuracy) && c.accuracy > 0) ping.accuracy_m = c.accuracy;
  if (Number.isFinite(c.speed) && c.speed >= 0) ping.speed_mps = c.speed;
  if (Number.isFinite(c.heading) && c.heading >= 0 && c.heading <= 360) ping.heading_deg = c.heading;
  if (Number.isFinite(c.altitude)) ping.altitude_m = c.altitude;
  return ping;
}

async function onPosition(position) {
  if (!state.onDuty || !state.session) return; // a fix that raced the switch going off is not recorded
  const ping = fix(position);
  state.pos = ping;
  setText("geo-error", "");
  await outbox.add(state.session.user, "ping", ping);
  state.recorded += 1;
  $("outbox").dataset.recorded = String(state.recorded); // how many fixes this page recorded (read by the tests)
  updateOutbox();
  dutyNote();
  const last = state.nearbyAt;
  if (!last || Date.now() - last.ms > NEARBY_REFRESH_MS || metresBetween(last, ping) > NEARBY_REFRESH_M) refreshNearby();
}

function onPositionError(err) {
  setText("geo-error", err.code === 1
    ? "Location is blocked for this site: allow it in the browser settings to share your position on duty."
    : "Your position is not available yet; still trying.");
}

function metresBetween(a, b) {
  const r = 6371000, rad = Math.PI / 180;
  const x = (b.lon - a.lon) * rad * Math.cos(((a.lat + b.lat) / 2) * rad), y = (b.lat - a.lat) * rad;
  return Math.hypot(x, y) * r;
}

function currentPosition() {
  if (state.pos) return Promise.resolve(state.pos);
  return new Promise((resolve, reject) => navigator.geolocation.getCurrentPosition(
    (p) => resolve(fix(p)), reject, { enableHighAccuracy: true, timeout: POSITION_TIMEOUT_MS }));
}

// ---- the outbox ----------------------------------------------------------------------------------------

async function flushNow() {
  if (!state.session) return;
  const user = state.session.user;
  try {
    if (localStorage.getItem("hp_duty_off_unsent") === user) {
      await api.setDuty(false);
      localStorage.removeItem("hp_duty_off_unsent");
    }
    await outbox.flush(user, { batch: api.sendPings, activity: api.sendActivity },
      (item, err) => console.warn("the server refused an item for good; dropped", item.kind, err.body));
  } catch (err) {
    if (err.status === 401) {
      setText("take-me-error", "Your session has ended: sign in again (nothing recorded is lost).");
    }
  } finally {
    updateOutbox();
  }
}

async function updateOutbox() {
  if (!state.session) return;
  const { pings, activities } = await outbox.counts(state.session.user);
  const parts = [];
  if (pings) parts.push(`${pings} position${pings === 1 ? "" : "s"}`);
  if (activities) parts.push(`${activities} activit${activities === 1 ? "y" : "ies"}`);
  setText("outbox", parts.length ? `Waiting to send: ${parts.join(" and ")}.` : "");
  $("outbox").dataset.pending = String(pings + activities);
}

// ---- hot spots, directions, status ---------------------------------------------------------------------

async function refreshNearby() {
  const pos = state.pos;
  if (!pos) return;
  state.nearbyAt = { lat: pos.lat, lon: pos.lon, ms: Date.now() };
  let data;
  try { data = await api.nearby(pos.lat, pos.lon); } catch (err) { return; }
  const list = $("nearby");
  list.replaceChildren();
  for (const h of data.hotspots) {
    const li = document.createElement("li");
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = `${h.name} (${h.id})`;
    const meta = document.createElement("div");
    meta.className = "meta";
    const today = h.minutes_today == null ? `target ${h.target_minutes} minutes today (time so far not known yet)`
      : `${Math.floor(h.minutes_today)} of ${h.target_minutes} minutes today`;
    meta.textContent = `${distanceText(h.distance_m)} ${bearingText(h.bearing_deg)} · ${today}`;
    const brief = document.createElement("div");
    brief.textContent = h.briefing_first_line || "";
    li.append(name, meta, brief);
    li.dataset.hotspot = h.id;
    list.append(li);
  }
  setText("nearby-note", data.hotspots.length ? "" : "No hot spots near you.");
}

async function onTakeMe() {
  const button = $("take-me");
  setText("take-me-error", "");
  if (!state.onDuty) {
    // Directions send the position: only on duty, like every other position.
    setText("take-me-error", "Go on duty first: directions use your position.");
    return;
  }
  button.disabled = true;
  try {
    const pos = await currentPosition();
    const d = await api.direction(pos);
    state.assignment = d;
    showDirection(d);
    location.hash = "#/direction";
  } catch (err) {
    setText("take-me-error", err.code === 1 ? "Directions need your position: allow location for this site."
      : err.status === 409 ? "No hot spot near you needs a patrol right now."
      : err.status === 403 ? "Your role cannot take directions."
      : err.status === 0 ? "No connection: directions need the network." : `No direction (${err.message}).`);
  } finally {
    button.disabled = false;
  }
}

function showDirection(d) {
  const h = d.hotspot;
  setText("dir-name", `${h.name} (${h.id})`);
  setText("dir-distance", distanceText(d.distance_m));
  setText("dir-bearing", bearingText(d.bearing_deg));
  setText("dir-target", String(h.target_minutes));
  setText("dir-briefing", h.briefing);
  setText("dir-why", h.why);
  $("dir-geo").href = d.geo_uri;
  $("dir-map").href = d.map_url;
  $("screen-direction").dataset.assignment = d.assignment_id;
}

async function pollStatus() {
  if (!state.session || document.hidden) return;
  let s;
  try { s = await api.myStatus(); } catch (err) {
    // Keep the last known visit on screen, but say it may be out of date.
    if (!$("visit").hidden && !$("visit").textContent.endsWith(")")) $("visit").textContent += " (last known: no connection)";
    return;
  }
  const v = s.visit;
  $("visit").hidden = !v;
  if (v) {
    setText("visit", `In ${v.hotspot_id} (${v.name}) for ${Math.floor(v.minutes_so_far)} of ${v.target_minutes} minutes`);
    $("visit").dataset.hotspot = v.hotspot_id;
  }
  if (s.assignment && !state.assignment) state.assignment = s.assignment;
}

// ---- activity ------------------------------------------------------------------------------------------

async function loadCategories() {
  const select = $("activity-kind");
  let cats;
  try {
    cats = (await api.categories()).categories;
    localStorage.setItem("hp_categories", JSON.stringify(cats));
  } catch (err) {
    cats = JSON.parse(localStorage.getItem("hp_categories") || "[]"); // offline: the last list this phone saw
  }
  const chosen = select.value;
  select.replaceChildren(...cats.map((c) => new Option(c.label, c.id)));
  if (chosen) select.value = chosen;
}

async function onActivity(event) {
  event.preventDefault();
  if (!state.session) return;
  const activity = {
    client_id: outbox.newId(), ts: new Date().toISOString(), kind: $("activity-kind").value,
    note: $("activity-note").value.trim(),
  };
  if (state.pos) { activity.lat = state.pos.lat; activity.lon = state.pos.lon; }
  if (state.assignment) activity.assignment_id = state.assignment.assignment_id;
  await outbox.add(state.session.user, "activity", activity);
  $("activity-note").value = "";
  setText("activity-result", navigator.onLine ? "Saved. Sending…" : "Saved on this phone: it is sent when back online.");
  await flushNow();
  const { activities } = await outbox.counts(state.session.user);
  if (!activities) setText("activity-result", "Saved and sent.");
}

start();
