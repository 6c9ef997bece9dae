"""MDL301 (eval-not-undone-in-training-loop) and MDL302 (inference-in-train-mode): the flow
analysis in `modelint.analysis.modeflow` and the rules' exemptions, beyond the rules' own
VALID/INVALID examples."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from modelint.engine import check_source
from tests.helpers import actual, diff, expected_from_source


def run(source: str, code: str, path: str = "example.py"):
    source = textwrap.dedent(source)
    return [f for f in check_source(source, path=path, select=[code]) if f.code == code]


def check_annotated(source: str, code: str, path: str = "example.py"):
    source = textwrap.dedent(source)
    expected = expected_from_source(source, only=[code])
    got = actual(check_source(source, path=path, select=[code]), only=[code])
    assert got == expected, diff(expected, got)


# ---------------------------------------------------------------------------------------------
# MDL301: loop order and call following


def test_eval_at_end_of_epoch_reaches_next_iterations_step():
    check_annotated(
        """
        def fit(model, opt, loader, epochs):
            for epoch in range(epochs):
                for x in loader:
                    model(x).sum().backward()
                    opt.step()
                model.eval()  # expect: MDL301
        """,
        "MDL301",
    )


def test_train_at_loop_top_or_after_eval_is_clean():
    assert not run(
        """
        def fit(model, opt, loader, epochs):
            for epoch in range(epochs):
                model.train(True)
                for x in loader:
                    model(x).sum().backward()
                    opt.step()
                model.eval()

        def fit2(model, opt, loader, epochs):
            for epoch in range(epochs):
                for x in loader:
                    model(x).sum().backward()
                    opt.step()
                model.eval()
                model.train()
        """,
        "MDL301",
    )


def test_train_inside_called_epoch_function_is_followed_transitively():
    src = """
        def _switch(net):
            net.train()

        def train_one_epoch(model, loader, optimizer):
            _switch(model)
            for x, y in loader:
                optimizer.zero_grad()
                model(x, y).backward()
                optimizer.step()

        def run_validation(model, loader):
            model.eval()

        def validate(net, loader):
            return run_validation(net, loader)

        def main(model, loader, optimizer):
            for epoch in range(10):
                train_one_epoch(model, loader, optimizer)
                validate(model, loader)
        """
    assert not run(src, "MDL301")
    buggy = src.replace("_switch(model)", "pass")
    found = run(buggy, "MDL301")
    assert [f.line for f in found] == [21]
    assert "`model.eval()` on line 13 in `run_validation()`" in found[0].message
    assert "in `train_one_epoch()`" in found[0].message
    assert "next iteration" in found[0].message


def test_argument_mapping_keyword_and_different_objects():
    check_annotated(
        """
        def evaluate(loader, model=None):
            model.eval()

        def fit(net, other, opt, loader):
            net.train()
            for x in loader:
                net(x).sum().backward()
                opt.step()
                evaluate(loader, model=other)      # another object: not the trained net
                evaluate(loader, model=net)  # expect: MDL301
        """,
        "MDL301",
    )


def test_self_method_chain_and_super():
    check_annotated(
        """
        class Base:
            def evaluate(self):
                self.model.eval()

        class Trainer(Base):
            def validate(self):
                super().evaluate()

            def step(self, batch):
                self.model(batch).backward()
                self.optimizer.step()

            def fit(self, loader):
                for batch in loader:
                    self.step(batch)
                    self.validate()  # expect: MDL301
        """,
        "MDL301",
    )


def test_nested_helper_function_closure():
    check_annotated(
        """
        def main(model, opt, loader):
            def evaluate():
                model.eval()
                return 0.0

            model.train()
            for epoch in range(3):
                for x in loader:
                    model(x).mean().backward()
                    opt.step()
                evaluate()  # expect: MDL301
        """,
        "MDL301",
    )


def test_break_return_and_continue_paths():
    assert not run(
        """
        def fit(model, opt, loader, max_steps):
            model.train()
            for step, x in enumerate(loader):
                model(x).sum().backward()
                opt.step()
                if step >= max_steps:
                    model.eval()
                    return model
            while True:
                model(x).sum().backward()
                opt.step()
                model.eval()
                break
        """,
        "MDL301",
    )
    check_annotated(
        """
        def fit(model, opt, loader):
            model.train()
            for step, x in enumerate(loader):
                if step % 100 == 0:
                    model.eval()  # expect: MDL301
                    continue
                model(x).sum().backward()
                opt.step()
        """,
        "MDL301",
    )


def test_restoring_saved_mode_and_try_finally():
    assert not run(
        """
        def evaluate(model):
            was_training = model.training
            model.eval()
            try:
                return model.score()
            finally:
                model.train(was_training)

        def fit(model, opt, loader):
            model.train()
            for x in loader:
                model(x).sum().backward()
                opt.step()
                evaluate(model)
        """,
        "MDL301",
    )


def test_other_models_are_exempt():
    assert not run(
        """
        import copy
        import torch

        def fit(model, teacher_model, target_net, opt, loader):
            model_ema = copy.deepcopy(model)
            shadow = copy.deepcopy(model)
            model.train()
            for x in loader:
                teacher_model.eval()
                target_net.eval()
                model(x).sum().backward()
                opt.step()
                model_ema.eval()
                shadow.eval()
                candidate = torch.load("last.pt")
                candidate.eval()
                opt.eval()             # schedule-free optimizers have eval()/train() too
                model.encoder.eval()   # a sub-module frozen on purpose
        """,
        "MDL301",
    )


def test_backward_only_loops_are_not_training_loops():
    assert not run(
        """
        def saliency(model, images, steps):
            for _ in range(steps):
                model.eval()
                model(images).max().backward()
                images = images + images.grad
        """,
        "MDL301",
    )


def test_lightning_classes_are_exempt_but_plain_classes_are_not():
    src = """
        import lightning.pytorch as L

        class Lit(L.LightningModule):
            def fit_loop(self, loader, opt):
                for batch in loader:
                    self.manual_backward(self(batch))
                    opt.step()
                    self.eval()

        class Plain:
            def fit_loop(self, loader, opt):
                for batch in loader:
                    self.net(batch).backward()
                    opt.step()
                    self.net.eval()  # expect: MDL301
        """
    check_annotated(src, "MDL301")


def test_fit_method_named_train_is_not_a_mode_switch():
    check_annotated(
        """
        class Runner:
            def train(self, loader, epochs):
                for epoch in range(epochs):
                    for batch in loader:
                        self.model(batch).backward()
                        self.optimizer.step()
                    self.model.eval()  # expect: MDL301

        def main(runner, loader):
            runner.train(loader, 10)
        """,
        "MDL301",
    )


def test_module_level_script():
    check_annotated(
        """
        import torch

        model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
        optimizer = torch.optim.Adam(model.parameters())

        def evaluate():
            model.eval()
            return 1.0

        for epoch in range(5):
            for _ in range(10):
                model(torch.randn(3, 2)).sum().backward()
                optimizer.step()
            evaluate()  # expect: MDL301
        """,
        "MDL301",
    )


def test_recursion_and_deep_call_chains_terminate():
    src = "def f0(model):\n    model.eval()\n"
    for i in range(1, 12):
        src += f"def f{i}(model):\n    f{i - 1}(model)\n    f{i}(model)\n"
    src += (
        "def fit(model, opt, loader):\n    model.train()\n    for x in loader:\n"
        "        model(x).backward()\n        opt.step()\n        f11(model)\n"
    )
    run(src, "MDL301")  # bounded: no crash, no hang (the depth bound may stop following)
    assert not [f for f in check_source(src, select=["MDL301"]) if f.code == "MDL999"]


# ---------------------------------------------------------------------------------------------
# MDL302


def test_no_grad_forms():
    check_annotated(
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.1)

        def a(x):
            model = Net()
            with torch.set_grad_enabled(False):
                return model(x)  # expect: MDL302

        def b(x):
            model = Net()
            with torch.set_grad_enabled(True):
                return model(x)

        @torch.no_grad
        def c(x):
            model = Net()
            return model.forward(x)  # expect: MDL302

        def d(x):
            model = Net()
            with torch.inference_mode(False):
                return model(x)
        """,
        "MDL302",
    )


