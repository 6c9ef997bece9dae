"""The mode model (issue 14): per-function mode summaries across files (`analysis/modemodel.py`,
travelling through `analysis/index.py`), the path analysis built on them (`analysis/modeflow.py`) and
the call-site rules MDL301 / MDL302 / MDL303 on code patterns the single-file analysis missed.

Cross-file cases are small projects written to a temporary folder and checked through the engine,
the way `modelint check` runs them (index pass, then the check pass)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import libcst as cst
import pytest

from modelint.analysis.index import ProjectIndex, facts_from_source
from modelint.analysis.modemodel import summaries_from_source
from modelint.cache import Cache
from modelint.engine import EngineSettings, check_paths, check_source

CODES = ("MDL301", "MDL302", "MDL303")


def project(tmp_path: Path, files: Dict[str, str]) -> List[Path]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return sorted(tmp_path.rglob("*.py"))


def found(tmp_path: Path, files: Dict[str, str], cache: Optional[Cache] = None, jobs: int = 1):
    paths = project(tmp_path, files)
    result = check_paths(paths, EngineSettings(select=CODES, root=str(tmp_path), jobs=jobs, cache=cache))
    return sorted((Path(f.path).name, f.line, f.code) for f in result.findings)


def one(source: str, code: str):
    source = textwrap.dedent(source)
    return sorted(f.line for f in check_source(source, select=[code]) if f.code == code)


def expected(source: str, code: str):
    lines = textwrap.dedent(source).splitlines()
    return [i for i, line in enumerate(lines, 1) if f"# expect: {code}" in line]


def check(source: str, code: str):
    assert one(source, code) == expected(source, code)


# ---------------------------------------------------------------------------------------------
# Summaries


def test_summary_records_switches_steps_restores_and_returned_models():
    src = textwrap.dedent(
        """
        import torch

        def evaluate(model, loader):
            was = model.training
            model.eval()
            out = [model(x) for x in loader]
            if was:
                model.train()
            return out

        def leave_eval(model):
            model.eval()

        def make_update(model, opt):
            def update(loss):
                loss.backward()
                opt.step()
            return update

        def restore_from(path):
            net = Net()
            net.load_state_dict(torch.load(path))
            return net

        def nothing_relevant(x):
            return x + 1
        """
    ).encode()
    index = ProjectIndex()
    index.add(facts_from_source(src, Path("helpers.py"), modname="helpers"))
    assert set(summaries_from_source(src)) == {"evaluate", "leave_eval", "make_update", "restore_from"}
    assert index.effect("helpers.evaluate").exit == {"model": frozenset({"entry"})}  # the save/restore idiom
    assert index.effect("helpers.leave_eval").exit == {"model": frozenset({"eval"})}
    assert index.effect("helpers.make_update").returns == frozenset({"step_fn"})
    assert index.effect("helpers.restore_from").returns == frozenset({"construct:helpers.Net"}) or \
        index.effect("helpers.restore_from").returns == frozenset({"construct:Net"})
    assert index.effect("helpers.nothing_relevant") is None


def test_a_summary_keeps_the_modes_at_its_steps_apart_from_its_exit():
    src = textwrap.dedent(
        """
        import torch

        def refine(net, batches, opt):
            net.train()
            for x, y in batches:
                opt.zero_grad()
                (net(x) - y).pow(2).mean().backward()
                opt.step()
            net.eval()

        def calibrate_then_refine(net, aux, batches, opt):
            aux.eval()
            refine(net, batches, opt)

        def leave_eval(model):
            model.eval()
        """
    ).encode()
    index = ProjectIndex()
    index.add(facts_from_source(src, Path("tuning.py"), modname="tuning"))
    refine = index.effect("tuning.refine")
    assert refine.exit == {"net": frozenset({"eval"})}
    assert refine.at_step == {"net": frozenset({"train"})}
    # composed through a call: the callee's step modes in the caller's names, the caller's own
    # switches before it kept
    outer = index.effect("tuning.calibrate_then_refine").at_step
    assert outer["net"] == frozenset({"train"}) and outer["aux"] == frozenset({"eval"})
    assert index.effect("tuning.leave_eval").at_step is None  # no step


def test_an_adversarial_helper_stepping_an_input_optimizer_in_eval_is_not_a_step_in_eval(tmp_path):
    # the helper crafts a perturbation with an optimizer over `[noise]` while the model is in eval,
    # switches back, and returns the loss its caller steps: no model is trained in eval
    files = {
        "attacks.py": """
            import torch

            def robust_loss(net, x, y, rounds):
                net.eval()
                noise = (0.01 * torch.randn_like(x)).requires_grad_()
                opt_noise = torch.optim.Adam([noise.requires_grad_()], lr=0.01)
                for _ in range(rounds):
                    opt_noise.zero_grad()
                    (-net(x + noise).logsumexp(1).mean()).backward()
                    opt_noise.step()
                net.train()
                return torch.nn.functional.cross_entropy(net(x + noise.detach()), y)
            """,
        "train.py": """
            import torch
            from attacks import robust_loss

            def fit(net, optimizer, batches, rounds):
                net.train()
                for x, y in batches:
                    optimizer.zero_grad()
                    loss = robust_loss(net, x, y, rounds)
                    loss.backward()
                    optimizer.step()
            """,
    }
    assert found(tmp_path, files) == []
    index = ProjectIndex()
    src = textwrap.dedent(files["attacks.py"]).encode()
    index.add(facts_from_source(src, Path("attacks.py"), modname="attacks"))
    assert index.effect("attacks.robust_loss").at_step is None


def test_a_method_found_by_name_is_named_from_the_class_the_file_imports(tmp_path):
    # two copies of one algorithm in folders under a namespace package (`models/` has no
    # `__init__.py`): the message names the copy the script imports, not the first one indexed
    algo = """
        import torch

        class Algo:
            def __init__(self, net):
                self.net = net

            def settle(self):
                self.net.eval()

            def fit_round(self, batches, opt):
                for x, y in batches:
                    opt.zero_grad()
                    (self.net(x) - y).pow(2).mean().backward()
                    opt.step()
        """
    script = """
        from models.{pkg}.core import Algo

        def main(net, opt, batches):
            algo = Algo(net)
            algo.settle()  # statistics for the evaluation
            algo.fit_round(batches, opt)
        """
    files = {"models/algo_a/__init__.py": "", "models/algo_a/core.py": algo,
             "models/algo_b/__init__.py": "", "models/algo_b/core.py": algo,
             "run_a.py": script.format(pkg="algo_a"), "run_b.py": script.format(pkg="algo_b")}
    paths = project(tmp_path, files)
    result = check_paths(paths, EngineSettings(select=CODES, root=str(tmp_path), jobs=1))
    named = {Path(f.path).name: f.message for f in result.findings if f.code == "MDL303"}
    assert set(named) == {"run_a.py", "run_b.py"}
    assert "`algo_a.core.Algo.settle`" in named["run_a.py"]
    assert "`algo_b.core.Algo.settle`" in named["run_b.py"]


def test_a_bound_method_called_through_a_name_is_a_call_of_that_method(tmp_path):
    runner = """
        import torch

        class Runner:
            def __init__(self, net, opt_fn):
                self.net = net
                self.opt = opt_fn(self.net)

            def measure(self, batches):
                self.net.eval()
                with torch.no_grad():
                    return [self.net(x) for x, _ in batches]

            def fit(self, batches):
                {switch}
                for x, y in batches:
                    self.opt.zero_grad()
                    (self.net(x) - y).pow(2).mean().backward()
                    self.opt.step()
        """
    script = """
        from lib.runner import Runner

        def main(net, opt_fn, batches, epochs):
            runner = Runner(net, opt_fn)
            runner.measure(batches)  # a baseline evaluation
            run_epoch = runner.fit
            for epoch in range(epochs):
                run_epoch(batches)
        """
    unswitched = {"lib/__init__.py": "", "lib/runner.py": runner.replace("{switch}", "pass"), "main.py": script}
    assert found(tmp_path, unswitched) == [("main.py", 9, "MDL303")]
    switched = dict(unswitched, **{"lib/runner.py": runner.replace("{switch}", "self.net.train()")})
    other = tmp_path / "switched"
    other.mkdir()
    assert found(other, switched) == []


def test_a_container_given_parts_and_trained_by_a_helper_keeps_the_model_out(tmp_path):
    # the caller builds an empty container, appends parts of the student, and a helper of another
    # file puts the student in eval, the container in train, and steps an optimizer over the container
    files = {
        "stages.py": """
            import torch

            def warm_stage(student, parts, batches, lr):
                student.eval()
                parts.train()
                opt = torch.optim.SGD(parts.parameters(), lr=lr)
                for x, y in batches:
                    opt.zero_grad()
                    (student(x) - y).pow(2).mean().backward()
                    opt.step()

            def warm_all(student, parts, batches, lr):
                student.eval()
                parts.train()
                opt = torch.optim.SGD(list(student.parameters()) + list(parts.parameters()), lr=lr)
                for x, y in batches:
                    opt.zero_grad()
                    (student(x) - y).pow(2).mean().backward()
                    opt.step()
            """,
        "main.py": """
            import torch
            from stages import warm_stage, warm_all

            def distill(student, batches, lr):
                stage = torch.nn.ModuleList([])
                stage.append(student.stem)
                warm_stage(student, stage, batches, lr)

            def with_new_head(student, make_head, batches, lr):
                heads = torch.nn.ModuleList([])
                heads.append(make_head())
                warm_stage(student, heads, batches, lr)  # only the new head is in the optimizer
                warm_all(student, heads, batches, lr)  # the student is too, and it stays in eval
            """,
    }
    # (stages.py's warm_all is reported where it is too: its student trains in the eval it set)
    assert [f for f in found(tmp_path, files) if f[0] == "main.py"] == [("main.py", 14, "MDL303")]


PROBE_HELPER = {
    "probing.py": """
        import torch

        def fit_head(head, batches, opt):
            for x, y in batches:
                head.train()
                opt.zero_grad()
                (head(x) - y).pow(2).mean().backward()
                opt.step()
                head.eval()

        def probe_score(model, batches, make_opt):
            model.eval()
            head = model.head
            fit_head(head, batches, make_opt(head))
        """,
}


def test_a_helper_that_steps_a_part_it_switched_to_train_is_not_training_in_eval(tmp_path):
    files = dict(PROBE_HELPER)
    files["main.py"] = """
        import torch
        from probing import probe_score, fit_head

        def pretrain(model, batches, opt, make_opt, epochs):
            for epoch in range(epochs):
                model.train()
                for x, y in batches:
                    opt.zero_grad()
                    (model(x) - y).pow(2).mean().backward()
                    opt.step()
                probe_score(model, batches, make_opt)

        def after_eval(model, batches, make_opt):
            model.eval()
            fit_head(model, batches, make_opt(model))
        """
    assert found(tmp_path, files) == []


def test_a_method_that_trains_then_leaves_its_network_in_eval_trains_in_train_mode(tmp_path):
    # a plain class's warm-up phase: train(), steps, then eval() to measure; the receiver ends in
    # eval, but the steps ran in training mode (measuring set 4, TorchSSL's FreeMatch.warmup)
    files = {
        "algo/runner.py": """
            import torch

            class Runner:
                def __init__(self, net, opt_fn):
                    self.net = net
                    self.opt = opt_fn(self.net)

                def warm_up(self, batches):
                    self.net.train()
                    for x, y in batches:
                        self.opt.zero_grad()
                        (self.net(x) - y).pow(2).mean().backward()
                        self.opt.step()
                    self.net.eval()
                    with torch.no_grad():
                        self.stats = [self.net(x) for x, _ in batches]

                def tune(self, batches):
                    for x, y in batches:
                        self.opt.zero_grad()
                        (self.net(x) - y).pow(2).mean().backward()
                        self.opt.step()
            """,
        "run.py": """
            from algo.runner import Runner

            def main(net, opt_fn, batches, warm):
                runner = Runner(net, opt_fn)
                if warm:
                    runner.warm_up(batches)
                print("warm-up done, evaluation next")

            def tune_after_warm_up(net, opt_fn, batches):
                runner = Runner(net, opt_fn)
                runner.warm_up(batches)
                runner.tune(batches)
            """,
    }
    assert found(tmp_path, files) == [("run.py", 13, "MDL303")]


def test_a_conditional_switch_and_a_step_under_the_same_test():
    """`net = net.train() if fit else net.eval()` runs one arm (an "if" event, not both switches in
    a row), and the eval of the `else` arm never reaches the step under `if fit:`: the modes at the
    step are the train arm's; the exit keeps both."""
    src = textwrap.dedent(
        """
        import torch

        def run_epoch(stage, net, batches, opt):
            fit = stage == "fit"
            net = net.train() if fit else net.eval()
            for x, y in batches:
                loss = (net(x) - y).pow(2).mean()
                if fit:
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

        def epochs(net, batches, held, opt, n):
            for _ in range(n):
                run_epoch("fit", net, batches, opt)
                run_epoch("check", net, held, None)
        """
    ).encode()
    index = ProjectIndex()
    index.add(facts_from_source(src, Path("loops.py"), modname="loops"))
    one = index.effect("loops.run_epoch")
    assert one.exit == {"net": frozenset({"train", "eval"})}
    assert one.at_step == {"net": frozenset({"train"})}


