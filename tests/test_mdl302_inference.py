"""MDL302 (inference-in-train-mode): what is not inference (`analysis/inference.py`: probes, build
code, eval contexts), a model's sensitivity through pass-through wrappers and callers, and the
detections of issue 14 (held-out batches every N steps, helpers after the training step, global
models of scripts, models returned by a loader helper of another file). Each exemption has a near
miss that must still be reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from modelint.analysis import inference
from modelint.engine import EngineSettings, check_paths, check_source
from tests.helpers import actual, diff, expected_from_source

HEADER = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.1)

class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
"""


def check(source: str, path: str = "example.py"):
    source = textwrap.dedent(HEADER) + textwrap.dedent(source)
    expected = expected_from_source(source, only=["MDL302"])
    got = actual(check_source(source, path=path, select=["MDL302"]), only=["MDL302"])
    assert got == expected, diff(expected, got)


# ---------------------------------------------------------------------------------------------
# Probes: synthetic input or shape-only results


def test_smoke_test_of_an_untrained_network_is_not_inference():
    check(
        """
        def smoke():
            net = Net()
            with torch.no_grad():
                out = net(torch.zeros(1, 3, 32, 32))
            print(out.shape)

        def smoke_random_named_input():
            net = Net().to("cpu")
            dummy = torch.randn(2, 3, 8, 8)
            with torch.no_grad():
                y = net(dummy)
            return y
        """
    )


def test_probe_near_misses_are_reported():
    check(
        """
        def loaded_weights(path):
            net = Net()
            net.load_state_dict(torch.load(path))
            with torch.no_grad():
                return net(torch.zeros(1, 3, 32, 32))  # expect: MDL302

        def real_data(loader):
            net = Net()
            with torch.no_grad():
                return [net(x) for x in loader]  # expect: MDL302

        def data_wrapped_in_a_tensor(rows):
            net = Net()
            with torch.no_grad():
                return net(torch.tensor(rows))  # expect: MDL302

        def shape_and_values(x):
            net = Net()
            net.load_state_dict(torch.load("w.pt"))
            with torch.no_grad():
                out = net(x)  # expect: MDL302
            print(out.shape)
            return out.argmax(1)
        """
    )


def test_shape_only_result_of_a_loaded_model_is_not_inference():
    check(
        """
        def feature_size(path, x):
            net = Net()
            net.load_state_dict(torch.load(path))
            with torch.no_grad():
                return net(x).shape[1]

        def count(path, x):
            net = Net()
            net.load_state_dict(torch.load(path))
            with torch.no_grad():
                out = net(x)
            return len(out), out.size(0)
        """
    )


# ---------------------------------------------------------------------------------------------
# Build code and eval contexts


def test_no_grad_forward_in_construction_code_is_not_inference():
    check(
        """
        class Head(nn.Module):
            def __init__(self, backbone_path):
                super().__init__()
                trunk = Net()
                trunk.load_state_dict(torch.load(backbone_path))
                with torch.no_grad():
                    self.width = trunk(torch.load("probe.pt")).flatten(1)[0].numel()

        def build_model(path, sample):
            net = Net()
            net.load_state_dict(torch.load(path))
            with torch.no_grad():
                net(sample)  # materialise lazy layers
            return net

        def make_predictions(path, loader):
            net = Net()
            net.load_state_dict(torch.load(path))
            with torch.no_grad():
                return [net(x) for x in loader]  # expect: MDL302
        """
    )


def test_eval_contexts_and_decorators_switch_the_mode_themselves():
    check(
        """
        from torchutils import evaluating, eval_mode

        def with_context(loader):
            net = Net()
            with evaluating(net), torch.no_grad():
                return [net(x) for x in loader]

        @eval_mode
        def decorated(loader):
            net = Net()
            with torch.no_grad():
                return [net(x) for x in loader]

        def context_for_another_model(loader):
            net, other = Net(), Net()
            with evaluating(other), torch.no_grad():
                return [net(x) for x in loader]  # expect: MDL302

        def inference_mode_is_not_eval_mode(loader):
            net = Net()
            with torch.inference_mode():
                return [net(x) for x in loader]  # expect: MDL302
        """
    )


