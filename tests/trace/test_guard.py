"""`modelint.guard` on tiny real models: a BN+dropout CNN and a BERT from a tiny config.

Each scenario of issue #17 is run as a real training loop; a finding must name the module path and
the line that set the mode (found in this file by its `# <- ...` marker)."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import modelint
from modelint.catalog import catalog
from modelint.codes import GUARD_CODES
from modelint.trace.guard import ModeWarning

from .conftest import at_marker, hook_registries, marker_line  # noqa: E402

THIS = Path(__file__).resolve()


def line(marker: str) -> int:
    return marker_line(THIS, marker)


def at(finding, marker: str) -> bool:
    return at_marker(finding, THIS, marker)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.drop(self.features(x).mean((2, 3))))


class RandomInEval(CNN):
    def forward(self, x):
        h = self.features(x).mean((2, 3))
        return self.head(F.dropout(h, p=0.5))  # <- functional dropout


def setup(seed: int = 0):
    torch.manual_seed(seed)
    model = CNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = [(torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))) for _ in range(3)]
    return model, opt, data


def train_step(model, opt, x, y):
    F.cross_entropy(model(x), y).backward()
    opt.step()  # <- step
    opt.zero_grad()


def validate_correctly(model, data):
    model.eval()
    with torch.no_grad():
        for x, _ in data:
            model(x)
    model.train()


def validate_and_forget(model, data):
    model.eval()  # <- forgets train
    with torch.no_grad():
        for x, _ in data:
            model(x)


def correct_loop(model, opt, data, epochs=2):
    for _ in range(epochs):
        model.train()
        for x, y in data:
            train_step(model, opt, x, y)
        validate_correctly(model, data)


registries = hook_registries


def model_hooks(model, opt):
    return (sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules()),
            len(opt._optimizer_step_pre_hooks))


# ----------------------------------------------------------------------------- clean runs


def test_correct_loop_is_clean_and_counts_steps():
    model, opt, data = setup()
    with modelint.guard(model, opt) as g:
        correct_loop(model, opt, data)
    assert g.report.ok, str(g.report)
    assert (g.report.steps, g.report.checked, g.report.eval_forwards) == (6, 6, 6)
    assert "no findings in 6 optimizer steps" in str(g.report)


def test_guard_changes_nothing_the_run_computes():
    """Same seed with and without the guard: same weights, statistics, modes, RNG, grad mode."""
    results = []
    for guarded in (False, True):
        model, opt, data = setup(seed=3)
        random.seed(1)
        np.random.seed(1)
        torch.manual_seed(7)
        if guarded:
            with modelint.guard(model, opt):
                correct_loop(model, opt, data)
        else:
            correct_loop(model, opt, data)
        results.append((model.state_dict(), [m.training for m in model.modules()],
                        torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy(),
                        torch.is_grad_enabled()))
    (sd0, modes0, rng0, py0, np0, grad0), (sd1, modes1, rng1, py1, np1, grad1) = results
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    assert modes0 == modes1 and grad0 == grad1
    assert torch.equal(rng0, rng1) and py0 == py1 and (np0 == np1).all()


def test_guard_leaves_modes_alone_when_it_starts_and_stops():
    model, opt, _ = setup()
    model.features.eval()
    before = [m.training for m in model.modules()]
    with modelint.guard(model, opt, on_violation="log"):
        assert [m.training for m in model.modules()] == before
    assert [m.training for m in model.modules()] == before


# ----------------------------------------------------------------------------- scenario 2


def test_validation_helper_that_leaves_eval_on_is_reported_at_its_line():
    model, opt, data = setup()
    with pytest.raises(modelint.ModeViolation) as info:
        with modelint.guard(model, opt):
            model.train()
            train_step(model, opt, *data[0])
            validate_and_forget(model, data)
            train_step(model, opt, *data[1])
    finding = info.value.finding
    assert finding.code == "MDL610" and finding.name == "trained-in-eval-mode"
    assert at(finding, "forgets train"), finding
    assert "`features.1` (BatchNorm2d)" in finding.message and "`drop` (Dropout, p=0.3)" in finding.message
    assert "in eval mode at optimizer step 2" in finding.message
    assert f"`model.eval()` at {finding.path}:{line('forgets train')}" in finding.message
    assert str(info.value).startswith("MDL610 [trained-in-eval-mode]")


def test_warn_mode_keeps_going_and_reports_each_cause_once():
    model, opt, data = setup()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with modelint.guard(model, opt, on_violation="warn") as g:
            model.train()
            for _ in range(2):  # the same bug twice: one finding per module and eval() call
                train_step(model, opt, *data[0])
                validate_and_forget(model, data)
                train_step(model, opt, *data[1])
                model.train()
    mine = [w for w in caught if issubclass(w.category, ModeWarning)]
    assert [f.code for f in g.report.findings] == ["MDL610"]  # one line, run twice: one cause
    assert [str(w.message)[:6] for w in mine] == ["MDL610"]
    assert all(Path(w.filename).resolve() == THIS and w.lineno == line("forgets train") for w in mine)


def test_log_mode_logs(caplog):
    model, opt, data = setup()
    with caplog.at_level(logging.WARNING, logger="modelint.guard"):
        with modelint.guard(model, opt, on_violation="log") as g:
            model.eval()  # <- eval before step
            train_step(model, opt, *data[0])
    assert [f.code for f in g.report.findings] == ["MDL610"]
    assert at(g.report.findings[0], "eval before step")
    assert any(r.getMessage().startswith("MDL610") for r in caplog.records)


# ----------------------------------------------------------------------------- scenario 3


def frozen_backbone():
    model, _, data = setup()
    model.features.requires_grad_(False)
    model.features.eval()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    return model, opt, data


def test_frozen_backbone_batch_norm_flipped_back_by_train_is_reported():
    model, opt, data = frozen_backbone()
    with modelint.guard(model, opt, on_violation="log") as g:
        for x, y in data:
            model.train()  # <- flips backbone
            train_step(model, opt, x, y)
    assert [f.code for f in g.report.findings] == ["MDL611"], str(g.report)
    finding = g.report.findings[0]
    assert at(finding, "flips backbone")
    assert "frozen `features.1` (BatchNorm2d)" in finding.message
    assert "`running_mean`" in finding.message and "`model.train()`" in finding.message


def test_frozen_backbone_kept_in_eval_is_clean():
    model, opt, data = frozen_backbone()
    with modelint.guard(model, opt) as g:
        for x, y in data:
            model.train()
            model.features.eval()
            train_step(model, opt, x, y)
    assert g.report.ok, str(g.report)


def test_unfreezing_is_noticed_without_a_train_call():
    """The cached module list is rebuilt when the number of trainable parameters changes."""
    model, opt, data = frozen_backbone()
    with modelint.guard(model, opt, on_violation="log") as g:
        model.train()
        model.features.eval()
        train_step(model, opt, *data[0])
        model.features.requires_grad_(True)
        opt.add_param_group({"params": list(model.features.parameters())})
        train_step(model, opt, *data[1])
    assert [f.code for f in g.report.findings] == ["MDL610"], str(g.report)
    assert "`features.1` (BatchNorm2d) is in eval mode at optimizer step 2" in g.report.findings[0].message


# ----------------------------------------------------------------------------- allow-list


def test_frozen_allow_list_accepts_eval_mode_while_parameters_train():
    """Batch norm kept on its statistics on purpose while its affine weights train."""
    for frozen in ([], ["features"], [lambda m: m.features]):
        model, opt, data = setup()
        frozen = [f(model) if callable(f) else f for f in frozen]
        with modelint.guard(model, opt, frozen=frozen, on_violation="log") as g:
            model.train()
            model.features.eval()
            for x, y in data:
                train_step(model, opt, x, y)
        assert [f.code for f in g.report.findings] == ([] if frozen else ["MDL610"]), str(g.report)


def test_frozen_module_in_train_mode_is_reported_once():
    model, opt, data = setup()
    with modelint.guard(model, opt, frozen=[model.drop], on_violation="log") as g:
        model.train()  # <- drop stays on
        for x, y in data:
            train_step(model, opt, x, y)
    assert [f.code for f in g.report.findings] == ["MDL612"], str(g.report)
    assert "frozen `drop` (Dropout, p=0.3) is in train mode" in g.report.findings[0].message
    assert at(g.report.findings[0], "drop stays on")


def test_frozen_names_are_checked():
    model, opt, _ = setup()
    with pytest.raises(ValueError, match=r"no submodule named 'featurs'.*did you mean 'features'"):
        modelint.guard(model, opt, frozen=["featurs"])
    with pytest.raises(ValueError, match="not a submodule"):
        modelint.guard(model, opt, frozen=[nn.Dropout()])
    with pytest.raises(ValueError, match="on_violation"):
        modelint.guard(model, opt, on_violation="panic")
    with pytest.raises(ValueError, match="check_every"):
        modelint.guard(model, opt, check_every=0)


def test_check_every_skips_steps():
    model, opt, data = setup()
    with modelint.guard(model, opt, check_every=2, on_violation="log") as g:
        model.train()
        train_step(model, opt, *data[0])
        model.eval()
        train_step(model, opt, *data[1])  # step 2: not checked
        train_step(model, opt, *data[2])  # step 3: checked
    assert (g.report.steps, g.report.checked) == (3, 2)
    assert "at optimizer step 3" in g.report.findings[0].message


def test_global_hook_checks_only_the_parameters_it_steps():
    """Without `optimizer`, every optimizer's step is checked, against its own parameters (GAN:
    the generator may be in eval mode while the discriminator steps)."""
    torch.manual_seed(0)
    gen, disc = CNN(), CNN()
    opt_d = torch.optim.SGD(disc.parameters(), lr=0.1)
    model = nn.ModuleDict({"gen": gen, "disc": disc})
    with modelint.guard(model, on_violation="log") as g:
        model.train()
        gen.eval()
        F.cross_entropy(disc(torch.randn(2, 3, 8, 8)), torch.tensor([0, 1])).backward()
        opt_d.step()
        assert g.report.ok, str(g.report)
        disc.eval()  # <- disc off
        F.cross_entropy(disc(torch.randn(2, 3, 8, 8)), torch.tensor([0, 1])).backward()
        opt_d.step()
    assert [f.code for f in g.report.findings] == ["MDL610"]
    assert at(g.report.findings[0], "disc off") and "`disc.drop`" in g.report.findings[0].message
    assert "`gen." not in g.report.findings[0].message


# ----------------------------------------------------------------------------- evaluation checks


def test_validation_in_train_mode_is_reported_once_at_the_call():
    model, opt, data = setup()
    with modelint.guard(model, opt, on_violation="log") as g:
        model.train()  # <- left on
        train_step(model, opt, *data[0])
        with torch.no_grad():
            for x, _ in data:
                model(x)  # <- validates
    assert [f.code for f in g.report.findings] == ["MDL613"], str(g.report)
    finding = g.report.findings[0]
    assert at(finding, "validates")
    assert "validation in train mode" in finding.message and "`drop` (Dropout, p=0.3)" in finding.message
    assert f"`model.train()` at {finding.path}:{line('left on')}" in finding.message


def test_eval_forward_drawing_random_numbers_is_located():
    torch.manual_seed(0)
    model = RandomInEval().eval()
    with modelint.guard(model, on_violation="log") as g:
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(2, 3, 8, 8))
    assert [f.code for f in g.report.findings] == ["MDL614"], str(g.report)
    finding = g.report.findings[0]
    assert at(finding, "functional dropout")
    assert "aten::" in finding.message and "model` (RandomInEval)" in finding.message


def test_eval_randomness_seen_once_is_reported_when_the_guard_stops():
    torch.manual_seed(0)
    model = RandomInEval().eval()
    with modelint.guard(model, on_violation="log") as g:
        with torch.no_grad():
            model(torch.randn(2, 3, 8, 8))  # <- single eval
        assert g.report.ok
    assert [f.code for f in g.report.findings] == ["MDL614"]
    assert at(g.report.findings[0], "single eval") and "torch random generator" in g.report.findings[0].message


def test_clean_eval_forwards_report_nothing():
    model, opt, data = setup()
    model.eval()
    with modelint.guard(model, opt) as g:
        with torch.inference_mode():
            for x, _ in data:
                model(x)
    assert g.report.ok and g.report.eval_forwards == 3


# ----------------------------------------------------------------------------- transformers (scenario 1)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bert")
    BertForSequenceClassification(config).save_pretrained(path)
    return path


def bert_batch():
    return torch.randint(0, 64, (4, 8)), torch.randint(0, 2, (4,))


def test_from_pretrained_model_trained_in_eval_mode_is_reported(bert_dir):
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(bert_dir)  # eval mode
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids, labels = bert_batch()
    with pytest.raises(modelint.ModeViolation) as info:
        with modelint.guard(model, opt):
            model(input_ids=ids, labels=labels).loss.backward()
            opt.step()  # <- bert step
    finding = info.value.finding
    assert finding.code == "MDL610" and at(finding, "bert step")
    assert "`bert.embeddings.dropout` (Dropout, p=0.1)" in finding.message
    assert "since before the guard started (from_pretrained() returns models in eval mode" in finding.message
    assert "modeling_utils.py:" in finding.message


def test_from_pretrained_model_switched_to_train_is_clean_and_validation_helper_caught(bert_dir):
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(bert_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids, labels = bert_batch()
    with modelint.guard(model, opt, on_violation="log") as g:
        model.train()
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        assert g.report.ok, str(g.report)
        model.eval()  # <- bert eval
        with torch.no_grad():
            model(input_ids=ids)
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
    assert [f.code for f in g.report.findings] == ["MDL610"]
    assert at(g.report.findings[0], "bert eval")
    assert "encoder.layer.0.attention.output.dropout" in g.report.findings[0].message


# ----------------------------------------------------------------------------- leaves no trace


def test_hooks_are_gone_afterwards_also_after_an_exception():
    model, opt, data = setup()
    before, hooks = registries(), model_hooks(model, opt)
    for optimizer in (opt, None):
        with modelint.guard(model, optimizer, on_violation="log"):
            assert registries() != before or optimizer is not None
            assert nn.Module.__dict__["train"] is not before[3]
            correct_loop(model, opt, data, epochs=1)
        assert registries() == before and model_hooks(model, opt) == hooks
        with pytest.raises(KeyError):
            with modelint.guard(model, optimizer):
                model.train()
                raise KeyError("user code failed")
        assert registries() == before and model_hooks(model, opt) == hooks
        with pytest.raises(modelint.ModeViolation):
            with modelint.guard(model, optimizer):
                model.eval()
                train_step(model, opt, *data[0])
        assert registries() == before and model_hooks(model, opt) == hooks


def test_start_stop_without_with_and_while_locating():
    torch.manual_seed(0)
    model = RandomInEval().eval()
    before = registries()
    g = modelint.guard(model, on_violation="log")
    g.start()
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8))
        with pytest.raises(RuntimeError):
            model(torch.randn(2, 5, 8, 8))  # raises inside the locating forward
        assert torch._C._len_torch_dispatch_stack() == 0  # the op logger is gone with it
        model(torch.randn(2, 3, 8, 8))  # located now
    report = g.stop()
    assert registries() == before and torch._C._len_torch_dispatch_stack() == 0
    assert report is g.report and [f.code for f in report.findings] == ["MDL614"]
    assert "aten::" in report.findings[0].message and at(report.findings[0], "functional dropout")


def test_import_modelint_stays_free_of_torch():
    code = ("import sys, modelint; assert 'torch' not in sys.modules; "
            "import modelint.integrations.lightning, modelint.integrations.transformers; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "assert 'lightning' not in sys.modules; modelint.ModeViolation; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=THIS.parents[2])


def test_guard_codes_are_documented_in_the_catalogue():
    infos = catalog()
    assert [i.code for i in GUARD_CODES] == ["MDL610", "MDL611", "MDL612", "MDL613", "MDL614"]
    for info in GUARD_CODES:
        assert info.kind == "guard" and infos[info.code] is info or infos[info.code] == info
        assert info.summary and info.what and info.why and info.example and info.use_instead