def test_a_helper_that_steps_in_the_mode_its_caller_left_is_still_reported(tmp_path):
    files = {
        "probing.py": """
            import torch

            def fit_part(part, batches, opt):
                for x, y in batches:
                    opt.zero_grad()
                    (part(x) - y).pow(2).mean().backward()
                    opt.step()

            def probe_score(model, batches, make_opt):
                model.eval()
                fit_part(model.head, batches, make_opt(model.head))
            """,
        "main.py": """
            import torch
            from probing import probe_score

            def pretrain(model, batches, opt, make_opt, epochs):
                for epoch in range(epochs):
                    model.train()
                    for x, y in batches:
                        opt.zero_grad()
                        (model(x) - y).pow(2).mean().backward()
                        opt.step()
                    probe_score(model, batches, make_opt)
            """,
    }
    assert found(tmp_path, files) == [("main.py", 12, "MDL303")]


def test_docstring_examples_are_not_summarised():
    src = b'def forward(self, x):\n    """\n    >>> model = AutoModel.from_pretrained("x")\n    """\n    return x\n'
    assert summaries_from_source(src) == {}


# ---------------------------------------------------------------------------------------------
# Missed pattern 1: a wrapper object in another file; evaluation two calls away


WRAPPER = {
    "lib/__init__.py": "",
    "lib/learner.py": """
        import torch

        class Learner:
            def __init__(self, net, opt):
                self.image_net = net
                self.opt = opt

            def to_eval(self):
                self.image_net.eval()

            def to_train(self):
                self.image_net.train()

            def fit_batch(self, batch):
                loss = self.image_net(batch)
                loss.backward()
                self.opt.step()
        """,
    "lib/features.py": """
        import torch

        def collect_features(learner, loader):
            learner.to_eval()
            with torch.no_grad():
                return [learner.image_net(x) for x in loader]
        """,
}