@pytest.mark.parametrize(
    "name, expected",
    [("evaluating", True), ("eval_mode", True), ("model_eval", True), ("inference_context", True),
     ("inference_mode", False), ("no_grad", False), ("evaluate_retrieval", True), ("medieval", False),
     ("retrieval", False), ("interval_timer", False)],
)
def test_eval_context_names(name, expected):
    assert inference.eval_context_name(name, {"no_grad", "inference_mode", "set_grad_enabled"}) is expected


@pytest.mark.parametrize(
    "name, expected",
    [("__init__", True), ("build_model", True), ("_init_lazy", True), ("setup", True), ("make_layers", True),
     ("get_output_shape", True), ("_compute_feature_dims", True), ("make_predictions", False),
     ("create_submission", False), ("test_forward_shape", False), ("evaluate", False), ("predict_size", False)],
)
def test_build_names(name, expected):
    assert inference.build_name(name) is expected


# ---------------------------------------------------------------------------------------------
# Sensitivity through pass-through wrappers and callers


def test_pass_through_wrappers_keep_a_mode_free_model_mode_free():
    check(
        """
        def fit(model, loader, optimizer, test_loader):
            model.train()
            for x, y in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
            with torch.no_grad():
                for batch in test_loader:
                    out = model(batch[0])

        def main(engine, accelerator, loader, test_loader, private):
            model = Plain().to("cpu")
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            if private:
                model, optimizer, loader = engine.make_private(module=model, optimizer=optimizer, data_loader=loader)
            model = accelerator.prepare(model)
            fit(model, loader, optimizer, test_loader)
        """
    )


def test_a_parameter_moved_to_a_device_is_decided_by_its_callers():
    """`model = model.to(rank)` keeps what the parameter held: the callers' constructions decide
    (a mode-free `Plain()` here; a `Net()` with batch norm in the twin)."""
    check(
        """
        def run(rank, model, loader, test_loader):
            model = model.to(rank)
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model.train()
            for x, y in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
            with torch.no_grad():
                for batch in test_loader:
                    out = model(batch[0])

        def run_bn(rank, model, loader, test_loader):
            model = model.to(rank)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model.train()
            for x, y in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
            with torch.no_grad():
                for batch in test_loader:
                    out = model(batch[0])  # expect: MDL302

        def main(loader, test_loader, wide):
            model = Plain() if wide else Plain().cuda()
            run(0, model, loader, test_loader)
            run_bn(0, Net(), loader, test_loader)
        """
    )


def test_a_sensitive_caller_makes_the_helper_report():
    check(
        """
        def fit(model, loader, optimizer, test_loader):
            model.train()
            for x, y in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
            with torch.no_grad():
                for batch in test_loader:
                    out = model(batch[0])  # expect: MDL302

        def main(accelerator, loader, test_loader):
            model = accelerator.prepare(Plain())
            fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), test_loader)
            other = torch.compile(Net())
            fit(other, loader, torch.optim.SGD(other.parameters(), lr=0.1), test_loader)
        """
    )


# ---------------------------------------------------------------------------------------------
# New detections


