"""Fixture helpers for the fake Hetzner Cloud API.

Usage::

    from tests.fakes.hetzner.fixture import client, fake_hcloud  # noqa: F401 (fixture import)

    def test_something(fake_hcloud):
        hc = client(fake_hcloud)                      # a real hcloud.Client
        fake_hcloud.add_server("db-1", labels={"role": "db"})
        ...
        assert fake_hcloud.count("POST", "/servers", exact=True) == 2

Outside pytest: ``fake = start_fake_hcloud(); ...; fake.stop()`` (or ``with start_fake_hcloud() as fake:``).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from .server import FakeHcloud


def start_fake_hcloud(**kwargs: Any) -> FakeHcloud:
    """Start a fake on 127.0.0.1 (free port) in a background thread and return it.

    Keyword arguments go to :class:`FakeHcloud` (``token``, ``action_polls=2``,
    ``rate_limit=3600``, ``validate_responses=True``, ``host``, ``port``).
    The object has ``.endpoint`` (``http://127.0.0.1:PORT/v1``), ``.token`` and ``.stop()``.
    """
    return FakeHcloud(**kwargs).start()


def client(fake: FakeHcloud, *, fast_retries: bool = True, **kwargs: Any):
    """A real ``hcloud.Client`` pointed at the fake, with zero poll delay.

    hcloud 2.27 takes ``api_endpoint=`` (not ``endpoint=``), ``poll_interval`` (number or
    backoff function) and ``poll_max_retries``. Its *request* retries (on ``conflict``,
    ``rate_limit_exceeded``, ``bad_gateway``, ``timeout`` and HTTP 502/504; up to 5 retries)
    sleep ``uniform(1, 2**n)`` seconds and have no constructor argument; with
    ``fast_retries=True`` (default) this client's backoff function is set to 0 s on the
    instance (``_client._retry_interval_func``) so retry tests do not sleep. The retry
    decision logic itself is hcloud's own, untouched. Pass ``fast_retries=False`` for the
    library's real backoff.
    """
    import hcloud  # imported lazily: keeps importing this module cheap

    kwargs.setdefault("poll_interval", 0)
    kwargs.setdefault("timeout", 10)
    c = hcloud.Client(token=kwargs.pop("token", fake.token), api_endpoint=fake.endpoint, **kwargs)
    if fast_retries:
        c._client._retry_interval_func = lambda retries: 0.0  # noqa: SLF001
    return c


def check_fake(fake: FakeHcloud) -> None:
    """Fail the current test if any response of the fake broke the OpenAPI document, the fake
    crashed, or a request hit an endpoint of the spec that the fake does not implement."""
    if fake.violations:
        pytest.fail("fake Hetzner API problems:\n  " + "\n  ".join(fake.violations), pytrace=False)


@pytest.fixture
def fake_hcloud() -> Iterator[FakeHcloud]:
    """A started fake; stopped at teardown, where :func:`check_fake` fails the test on
    recorded violations."""
    fake = start_fake_hcloud()
    try:
        yield fake
    finally:
        fake.stop()
    check_fake(fake)