LOOP_HOISTED = """
    from lib.features import collect_features
    from lib.learner import Learner

    def run_validation(learner, loader):
        return collect_features(learner, loader)

    def main(net, opt, train_loader, val_loader, epochs):
        learner = Learner(net, opt)
        learner.to_train()
        for epoch in range(epochs):
            for batch in train_loader:
                learner.fit_batch(batch)
            run_validation(learner, val_loader)
    """

LOOP_OK = """
    from lib.features import collect_features
    from lib.learner import Learner

    def run_validation(learner, loader):
        return collect_features(learner, loader)

    def main(net, opt, train_loader, val_loader, epochs):
        learner = Learner(net, opt)
        for epoch in range(epochs):
            learner.to_train()
            for batch in train_loader:
                learner.fit_batch(batch)
            run_validation(learner, val_loader)
    """


def test_wrapper_object_switched_in_another_file(tmp_path):
    assert found(tmp_path, {**WRAPPER, "run.py": LOOP_HOISTED}) == [("run.py", 14, "MDL301")]


def test_wrapper_object_switched_back_each_epoch(tmp_path):
    assert found(tmp_path, {**WRAPPER, "run.py": LOOP_OK}) == []


def test_cache_follows_a_change_in_the_file_a_summary_depends_on(tmp_path):
    """The helper that puts the learner in eval changes; the loop file's finding must change with
    it under the cache, and agree with a run without the cache."""
    cache = Cache(tmp_path / ".modelint_cache", salt="test")
    files = {**WRAPPER, "run.py": LOOP_HOISTED}
    assert found(tmp_path, files, cache=cache) == [("run.py", 14, "MDL301")]
    restoring = dict(files)
    restoring["lib/features.py"] = WRAPPER["lib/features.py"].replace(
        "                return [learner.image_net(x) for x in loader]",
        "                out = [learner.image_net(x) for x in loader]\n            learner.to_train()\n            return out",
    )
    assert "learner.to_train()" in restoring["lib/features.py"]
    warm = found(tmp_path, restoring, cache=cache)
    cold = found(tmp_path, restoring)
    assert warm == cold == []
    back = found(tmp_path, files, cache=cache)
    assert back == [("run.py", 14, "MDL301")]


