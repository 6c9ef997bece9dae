"""Regression tests for the tracer defects of issue #16: each of these failed before the fix."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from torch import nn  # noqa: E402

import modelint  # noqa: E402

from .conftest import assert_same_state, line_of, same_file, snapshot  # noqa: E402

HERE = Path(__file__).resolve()


def _perturb_generators():
    torch.manual_seed(4321)
    torch.rand(2)
    random.seed(3)
    np.random.seed(3)


# ----------------------------------------------------------------------------- 1. TorchScript, meta


class WithScripted(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.enc = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.drop(self.enc(self.bn(x)))


def test_scripted_submodule_is_traced_and_restored():
    model = WithScripted()
    x = torch.randn(5, 4)
    _perturb_generators()
    before = snapshot(model)
    report = modelint.verify_modes(model, x)
    assert report.findings == [], str(report)
    assert_same_state(before, snapshot(model))


def test_meta_model_is_refused_and_nothing_changes():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1)).to("meta")
    model.eval()
    _perturb_generators()
    rng = torch.get_rng_state()
    with pytest.raises(ValueError, match="meta device"):
        modelint.verify_modes(model, torch.randn(2, 4, device="meta"))
    assert torch.equal(rng, torch.get_rng_state())
    assert not any(m.training for m in model.modules())


# ----------------------------------------------------------------------------- 2. frozen flags


class FlipsCudnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        with torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=True):
            pass
        torch._C._set_cudnn_benchmark(not torch._C._get_cudnn_benchmark())
        return self.fc(x)


def test_frozen_backend_flags(monkeypatch):
    # what torch.testing._internal.common_utils does on import
    monkeypatch.setitem(torch.backends.flags_frozen.__globals__, "__allow_nonbracketed_mutation_flag", False)
    assert torch.backends.flags_frozen()
    assert modelint.verify_modes(nn.Linear(4, 2), torch.randn(3, 4)).findings == []
    benchmark = torch.backends.cudnn.benchmark
    assert modelint.verify_modes(FlipsCudnn(), torch.randn(3, 4)).findings == []
    assert torch.backends.cudnn.benchmark == benchmark


# ----------------------------------------------------------------------------- 3. sparse outputs


class SparseOut(nn.Module):
    def __init__(self, noisy=False):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.noisy = noisy

    def forward(self, x):
        h = self.fc(x)
        if self.noisy:
            h = h + torch.rand_like(h)
        return h.relu().to_sparse(), h.relu().to_sparse_csr()


def test_sparse_outputs_are_compared():
    assert modelint.verify_modes(SparseOut(), torch.randn(3, 4)).findings == []
    assert modelint.verify_modes(SparseOut(noisy=True), torch.randn(3, 4)).codes == ["MDL601"]


# ----------------------------------------------------------------------------- 4. frozen batch norm


class FrozenNormBackbone(nn.Module):
    """train() keeps the pretrained backbone's batch norm in eval on purpose; no dropout."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
        self.head = nn.Linear(8, 2)

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x):
        return self.head(self.backbone(x))


def test_batch_norm_kept_in_eval_on_purpose_is_not_mdl605():
    assert modelint.verify_modes(FrozenNormBackbone(), torch.randn(5, 4)).findings == []


# ----------------------------------------------------------------------------- 5. flags and bits


