"""Suite-wide settings.

One intra-op thread: tiny models on 2 shared cores run many times faster. Compiled steps use
torch.compile's "aot_eager" backend (the same captured graphs, no C++ build) unless a test is
marked `inductor`, so the suite checks graph capture, values and recompiles in seconds, and a few
marked tests build the real kernels.
"""

import pytest
import torch

from attnlab.core import fast

torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "inductor: compile with inductor's C++ kernels, not aot_eager")


@pytest.fixture(autouse=True)
def compile_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = "inductor" if request.node.get_closest_marker("inductor") else "aot_eager"
    monkeypatch.setattr(fast, "BACKEND", backend)