def test_held_out_batch_every_n_steps_in_the_training_loop():
    check(
        """
        def fit(model, opt, loader, val_loader):
            model.train()
            for step, (x, y) in enumerate(loader):
                model(x).sum().backward()
                opt.step()
                if step % 100 == 0:
                    with torch.no_grad():
                        held = next(iter(val_loader))
                        out = model(held[0])  # expect: MDL302

        def fit_with_flag(model, opt, loader, dev_loader, mode=True):
            model.train(mode)
            for step, (x, y) in enumerate(loader):
                model(x).sum().backward()
                opt.step()
                if step % 100 == 0:
                    with torch.no_grad():
                        out = model(next(iter(dev_loader))[0])  # expect: MDL302

        def fit_switched(model, opt, loader, val_loader):
            for step, (x, y) in enumerate(loader):
                model.train()
                model(x).sum().backward()
                opt.step()
                if step % 100 == 0:
                    model.eval()
                    with torch.no_grad():
                        out = model(next(iter(val_loader))[0])

        def training_statistic(model, opt, loader):
            model.train()
            for step, (x, y) in enumerate(loader):
                model(x).sum().backward()
                opt.step()
                with torch.no_grad():
                    out = model(x)  # the training batch again: a training-time statistic
        """
    )


def test_held_out_calls_that_are_not_the_model():
    """Only the model is run in train mode: Python's builtins and plain functions called on held-out
    data after the step (`enumerate(val_loader)`, `len(val_loader)`, an imported feature function)
    are not models, even when the training loop called them too; the model call beside them is."""
    check(
        """
        from features import log_mel, write_wav

        def fit(gen, opt, loader, val_loader):
            gen.train()
            for epoch in range(3):
                for i, (x, y) in enumerate(loader):
                    feats = log_mel(x)
                    gen(feats).sum().backward()
                    opt.step()
                    write_wav("train.wav", x)
                with torch.no_grad():
                    for j, batch in enumerate(val_loader):
                        mel = log_mel(batch[0])
                        write_wav("val.wav", batch[0])
                    total = len(val_loader)

        def fit_and_score(generator, opt, loader, val_loader):
            generator.train()
            for epoch in range(3):
                for i, (x, y) in enumerate(loader):
                    generator(x).sum().backward()
                    opt.step()
                with torch.no_grad():
                    for j, batch in enumerate(val_loader):
                        out = generator(batch[0])  # expect: MDL302
        """
    )


def test_global_model_of_a_script_in_an_evaluation_function():
    src = """
        def train(epoch):
            net.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                net(x).sum().backward()
                optimizer.step()

        @torch.no_grad()
        def eval_training(epoch):
            correct = 0
            for images, labels in test_loader:
                outputs = net(images)  # expect: MDL302
                correct += (outputs.argmax(1) == labels).sum()
            return correct

        if __name__ == "__main__":
            net = Net()
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
            train_loader = test_loader = []
            for epoch in range(10):
                train(epoch)
                acc = eval_training(epoch)
        """
    check(src)
    switched = src.replace("    correct = 0\n", "    net.eval()\n    correct = 0\n", 1).replace("  # expect: MDL302", "")
    check(switched)
    unknown_caller = src.replace("                acc = eval_training(epoch)", "                net = load_somehow()\n"
                                 "                acc = eval_training(epoch)").replace("  # expect: MDL302", "")
    check(unknown_caller)


def test_neutral_helper_reading_a_global_model_on_held_out_data():
    check(
        """
        def train(epoch):
            net.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                net(x).sum().backward()
                optimizer.step()

        def compute_val_metrics(epoch):
            with torch.no_grad():
                return [net(x) for x in loader_a]

        if __name__ == "__main__":
            net = Net()
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
            for epoch in range(10):
                train(epoch)
                compute_val_metrics(epoch)  # expect: MDL302
        """
    )


def test_model_returned_by_a_loader_helper_of_another_file(tmp_path: Path):
    (tmp_path / "ckpt.py").write_text(textwrap.dedent(
        """
        import torch
        import torchvision

        def restore_from(path):
            net = torchvision.models.resnet18()
            net.load_state_dict(torch.load(path, map_location="cpu"))
            return net

        def restore_for_eval(path):
            net = torchvision.models.resnet18()
            net.load_state_dict(torch.load(path))
            net.eval()
            return net
        """
    ))
    (tmp_path / "run.py").write_text(textwrap.dedent(
        """
        import torch
        from ckpt import restore_from, restore_for_eval

        def main(test_loader):
            best = restore_from("best.pth")
            ready = restore_for_eval("best.pth")
            with torch.no_grad():
                for batch in test_loader:
                    a = best(batch[0])  # expect: MDL302
                    b = ready(batch[0])
        """
    ))
    paths = sorted(tmp_path.rglob("*.py"))
    result = check_paths(paths, EngineSettings(select=("MDL302",), root=str(tmp_path), jobs=1, cache=None))
    found = [f for f in result.findings if f.code == "MDL302"]
    assert [(Path(f.path).name, f.line) for f in found] == [("run.py", 10)]
    assert "restore_from" in found[0].message


