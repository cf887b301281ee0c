"""oneDNN-packed linears (``model/packed.py``): the outputs of ``nn.Linear``, whatever the row
count, with few distinct matmul shapes for oneDNN's primitive cache."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vqlsp.model.packed import PAD_MAX_ROWS, PackedLinear, packing_available, padded_rows


def test_row_counts_fall_into_few_sizes():
    sizes = {padded_rows(m) for m in range(1, PAD_MAX_ROWS + 1)}
    assert sizes == {8, 16, 32, 64, 128, 256, 512}
    assert all(padded_rows(m) >= m for m in range(1, 2 * PAD_MAX_ROWS))
    assert padded_rows(0) == 0 and padded_rows(PAD_MAX_ROWS + 1) == PAD_MAX_ROWS + 1


@pytest.mark.skipif(not packing_available(), reason="PyTorch lacks the oneDNN packing ops")
@pytest.mark.parametrize("rows", [1, 3, 8, 9, 100, 600])
def test_packed_linear_equals_linear(rows):
    torch.manual_seed(0)
    linear = nn.Linear(64, 96)
    packed = PackedLinear(linear)
    x = torch.randn(rows, 64)
    with torch.no_grad():
        torch.testing.assert_close(packed(x), linear(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(packed(x.view(1, rows, 64)), linear(x).view(1, rows, 96), atol=1e-5, rtol=1e-5)
