"""The rendered haproxy.cfg on a real HAProxy: right after a (re)start, before the checks have answered, no write
connection reaches a replica. Patroni's REST API and PostgreSQL are stood in for by tiny loopback servers: the
"replica" node0 answers its check slowly (as a loaded Patroni does), so HAProxy still counts it UP for a while."""

from __future__ import annotations

import shutil
import socket
import socketserver
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gardenctl.stack import Credentials, StackNode, StackSpec, haproxy_config
from tests.fakes.sshd import free_port

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (apt-get install haproxy)")

RULE = "    tcp-request connection reject if { nbsrv(pg_rw) gt 1 }\n"


def check_server(port: int, status: int, delay: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def name_server(port: int, name: str) -> socketserver.ThreadingTCPServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(name.encode())

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def who_answers(port: int) -> str | None:
    """The node a new connection to the read-write port reaches, or None when HAProxy refused or closed it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.settimeout(1)
            return s.recv(16).decode() or None
    except OSError:
        return None


@pytest.fixture()
def cluster(tmp_path: Path):
    # node0: a replica whose Patroni answers its check after 1.5 s; node1: the leader; node2: a replica.
    behaviour = {"node0": (503, 1.5), "node1": (200, 0.0), "node2": (503, 0.0)}
    nodes, servers = [], []
    for name, (status, delay) in behaviour.items():
        node = StackNode(name=name, host="127.0.0.1", pg_port=free_port(), rest_port=free_port())
        servers += [check_server(node.rest_port, status, delay), name_server(node.pg_port, name)]
        nodes.append(node)
    spec = StackSpec(
        scope="t", nodes=tuple(nodes), credentials=Credentials(), haproxy_rw_port=free_port(), haproxy_ro_port=free_port(),
        haproxy_stats_port=None, haproxy_stats_socket=str(tmp_path / "admin.sock"),
    )
    yield spec
    for s in servers:
        s.shutdown()
        s.server_close()


def start_and_watch(cfg: str, tmp_path: Path, port: int, seconds: float = 3.0) -> list[tuple[float, str | None]]:
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    proc = subprocess.Popen(["haproxy", "-f", str(path), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    seen: list[tuple[float, str | None]] = []
    try:
        while time.monotonic() - t0 < seconds:
            seen.append((time.monotonic() - t0, who_answers(port)))
            time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return seen


def test_rendered_config_never_sends_a_write_to_a_replica_after_a_start(cluster: StackSpec, tmp_path: Path):
    cfg = haproxy_config(cluster)
    assert RULE in cfg
    seen = start_and_watch(cfg, tmp_path, cluster.haproxy_rw_port)
    reached = [name for _, name in seen if name]
    assert "node0" not in reached and "node2" not in reached, seen
    # Once node0's slow check has answered, writes flow to the leader.
    assert reached and set(reached) == {"node1"}, seen
    first_leader = next(t for t, name in seen if name == "node1")
    assert first_leader >= 1.0, f"the leader was reached at {first_leader:.2f}s, before node0's check answered"


def test_without_the_reject_rule_a_restarted_haproxy_does_send_writes_to_the_replica(cluster: StackSpec, tmp_path: Path):
    # The hazard the rule exists for, shown on the same HAProxy: `balance first` picks node0 while it still counts UP.
    cfg = haproxy_config(cluster).replace(RULE, "")
    seen = start_and_watch(cfg, tmp_path, cluster.haproxy_rw_port, seconds=2.5)
    assert "node0" in [name for _, name in seen], seen
