"""Validation panels (fds.models.panels.make_panel) for every input mode's channel count."""

from __future__ import annotations

import pytest
import torch

from fds.models.panels import make_panel


@pytest.mark.parametrize("cin", [1, 2, 3, 4])  # v / logv, v_scale, rgb / v_cue, v_cue_scale
def test_a_panel_is_drawn_for_every_input_width(cin):
    torch.manual_seed(0)
    x = torch.rand(3, cin, 16, 16) * 2 - 1
    pred, target = torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16)
    normals = torch.nn.functional.normalize(torch.randn(3, 3, 16, 16), dim=1)
    panel = make_panel(x, pred, target, normals, max_rows=2)
    assert panel.shape == (2 * 16, 4 * 16, 3) and panel.dtype.name == "uint8"
    # the input tile shows V, the first channel: grey unless the input is three colour channels
    tile = torch.from_numpy(panel[:16, :16]).float() / 255
    want = (x[0, :1] + 1) / 2 if cin != 3 else (x[0] + 1) / 2
    torch.testing.assert_close(tile.permute(2, 0, 1), want.expand(3, -1, -1), atol=1 / 255, rtol=0)
