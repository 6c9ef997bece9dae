"""Inputs, outputs and model shapes verify_modes must handle: nested outputs, models without
parameters, compiled and DataParallel-wrapped models, Case/keyword inputs, allow opt-outs, and
the less common sources of mode bugs (Python/NumPy random, buffer writes, modules built in
forward)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Optional

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import modelint  # noqa: E402
from modelint import Case  # noqa: E402

from .conftest import line_of, same_file  # noqa: E402

HERE = Path(__file__).resolve()


@dataclasses.dataclass
class Aux:
    noise: torch.Tensor
    count: int


EXTERNAL_GEN = torch.Generator().manual_seed(0)  # not a module attribute: not restored


class NestedOutput(nn.Module):
    def __init__(self, noisy=False):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.2)
        self.noisy = noisy

    def forward(self, x):
        h = self.drop(self.fc(x))
        noise = torch.zeros(2)
        if self.noisy:  # drawn from a private generator that keeps advancing
            noise = torch.rand(2, generator=EXTERNAL_GEN)
        return {"logits": h, "extras": (h.sum(-1), Aux(noise=noise, count=3))}


def test_nested_outputs_clean():
    assert modelint.verify_modes(NestedOutput(), torch.randn(3, 4)).findings == []


def test_nested_outputs_every_tensor_is_compared():
    report = modelint.verify_modes(NestedOutput(noisy=True), torch.randn(3, 4))
    assert report.codes == ["MDL601"], str(report)
    assert "output['extras'][1].noise" in report.findings[0].message


def test_model_without_parameters():
    clean = nn.Sequential(nn.ReLU(), nn.Dropout(0.5))
    assert modelint.verify_modes(clean, torch.randn(4, 8)).findings == []

    class Noise(nn.Module):
        def forward(self, x):
            return x + 0.1 * torch.randn_like(x)

    report = modelint.verify_modes(Noise(), torch.randn(4, 8))
    assert report.codes == ["MDL601"] and "aten::randn_like" in report.findings[0].message


def test_private_generator_on_the_module_is_not_flagged():
    class Sampler(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.gen = torch.Generator().manual_seed(0)

        def forward(self, x):
            probs = torch.softmax(self.fc(x), -1)
            return torch.multinomial(probs, 1, generator=self.gen), probs

    assert modelint.verify_modes(Sampler(), torch.randn(5, 4)).findings == []


def test_integer_only_outputs_are_not_mdl607():
    class Greedy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x).argmax(-1)

    assert modelint.verify_modes(Greedy(), torch.randn(5, 4)).findings == []


def test_compiled_module_is_traced_through_orig_mod(models):
    model, inputs = models.functional_dropout()
    compiled = torch.compile(model, backend="eager")
    compiled.eval()
    with torch.no_grad():
        compiled(*inputs)
    report = modelint.verify_modes(compiled, *inputs)
    assert report.codes == ["MDL601"] and report.model == "FunctionalDropoutMLP"
    with torch.no_grad():
        compiled(*inputs)  # still usable after tracing
    clean, clean_inputs = models.cnn_batchnorm()
    assert modelint.verify_modes(torch.compile(clean, backend="eager"), *clean_inputs).findings == []


def test_data_parallel_wrapper_is_traced_through_module(models):
    model, inputs = models.dropout_list()
    report = modelint.verify_modes(nn.DataParallel(model), *inputs)
    assert set(report.codes) == {"MDL603", "MDL604"} and report.model == "DropoutListMLP"


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.1)

    def forward(self, x, mask: Optional[torch.Tensor] = None, seeds=1):
        h = self.drop(self.fc(x))
        return h if mask is None else h * mask


def test_case_and_keyword_inputs():
    x, mask = torch.randn(2, 4), torch.ones(2, 4)
    assert modelint.verify_modes(Masked(), x, mask=mask).findings == []
    assert modelint.verify_modes(Masked(), Case(args=(x,), kwargs={"mask": mask, "seeds": 2})).findings == []
    assert Case(x).args == (x,) and Case([x]).args == (x,)


def test_allow_opts_out_visibly(models):
    model, inputs = models.functional_dropout()
    report = modelint.verify_modes(model, *inputs, allow={"MDL601"})
    assert report.findings == [] and [f.code for f in report.allowed] == ["MDL601"]
    assert "allowed (opted out): 1 finding with MDL601" in str(report)
    assert modelint.verify_modes(model, *inputs, allow="mdl601").findings == []
    with pytest.raises(ValueError, match="did you mean MDL601"):
        modelint.verify_modes(model, *inputs, allow={"MDL61"})


def test_allowing_mdl603_reports_its_consequences(models):
    model, inputs = models.dropout_list()
    report = modelint.verify_modes(model, *inputs, allow={"MDL603"})
    assert set(report.codes) == {"MDL601", "MDL604"}


def test_report_str_and_validation(models):
    model, inputs = models.vrp_policy()
    text = str(modelint.verify_modes(model, *inputs))
    assert text.startswith("modelint.verify_modes(RoutingPolicy, seeds=0/1): no findings")
    model, inputs = models.functional_dropout()
    text = str(modelint.verify_modes(model, *inputs, seeds=(3, 4)))
    assert "1 finding" in text and "MDL601 [eval-consumes-randomness]" in text and "seeds 3 and 4" in text
    with pytest.raises(ValueError):
        modelint.verify_modes(model, *inputs, seeds=(1, 1))
    with pytest.raises(TypeError):
        modelint.verify_modes(lambda x: x, *inputs)


class PythonRandomAugment(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if random.random() < 0.5:
            x = x.flip(0)
        return self.fc(x)


class NumpyNoise(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        scale = float(np.random.uniform(0.9, 1.1))
        return self.fc(x) * scale


def test_python_and_numpy_random_are_located():
    report = modelint.verify_modes(PythonRandomAugment(), torch.randn(3, 4))
    assert report.codes == ["MDL601"], str(report)
    f = report.findings[0]
    assert same_file(f.path, HERE) and f.line == line_of(HERE, "if random.random() < 0.5")
    assert "Python random" in f.message

    report = modelint.verify_modes(NumpyNoise(), torch.randn(3, 4))
    assert report.codes == ["MDL601"], str(report)
    f = report.findings[0]
    assert f.line == line_of(HERE, "np.random.uniform(0.9, 1.1)") and "numpy.random" in f.message


class CountsCalls(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("step", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.fc(x)


class StepsBuffer(CountsCalls):
    def forward(self, x):
        self.step = self.step + 1
        return self.fc(x)


def test_buffer_writes_are_located():
    report = modelint.verify_modes(CountsCalls(), torch.randn(2, 4))
    assert report.codes == ["MDL602"], str(report)
    assert report.findings[0].line == line_of(HERE, "self.calls += 1") and "`calls`" in report.findings[0].message
    report = modelint.verify_modes(StepsBuffer(), torch.randn(2, 4))
    assert report.codes == ["MDL602"], str(report)
    assert report.findings[0].line == line_of(HERE, "self.step = self.step + 1")


def test_batch_norm_without_running_stats_is_clean():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8, track_running_stats=False), nn.Linear(8, 2))
    assert modelint.verify_modes(model, torch.randn(6, 4)).findings == []


class BuildsInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        x = nn.ReLU()(self.fc(x))  # harmless: no state, no mode
        return nn.Linear(4, 2)(x)


class RegistersInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        self.head = nn.Linear(4, 2)
        return self.head(self.fc(x))


def test_modules_built_in_forward():
    report = modelint.verify_modes(BuildsInForward(), torch.randn(2, 4))
    assert report.codes == ["MDL604"], str(report)
    assert report.findings[0].line == line_of(HERE, "return nn.Linear(4, 2)(x)")
    assert len(report.findings) == 1
    report = modelint.verify_modes(RegistersInForward(), torch.randn(2, 4))
    assert report.codes == ["MDL604"], str(report)
    assert "registered as `head` inside forward" in report.findings[0].message
    assert report.findings[0].line == line_of(HERE, "self.head = nn.Linear(4, 2)")


class FrozenBackbone(nn.Module):
    """A correct train() override that keeps a pretrained part in eval mode."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 2))

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x):
        return self.head(self.backbone(x))


