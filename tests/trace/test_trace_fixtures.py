"""Every fixture model in fixtures/trace/models.py produces exactly its expected codes, at the
user source line responsible."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import modelint  # noqa: E402

from .conftest import FIXTURES, line_of, load_fixture_module, same_file  # noqa: E402

MODELS = FIXTURES / "models.py"
EXPECTED = load_fixture_module("models").EXPECTED


def verify(models, name, **kw):
    model, inputs = getattr(models, name)()
    return modelint.verify_modes(model, *inputs, **kw)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_reports_exactly_its_codes(models, name):
    report = verify(models, name)
    assert set(report.codes) == EXPECTED[name], str(report)
    for finding in report.findings:
        assert finding.name and finding.level in ("error", "warning")
        assert "0x" not in finding.message  # no ids or addresses


def only(report, code):
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, str(report)
    return found[0]


def test_always_sampling_policy_points_at_multinomial(models):
    f = only(verify(models, "vrp_policy_always_samples"), "MDL601")
    assert same_file(f.path, MODELS)
    assert f.line == line_of(MODELS, "torch.multinomial(probs, 1)", after="class AlwaysSamplingPolicy")
    assert "aten::multinomial" in f.message and "AlwaysSamplingPolicy" in f.message
    assert dict(f.extra)["op"] == "aten::multinomial"


def test_functional_dropout_points_at_the_call(models):
    f = only(verify(models, "functional_dropout"), "MDL601")
    assert f.line == line_of(MODELS, "F.dropout(h, p=0.2)")
    assert "aten::dropout" in f.message and "training=self.training" in f.message


def test_sdpa_constant_dropout_points_at_the_call(models):
    f = only(verify(models, "sdpa_constant_dropout"), "MDL601")
    assert f.line == line_of(MODELS, "dropout_p=0.1)")
    assert "dropout_p=0.1" in f.message


def test_dropout_list_names_the_attribute(models):
    report = verify(models, "dropout_list")
    assign = line_of(MODELS, "self.layers = [nn.Linear(8, 8), nn.Dropout(0.2)]")
    unregistered = [f for f in report.findings if f.code == "MDL604"]
    assert sorted(dict(f.extra)["module"] for f in unregistered) == ["Dropout", "Linear"]
    assert all(f.line == assign and "DropoutListMLP.layers" in f.message for f in unregistered)
    stuck = only(report, "MDL603")
    assert stuck.line == assign and "Dropout" in stuck.message and "training=True" in stuck.message


def test_batch_norm_training_true_points_at_the_call(models):
    f = only(verify(models, "batch_norm_always_training"), "MDL602")
    assert f.line == line_of(MODELS, "return F.batch_norm(")
    assert "running_mean" in f.message and "running_var" in f.message and "`norm` (StatsNorm)" in f.message


def test_broken_override_points_at_def_train(models):
    f = only(verify(models, "broken_train_override"), "MDL603")
    assert f.line == line_of(MODELS, "def train(self, mode=True):", after="class FrozenEncoderNet")
    assert "FrozenEncoderNet.train()" in f.message and "`dropout` (Dropout)" in f.message


def test_forced_training_flag_points_at_the_call(models):
    f = only(verify(models, "training_flag_forced"), "MDL603")
    assert f.line == line_of(MODELS, "return self.head(self.dropout(", after="class MCDropoutNet")
    assert "set during the forward" in f.message


def test_unused_dropout_points_at_its_declaration(models):
    f = only(verify(models, "unused_dropout"), "MDL605")
    assert f.line == line_of(MODELS, "self.dropout = nn.Dropout(0.3)")
    assert f.level == "warning"


def test_eval_only_crash_names_exception_and_line(models):
    f = only(verify(models, "eval_only_crash"), "MDL606")
    assert f.line == line_of(MODELS, "return self.head(h.mean(dim=-1))")
    assert "RuntimeError" in f.message and "in eval mode but not in training mode" in f.message


def test_detached_output_is_reported(models):
    f = only(verify(models, "detached_output"), "MDL607")
    assert f.level == "warning"


def test_findings_are_deterministic(models):
    first = [f.to_dict() for f in verify(models, "dropout_list").findings]
    second = [f.to_dict() for f in verify(models, "dropout_list").findings]
    assert first == second