def test_synthetic_recognises_shapes_not_data():
    class Ctx:
        framework = __import__("modelint.frameworks", fromlist=["profile_for"]).profile_for({"torch": "torch"})

        @staticmethod
        def resolve(node):
            from modelint.analysis.context import dotted
            return dotted(node)

    def expr(text):
        return cst.parse_expression(text)

    assert inference.synthetic(Ctx, expr("torch.zeros(1, 3, 32, 32)"), {})
    assert inference.synthetic(Ctx, expr("torch.randn(2, 16).to(dev)"), {})
    assert inference.synthetic(Ctx, expr("d"), {"d": [expr("torch.ones(4)")]})
    assert inference.synthetic(Ctx, expr("d"), {"d": [expr("torch.ones(4)"), expr("torch.rand(2, 8)")]})
    assert not inference.synthetic(Ctx, expr("d"), {"d": [expr("torch.ones(4)"), expr("next(it)")]})
    assert inference.synthetic(Ctx, expr("torch.tensor([1.0, 2.0])"), {})
    assert not inference.synthetic(Ctx, expr("torch.tensor(rows)"), {})
    assert not inference.synthetic(Ctx, expr("torch.zeros_like(x)"), {})
    assert not inference.synthetic(Ctx, expr("images"), {})


def test_model_handed_over_as_an_attribute_of_a_namespace():
    src = """
        from types import SimpleNamespace

        def evaluate(model, loader):
            with torch.no_grad():
                return [model(x) for x in loader]  # expect: MDL302

        def main(loader, val_loader):
            model = Net()
            opt = torch.optim.SGD(model.parameters(), 0.1)
            for epoch in range(3):
                model.train()
                for x in loader:
                    model(x).sum().backward()
                    opt.step()
                state = SimpleNamespace(net=model)
                evaluate(state.net, val_loader)
        """
    check(src)
    check(src.replace("SimpleNamespace(net=model)", "SimpleNamespace(net=model.eval())").replace("  # expect: MDL302", ""))


def test_evaluation_helper_called_after_the_training_step_in_the_loop():
    src = """
        def train(loader, model, opt):
            model.train()
            for x in loader:
                model(x).sum().backward()
                opt.step()

        def test(loader, model):
            with torch.no_grad():
                return [model(x) for x in loader]  # expect: MDL302

        def main(args, loader, test_loader):
            model = build(args)  # a factory whose mode cannot be told
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            if args.evaluate:
                return test(test_loader, model)
            for epoch in range(3):
                train(loader, model, opt)
                test(test_loader, model)
        """
    check(src)
    # one caller switches it: the helper is not reported, the call in the loop (train mode) still is
    check(src.replace("        return test(test_loader, model)", "        model.eval()\n"
                      "                return test(test_loader, model)").replace("  # expect: MDL302", "")
          .replace("        test(test_loader, model)\n", "        test(test_loader, model)  # expect: MDL302\n"))
    # both switch it: nothing is reported
    check(src.replace("        return test(test_loader, model)", "        model.eval()\n"
                      "                return test(test_loader, model)").replace("  # expect: MDL302", "")
          .replace("        test(test_loader, model)\n", "        model.eval()\n                test(test_loader, model)\n"))
    check(src.replace("                train(loader, model, opt)\n                test(test_loader, model)\n",
                      "                pass\n").replace("  # expect: MDL302", ""))