# The wrapper is built inside an evaluation helper of a third file, around the model it is handed:
# `Learner(model).to_eval()` puts the caller's model in eval through `self.net = net` (IR "w" event).
KEEPER = {
    "kit/__init__.py": "",
    "kit/holder.py": """
        class Holder:
            def __init__(self, net, verbose=False):
                self.net = net
                self.verbose = verbose

            def to_eval(self):
                self.net.eval()
        """,
    "kit/scoring.py": """
        import torch
        from kit.holder import Holder

        def score(model, batches):
            holder = Holder(model)
            holder.to_eval()
            with torch.no_grad():
                return sum(model(b).sum() for b in batches)
        """,
    "fit.py": """
        import torch
        from kit.scoring import score

        def fit(model, opt, batches, held_out, rounds):
            model.train()
            for r in range(rounds):
                for b in batches:
                    opt.zero_grad()
                    model(b).sum().backward()
                    opt.step()
                score(model, held_out)
        """,
}


def test_wrapper_built_in_an_evaluation_helper_of_another_file(tmp_path):
    assert found(tmp_path, KEEPER) == [("fit.py", 12, "MDL301")]


def test_wrapper_that_keeps_the_model_under_another_name_is_not_mapped(tmp_path):
    """`self.inner = net`: which attribute holds the model is not read (documented limit), so the
    helper's switch is not put on the caller's model."""
    files = dict(KEEPER)
    files["kit/holder.py"] = KEEPER["kit/holder.py"].replace("self.net = net", "self.inner = net").replace(
        "self.net.eval()", "self.inner.eval()")
    assert found(tmp_path, files) == []


def test_cache_follows_a_change_in_the_wrapper_class_of_a_third_file(tmp_path):
    """fit.py's finding depends on holder.py's `__init__` (read through scoring.py's summary):
    under the cache it must come and go with it, and agree with a run without the cache."""
    cache = Cache(tmp_path / ".modelint_cache", salt="test")
    assert found(tmp_path, KEEPER, cache=cache) == [("fit.py", 12, "MDL301")]
    renamed = dict(KEEPER)
    renamed["kit/holder.py"] = KEEPER["kit/holder.py"].replace("self.net = net", "self.inner = net").replace(
        "self.net.eval()", "self.inner.eval()")
    assert found(tmp_path, renamed, cache=cache) == found(tmp_path, renamed) == []
    assert found(tmp_path, KEEPER, cache=cache) == [("fit.py", 12, "MDL301")]


# ---------------------------------------------------------------------------------------------
# Missed pattern 2: the optimizer step is a callable returned by a helper


def test_step_callable_returned_by_a_helper_makes_a_training_loop():
    check(
        """
        import torch

        def make_update_fn(model, lr):
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            def update(loss):
                opt.zero_grad()
                loss.backward()
                opt.step()
            return update

        def validate(model, loader):
            model.eval()
            with torch.no_grad():
                return [model(x) for x in loader]

        def fit(model, loader, val_loader, epochs):
            update = make_update_fn(model, 0.1)
            model.train()
            for epoch in range(epochs):
                for x, y in loader:
                    update(model(x, y))
                validate(model, val_loader)  # expect: MDL301
        """,
        "MDL301",
    )


def test_step_callable_from_another_module(tmp_path):
    files = {
        "opt_utils.py": """
            def make_update_fn(model, lr):
                def update(loss):
                    loss.backward()
                    for p in model.parameters():
                        p.data -= lr * p.grad
                    model.optimizer.step()
                return update
            """,
        "train.py": """
            import torch
            from opt_utils import make_update_fn

            def pretrain(net, batches, held_out, rounds):
                step = make_update_fn(net, 0.1)
                net.train()
                while rounds:
                    rounds -= 1
                    for batch in batches:
                        step(net(*batch))
                    net.eval()
                    with torch.no_grad():
                        [net(x) for x in held_out]
            """,
    }
    assert found(tmp_path, files) == [("train.py", 12, "MDL301")]


