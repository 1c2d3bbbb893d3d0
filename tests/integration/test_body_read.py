"""Reading request bodies on a real server: a body that never comes is a 408, a client that
leaves mid-body is one log line (no traceback), and the gateway keeps serving."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BODY_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("body")
    text = (ROOT / "policies" / "examples" / "mock.yaml").read_text()
    text = text.replace(
        "prices_file: ../prices.yaml", f"prices_file: {ROOT / 'policies' / 'prices.yaml'}"
    )
    policy = tmp / "policy.yaml"
    policy.write_text(text + f"limits: {{body_timeout_s: {BODY_TIMEOUT_S}}}\n")
    with (
        MockUpstreamProcess() as mock,
        GatewayProcess(
            policy,
            env={"MOCK_UPSTREAM_URL": mock.url, "ROUTER_ADMIN_KEY": "k"},
            log_path=tmp / "gateway.log",
        ) as gw,
    ):
        yield gw


def _partial_request(gw: GatewayProcess, path: str, declared: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection((gw.host, gw.port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer k\r\ncontent-length: {declared}\r\n\r\n"
    ).encode()
    sock.sendall(head + sent)
    return sock


def _read_reply(sock: socket.socket) -> str:
    """Headers and body of one response (they may come in separate segments)."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
            if len(body) >= length:
                return data.decode("latin-1")
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode("latin-1")
        data += chunk


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/feedback", "/admin/keys"])
def test_a_body_that_never_comes_is_a_408(gateway: GatewayProcess, path: str) -> None:
    started = time.monotonic()
    with _partial_request(gateway, path, 500, b'{"model": ') as sock:
        reply = _read_reply(sock)
    waited = time.monotonic() - started
    assert reply.startswith("HTTP/1.1 408"), reply[:200]
    assert '"code":"request_timeout"' in reply
    assert BODY_TIMEOUT_S * 0.9 <= waited < BODY_TIMEOUT_S + 5


def test_a_client_leaving_mid_body_is_one_log_line(gateway: GatewayProcess) -> None:
    for _ in range(3):
        sock = _partial_request(gateway, "/v1/chat/completions", 500, b'{"model": "auto"')
        time.sleep(0.1)
        sock.close()
    time.sleep(0.5)
    r = httpx.post(
        gateway.url + "/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        timeout=15,
    )
    assert r.status_code == 200
    log = gateway.tail(200_000)
    lines = [ln for ln in log.splitlines() if "client_disconnected" in ln]
    assert len(lines) == 3, log[-3000:]
    assert "Traceback" not in log and "unhandled_error" not in log