def _project_findings(tmp_path: Path, files):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    paths = sorted(tmp_path.rglob("*.py"))
    result = check_paths(paths, EngineSettings(select=("MDL302",), root=str(tmp_path), jobs=1, cache=None))
    return sorted((Path(f.path).name, f.line) for f in result.findings if f.code == "MDL302")


EVAL_HELPERS = """
import torch

def _evaluate(model, loader):
    out = []
    for x in loader:
        with torch.no_grad():
            out.append(model(x))
    return out

def validation(model, loader):
    return [model(x) for x in loader]

def validation_switched(model, loader):
    model.eval()
    return [model(x) for x in loader]

def validation_restored(model, loader):
    was = model.training
    model.eval()
    out = [model(x) for x in loader]
    model.train(was)
    return out

def collect(model, loader):
    was = model.training
    out = [model(x) for x in loader]
    model.train(was)
    return out
"""


def test_evaluation_helper_of_another_file_after_the_training_step(tmp_path: Path):
    found = _project_findings(tmp_path, {"helpers.py": EVAL_HELPERS, "train.py": """
        import torch
        from torch import nn
        from helpers import _evaluate, validation, validation_switched, validation_restored, collect

        def fit(model, opt, loader, val_loader):
            for epoch in range(3):
                model.train()
                for x in loader:
                    model(x).sum().backward()
                    opt.step()
                a = _evaluate(model, val_loader)
                with torch.no_grad():
                    b = validation(model, val_loader)
                c = validation(model, val_loader)  # not under no_grad, but named as an evaluation
                g = collect(model, val_loader)  # neither: it may be part of the training (with gradients)
                with torch.no_grad():
                    d = validation_switched(model, val_loader)
                    e = validation_restored(model, val_loader)

        def main(loader, val_loader):
            model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
            fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, val_loader)
        """})
    # (helpers.py's own `_evaluate` / `validation` are reported there too: no caller in that file switches)
    assert [f for f in found if f[0] == "train.py"] == [("train.py", 12), ("train.py", 14), ("train.py", 15)]


def test_evaluation_helper_of_another_file_before_any_training_step(tmp_path: Path):
    found = _project_findings(tmp_path, {"helpers.py": EVAL_HELPERS, "run.py": """
        import torch
        from helpers import _evaluate

        def report(model, val_loader):
            model.eval()
            return _evaluate(model, val_loader)

        def resume(model, val_loader):
            return _evaluate(model, val_loader)  # the caller's mode: not known here
        """})
    assert [f for f in found if f[0] == "run.py"] == []


SCORING = """
import torch

def evaluate_case(net, case):
    with torch.no_grad():
        return net(case).argmax(1)

def test_all_cases(net, cases):
    return [evaluate_case(net, c) for c in cases]
"""

FIT = """
import torch
from torch import nn
from {module} import test_all_cases

def main(loader, cases):
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        model.train()
        for x in loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
        {switch}
        scores = test_all_cases(model, cases)
"""


def test_a_helper_chain_of_another_file_is_judged_at_its_callers(tmp_path: Path):
    """`test_all_cases(net)` hands `net` to `evaluate_case`, which runs it under no_grad without a switch
    (SSL4MIS's val_3D). Imported by a training script, the helper file trusts its callers and the
    script's call is what is judged; the helper's summary carries the inner run (line 5) to it."""
    bad = _project_findings(tmp_path / "bad", {"scoring.py": SCORING, "fit.py": FIT.format(module="scoring", switch="pass")})
    assert bad == [("fit.py", 16)]
    good = _project_findings(tmp_path / "good", {"scoring.py": SCORING,
                                                 "fit.py": FIT.format(module="scoring", switch="model.eval()")})
    assert good == []