def test_mode_free_torch_layers_and_sequential_contents():
    check_annotated(
        """
        import torch
        from torch import nn

        def run(x):
            conv = nn.Conv2d(3, 3, 3)
            head = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
            drop = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1))
            with torch.no_grad():
                conv(x)
                head(x)
                drop(x)  # expect: MDL302
        """,
        "MDL302",
    )


def test_from_pretrained_and_helper_returning_eval_model():
    assert not run(
        """
        import torch
        from diffusers import UNet2DModel
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.1)

        def load(path):
            model = Net()
            model.load_state_dict(torch.load(path))
            return model.eval()

        def predict(path, x):
            model = load(path)
            unet = UNet2DModel.from_pretrained("google/ddpm-cifar10-32")
            with torch.no_grad():
                return model(x), unet(x, 0)
        """,
        "MDL302",
    )


def test_parameter_callers_in_the_file_decide():
    check_annotated(
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.1)

        def evaluate(model, x):
            with torch.no_grad():
                return model(x)

        def validate(net, x):
            with torch.no_grad():
                return net(x)  # expect: MDL302

        def main(x):
            model = Net()
            model.eval()
            evaluate(model, x)
            net = Net()
            validate(net, x)
        """,
        "MDL302",
    )


def test_parameter_passed_through_callers():
    check_annotated(
        """
        import torch

        def evaluate(model, x):
            with torch.no_grad():
                return model(x)

        def run(model, x):
            return evaluate(model, x)

        def main(model, x):
            model.eval()
            return run(model, x)
        """,
        "MDL302",
    )


def test_parameter_case_needs_an_eval_name_a_plain_function_and_a_model_name():
    assert not run(
        """
        import torch

        def compute_targets(model, x):        # a training-time no_grad forward (distillation, DREAM)
            with torch.no_grad():
                return model(x)

        class Trainer:
            def distill(self, model, x):      # a method of a class that is not an evaluator
                with torch.no_grad():
                    return model(x)

        def evaluate_policy(model, env):      # `predict` of a high-level wrapper switches modes itself
            return model.predict(env)

        def evaluate_fn(fn, x):               # not a model
            with torch.no_grad():
                return fn(x)

        def infer_shape(model, x):            # "infer" as in "deduce"
            with torch.no_grad():
                return model(x).shape
        """,
        "MDL302",
    )


def test_pytest_files_do_not_use_the_name_trigger():
    src = """
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.1)

        def test_forward_shape():
            model = Net()
            assert model(1) is not None
        """
    assert not run(src, "MDL302", path="tests/test_model.py")
    assert len(run(src, "MDL302", path="train_utils.py")) == 1
    under_no_grad = src.replace("            assert model(1)", "            with torch.no_grad():\n                assert model(1)")
    under_no_grad = under_no_grad.replace("from torch import nn", "import torch\n        from torch import nn")
    assert not run(under_no_grad, "MDL302", path="tests/test_model.py")
    assert len(run(under_no_grad, "MDL302", path="train_utils.py")) == 1


def test_explicit_train_before_no_grad_is_deliberate():
    assert not run(
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.1)

        def update_bn(loader):
            model = Net()
            model.train()
            with torch.no_grad():
                for x in loader:
                    model(x)
        """,
        "MDL302",
    )


