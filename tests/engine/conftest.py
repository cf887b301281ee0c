"""Engine tests run single-threaded: their tensors are tiny, and on a shared machine
intra-op threads only add contention (the previous setting is restored afterwards)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
