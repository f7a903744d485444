"""The officer app's outbox (web/app/outbox.js) in a real browser: the IndexedDB queue that keeps
positions and activities until the server has them.

The module is imported into a page served by the gateway and driven with senders written in the page,
so each answer (accepted, no connection, a passing refusal, a permanent refusal, a lost answer) is
chosen by the test. The live scenario with the real server is test_officer_app.py.
"""
from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.test_api_docs import gateway_url, offline_page  # noqa: F401  (fixtures reused)

# A harness in the page: `answers` is the script of what each send gets; every call is logged.
HARNESS = """async ([answers]) => {
  const outbox = await import('/app/outbox.js');
  const calls = [];
  const next = (what) => {
    const a = answers.shift() ?? 'ok';
    calls.push({...what, answer: a});
    if (a === 'ok') return Promise.resolve({});
    if (a === 'lost') return Promise.reject({status: 0, transient: true});   // it arrived; the answer did not
    if (a === 'offline') return Promise.reject({status: 0, transient: true});
    if (a === 'busy') return Promise.reject({status: 503, transient: true});
    if (a === 'invalid') return Promise.reject({status: 422, transient: false, body: {error: 'invalid_field'}});
    if (a === 'signed-out') return Promise.reject({status: 401, transient: false});
  };
  window.hp = {
    outbox, calls,
    senders: {batch: (pings, key) => next({kind: 'batch', ts: pings.map((p) => p.ts_ms), key}),
              activity: (a) => next({kind: 'activity', id: a.client_id})},
    dropped: [],
    flush: async (user) => { try { return await outbox.flush(user, hp.senders, (item) => hp.dropped.push(item.kind)); }
                             catch (e) { return 'stopped ' + e.status; } },
  };
}"""


def open_outbox(page, url, answers=()):
    page.goto(f"{url}/app/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=30_000)
    page.evaluate(HARNESS, [list(answers)])


def record(page, user, items):
    page.evaluate("""async ([user, items]) => {
        for (const [kind, body] of items) await hp.outbox.add(user, kind, body);
    }""", [user, items])


def test_items_go_in_recorded_order_positions_batched_and_a_retry_keeps_the_batch_and_its_key(gateway_url, offline_page):
    page = offline_page
    open_outbox(page, gateway_url, ["lost", "busy", "ok", "offline", "ok", "ok"])
    record(page, "pc1", [("ping", {"ts_ms": 1}), ("ping", {"ts_ms": 2}), ("activity", {"client_id": "a1"}),
                         ("ping", {"ts_ms": 3})])
    assert page.evaluate("hp.flush('pc1')") == "stopped 0"
    record(page, "pc1", [("ping", {"ts_ms": 4})])  # recorded while the first batch waits: not added to it
    assert page.evaluate("hp.flush('pc1')") == "stopped 503"
    assert page.evaluate("hp.flush('pc1')") == "stopped 0"  # batch 1 went; the activity met no connection
    assert page.evaluate("hp.flush('pc1')") == 2
    calls = page.evaluate("hp.calls")
    assert [(c["kind"], c.get("ts") or c.get("id"), c["answer"]) for c in calls] == [
        ("batch", [1, 2], "lost"), ("batch", [1, 2], "busy"), ("batch", [1, 2], "ok"),
        ("activity", "a1", "offline"), ("activity", "a1", "ok"), ("batch", [3, 4], "ok")]
    assert calls[0]["key"] == calls[1]["key"] == calls[2]["key"]  # a resend is the same request
    assert calls[5]["key"] != calls[0]["key"]
    assert page.evaluate("hp.outbox.pending('pc1')") == []


def test_a_permanent_refusal_is_dropped_so_it_cannot_block_the_rest_but_signed_out_keeps_everything(gateway_url, offline_page):
    page = offline_page
    open_outbox(page, gateway_url, ["signed-out", "invalid", "ok"])
    record(page, "pc1", [("activity", {"client_id": "bad"}), ("ping", {"ts_ms": 7})])
    assert page.evaluate("hp.flush('pc1')") == "stopped 401"
    assert len(page.evaluate("hp.outbox.pending('pc1')")) == 2
    assert page.evaluate("hp.flush('pc1')") == 2
    assert page.evaluate("hp.dropped") == ["activity"]
    assert [c["answer"] for c in page.evaluate("hp.calls")] == ["signed-out", "invalid", "ok"]


def test_the_queue_survives_a_reload_and_is_sent_only_for_its_own_user(gateway_url, offline_page):
    page = offline_page
    open_outbox(page, gateway_url)
    record(page, "pc1", [("ping", {"ts_ms": 10}), ("ping", {"ts_ms": 11})])
    record(page, "pc2", [("ping", {"ts_ms": 20})])
    page.reload()
    open_outbox(page, gateway_url)
    assert page.evaluate("hp.outbox.counts('pc1')") == {"pings": 2, "activities": 0}
    assert page.evaluate("hp.flush('pc2')") == 1
    assert [c["ts"] for c in page.evaluate("hp.calls")] == [[20]]
    assert page.evaluate("hp.outbox.counts('pc1')") == {"pings": 2, "activities": 0}