def test_message_says_no_grad_is_not_eval_mode():
    (finding,) = run(
        """
        import torch

        def predict(x):
            model = torch.hub.load("pytorch/vision", "resnet18")
            with torch.no_grad():
                return model(x)
        """,
        "MDL302",
    )
    assert "no_grad only turns off gradient tracking" in finding.message
    assert "model.eval()" in finding.message and "line 5" in finding.message


@pytest.mark.parametrize("code", ["MDL301", "MDL302"])
def test_no_finding_without_trigger_text(code):
    from modelint.rules import get_rule

    src = "import torch\n\ndef f(model, opt, loader):\n    for x in loader:\n        model(x).backward()\n        opt.step()\n"
    assert not any(t in src for t in get_rule(code).triggers) or not run(src, code)


def test_involvement_aliases_and_no_grad_only_models():
    check_annotated(
        """
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP

        def fit(model, helper, opt, loader, evaluate):
            ddp_model = DDP(model)
            for epoch in range(3):
                for x in loader:
                    with torch.no_grad():
                        hint = helper(x)          # only run under no_grad: not the trained model
                    ddp_model(x, hint).sum().backward()
                    opt.step()
                helper.eval()
                model.eval()  # expect: MDL301
                evaluate(model)
        """,
        "MDL301",
    )


def test_conditional_alias_in_helper_reaches_self_model():
    check_annotated(
        """
        class Trainer:
            def validate(self, model=None):
                model = model if model is not None else self.model
                model.eval()

            def fit(self, loader):
                self.model.train()
                for epoch in range(3):
                    for batch in loader:
                        self.model(batch).backward()
                        self.optimizer.step()
                    self.validate()  # expect: MDL301
        """,
        "MDL301",
    )


def test_forward_through_unfollowed_call_counts_as_training():
    check_annotated(
        """
        from mylib.engine import train_one_epoch, evaluate

        def main(model, loader, optimizer):
            for epoch in range(10):
                train_one_epoch(model, loader, optimizer)
                optimizer.step()
                model.eval()  # expect: MDL301
                evaluate(model, loader)
        """,
        "MDL301",
    )


