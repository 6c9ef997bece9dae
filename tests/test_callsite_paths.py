"""MDL301 / MDL303 / MDL304 / MDL205 on the patterns of issue 14 that the first versions missed
(helper crec): which rule owns a step in eval mode (decided by paths), wrappers that own the
networks, freezes in `__init__` / at setup reset by a later `train()` reached through calls, and the
near misses that must stay silent. Hand-written examples, not copies of the recall bench's scripts."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, List, Sequence

from modelint.engine import EngineSettings, check_paths, check_source
from tests.helpers import actual, diff, expected_from_source

CODES = ("MDL205", "MDL301", "MDL303", "MDL304")


def check_annotated(source: str, codes: Sequence[str] = CODES, path: str = "example.py"):
    source = textwrap.dedent(source)
    expected = expected_from_source(source, only=list(codes))
    got = actual(check_source(source, path=path, select=list(codes)), only=list(codes))
    assert got == expected, diff(expected, got)


def project(tmp_path: Path, files: Dict[str, str], codes: Sequence[str] = CODES) -> List[tuple]:
    for rel, text in files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    paths = sorted(tmp_path.rglob("*.py"))
    result = check_paths(paths, EngineSettings(select=tuple(codes), root=str(tmp_path), jobs=1))
    return sorted((Path(f.path).name, f.line, f.code) for f in result.findings)


# ---------------------------------------------------------------------------------------------
# MDL301 or MDL303: decided by the paths into the step, one finding


def test_eval_on_every_path_is_mdl303_and_only_mdl303():
    check_annotated(
        """
        import torch

        def evaluate(model, loader):
            model.eval()
            with torch.no_grad():
                return sum(model(x).sum().item() for x in loader)

        def fit(model, opt, loader, val_loader, epochs):
            evaluate(model, val_loader)        # a baseline before training
            for epoch in range(epochs):
                for x in loader:
                    opt.zero_grad()
                    model(x).sum().backward()
                    opt.step()  # expect: MDL303
                evaluate(model, val_loader)
        """
    )


def test_train_mode_on_the_first_pass_is_mdl301_and_only_mdl301():
    check_annotated(
        """
        import torch

        def evaluate(model, loader):
            model.eval()
            with torch.no_grad():
                return sum(model(x).sum().item() for x in loader)

        def fit(model, opt, loader, val_loader, epochs):
            model.train()
            for epoch in range(epochs):
                for x in loader:
                    opt.zero_grad()
                    model(x).sum().backward()
                    opt.step()
                evaluate(model, val_loader)  # expect: MDL301
        """
    )


def test_eval_on_one_branch_before_the_loop_is_neither():
    # a path in training mode reaches the first step, and nothing in the loop switches: no finding
    check_annotated(
        """
        import torch

        def fit(model, opt, loader, resume, evaluate):
            model.train()
            if resume:
                model.eval()
                evaluate(model)
                model.train()
            for x in loader:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
        """
    )


# ---------------------------------------------------------------------------------------------
# MDL205: a freeze in `__init__` / at setup, reset by a later `train()` reached through calls


def test_freeze_in_a_wrapper_init_reset_by_a_trainer_in_another_file(tmp_path):
    files = {
        "loop.py": """
            def fit_epoch(net, batches, opt):
                net.train()
                for x in batches:
                    opt.zero_grad()
                    net(x).mean().backward()
                    opt.step()
            """,
        "run.py": """
            import torch
            from loop import fit_epoch

            class PartlyFrozen(torch.nn.Module):
                def __init__(self, inner):
                    super().__init__()
                    self.inner = inner
                    self.inner.features.requires_grad_(False)
                    self.inner.features.eval()

                def forward(self, x):
                    return self.inner(x)

            def main(batches, opt):
                model = PartlyFrozen(torch.hub.load("pytorch/vision", "vgg11_bn"))
                for _ in range(3):
                    fit_epoch(model, batches, opt)
            """,
    }
    assert project(tmp_path, files, ("MDL205",)) == [("run.py", 10, "MDL205")]


def test_freeze_at_setup_reset_in_another_file_unless_it_refreezes(tmp_path):
    trainer = """
        def train_epoch(model, batches, opt):
            model.train(){refreeze}
            for x in batches:
                opt.zero_grad()
                model(x).mean().backward()
                opt.step()
        """
    main = """
        import torch
        from trainer import train_epoch

        def main(batches, epochs):
            model = torch.hub.load("pytorch/vision", "resnet18")
            model.layer1.requires_grad_(False)
            model.layer1.eval()
            opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
            for _ in range(epochs):
                train_epoch(model, batches, opt)
        """
    reset = project(tmp_path / "a", {"trainer.py": trainer.format(refreeze=""), "main.py": main}, ("MDL205",))
    assert reset == [("main.py", 8, "MDL205")]
    refrozen = {"trainer.py": trainer.format(refreeze="\n            model.layer1.eval()"), "main.py": main}
    assert project(tmp_path / "b", refrozen, ("MDL205",)) == []


def test_a_wrapped_model_is_as_mode_dependent_as_what_it_wraps():
    # DataParallel delegates to what it wraps: batch norm inside is reset; Linear layers only
    # compute the same in both modes
    check_annotated(
        """
        import torch
        from torch import nn

        def main(batches, opt):
            model = nn.DataParallel(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)))
            model.module.requires_grad_(False)
            model.module.eval()
            model.train()

        def other(batches, opt):
            model = nn.DataParallel(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))
            model.module.requires_grad_(False)
            model.module.eval()  # expect: MDL205
            model.train()
        """,
        ("MDL205",),
    )


# ---------------------------------------------------------------------------------------------
# MDL301: a plain wrapper object owns the networks and switches them (`agent.act_mode()`)

AGENT = """
    class Agent:
        def __init__(self, policy, target, lr=1e-3):
            self.policy = policy
            self.target = target
            self.lr = lr

        def freeze_target(self):
            self.target.eval()

        def act_mode(self):
            self.policy.eval()

        def learn_mode(self):
            self.policy.train()
    """

RUN = """
    import torch
    from agent import Agent

    def run(policy, target, opt, batches, episodes):
        agent = Agent(policy, target)
        policy.train()
        for ep in range(episodes):
            {top}agent.freeze_target()
            for x in batches:
                opt.zero_grad()
                (policy(x) - target(x).detach()).pow(2).mean().backward()
                opt.step()
            agent.act_mode()
            with torch.no_grad():
                print(policy(batches[0]).mean())
    """


def test_wrapper_method_in_another_file_leaves_the_kept_network_in_eval(tmp_path):
    files = {"agent.py": AGENT, "run.py": RUN.format(top="")}
    assert project(tmp_path, files, ("MDL301", "MDL303")) == [("run.py", 14, "MDL301")]


def test_wrapper_switched_back_at_the_top_of_each_episode_is_clean(tmp_path):
    # near misses: `learn_mode()` restores the policy; `freeze_target()` switches another network
    files = {"agent.py": AGENT, "run.py": RUN.format(top="agent.learn_mode()\n            ")}
    assert project(tmp_path, files, ("MDL301", "MDL303")) == []


# ---------------------------------------------------------------------------------------------
# MDL303: a from_pretrained model returned in a tuple by a setup function, trained by a helper


def test_pretrained_model_from_a_setup_tuple_trained_by_a_helper():
    check_annotated(
        """
        import torch
        from transformers import AutoModelForTokenClassification

        def build(cfg):
            net = AutoModelForTokenClassification.from_pretrained(cfg.name)
            optim = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
            return net, optim

        def build_ready(cfg):
            net = AutoModelForTokenClassification.from_pretrained(cfg.name)
            net.train()
            return net, torch.optim.AdamW(net.parameters(), lr=cfg.lr)

        def epoch(net, optim, batches):
            for b in batches:
                net(**b).loss.backward()
                optim.step()  # expect: MDL303
                optim.zero_grad()

        def main(cfg, batches):
            net, optim = build(cfg)
            for _ in range(cfg.epochs):
                epoch(net, optim, batches)

        def main_ready(cfg, batches):
            net, optim = build_ready(cfg)
            for _ in range(cfg.epochs):
                epoch(net, optim, batches)
        """,
        ("MDL301", "MDL303"),
    )


def test_an_optimizer_over_input_tensors_trains_no_model():
    # style transfer / latent search: the model stays in eval on purpose; an optimizer over a
    # model's own tensors (`[net.weight]`) or over `net.parameters()` does train it
    check_annotated(
        """
        import torch

        def invert(net, target, steps, evaluate):
            net.eval()
            z = torch.randn(1, 128).requires_grad_()
            opt = torch.optim.Adam([z], lr=0.05)
            for i in range(steps):
                opt.zero_grad()
                (net(z) - target).pow(2).mean().backward()
                opt.step()
                if i % 10 == 0:
                    evaluate(net)

        def finetune_after_probe(net, batches, steps):
            net.eval()
            opt = torch.optim.Adam(net.parameters(), lr=0.05)
            for x in batches:
                opt.zero_grad()
                net(x).mean().backward()
                opt.step()  # expect: MDL303
        """,
        ("MDL301", "MDL303"),
    )


def test_mdl304_eval_in_a_training_routine_depends_on_what_the_optimizer_holds():
    check_annotated(
        """
        import torch

        def train_head(model, head, loader):
            model.eval()
            opt = torch.optim.SGD(head.parameters(), lr=0.1)
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(head(model(x)), y).backward()
                opt.step()

        def train_all(model, loader):
            model.eval()  # expect: MDL304
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        """,
        ("MDL304",),
    )


def test_a_training_routine_that_evaluates_first_is_mdl303_a_plain_one_mdl304():
    check_annotated(
        """
        import torch

        def train_model(model, opt, train_batches, val_batches, log):
            model.eval()
            with torch.no_grad():
                log(sum(model(x).sum() for x in val_batches))   # a baseline before training
            for x in train_batches:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()  # expect: MDL303

        def train_one_epoch(model, opt, train_batches):
            model.eval()  # expect: MDL304
            for x in train_batches:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
        """
    )


def test_a_bare_self_handed_to_a_call_does_not_make_every_attribute_a_trained_model():
    # `self.tracker` is a metric object whose `add()` switches its own scoring network: not the
    # model the loop trains, although the Trainer hands `self` to a hook it cannot follow
    check_annotated(
        """
        import torch

        class Scorer:
            def __init__(self, net):
                self.net = net

            def add(self, x):
                self.net.eval()
                with torch.no_grad():
                    return self.net(x)

        class Trainer:
            def fit(self, loader):
                self.model.train()
                for x in loader:
                    run_hooks(self, x)
                    self.opt.zero_grad()
                    self.model(x).sum().backward()
                    self.opt.step()
                    self.tracker.add(x)
        """,
        ("MDL301",),
    )


def test_mdl205_a_train_earlier_in_the_freezing_method_is_not_a_later_reset():
    check_annotated(
        """
        import torch
        from torch import nn

        class Encoder(nn.Module):
            def __init__(self, inner, freeze_stem):
                super().__init__()
                self.inner = inner
                if freeze_stem:
                    self.inner.train()
                    self.inner.stem.eval()
                    self.inner.stem.requires_grad_(False)
        """,
        ("MDL205",),
    )


def test_an_object_switched_by_its_own_method_and_never_run_is_not_the_trained_model(tmp_path):
    # near miss: the same call on a model-named object is reported
    files = {
        "scoring.py": """
            import torch

            class Quality:
                def __init__(self, judge):
                    self.judge = judge
                    self.scores = []

                def append(self, wav):
                    self.judge.eval()
                    with torch.no_grad():
                        self.scores.append(self.judge(wav))
            """,
        "brain.py": """
            class Brain:
                def train_batch(self, batch):
                    out = self.compute_forward(batch)
                    for _ in range(2):
                        loss = self.compute_objectives(out, batch)
                        self.optimizer.zero_grad()
                        loss.backward()
                        self.optimizer.step()
                        self.pesq_metric.append(out)
                        self.generator.append(out)
            """,
    }
    assert project(tmp_path, files, ("MDL301",)) == [("brain.py", 11, "MDL301")]


def test_mdl303_a_mode_free_model_in_eval_is_not_reported_a_dropout_twin_is():
    check_annotated(
        """
        import torch
        from torch import nn

        def plain(loader, opt, evaluate):
            net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)).to("cpu")
            net.eval()
            evaluate(net)
            for x, y in loader:
                (net(x) - y).pow(2).mean().backward()
                opt.step()

        def with_dropout(loader, opt, evaluate):
            net = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2), nn.Linear(8, 1)).to("cpu")
            net.eval()
            evaluate(net)
            for x, y in loader:
                (net(x) - y).pow(2).mean().backward()
                opt.step()  # expect: MDL303
        """,
        ("MDL301", "MDL303"),
    )


# ---------------------------------------------------------------------------------------------
# helper cs3: a training function in another file that switches its parameter through an alias


_ALIAS_TRAINER = """
    import torch.nn.functional as F

    def train_epoch(model_in, optimizer, loader):
        net = model_in
        {switch}
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
    """
_ALIAS_MAIN = """
    import torch
    from trainer import train_epoch

    def evaluate(model, loader):
        model.eval()
        with torch.no_grad():
            return [model(x) for x, _ in loader]

    def main(model, loader, val_loader):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(10):
            train_epoch(model, optimizer, loader)
            evaluate(model, val_loader)
    """


def test_train_through_an_alias_in_another_file_undoes_the_eval(tmp_path):
    files = {"trainer.py": _ALIAS_TRAINER.format(switch="net.train()"), "main.py": _ALIAS_MAIN}
    assert project(tmp_path, files, ("MDL301", "MDL303")) == []


def test_no_train_through_the_alias_is_still_reported(tmp_path):
    files = {"trainer.py": _ALIAS_TRAINER.format(switch="net.zero_grad()"), "main.py": _ALIAS_MAIN}
    assert project(tmp_path, files, ("MDL301", "MDL303")) == [("main.py", 14, "MDL301")]