# ---------------------------------------------------------------------------------------------
# Missed patterns 3-5: evaluation not named so, inside main(), inside the training loop


def test_tester_method_parameter_and_generate():
    check(
        """
        import torch

        class Tester:
            def run(self, net, loader):
                with torch.no_grad():
                    return [net(x) for x in loader]  # expect: MDL302

        def evaluate_lm(model, prompts):
            with torch.no_grad():
                return [model.generate(p) for p in prompts]  # expect: MDL302
        """,
        "MDL302",
    )


def test_test_loop_inside_main_after_training():
    check(
        """
        import torch

        def main(args):
            net, optimizer = build(args)
            for epoch in range(args.epochs):
                net.train()
                for images, targets in args.train_data:
                    optimizer.zero_grad()
                    criterion(net(images), targets).backward()
                    optimizer.step()
                correct = 0
                with torch.no_grad():
                    for images, targets in args.test_data:
                        correct += (net(images).argmax(1) == targets).sum()  # expect: MDL302
        """,
        "MDL302",
    )


def test_held_out_batches_every_n_steps_inside_the_training_loop():
    check(
        """
        import torch

        def fit(model, opt, loader, val_batch, every):
            model.train()
            for step, (x, y) in enumerate(loader):
                model(x, y).backward()
                opt.step()
                if step % every == 0:
                    with torch.no_grad():
                        print(model(val_batch).mean())  # expect: MDL302
        """,
        "MDL302",
    )


def test_pre_0_4_volatile_inference():
    check(
        """
        import torch
        from torch import nn
        from torch.autograd import Variable

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.1)

        def predict(path, x):
            net = Net()
            net.load_state_dict(torch.load(path))
            return net(Variable(x, volatile=True))  # expect: MDL302
        """,
        "MDL302",
    )


def test_bn_recalibration_and_training_time_no_grad_stay_clean():
    check(
        """
        import torch

        def recalibrate(model, loader):
            model.train()
            with torch.no_grad():
                for x in loader:
                    model(x)

        def fit(model, teacher, opt, loader):
            model.train()
            for x, y in loader:
                with torch.no_grad():
                    soft = teacher(x)
                    anchor = model(x)           # a training-time target, not held-out data
                (model(x) - soft - anchor).pow(2).mean().backward()
                opt.step()
        """,
        "MDL302",
    )


# ---------------------------------------------------------------------------------------------
# Missed pattern 6: a model built by a loader helper in another module


def test_model_from_a_loader_helper_in_another_module(tmp_path):
    files = {
        "models.py": """
            import torch
            from torch import nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.drop = nn.Dropout(0.3)

            def restore_from(path):
                net = Net()
                net.load_state_dict(torch.load(path))
                return net
            """,
        "predict.py": """
            import torch
            from models import restore_from

            def predict(path, x):
                net = restore_from(path)
                with torch.no_grad():
                    return net(x)
            """,
    }
    assert found(tmp_path, files) == [("predict.py", 8, "MDL302")]


# ---------------------------------------------------------------------------------------------
# MDL302 false alarms of the old analysis


def test_generate_whose_decorator_switches_to_eval(tmp_path):
    files = {
        "lm.py": """
            import torch
            from torch import nn

            def eval_decorator(fn):
                def inner(self, *args, **kwargs):
                    was = self.training
                    self.eval()
                    out = fn(self, *args, **kwargs)
                    self.train(was)
                    return out
                return inner

            class LM(nn.Module):
                @eval_decorator
                def generate(self, prompt):
                    return self.net(prompt)
            """,
        "sample.py": """
            import torch

            def evaluate_samples(model, prompts):
                with torch.no_grad():
                    return [model.generate(p) for p in prompts]
            """,
    }
    assert found(tmp_path, files) == []


def test_search_wrapper_around_a_model_in_eval():
    check(
        """
        import torch
        from torch import nn

        class BeamSearch(nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

        def decode(model, x):
            model.eval()
            search = BeamSearch(model)
            with torch.no_grad():
                return search(x)
        """,
        "MDL302",
    )


def test_a_head_sized_from_a_frozen_model_is_not_a_wrapper_of_it():
    # `Head(backbone.out_dim, k)` reads a number off the model in eval; `Wrapper(backbone)` holds it
    check(
        """
        import torch
        from torch import nn

        class Head(nn.Module):
            def __init__(self, width, k):
                super().__init__()
                self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(width, k))

        class Wrapper(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = nn.Sequential(inner, nn.Dropout(0.1))

        def probe(backbone, batches, k):
            backbone.eval()
            head = Head(backbone.out_dim, k)
            opt = torch.optim.SGD(head.parameters(), lr=0.1)
            for feats, y in batches:
                loss = (head(feats) - y).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

        def wrapped(backbone, batches):
            backbone.eval()
            held = Wrapper(backbone)
            opt = torch.optim.SGD(held.parameters(), lr=0.1)
            for feats, y in batches:
                loss = (held(feats) - y).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()  # expect: MDL303
        """,
        "MDL303",
    )


def test_save_restore_idiom_is_not_an_mdl301():
    check(
        """
        import torch

        def evaluate(model, loader):
            was_training = model.training
            model.eval()
            with torch.no_grad():
                out = [model(x) for x in loader]
            if was_training:
                model.train()
            return out

        def fit(model, opt, loader, val_loader, epochs):
            model.train()
            for epoch in range(epochs):
                for x, y in loader:
                    model(x, y).backward()
                    opt.step()
                evaluate(model, val_loader)
        """,
        "MDL301",
    )


