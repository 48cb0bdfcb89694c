"""Shared by the experiment tests: a small, deterministic densedepth_mbv2 checkpoint."""

import torch

from pyapprox.models.densedepth_mbv2 import DenseDepthMBV2


def random_weights(path):
    """Seeded random weights whose output bias keeps depths in range; saved to ``path``, which is returned."""
    torch.manual_seed(5)
    m = DenseDepthMBV2()
    with torch.no_grad():
        m.decoder.conv3.bias.fill_(5.0)
    torch.save(m.state_dict(), path)
    return path
