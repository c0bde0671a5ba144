"""Fake Hetzner Cloud API for tests (spoken to by the real ``hcloud`` library).

See ``server.py`` for the semantics and ``fixture.py`` for ``start_fake_hcloud()``,
the ``fake_hcloud`` pytest fixture and ``client(fake)``.
"""

from .server import ERROR_STATUS, ApiError, FakeHcloud, RequestRecord, make_test_public_key

__all__ = ["ERROR_STATUS", "ApiError", "FakeHcloud", "RequestRecord", "make_test_public_key"]
