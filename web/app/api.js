// The only module that calls fetch. Each endpoint of the officer API (contract: issue 14) is one function
// returning plain data; failures are thrown as ApiError with the HTTP status (0: no answer, i.e. offline).

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.error)) || (status ? `HTTP ${status}` : "no connection"));
    this.status = status;
    this.body = body;
  }
  // Worth retrying later: no answer, the server busy or briefly unable (Kafka away), or rate limited.
  get transient() { return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500; }
}

async function call(method, path, body, headers = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrfToken) init.headers["X-CSRF-Token"] = csrfToken;
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, null);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

function remember(session) {
  if (session && session.csrf_token) csrfToken = session.csrf_token;
  return session;
}

export const signIn = (name, secret) => call("POST", "/v1/session", { name, secret }).then(remember);
export const currentSession = () => call("GET", "/v1/session").then(remember);
export async function signOut() {
  try { await call("DELETE", "/v1/session"); } finally { csrfToken = null; }
}
export const getDuty = () => call("GET", "/v1/duty");
export const setDuty = (onDuty, pos) => call("POST", "/v1/duty", { on_duty: onDuty, ...(pos ? { lat: pos.lat, lon: pos.lon } : {}) });
export const nearby = (lat, lon, limit = 10) =>
  call("GET", `/v1/hotspots/nearby?lat=${encodeURIComponent(lat)}&lon=${encodeURIComponent(lon)}&limit=${limit}`);
export const direction = (pos) =>
  call("POST", "/v1/directions", { lat: pos.lat, lon: pos.lon, ...(pos.accuracy_m != null ? { accuracy_m: pos.accuracy_m } : {}) });
export const myStatus = () => call("GET", "/v1/me/status");
export const categories = () => call("GET", "/v1/activity/categories");
// One batch of pings; the key makes a resend after a lost answer harmless (the server answers it again).
export const sendPings = (pings, idempotencyKey) => call("POST", "/v1/pings", pings, { "Idempotency-Key": idempotencyKey });
// client_id in the body is the activity's idempotency key.
export const sendActivity = (activity) => call("POST", "/v1/activity", activity);
