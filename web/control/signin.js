// Sign-in for the control room: POST /v1/session (gateway/auth.py), then on to /control.
"use strict";
document.getElementById("signin").addEventListener("submit", async e => {
  e.preventDefault();
  const message = document.getElementById("message");
  message.textContent = "";
  const body = JSON.stringify({name: document.getElementById("name").value, secret: document.getElementById("secret").value});
  const r = await fetch("/v1/session", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"}, body});
  if (r.ok) { location.href = "/control"; return; }
  message.textContent = r.status === 429 ? "Too many attempts: wait a minute." : "Name or secret not recognised.";
});