def test_a_helper_chain_of_a_package_is_judged_where_it_is_too(tmp_path: Path):
    """In a package (`lib/__init__.py`) the helper is public API: callers outside the checked code
    may pass a model in training mode, so it is reported where it is, as well as at the bad call."""
    found = _project_findings(tmp_path, {"lib/__init__.py": "", "lib/scoring.py": SCORING,
                                         "fit.py": FIT.format(module="lib.scoring", switch="model.eval()")})
    assert found == [("scoring.py", 6)]


def test_a_helper_chain_nobody_imports_is_judged_where_it_is(tmp_path: Path):
    """No checked file imports the helper (`from torch import scoring` is not the project's module):
    its file is the only place to say it."""
    alone = _project_findings(tmp_path, {"scoring.py": SCORING, "fit.py": FIT.format(module="torch", switch="pass")})
    assert alone == [("scoring.py", 6)]


def test_a_wrapper_construction_has_the_sensitivity_of_what_it_wraps():
    src = """
        def evaluate(loader, model):
            with torch.no_grad():
                return [model(x) for x in loader]  # expect: MDL302

        def main(loader):
            model = torch.nn.DataParallel(Net())
            return evaluate(loader, model)
        """
    check(src)
    check(src.replace("DataParallel(Net())", "DataParallel(Plain())").replace("  # expect: MDL302", ""))


def test_a_callable_handed_the_loss_and_the_optimizer_is_a_training_step():
    src = """
        def train_one_epoch(model, loader, val_loader, optimizer, loss_scaler, mode=True):
            model.train(mode)
            for step, (x, y) in enumerate(loader):
                loss = model(x).sum()
                loss_scaler(loss, optimizer, clip_grad=1.0)
                if step % 50 == 0:
                    with torch.no_grad():
                        out = model(next(iter(val_loader))[0])  # expect: MDL302
        """
    check(src)
    # near miss: a scheduler handed the optimizer (no loss) is not a step, so nothing says training ran
    check(src.replace("loss_scaler(loss, optimizer, clip_grad=1.0)", "adjust_lr(optimizer, step)")
          .replace("  # expect: MDL302", ""))


def test_neutral_helper_after_a_training_function_on_glued_held_out_names():
    src = """
        def train(loader, model, opt):
            model.train()
            for x in loader:
                model(x).sum().backward()
                opt.step()

        def compute_loss(loader, model):
            with torch.no_grad():
                return sum(model(x).sum() for x in loader)

        def main(trainloader, testloader):
            model = Net()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for epoch in range(3):
                train(trainloader, model, opt)
                compute_loss(testloader, model)  # expect: MDL302
                compute_loss(trainloader, model)
        """
    check(src)


@pytest.mark.parametrize(
    "text, expected",
    [("testloader", True), ("val_loader", True), ("valset", True), ("dev_batch", True), ("held_batch", True),
     ("trainloader", False), ("latest", False), ("device", False), ("interval", False), ("contest", False)],
)
def test_held_out_names(text, expected):
    assert inference.held_out_text(text) is expected


def test_script_level_code_is_checked_like_a_function():
    # (top-level code has no parameters: the held-out and probe checks read its assignments directly)
    check(
        """
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model.train()
        for x in train_loader:
            model(x).sum().backward()
            opt.step()
        with torch.no_grad():
            held = next(iter(val_loader))
            out = model(held[0])  # expect: MDL302
        probe = Net()
        with torch.no_grad():
            shape = probe(torch.zeros(1, 3, 8, 8)).shape
        """
    )


def test_globals_that_are_not_models_are_not_evaluated_models():
    # (a neutrally named helper calls `len` / `tqdm` / `DataLoader` under no_grad: not models)
    check(
        """
        from tqdm import tqdm

        def count_val_batches(loader):
            with torch.no_grad():
                return len(list(tqdm(loader)))

        def fit(model, opt, loader, val_loader):
            model.train()
            for x in loader:
                model(x).sum().backward()
                opt.step()
                n = len(x)
            count_val_batches(val_loader)
        """
    )


