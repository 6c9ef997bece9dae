"""verify_modes leaves everything as it found it: module flags, parameters and buffers (bit for
bit), module attributes, grad/inference mode, determinism settings, every generator, hooks and
dispatch modes; also when the model raises, and when the model itself changes these things."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from torch import nn  # noqa: E402

import modelint  # noqa: E402

from .conftest import assert_same_state, load_fixture_module, snapshot  # noqa: E402

EXPECTED = load_fixture_module("models").EXPECTED


def _perturb_generators():
    torch.manual_seed(1234)
    torch.rand(3)
    random.seed(99)
    random.random()
    np.random.seed(7)
    np.random.rand()


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("start", ["train", "mixed"])
def test_fixture_state_is_restored(models, name, start):
    model, inputs = getattr(models, name)()
    if start == "eval":
        model.eval()
    elif start == "mixed":
        for index, module in enumerate(model.modules()):
            module.training = bool(index % 2)
    _perturb_generators()
    before = snapshot(model)
    modelint.verify_modes(model, *inputs)
    assert_same_state(before, snapshot(model))


class Meddler(nn.Module):
    """Changes everything it can during a forward."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("step", torch.zeros(()))
        self.history = []
        self.table = None
        self.gen = torch.Generator().manual_seed(5)

    def forward(self, x):
        self.calls += 1
        self.step = self.step + 1
        self.history.append(x.shape[0])
        self.note = "seen"
        if self.table is None:  # lazily cached: an inference tensor when first built in eval
            self.table = torch.arange(4.0)
        with torch.no_grad():
            self.fc.weight.data.mul_(0.5)
        torch.default_generator.manual_seed(123)
        random.seed(5)
        np.random.seed(5)
        torch.set_grad_enabled(False)  # never restored by the model
        noise = torch.rand(4, generator=self.gen)
        return self.bn(self.fc(x) + self.table + noise)


def test_state_changed_by_the_model_is_restored():
    torch.manual_seed(0)
    model = Meddler()
    model.fc.weight.data[0, 0] = float("nan")  # NaNs must survive bit for bit
    x = torch.randn(5, 4)
    _perturb_generators()
    gen_state = model.gen.get_state()
    before = snapshot(model)
    report = modelint.verify_modes(model, x)
    assert_same_state(before, snapshot(model))
    assert torch.equal(model.gen.get_state(), gen_state)
    assert model.history == [] and model.table is None and not hasattr(model, "note")
    assert "MDL602" in report.codes  # calls/step/weights change in eval


class CachesInEval(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.cache = {}

    def forward(self, x):
        if "pos" not in self.cache:
            self.cache["pos"] = torch.linspace(0, 1, 4)
        return self.fc(x) * self.cache["pos"]


def test_inference_tensors_cached_in_containers_do_not_break_training():
    model = CachesInEval()
    x = torch.randn(2, 4)
    assert modelint.verify_modes(model, x).findings == []
    assert model.cache == {}
    model(x).sum().backward()


class FailsEverywhere(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x):
        self.bn(self.fc(x))  # updates statistics before failing
        raise ValueError("bad batch")


def test_failing_in_both_modes_raises_and_restores():
    model = FailsEverywhere()
    x = torch.randn(3, 4)
    _perturb_generators()
    before = snapshot(model)
    with pytest.raises(ValueError, match="bad batch") as info:
        modelint.verify_modes(model, x)
    assert any("both training and eval" in note for note in getattr(info.value, "__notes__", []))
    assert_same_state(before, snapshot(model))


class Interrupt(BaseException):
    pass


class InterruptsInEval(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        if not self.training:
            torch.set_grad_enabled(False)
            raise Interrupt()
        return self.drop(self.fc(x))


def test_base_exception_propagates_and_restores():
    model = InterruptsInEval()
    x = torch.randn(3, 4)
    _perturb_generators()
    before = snapshot(model)
    with pytest.raises(Interrupt):
        modelint.verify_modes(model, x)
    assert_same_state(before, snapshot(model))


def test_called_under_no_grad_keeps_no_grad():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
    with torch.no_grad():
        report = modelint.verify_modes(model, torch.randn(2, 4))
        assert not torch.is_grad_enabled()
    assert report.findings == []  # training forwards still run with autograd: no MDL607


def test_inputs_are_not_modified():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            x.mul_(2)
            return self.fc(x)

    x = torch.randn(2, 4)
    original = x.clone()
    assert modelint.verify_modes(InPlace(), x).findings == []
    assert torch.equal(x, original)


class TogglesDeterminism(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        torch.set_deterministic_debug_mode("warn")
        return self.fc(x)


def test_deterministic_setting_changed_by_the_model_is_restored():
    model = TogglesDeterminism()
    x = torch.randn(3, 4)
    before = snapshot(model)
    assert modelint.verify_modes(model, x).findings == []
    assert_same_state(before, snapshot(model))


class EvalOnlyPlainListNorm(nn.Module):
    """A batch norm in a plain list, only reached in eval (training fails before it)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.extra = [nn.BatchNorm1d(4)]

    def forward(self, x):
        if self.training:
            raise RuntimeError("training path not implemented")
        return self.extra[0](self.fc(x))


def test_unregistered_module_first_seen_in_eval_is_restored():
    model = EvalOnlyPlainListNorm()
    norm = model.extra[0]
    stats = (norm.running_mean.clone(), norm.running_var.clone(), norm.num_batches_tracked.clone())
    report = modelint.verify_modes(model, torch.randn(6, 4))
    assert set(report.codes) == {"MDL603", "MDL604", "MDL606"}, str(report)
    assert torch.equal(norm.running_mean, stats[0]) and torch.equal(norm.running_var, stats[1])
    assert torch.equal(norm.num_batches_tracked, stats[2]) and norm.training
