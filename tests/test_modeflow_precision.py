"""The mode-flow facts behind MDL301 / MDL304's precision on measuring set 3 (helper p301): flags
fixed by an `if` arm, one object under two names, an eval that is a flag's frozen setting, and a
backward-only routine that hands the entry mode back."""

from __future__ import annotations

import libcst as cst
import pytest

from modelint.analysis.modeflow import flag_tests
from tests.test_callsite_paths import check_annotated


@pytest.mark.parametrize(
    "test, arm, fixed",
    [
        ("args.tune", True, (("args.tune", True),)),
        ("args.tune", False, (("args.tune", False),)),
        ("not self.args.tune", True, (("args.tune", False),)),
        ("a and not b", True, (("a", True), ("b", False))),
        ("a and b", False, ()),  # which of the two was false is not known
        ("a or b", False, (("a", False), ("b", False))),
        ("not (a or b)", True, (("a", False), ("b", False))),
        ("n > 1", True, ()),
        ("True", True, ()),
    ],
)
def test_flag_tests_reads_what_an_arm_fixes(test, arm, fixed):
    assert flag_tests(cst.parse_expression(test), arm) == fixed


# `self.args.freeze_enc` in the optimizer's method, `args.freeze_enc` after `args = self.args`
_TUNER = """
import torch

class Tuner:
    def groups(self, enc):
        if not self.args.freeze_enc:
            return [{"params": enc.parameters()}, {"params": self.head.parameters()}]
        return [{"params": self.head.parameters()}]

    def fit(self, batches, rounds):
        args = self.args
        enc = self.enc
        opt = torch.optim.Adam(self.groups(enc))
        for _ in range(rounds):
            if FLAG:
                enc.eval()EXPECT
            else:
                enc.train()
            for x in batches:
                opt.zero_grad()
                self.head(enc(x)).sum().backward()
                opt.step()
"""


@pytest.mark.parametrize(
    "flag, expect",
    [
        ("args.freeze_enc", ""),  # one flag: the eval is the encoder's frozen setting
        ("self.args.freeze_enc", ""),
        ("args.fast", "  # expect: MDL301"),  # another flag says nothing of the optimizer
    ],
)
def test_an_eval_is_a_frozen_setting_only_under_the_flag_that_holds_the_parameters(flag, expect):
    check_annotated(_TUNER.replace("FLAG", flag).replace("EXPECT", expect), codes=("MDL301",))


def test_a_parameter_rebound_to_the_attribute_on_one_branch_is_not_the_same_object():
    # `net` arrives as an object of its own; after `if net is None: net = self.net` it may still be
    # it, so `net.eval()` adds to `self.net`'s stale eval from `score()` rather than replacing it
    check_annotated(
        """
        import torch

        class Fitter:
            def score(self, batches):
                self.net.eval()
                with torch.no_grad():
                    return [self.net(b) for b in batches]

            def fit(self, batches, opt, rounds, net=None):
                if net is None:
                    net = self.net
                for _ in range(rounds):
                    if self.cfg.warm:
                        net.train()
                    else:
                        net.eval()  # expect: MDL301
                    for b in batches:
                        opt.zero_grad()
                        (self.net(b) + net(b)).sum().backward()
                        opt.step()
                    self.score(batches)  # expect: MDL301
        """,
        codes=("MDL301",),
    )


_EARLY_RETURN = """
            if i == limit:
                return out
            net.zero_grad()
            loss_fn(net(x), y).backward()
            out.append([p.grad.pow(2) for p in net.parameters()])"""


def test_a_gradient_probe_with_an_early_return_before_the_restore_is_reported():
    check_annotated(
        """
        def fisher_diag(net, batches, loss_fn, limit):
            keep = net.training
            net.eval()  # expect: MDL304
            out = []
            for i, (x, y) in enumerate(batches):"""
        + _EARLY_RETURN.replace("\n    ", "\n        ")
        + """
            net.train(keep)
            return out
        """,
        codes=("MDL304",),
    )


def test_a_gradient_probe_restoring_in_finally_is_clean():
    check_annotated(
        """
        def fisher_diag(net, batches, loss_fn, limit):
            keep = net.training
            net.eval()
            out = []
            try:
                for i, (x, y) in enumerate(batches):"""
        + _EARLY_RETURN.replace("\n    ", "\n            ")
        + """
            finally:
                net.train(mode=keep)
            return out
        """,
        codes=("MDL304",),
    )


@pytest.mark.parametrize(
    "options, expect",
    [
        ("opt = parser.parse_args()", ""),  # options named like an optimizer: not one
        # stepped below: unreadable, assumed to train all; its own step is the one reported (opt_gen's
        # step trains only gen: the optimizer a step steps decides when it is readable)
        ("opt = make_optimizer()", "  # expect: MDL303"),
    ],
)
def test_options_named_like_an_optimizer_do_not_hide_what_the_optimizers_hold(options, expect):
    step = f"opt.step(){expect}\n" if "make_optimizer" in options else ""
    check_annotated(
        f"""
import argparse
import torch

parser = argparse.ArgumentParser()
{options}
gen = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.2))
critic = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.2))
critic.eval()
opt_gen = torch.optim.SGD(gen.parameters(), lr=0.1)
for z in torch.randn(4, 2, 8):
    opt_gen.zero_grad()
    critic(gen(z)).mean().backward()
    opt_gen.step()
    {step}""",
        codes=("MDL303",),
    )


def test_a_parameter_list_grown_after_its_binding_is_not_read_as_empty():
    # `params = []` then appended in a loop: the list holds the critic's parameters, not nothing
    check_annotated(
        """
import argparse
import torch

opts = argparse.ArgumentParser().parse_args()
gen = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.2))
critic = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.2))
critic.eval()
params = []
for p in critic.parameters():
    params.append(p)
opt_all = torch.optim.SGD(params, lr=0.1)
for z in torch.randn(4, 2, 8):
    opt_all.zero_grad()
    critic(gen(z)).mean().backward()
    opt_all.step()  # expect: MDL303
""",
        codes=("MDL303",),
    )