def test_mode_insensitive_models_are_not_reported(monkeypatch):
    """MDL302 asks the sensitivity analysis (i14b) and drops models that answer "no"."""
    from modelint.analysis.context import FileContext

    class No:
        answer, reason = "no", "no dropout, no batch norm"

    src = """
        import torch
        from torch import nn

        class Tiny(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.25)

        @torch.no_grad()
        def score(weights, batch):
            scorer = Tiny()
            scorer.load_state_dict(weights)
            return scorer(batch).sum()  # expect: MDL302
        """
    check(src, "MDL302")
    monkeypatch.setattr(FileContext, "mode_sensitivity", lambda self, expr: No(), raising=False)
    assert one(src, "MDL302") == []


# ---------------------------------------------------------------------------------------------
# MDL303


def test_from_pretrained_then_trained_without_train():
    check(
        """
        from transformers import AutoModel

        def finetune(loader, opt, epochs):
            model = AutoModel.from_pretrained("roberta-base")
            for epoch in range(epochs):
                for batch in loader:
                    model(**batch).loss.backward()
                    opt.step()  # expect: MDL303
        """,
        "MDL303",
    )


def test_eval_helper_in_another_file_before_training(tmp_path):
    files = {
        "evaluation.py": """
            import torch

            def baseline(model, loader):
                model.eval()
                with torch.no_grad():
                    return [model(x) for x in loader]
            """,
        "train.py": """
            from evaluation import baseline

            def fit(model, opt, loader, val_loader):
                baseline(model, val_loader)
                for x, y in loader:
                    model(x, y).backward()
                    opt.step()
            """,
    }
    assert found(tmp_path, files) == [("train.py", 8, "MDL303")]


def test_train_on_some_path_is_not_mdl303():
    check(
        """
        from transformers import AutoModel

        def finetune(loader, opt, resume):
            model = AutoModel.from_pretrained("roberta-base")
            if not resume:
                model.train()
            for batch in loader:
                model(**batch).loss.backward()
                opt.step()

        def with_ema(model, ema, opt, loader):
            ema.eval()
            model.train()
            for x, y in loader:
                model(x, y).backward()
                opt.step()
        """,
        "MDL303",
    )


def test_lightning_module_with_pretrained_submodule():
    check(
        """
        import lightning as L
        from transformers import AutoModel

        class Classifier(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.backbone = AutoModel.from_pretrained("bert-base-uncased")  # expect: MDL303

            def training_step(self, batch, idx):
                return self.backbone(**batch).loss

        class Switched(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.backbone = AutoModel.from_pretrained("bert-base-uncased")

            def on_train_epoch_start(self):
                self.train()

            def training_step(self, batch, idx):
                return self.backbone(**batch).loss
        """,
        "MDL303",
    )


def test_neutrally_named_evaluation_helper_called_on_held_out_data():
    check(
        """
        import torch

        def compute_val_loss(net, batches):
            with torch.no_grad():
                return sum(net(x).mean() for x in batches)

        def train(net, opt, batches, val_batches, epochs):
            for epoch in range(epochs):
                net.train()
                for x in batches:
                    net(x).mean().backward()
                    opt.step()
                compute_val_loss(net, val_batches)  # expect: MDL302
                compute_val_loss(net, batches[:2])   # training data: a training-time statistic
        """,
        "MDL302",
    )


ATTACK = """
    from copy import deepcopy

    def perturb(model, img):
        {copy}model.eval()
        inputs = img.clone().requires_grad_(True)
        model(inputs).sum().backward()
        return (img + 0.01 * inputs.grad.sign()).detach()
    """

ADV_FIT = """
    import torch
    {imports}
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))

    def fit(loader, epochs):
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model.train()
        for epoch in range(epochs):
            for x, y in loader:
                x_adv = perturb(model, x)
                opt.zero_grad()
                model(x_adv).sum().backward()
                opt.step()
    """


@pytest.mark.parametrize("copied", [True, False])
@pytest.mark.parametrize("same_file", [True, False])
def test_a_parameter_rebound_to_a_copy_is_the_callees_own_object(tmp_path, copied, same_file):
    """`model = deepcopy(model); model.eval()` in an attack helper leaves the caller's model in
    training mode (in-file flow and cross-file summary alike); without the copy the helper's eval
    is the caller's, and the training step after it runs in eval (MDL303)."""
    attack = textwrap.dedent(ATTACK).replace("{copy}", "model = deepcopy(model)\n    " if copied else "")
    if same_file:
        files = {"fit.py": attack + textwrap.dedent(ADV_FIT).replace("{imports}", "")}
    else:
        files = {"attack.py": attack, "fit.py": textwrap.dedent(ADV_FIT).replace("{imports}", "from attack import perturb")}
    for text in files.values():
        compile(text, "<test>", "exec")  # (a mutant that does not parse would pass for the wrong reason)
    codes = [code for _, _, code in found(tmp_path, files)]
    assert codes == ([] if copied else ["MDL303"])


