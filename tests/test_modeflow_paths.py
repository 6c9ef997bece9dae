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


def test_starred_display_bound_once_is_expanded():
    check(
        """
        import torch

        def one_epoch(data, net, opt, tag):
            net.train()
            for x in data:
                opt.zero_grad()
                net(x).sum().backward()
                opt.step()

        def score(net, data):
            net.eval()
            with torch.no_grad():
                return [net(x) for x in data]

        def main(net, opt, data, val, n):
            bundle = (data, net, opt)
            for e in range(n):
                one_epoch(*bundle, e)
                score(net, val)

        def main_rebound(net, other, opt, data, val, n):
            bundle = (data, net, opt)
            if n > 3:
                bundle = (data, other, opt)
            for e in range(n):
                one_epoch(*bundle, e)
                score(net, val)  # expect: MDL301
        """,
        "MDL301",
    )