def test_correct_override_with_frozen_part_is_clean():
    assert modelint.verify_modes(FrozenBackbone(), torch.randn(5, 4)).findings == []


class TrainingOnlyCrash(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if self.training:
            x = F.dropout(x, 0.1, self.training).view(-1, 3)
        return self.fc(x)


def test_training_only_crash():
    report = modelint.verify_modes(TrainingOnlyCrash(), torch.randn(2, 4))
    assert report.codes == ["MDL606"]
    assert "in training mode but not in eval mode" in report.findings[0].message
    assert report.findings[0].line == line_of(HERE, ".view(-1, 3)")


def test_lazy_modules_are_warmed_up_on_a_copy():
    lazy = nn.Sequential(nn.LazyLinear(3), nn.Dropout(0.1))
    assert modelint.verify_modes(lazy, torch.randn(2, 4)).findings == []
    assert isinstance(lazy[0].weight, nn.parameter.UninitializedParameter)  # the model is untouched

    class LazyNoise(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.LazyLinear(3)

        def forward(self, x):
            return self.fc(x) + torch.rand(3)

    report = modelint.verify_modes(LazyNoise(), torch.randn(2, 4))
    assert report.codes == ["MDL601"] and report.findings[0].line == line_of(HERE, "+ torch.rand(3)")
    with pytest.raises(ValueError, match="warm-up forward"):
        modelint.verify_modes(nn.Sequential(nn.LazyLinear(3)), torch.ones(2, 4, dtype=torch.long))


def test_rejects_inference_mode():
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        modelint.verify_modes(nn.Linear(4, 2), torch.randn(2, 4))
    assert modelint.ModeReport is not None