@pytest.mark.parametrize("same_file", [True, False])
def test_a_shallow_copy_shares_the_submodules_it_switches(tmp_path, same_file):
    """`model = copy.copy(model); model.eval()` puts the shared submodules, hence the caller's
    model's layers, in eval: unlike a deep copy it stays the caller's (both analyses agree)."""
    attack = textwrap.dedent(ATTACK).replace("from copy import deepcopy", "import copy").replace(
        "{copy}", "model = copy.copy(model)\n    ")
    if same_file:
        files = {"fit.py": attack + textwrap.dedent(ADV_FIT).replace("{imports}", "")}
    else:
        files = {"attack.py": attack, "fit.py": textwrap.dedent(ADV_FIT).replace("{imports}", "from attack import perturb")}
    for text in files.values():
        compile(text, "<test>", "exec")
    assert [code for _, _, code in found(tmp_path, files)] == ["MDL303"]


PHASES = """
    from attack import perturb

    def run(model, loaders, opt, epochs):
        for epoch in range(epochs):
            for phase in ("train", "val"):
                if phase == "train":
                    model.train()
                else:
                    model.eval()
                for x in loaders[phase]:
                    loss = model(perturb(model, x)).sum()
                    if phase == "train":
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
    """


@pytest.mark.parametrize("copied", [True, False])
def test_a_helper_backpropagating_through_its_own_copy_is_no_training_step(tmp_path, copied):
    """A phase loop calls an attack helper of another file in both phases; the helper copies the
    model and backpropagates through the copy: in the 'val' phase that is no training step of the
    caller's model (set 10's Person_reID ODFA). Without the copy the helper's eval is the caller's
    and every step runs right after it, in eval on every path: MDL303."""
    attack = textwrap.dedent(ATTACK).replace("{copy}", "model = deepcopy(model)\n    " if copied else "")
    files = {"attack.py": attack, "run.py": textwrap.dedent(PHASES)}
    for text in files.values():
        compile(text, "<test>", "exec")
    codes = [code for _, _, code in found(tmp_path, files)]
    assert codes == ([] if copied else ["MDL303"])


AGENT = """
    import torch
    from torch import nn

    class Agent:
        def __init__(self):
            self.net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2))
            self.opt = torch.optim.Adam(self.net.parameters())
            self.is_test = False

        def act(self, state):
            if self.is_test:
                self.net.eval()
            return self.net(state).argmax()

        def update(self, batch):
            loss = self.net(batch).sum()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

        def train(self, frames, batches, resume):
    {setting}
            for state, batch in zip(frames, batches):
                self.act(state)
                self.update(batch)
    """


@pytest.mark.parametrize("setting, reported", [
    ("        self.is_test = False", False),
    ("        self.is_test = True", True),                     # the agent's test mode: eval on every step
    ("        if not resume:\n            self.is_test = False", True),  # not set on every path
])
def test_an_eval_guarded_by_a_flag_attribute_the_caller_set(setting, reported):
    """`act()` puts the network in eval only `if self.is_test:`; the training method sets
    `self.is_test = False` at the top of its body (set 10's rainbow agents): the eval never runs in
    its loop. Set to True, or only on some path, it may run there."""
    source = textwrap.dedent(AGENT).replace("{setting}", setting)
    compile(source, "<test>", "exec")
    findings = [f.code for f in check_source(source, select=list(CODES))]
    assert bool(findings) is reported


def test_helper_object_of_another_file_given_held_out_data(tmp_path):
    """A plain helper object's method of another file (no evaluation name) runs the model under
    no_grad; the training file has no no_grad of its own, and the held-out argument is what says
    the call is an evaluation. The same call on the training batches is a training-time statistic."""
    files = {
        "scoring.py": """
            import torch

            class Ranker:
                def rank(self, net, batches):
                    with torch.no_grad():
                        return [net(x).max() for x in batches]
            """,
        "fit.py": """
            import torch
            from scoring import Ranker

            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.drop = torch.nn.Dropout(0.2)

            def fit(net, opt, batches, test_batches, epochs):
                ranker = Ranker()
                for epoch in range(epochs):
                    net.train()
                    for x in batches:
                        net(x).mean().backward()
                        opt.step()
                    ranker.rank(net, batches)
                    Ranker().rank(net, test_batches)
                    ranker.rank(net, test_batches)
            """,
    }
    assert found(tmp_path, files) == [("fit.py", 18, "MDL302"), ("fit.py", 19, "MDL302")]


@pytest.mark.parametrize("text, expected", [
    ("[image]", True),
    ("[z.requires_grad_(), noise.detach().cuda()]", True),
    ("[w] + [z]", True),
    ("[w] + list(bufs.values())", True),   # bufs = {n: b for n, b in G.named_buffers()}
    ("[w] + list(params.values())", False),  # params = {n: p for n, p in G.named_parameters()}
    ("[model.weight]", False),
    ("[{'params': model.parameters()}]", False),
    ("model.parameters()", False),
    ("[*tensors]", False),
    ("[]", False),
])
def test_input_tensors_is_one_definition_for_both_halves(text, expected):
    import ast as pyast

    from modelint.analysis.modemodel import input_tensors
    from modelint.analysis.modeflow import optimizer_over_inputs

    values = {"bufs": "{n: b for n, b in G.named_buffers()}", "params": "{n: p for n, p in G.named_parameters()}"}
    bound_ast = lambda name: [pyast.parse(values[name], mode="eval").body] if name in values else []
    assert input_tensors(pyast.parse(text, mode="eval").body, bound_ast) is expected
    bound_cst = lambda name: [cst.parse_expression(values[name])] if name in values else []
    assert optimizer_over_inputs(cst.parse_expression(f"torch.optim.Adam({text}, lr=0.1)"), bound_cst) is expected


