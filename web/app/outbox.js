// The durable outbox: positions and activity recorded on this device wait here (IndexedDB) until the
// server has accepted them, so nothing is lost offline, after a refusal or a closed tab, and each goes once.
//
// One object store, keyed by an increasing number, holds every item in the order it was recorded: single
// positions ("ping"), sealed position batches ("batch") and activities ("activity"). Sending takes the items
// of the signed-in user in key order and stops at the first that cannot go yet, so the server receives
// them in the order they happened. Before a run of positions is sent it is sealed, in one transaction, into
// a batch that takes the first position's key (keeping its place) with a fresh Idempotency-Key; a resend
// after a lost answer reuses that key, so the server does not publish it twice. Activities carry their own
// client_id for the same reason. Items belong to a user: another user signing in on the phone never sends them.

const DB_NAME = "hotspot-patrol";
const STORE = "outbox";
export const MAX_BATCH_PINGS = 100;

let dbPromise = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });
}

function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const open = indexedDB.open(DB_NAME, 1);
      open.onupgradeneeded = () => {
        const store = open.result.createObjectStore(STORE, { keyPath: "seq", autoIncrement: true });
        store.createIndex("user", "user");
      };
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }
  return dbPromise;
}

export function newId() {
  return crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function add(user, kind, body) {
  const tx = (await db()).transaction(STORE, "readwrite");
  tx.objectStore(STORE).add({ user, kind, body, created_ms: Date.now() });
  await done(tx);
}

// The user's items in the order they were recorded.
export async function pending(user) {
  const tx = (await db()).transaction(STORE, "readonly");
  const items = await request(tx.objectStore(STORE).index("user").getAll(user));
  return items.sort((a, b) => a.seq - b.seq);
}

export async function counts(user) {
  let pings = 0, activities = 0;
  for (const item of await pending(user)) {
    if (item.kind === "ping") pings += 1;
    else if (item.kind === "batch") pings += item.body.length;
    else activities += 1;
  }
  return { pings, activities };
}

// Seal the leading run of single positions into one batch (same place in the order, a fresh key).
async function seal(run) {
  const tx = (await db()).transaction(STORE, "readwrite");
  const store = tx.objectStore(STORE);
  const batch = { ...run[0], kind: "batch", body: run.map((p) => p.body), key: newId() };
  store.put(batch);
  for (const item of run.slice(1)) store.delete(item.seq);
  await done(tx);
  return batch;
}

async function remove(seq) {
  const tx = (await db()).transaction(STORE, "readwrite");
  tx.objectStore(STORE).delete(seq);
  await done(tx);
}

let flushing = null;

// Send the user's items in order. `senders` = {batch(pings, key), activity(body)}, each resolving when the
// server accepted it or throwing an error with `transient` (keep it and stop: try again later) or not (the
// server will never take it: it is dropped and reported through onDropped, so one bad item cannot block
// everything after it). Returns how many items went. Concurrent calls share one run.
export function flush(user, senders, onDropped = () => {}) {
  if (!flushing) {
    flushing = run(user, senders, onDropped).finally(() => { flushing = null; });
  }
  return flushing;
}

async function run(user, senders, onDropped) {
  let sent = 0;
  for (;;) {
    const items = await pending(user);
    if (!items.length) return sent;
    let head = items[0];
    if (head.kind === "ping") {
      const runOfPings = [];
      for (const item of items) {
        if (item.kind !== "ping" || runOfPings.length >= MAX_BATCH_PINGS) break;
        runOfPings.push(item);
      }
      head = await seal(runOfPings);
    }
    try {
      if (head.kind === "batch") await senders.batch(head.body, head.key);
      else await senders.activity(head.body);
    } catch (err) {
      // Kept for later: no answer or a passing refusal, and 401/403 (signed out: the next sign-in sends it).
      const permanent = err && typeof err.status === "number" && !err.transient && err.status !== 401 && err.status !== 403;
      if (!permanent) throw err;
      onDropped(head, err);
    }
    await remove(head.seq);
    sent += 1;
  }
}
