"""A fake Kubernetes API server for tests: the real `kubernetes` client talks to it over HTTP.

See README.md in this directory. Entry points: `start_fake_kube()` and the `fake_kube` pytest fixture
in `tests.fakes.kube.fixture`.
"""

from .apiserver import FakeApiServer, RequestRecord
from .fixture import FakeKube, fake_kube, start_fake_kube

__all__ = ["FakeApiServer", "FakeKube", "RequestRecord", "fake_kube", "start_fake_kube"]
