"""What `hotspot run` says about the control room: its URL and a supervisor login to open it with.

The login is a dedicated account, `demo-supervisor` (role supervisor), made for
`hotspot run` alone: each run issues it a fresh secret (revoking the last one) and
prints it, so the secret is never stored anywhere but as its hash. A force's real
supervisors are added with `hotspot users add NAME --role supervisor` and are never
touched here.
"""
from __future__ import annotations

DEMO_SUPERVISOR = "demo-supervisor"


def control_room_lines(s, base_url: str) -> list[str]:
    from gateway.credentials import CredentialError, CredentialStore, path_in

    store = CredentialStore(path_in(s.data_dir))
    try:
        if any(p.name == DEMO_SUPERVISOR and not p.revoked for p in store.list("user")):
            store.revoke(DEMO_SUPERVISOR, "user")
        try:
            _, secret = store.add(DEMO_SUPERVISOR, "user", "supervisor")
        except CredentialError as exc:
            return [f"control    {base_url}/control  (no demo login: {exc})"]
    finally:
        store.close()
    return [f"control    {base_url}/control  (live map; sign in as {DEMO_SUPERVISOR}, secret {secret} - "
            "new each run)"]
