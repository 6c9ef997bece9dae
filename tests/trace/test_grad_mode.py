"""MDL608: the eval output depends on grad mode (inference_mode vs grad-enabled eval)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import modelint  # noqa: E402

from .conftest import line_of, same_file  # noqa: E402

HERE = Path(__file__).resolve()


class BranchesOnGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        if torch.is_grad_enabled():
            h = h.clamp(min=0)
        return h


def test_grad_mode_branch_is_reported_at_the_branch():
    report = modelint.verify_modes(BranchesOnGrad(), torch.randn(8, 4))
    assert report.codes == ["MDL608"], str(report)
    f = report.findings[0]
    assert same_file(f.path, HERE) and f.line == line_of(HERE, "if torch.is_grad_enabled():")
    assert "saliency" in f.message and f.name == "eval-depends-on-grad-mode"


class PaddedEncoder(nn.Module):
    """nn.TransformerEncoder with nested tensors: its no-grad fast path returns zeros at padded
    positions, the regular path does not."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True)

    def forward(self, x, pad):
        return self.encoder(x, src_key_padding_mask=pad)


def test_transformer_fast_path_with_padding_is_reported():
    x = torch.randn(2, 5, 16)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    report = modelint.verify_modes(PaddedEncoder(), x, pad)
    assert report.codes == ["MDL608"], str(report)
    f = report.findings[0]
    assert "fast path" in f.message and f.line == line_of(HERE, "self.encoder = nn.TransformerEncoder(")


class Unpadded(PaddedEncoder):
    def forward(self, x):
        return self.encoder(x)


def test_fast_path_rounding_alone_is_not_reported():
    assert modelint.verify_modes(Unpadded(), torch.randn(2, 5, 16)).findings == []
    mha = nn.MultiheadAttention(16, 2, dropout=0.1, batch_first=True)

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = mha

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    assert modelint.verify_modes(SelfAttention(), torch.randn(2, 5, 16)).findings == []


class FailsWithGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        if not self.training and torch.is_grad_enabled():
            h = h.view(-1, 3)
        return h


def test_eval_failing_only_with_grad_is_reported():
    report = modelint.verify_modes(FailsWithGrad(), torch.randn(2, 4))
    assert report.codes == ["MDL608"], str(report)
    f = report.findings[0]
    assert f.line == line_of(HERE, "h = h.view(-1, 3)") and "with grad enabled" in f.message


class RandomAndGradAware(nn.Module):
    """Randomness in eval is MDL601; the grad-mode comparison is then meaningless."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return nn.functional.dropout(self.fc(x), 0.5)


def test_randomness_is_not_also_reported_as_grad_mode():
    assert modelint.verify_modes(RandomAndGradAware(), torch.randn(4, 4)).codes == ["MDL601"]