STAR_HELPERS = """
def validate(net, batches):
    return sum(float(net(x).argmax(1).eq(y).float().mean()) for x, y in batches)
"""

# a training method that validates every 50 steps through the star-imported `validate` and switches back
FIT_EPOCH = """    def fit_epoch(self, batches, dev_batches, opt):
        for i, (x, y) in enumerate(batches):
            opt.zero_grad()
            nn.functional.cross_entropy(self(x), y).backward()
            opt.step()
            if i % 50 == 0:
                print(validate(self, dev_batches))
                self.train()
"""

STAR_MODELS = """
from torch import nn
from helpers import *

class {name}(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), {layer}, nn.Linear(8, 2))

    def forward(self, x):
        return self.body(x)

""" + FIT_EPOCH

STAR_SCRIPT = """
import torch
from helpers import *
from models import *

net = {name}()
opt = torch.optim.Adam(net.parameters())
for epoch in range(5):
    net.fit_epoch(train_batches, dev_batches, opt)
print(validate(net, test_batches))
"""


@pytest.mark.parametrize("name, layer, expected", [
    ("Tagger", "nn.Dropout(0.3)", [("models.py", 19), ("run.py", 10)]),
    ("tagger", "nn.Dropout(0.3)", [("models.py", 19), ("run.py", 10)]),  # a lower-case class name
    ("Tagger", "nn.ReLU()", []),  # no mode-dependent layer: both modes compute the same
    ("tagger", "nn.Tanh()", []),
])
def test_a_star_imported_evaluation_helper_is_judged_at_its_callers(tmp_path: Path, name, layer, expected):
    """`from helpers import *` makes `validate` a helper of other files: it is judged where it is
    called (a method handing `self`, a script handing the model it built), by the model's layers."""
    found = _project_findings(tmp_path, {"helpers.py": STAR_HELPERS,
                                         "models.py": STAR_MODELS.format(name=name, layer=layer),
                                         "run.py": STAR_SCRIPT.format(name=name)})
    assert found == expected


BASE_FIT = """
from torch import nn
from helpers import *

class Base(nn.Module):
""" + FIT_EPOCH


@pytest.mark.parametrize("where", ["same file", "other file"])
def test_self_of_a_base_class_is_decided_by_its_subclasses(tmp_path: Path, where):
    """A base class with no layer of its own whose method runs `self`: its subclasses' layers run."""
    sub = "\nclass Tagger(Base):\n    def __init__(self):\n        super().__init__()\n        self.drop = nn.Dropout(0.2)\n"
    files = {"helpers.py": STAR_HELPERS, "base.py": BASE_FIT + (sub if where == "same file" else "")}
    if where == "other file":
        files["tagger.py"] = "from torch import nn\nfrom base import Base\n" + sub
    assert _project_findings(tmp_path, files) == [("base.py", 12)]
    alone = _project_findings(tmp_path / "alone", {"helpers.py": STAR_HELPERS, "base.py": BASE_FIT})
    assert alone == []  # no subclass: `Base` runs no mode-dependent layer


def test_a_plain_class_with_train_and_eval_methods_of_a_namespace_folder_is_no_model(tmp_path: Path):
    """A logger whose `train()` / `eval()` start a logging phase (`utility/` has no `__init__.py`)."""
    logger = """
    class Meter:
        def __init__(self, every):
            self.every, self.rows = every, []

        def train(self, n):
            self.rows = []

        def eval(self, n):
            self.rows = []

        def __call__(self, model, loss):
            self.rows.append(float(loss))
    """
    script = """
    import torch
    from torch import nn
    from utility.meter import Meter

    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    meter = Meter(10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for epoch in range(3):
        net.train()
        meter.train(100)
        for x, y in train_batches:
            loss = nn.functional.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        meter.eval(10)
        with torch.no_grad():
            for x, y in test_batches:
                meter(net, nn.functional.mse_loss(net(x), y))
    """
    assert _project_findings(tmp_path, {"utility/meter.py": logger, "run.py": script}) == []
