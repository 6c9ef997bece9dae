"""Paths of the mode flow (`analysis/modeflow.py`) that end without a `raise`."""

from __future__ import annotations

from tests.test_modemodel import check


def test_assert_false_ends_its_path():
    check(
        """
        import torch

        def fit(net, opt, data, how, epochs):
            for ep in range(epochs):
                if how == "a":
                    net.train()
                else:
                    assert False, how
                for x in data:
                    opt.zero_grad()
                    net(x).sum().backward()
                    opt.step()
                net.eval()

        def fit_unchecked(net, opt, data, how, epochs):
            for ep in range(epochs):
                if how == "a":
                    net.train()
                else:
                    assert how, "unknown"
                for x in data:
                    opt.zero_grad()
                    net(x).sum().backward()
                    opt.step()
                net.eval()  # expect: MDL301
        """,
        "MDL301",
    )