def test_mdl301_message_does_not_depend_on_the_hash_seed(tmp_path):
    """`evaluate(ddp)` leaves both `ddp` and the `model` it wraps in eval: the reported key is the one
    the call names, whatever order the state's keys come in (set iteration follows PYTHONHASHSEED;
    before the fix seeds 0, 8 and 9 of 0-9 named `model`)."""
    import os
    import subprocess
    import sys

    source = textwrap.dedent('''
        import torch

        def evaluate(net, loader):
            net.eval()
            with torch.no_grad():
                return [net(x) for x in loader]

        def fit(model, optimizer, loader, val_loader):
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            model.train()
            for epoch in range(3):
                for x in loader:
                    optimizer.zero_grad()
                    ddp(x).sum().backward()
                    optimizer.step()
                evaluate(ddp, val_loader)
        ''')
    path = tmp_path / "fit.py"
    path.write_text(source)
    root = str(Path(__file__).resolve().parents[1])
    outputs = set()
    for seed in ("0", "1", "8"):  # on the tree before, seeds 0 and 8 named `model`, 1 `ddp`
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root}
        done = subprocess.run([sys.executable, "-m", "modelint", "check", "--no-cache", "--select", "MDL301", str(path)],
                              env=env, capture_output=True, text=True, cwd=str(tmp_path))
        outputs.add(done.stdout)
    assert len(outputs) == 1, outputs
    assert "leaves `ddp` in eval mode" in outputs.pop()


def test_forwarded_keys_are_models_not_builtins_or_imported_functions():
    """modeflow's `forwarded` (the keys a training step can train, read by MDL301/302/303): a call of a
    builtin or of an imported function not named as a model runs no model; a local callable, an
    imported name that says it is a model, and a called method of a model still count."""
    import libcst as cst

    from modelint.analysis.context import FileContext
    from modelint.analysis.classbodies import with_bodies
    from modelint.analysis.index import ProjectIndex, facts_from_source
    from modelint.analysis.modeflow import for_context
    from modelint.analysis.modules import ModuleClassifier

    data = textwrap.dedent('''
        from audio import mel_spectrogram
        from zoo import pretrained_net

        def fit(model, head, optimizer, loader):
            for step, (x, y) in enumerate(loader):
                n = len(y)
                feats = mel_spectrogram(x)
                loss = (head(model.encode(feats)) + pretrained_net(feats)).sum() / n
                loss.backward()
                optimizer.step()
        ''').encode()
    facts = with_bodies(facts_from_source(data, Path("m.py"), "m"), data)
    index = ProjectIndex()
    index.add(facts)
    module = cst.parse_module(data)
    ctx = FileContext("m.py", module, facts, ModuleClassifier(index))
    fn = next(s for s in module.body if isinstance(s, cst.FunctionDef))
    forwarded = {k for k, _ in for_context(ctx).flow(fn).forwarded}
    assert {"head", "pretrained_net"} <= forwarded
    assert "model" in forwarded  # `model.encode(feats)`: a half of the model's forward runs it
    assert not forwarded & {"enumerate", "len", "mel_spectrogram"}


@pytest.mark.parametrize("build, reported", [
    ("torch.optim.Adam(decoder.parameters(), lr=1e-4)", False),      # readable, without feature_net
    ("build_optimizer(cfg, decoder)", True),                          # not readable: old behaviour
    ("torch.optim.Adam(params, lr=1e-4)", True),                      # `params` is a parameter
    ("torch.optim.Adam(feature_net.parameters(), lr=1e-4)", True),    # it is trained after all
])
def test_a_network_in_no_optimizer_is_not_trained_by_the_step(build, reported):
    """MDL303 (analysis/optimized.py): a fixed loss network in eval is reported only when the step
    can train it, or when the file's optimizers cannot be read."""
    source = textwrap.dedent(f"""
        import torch

        def decoder_rounds(decoder, feature_net, pairs, rounds, cfg, params):
            feature_net.eval()
            opt_dec = {build}
            for r in range(rounds):
                for code, image in pairs:
                    loss = (feature_net(decoder(code)) - feature_net(image)).pow(2).mean()
                    opt_dec.zero_grad()
                    loss.backward()
                    opt_dec.step()
        """)
    lines = [f.line for f in check_source(source, select=["MDL303"])]
    assert lines == ([12] if reported else [])