class Freezes(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        self.fc.weight.requires_grad_(False)
        return self.fc(x)


def test_requires_grad_changed_in_forward_is_restored_and_reported():
    model, x = Freezes(), torch.randn(3, 4)
    before = snapshot(model)
    report = modelint.verify_modes(model, x)
    assert model.fc.weight.requires_grad
    assert_same_state(before, snapshot(model))
    assert report.codes == ["MDL602"] and "requires_grad" in report.findings[0].message


class NegativeZero(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.register_buffer("offset", torch.zeros(2))

    def forward(self, x):
        if not self.training:
            self.offset.fill_(-0.0)
        return self.fc(x) + self.offset


def test_negative_zero_is_a_change_and_is_restored():
    model = NegativeZero()
    report = modelint.verify_modes(model, torch.randn(3, 4))
    assert report.codes == ["MDL602"], str(report)
    assert report.findings[0].line == line_of(HERE, "self.offset.fill_(-0.0)")
    assert not torch.signbit(model.offset).any()


# ----------------------------------------------------------------------------- 6. lazy buffers


class LazyStats(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.register_buffer("scale", None)

    @torch.autocast("cpu", enabled=False)
    def forward(self, x):
        if self.scale is None:
            self.scale = x.abs().mean(0)
        return self.fc(x / self.scale)


def test_buffer_initialised_in_eval_is_reported_and_reset():
    model = LazyStats()
    report = modelint.verify_modes(model, torch.randn(3, 4))
    assert report.codes == ["MDL602"], str(report)
    f = report.findings[0]
    assert "`scale`" in f.message and "None or absent" in f.message
    assert f.line == line_of(HERE, "self.scale = x.abs().mean(0)")
    assert model.scale is None


class DecoratedCounter(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.register_buffer("count", torch.zeros(()))

    @torch.autocast("cpu", enabled=False)
    def forward(self, x):
        with torch.no_grad():
            self.count.data = self.count.data + 1
        return self.fc(x)


def test_unlocated_buffer_change_points_at_def_not_decorator():
    report = modelint.verify_modes(DecoratedCounter(), torch.randn(3, 4))
    assert report.codes == ["MDL602"], str(report)
    assert report.findings[0].line == line_of(HERE, "def forward(self, x):", after="class DecoratedCounter")


# ----------------------------------------------------------------------------- 7. random locations


class UniformJitter(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        scale = random.uniform(0.9, 1.1)
        pick = random.choice([1.0, 2.0])
        return self.fc(x) * scale * pick


class DrawsButIgnores(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        np.random.randint(0, 10)
        return self.fc(x)


def test_python_random_is_located_at_the_user_line_once():
    report = modelint.verify_modes(UniformJitter(), torch.randn(3, 4))
    assert report.codes == ["MDL601"], str(report)
    lines = sorted(f.line for f in report.findings)
    assert lines == [line_of(HERE, "random.uniform(0.9, 1.1)"), line_of(HERE, "random.choice([1.0, 2.0])")]
    assert all(same_file(f.path, HERE) for f in report.findings)
    assert all("predictions differ run to run" in f.message for f in report.findings)


def test_draw_that_does_not_change_outputs_says_so():
    report = modelint.verify_modes(DrawsButIgnores(), torch.randn(3, 4))
    [f] = report.findings  # one finding: none at this test's verify_modes line
    assert f.code == "MDL601" and f.line == line_of(HERE, "np.random.randint(0, 10)")
    assert "did not change the outputs" in f.message and "differ run to run" not in f.message


# ----------------------------------------------------------------------------- torch.compile'd part


class CompiledPart(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = torch.compile(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1)), backend="eager")
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.enc(x))


def test_compiled_submodule_is_traced_uncompiled_without_warnings(recwarn):
    model, x = CompiledPart(), torch.randn(3, 4)
    before = snapshot(model)
    assert modelint.verify_modes(model, x).findings == []
    assert_same_state(before, snapshot(model))
    assert type(model.enc).__name__ == "OptimizedModule"
    assert not [w for w in recwarn if "global hooks" in str(w.message)]


def test_empty_batch_is_not_mdl605():
    # PyTorch's module_db has BatchNorm samples with a batch of 0: outputs are trivially equal
    assert modelint.verify_modes(nn.BatchNorm1d(5), torch.randn(0, 5, 9)).findings == []


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.head = nn.Linear(8, 50, bias=False)
        self.head.weight = self.embed.weight  # tied, as in GPT-2

    def forward(self, ids):
        if not self.training:
            with torch.no_grad():
                self.head.weight[0, 0] = 1.5
        return self.head(self.embed(ids))


def test_tied_weight_is_snapshotted_once_and_restored():
    from modelint.trace.state import ModelState

    model = TiedLM()
    store = ModelState(list(model.modules())).store
    assert store.nbytes == model.embed.weight.numel() * 4  # once, not once per holding module
    ids, before = torch.tensor([[1, 2, 3]]), model.embed.weight.detach().clone()
    report = modelint.verify_modes(model, ids)
    assert "MDL602" in report.codes, str(report)
    assert torch.equal(model.embed.weight, before) and model.head.weight is model.embed.weight
