"""Reports over HTTP: admin JSON endpoints and the ``/dashboard`` page.

=====================================  ========================================================
``GET /admin/reports/summary``         the report as JSON (the document ``router report
                                       --format json`` prints); query: ``since``, ``until``
                                       (``2026-11-23``, ISO times, ``-24h``, ``-7d``; default
                                       the last 24 hours) and ``by`` (``team,model,...``)
``GET /dashboard``                     the dashboard (charts refresh every 5 s), or a sign-in
                                       form without a session
``POST /dashboard/login``              form field ``key`` = ``ROUTER_ADMIN_KEY``: sets the
                                       session cookie and redirects to ``/dashboard``
``POST /dashboard/logout``             clears the session cookie
``GET /dashboard/fragment``            the report's HTML body (what the page swaps in)
=====================================  ========================================================

Every endpoint needs the admin key: as ``Authorization: Bearer <ROUTER_ADMIN_KEY>`` or as the
dashboard's session cookie. The key itself never travels in a URL (URLs end up in access logs)
and is never stored in the cookie: the cookie holds an expiry and an HMAC-SHA256 of it keyed by
the admin key, so changing ``ROUTER_ADMIN_KEY`` ends every session. The cookie is ``HttpOnly``
and ``SameSite=Strict`` (``Secure`` over HTTPS); pages are sent with a strict
Content-Security-Policy whose only script is the page's own, by nonce.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from html import escape
from urllib.parse import parse_qs

from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from router.api.responses import JSONBytesResponse, error_response
from router.auth import bearer_token
from router.errors import (
    InvalidRequest,
    PermissionDenied,
    RouterError,
    ServiceUnavailable,
    Unauthenticated,
)
from router.ledger.export import parse_time
from router.reports.aggregate import Report, parse_by
from router.reports.render_html import STYLE, report_body, subtitle
from router.reports.source import build_report, policy_tiers
from router.services import Services
from router.settings import admin_key

COOKIE = "router_dashboard"
SESSION_S = 8 * 3600
"""Lifetime of a dashboard session (seconds)."""
REFRESH_S = 5
"""How often the page fetches fresh numbers (seconds)."""
MAX_FORM_BYTES = 4096
DEFAULT_SINCE = "-24h"
RANGES = (("-1h", "last hour"), ("-24h", "last 24 hours"), ("-7d", "last 7 days"),
          ("-30d", "last 30 days"))  # fmt: skip
GROUPINGS = ("team", "team,model", "key", "model", "route", "day", "tier")


def _admin_key() -> str:
    key = admin_key()
    if not key:
        raise PermissionDenied(
            "The admin API is disabled: set ROUTER_ADMIN_KEY.", code="admin_disabled"
        )
    return key


def _signer(key: str) -> Signer:
    # The expiry is in the signed value (not itsdangerous' own timestamp) so that validity is
    # decided against the caller's clock, ``now_s``.
    return Signer(key, salt="router-dashboard", sep=".", digest_method=hashlib.sha256)


def session_token(key: str, now_s: float) -> str:
    """A session cookie value valid for :data:`SESSION_S` seconds from ``now_s`` (Unix s).

    ``v1.<expiry_s>.<signature>``, signed with ``key`` by itsdangerous.
    """
    expiry = int(now_s) + SESSION_S
    return _signer(key).sign(f"v1.{expiry}").decode()


def session_valid(key: str, token: str | None, now_s: float) -> bool:
    """Whether ``token`` was made by :func:`session_token` with ``key`` and has not expired."""
    if not token:
        return False
    try:
        value = _signer(key).unsign(token).decode()
    except BadSignature:
        return False
    version, _, expiry = value.partition(".")
    return version == "v1" and expiry.isdigit() and int(expiry) > now_s


def _authorized(request: Request) -> bool:
    """Bearer admin key or a valid session cookie; raises PermissionDenied when disabled."""
    key = _admin_key()
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        return hmac.compare_digest(token.encode(), key.encode())
    return session_valid(key, request.cookies.get(COOKIE), time.time())


def _require(request: Request) -> None:
    if not _authorized(request):
        raise Unauthenticated("Invalid admin key.", param="authorization")


async def _report(request: Request, default_by: str = "") -> Report:
    """The report the query asks for (``since``, ``until``, ``by``)."""
    services: Services = request.app.state.services
    if services.redis is None:
        raise ServiceUnavailable("The ledger (Redis) is unavailable.", code="ledger_unavailable")
    q = request.query_params
    try:
        since = parse_time(q.get("since") or DEFAULT_SINCE)
        until = parse_time(q["until"]) if q.get("until") else time.time()
        by = parse_by(q.get("by") or default_by)
    except ValueError as exc:
        raise InvalidRequest(f"Bad report query: {exc}.", param="since") from exc
    if until <= since:
        raise InvalidRequest("'until' must be after 'since'.", param="until")
    policy = services.policies.current.policy
    client = services.redis.client
    return await build_report(client, since, until, by, policy.budgets, policy_tiers(policy))


async def summary(request: Request) -> Response:
    """``GET /admin/reports/summary``."""
    try:
        _require(request)
        report = await _report(request)
    except RouterError as err:
        return error_response(err, {})
    return JSONBytesResponse(report.to_json(), headers={"cache-control": "no-store"})


def _headers(nonce: str | None = None) -> dict[str, str]:
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    csp = (
        f"default-src 'none'; script-src {script}; style-src 'unsafe-inline'; img-src data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "content-security-policy": csp,
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
    }


def _page(title: str, header: str, main: str, nonce: str | None = None, script: str = "") -> str:
    tag = f'<script nonce="{nonce}">{script}</script>' if nonce else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{escape(title)}</title>'
        f"<style>{STYLE}{EXTRA_STYLE}</style></head><body>{header}<main>{main}</main>{tag}"
        "</body></html>"
    )


EXTRA_STYLE = """
form.login{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:18px;max-width:380px}
form.login input{width:100%;padding:7px;margin:6px 0 12px;font:inherit}
button{font:inherit;padding:6px 14px;cursor:pointer}
.controls{display:flex;gap:12px;align-items:center;margin-bottom:12px;flex-wrap:wrap}
.controls select{font:inherit;padding:4px}
.error{color:#dc2626}
header form{float:right;margin-top:-30px}
"""


def login_page(message: str = "") -> str:
    """The sign-in form (the key is POSTed, never put in a URL)."""
    err = f'<p class="error" id="login-error">{escape(message)}</p>' if message else ""
    form = (
        '<form class="login" method="post" action="/dashboard/login">'
        '<h2>Sign in</h2><p class="muted">Enter the gateway\'s admin key '
        "(<code>ROUTER_ADMIN_KEY</code>).</p>"
        f'{err}<label for="key">Admin key</label>'
        '<input id="key" name="key" type="password" autocomplete="current-password" required '
        'autofocus><button type="submit">Open the dashboard</button></form>'
    )
    header = "<header><h1>hybrid-router dashboard</h1><p>Admin sign-in</p></header>"
    return _page("hybrid-router dashboard: sign in", header, form)


SCRIPT = """
(function () {
  var body = document.getElementById("report");
  var status = document.getElementById("status");
  var range = document.getElementById("range");
  var by = document.getElementById("by");
  var busy = false;
  function refresh() {
    if (busy) { return; }
    busy = true;
    var q = new URLSearchParams({since: range.value, by: by.value});
    fetch("/dashboard/fragment?" + q.toString(), {credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        body.innerHTML = html;
        status.textContent = "updated " + new Date().toLocaleTimeString();
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function (e) { status.textContent = "update failed: " + e.message; })
      .then(function () { busy = false; });
  }
  range.addEventListener("change", refresh);
  by.addEventListener("change", refresh);
  refresh();
  window.setInterval(refresh, REFRESH_MS);
})();
"""
"""The page's only script: fetch the fragment every few seconds and swap it in."""


def dashboard_page(report: Report, since: str, by: str, nonce: str) -> str:
    """The dashboard with ``report`` rendered in place (it works without script too)."""
    ranges = "".join(
        f'<option value="{v}"{" selected" if v == since else ""}>{escape(t)}</option>'
        for v, t in RANGES
    )
    groups = "".join(
        f'<option value="{escape(g)}"{" selected" if g == by else ""}>{escape(g)}</option>'
        for g in GROUPINGS
    )
    controls = (
        '<div class="controls"><label>Range <select id="range">'
        f"{ranges}</select></label>"
        f'<label>Group by <select id="by">{groups}</select></label>'
        f'<span class="muted" id="status">refreshes every {REFRESH_S} s</span></div>'
    )
    header = (
        "<header><h1>hybrid-router dashboard</h1>"
        f'<p id="subtitle">{escape(subtitle(report))}</p>'
        '<form method="post" action="/dashboard/logout"><button type="submit">Sign out</button>'
        "</form></header>"
    )
    main = f'{controls}<div id="report">{report_body(report)}</div>'
    script = SCRIPT.replace("REFRESH_MS", str(REFRESH_S * 1000))
    return _page("hybrid-router dashboard", header, main, nonce, script)


async def dashboard(request: Request) -> Response:
    """``GET /dashboard``: the page with a session, else the sign-in form."""
    try:
        if not _authorized(request):
            return HTMLResponse(login_page(), headers=_headers())
        report = await _report(request, "team")
    except RouterError as err:
        return error_response(err, {})
    nonce = secrets.token_urlsafe(16)
    since = request.query_params.get("since") or DEFAULT_SINCE
    by = ",".join(report.by)
    html = dashboard_page(report, since, by, nonce)
    return HTMLResponse(html, headers=_headers(nonce))


async def fragment(request: Request) -> Response:
    """``GET /dashboard/fragment``: the report body, for the page's refresh."""
    try:
        _require(request)
        report = await _report(request)
    except RouterError as err:
        return error_response(err, {})
    body = await asyncio.to_thread(report_body, report)
    return HTMLResponse(body, headers=_headers())


async def login(request: Request) -> Response:
    """``POST /dashboard/login``: check the form's key, set the session cookie."""
    try:
        key = _admin_key()
    except RouterError as err:
        return error_response(err, {})
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return HTMLResponse(login_page("The form is too large."), 413, headers=_headers())
    given = parse_qs(raw.decode("utf-8", "replace")).get("key", [""])[0]
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        return HTMLResponse(login_page("That is not the admin key."), 401, headers=_headers())
    resp = RedirectResponse("/dashboard", status_code=303, headers={"cache-control": "no-store"})
    resp.set_cookie(
        COOKIE,
        session_token(key, time.time()),
        max_age=SESSION_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return resp


async def logout(request: Request) -> Response:
    """``POST /dashboard/logout``: clear the session cookie."""
    resp = RedirectResponse("/dashboard", status_code=303)
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


ROUTES = (
    Route("/admin/reports/summary", summary, methods=["GET"]),
    Route("/dashboard", dashboard, methods=["GET"]),
    Route("/dashboard/fragment", fragment, methods=["GET"]),
    Route("/dashboard/login", login, methods=["POST"]),
    Route("/dashboard/logout", logout, methods=["POST"]),
)
"""The report routes, added to the app by :func:`router.app.create_app`."""