EMBEDDING_PROJECT = {
    "tabular/__init__.py": "",
    "tabular/model.py": """
        import torch
        import torch.nn as nn

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.1))

            def forward(self, x):
                return self.body(x)

            @torch.inference_mode()
            def embed(self, x):
                return self.body(x)
        """,
    # a script folder without __init__.py, imported from its parent as a namespace package
    "example/helpers.py": """
        def fit_epoch(model, loader, opt):
            model.train()
            for x in loader:
                model(x).sum().backward()
                opt.step()

        def dataset_embeddings(model, loader):
            return [model.embed(x) for x in loader]
        """,
    "example/run.py": """
        import torch
        from tabular.model import Encoder
        from example.helpers import dataset_embeddings, fit_epoch

        def main(train_loader, test_loader, epochs):
            model = Encoder()
            opt = torch.optim.Adam(model.parameters())
            for _ in range(epochs):
                fit_epoch(model, train_loader, opt)
        {before}
            test_embeddings = dataset_embeddings(model, test_loader)
            return model.embed(next(iter(test_loader))), test_embeddings
        """,
}


@pytest.mark.parametrize("before, reported", [
    ("", [("run.py", 12, "MDL302"), ("run.py", 13, "MDL302")]),
    ("    model.eval()", []),
])
def test_inference_method_of_the_model_class_run_in_train_mode(tmp_path, before, reported):
    """A method of the model's own class decorated with `@torch.inference_mode()` runs the model
    without switching it (set 10's pytorch-scarf): calling it after training, directly or through a
    helper of a script folder that the training script imports as `example.helpers` (an implicit
    namespace package, indexed as `helpers`), is inference in training mode. After `model.eval()`
    neither call is reported."""
    files = {k: v.replace("{before}", before) for k, v in EMBEDDING_PROJECT.items()}
    assert found(tmp_path, files) == reported


HEAD_ONLY_PROJECT = {
    "utils/train_utils.py": """
        import torch

        def train_epoch(loader, model, opt, head_only):
        {switch}
            for x in loader:
                if head_only:
                    with torch.no_grad():
                        x = model(x, part="backbone")
                loss = model(x, part="head").sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        {after}
        """,
    "train.py": """
        import torch
        from utils.train_utils import train_epoch

        def main(model, loader, cfg):
            opt = torch.optim.Adam(model.parameters())
            for epoch in range(cfg["epochs"]):
                train_epoch(loader, model, opt, cfg["head_only"])
        """,
}


@pytest.mark.parametrize("switch, after, reported", [
    # the helper chooses the mode itself before its steps (SCAN's scan_train): nothing left over reaches them
    ("    if head_only:\n        model.eval()\n    else:\n        model.train()", "", []),
    ("    model.train()", "    model.eval()", []),
    # it trains in the mode it was handed and leaves the model in eval: the next epoch trains in eval
    ("", "    model.eval()", [("train.py", 8, "MDL301")]),
])
def test_a_project_step_that_sets_the_mode_itself(tmp_path, switch, after, reported):
    """A training helper of a script folder (imported as `utils.train_utils`, indexed as
    `train_utils`) that switches the model itself before its steps, on every path (eval for a
    head-only stage, train otherwise): an eval it or anything else left behind cannot reach its
    steps, so MDL301 has nothing to say (training in eval there is MDL303's question). A helper
    that steps in the mode it was handed and ends in eval is the bug, one epoch later."""
    indent = lambda text: text.replace("\n", "\n        ")  # the templates' own indentation
    files = {k: v.replace("{switch}", indent(switch)).replace("{after}", indent(after))
             for k, v in HEAD_ONLY_PROJECT.items()}
    assert found(tmp_path, files) == reported


FACTORY_PROJECT = {
    "lib/__init__.py": "from . import models\n",
    "lib/models/__init__.py": "from .nets import *\n",
    "lib/models/nets.py": """
        import torch.nn as nn

        class gated_net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))

            def forward(self, x):
                return self.body(x)

        def gated(width=8):
            return gated_net()

        def restored(path):
            net = gated_net()
            net.eval()
            return net
        """,
    "train.py": """
        import torch
        import lib

        model = lib.models.{factory}
        opt = torch.optim.Adam(model.parameters())
        for epoch in range(10):
            for x in loader:
                loss = model(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            for x in valloader:
                print(model(x).mean())
        """,
}


@pytest.mark.parametrize("factory, reported", [
    ("gated(width=16)", [("train.py", 14, "MDL302")]),
    # a factory that puts what it returns in eval is summarised: it is not "built in training mode"
    ("restored('ckpt.pt')", []),
])
def test_a_model_built_by_a_project_factory_function(tmp_path, factory, reported):
    """A top-level function of the project that returns a module it constructs (`lib.models.gated()`,
    re-exported by a star import, of a lower-case class: Medical-Transformer's `axialnet.gated`) builds
    the model in training mode, like the class itself; the validation loop after training then runs it
    in training mode. MDL302 is asked only: `restored()` switches its model to eval before returning
    (CLAM's `initiate_model`), so its model is not one built in training mode."""
    files = {k: v.replace("{factory}", factory) for k, v in FACTORY_PROJECT.items()}
    assert [f for f in found(tmp_path, files) if f[2] == "MDL302"] == reported
