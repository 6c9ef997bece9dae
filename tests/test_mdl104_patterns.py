"""MDL104: the idioms of issue 15, each as a general pattern with a VALID example (not reported) and an
INVALID twin (the same shape with the control removed: still reported). The examples are written for
this test; none is a copy of the code that prompted it."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from modelint.analysis.fillins import is_default_helper
from modelint.analysis.index import ProjectIndex, facts_from_source
from modelint.cache import Cache
from modelint.engine import EngineSettings, check_paths, check_source
from modelint.server.workspace import WorkspaceIndex

HEAD = (
    "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
    "from mylib.utils import default\n\n\n"
)

# (pattern, VALID body, INVALID twin with `# expect: MDL104` on each reported line)
PAIRS = [
    (
        "default-helper-in-file",
        """
        def exists(v):
            return v is not None

        def fill(value, fallback):
            if exists(value):
                return value
            return fallback() if callable(fallback) else fallback

        class Denoiser(nn.Module):
            def forward(self, x, noise=None):
                noise = fill(noise, lambda: torch.randn_like(x))
                return self.net(x + noise)
        """,
        """
        def fold(value, fn):
            return value + fn()          # not a default: always calls the draw

        class Denoiser(nn.Module):
            def forward(self, x, noise=None):
                noise = fold(noise, lambda: torch.randn_like(x))  # expect: MDL104
                return self.net(x + noise)
        """,
    ),
    (
        "default-helper-imported",
        """
        class Shift2d(nn.Module):
            def forward(self, x, offsets: "torch.Tensor | None" = None):
                offsets = default(offsets, lambda: torch.rand(x.shape[0], 2))
                return self.shift(x, offsets)
        """,
        """
        class Shift2d(nn.Module):
            def forward(self, x, offsets):
                offsets = default(x, lambda: torch.rand(x.shape[0], 2))  # expect: MDL104
                return self.shift(x, offsets)
        """,
    ),
    (
        "default-helper-thunk-named-first",
        """
        class Sampler(nn.Module):
            def forward(self, x, eps=None, t=None, **extra):
                draw = lambda: torch.randn_like(x)
                eps = default(eps, draw)

                def pick_t():
                    return torch.randint(0, self.steps, (x.shape[0],), device=x.device)
                t = default(t, pick_t)
                shift = default(extra.pop("shift", None), lambda: torch.rand(x.shape[0], 1))
                return self.net(x + eps + shift, t)
        """,
        """
        class Sampler(nn.Module):
            def forward(self, x, eps=None, t=None, **extra):
                draw = lambda: torch.randn_like(x)  # expect: MDL104
                eps = default(eps, draw) + draw()     # the thunk also runs unconditionally

                def pick_t():
                    return torch.randint(0, self.steps, (x.shape[0],), device=x.device)  # expect: MDL104
                t = default(x, pick_t)                # fills in nothing the caller may leave out
                shift = default(extra["shift"], lambda: torch.rand(x.shape[0], 1))  # expect: MDL104
                return self.net(x + eps + shift, t)
        """,
    ),
    (
        "knob-scaled-and-guarded",
        """
        class StyleBlock(nn.Module):
            def forward(self, h):
                if self.jitter_amp > 0:
                    h = h + self.jitter_amp * torch.randn_like(h)
                amp = self.cfg.amp
                if amp:
                    h = h + amp * torch.randn_like(h)
                return h
        """,
        """
        class StyleBlock(nn.Module):
            def forward(self, h):
                if self.enabled:
                    h = h + self.gain * torch.randn_like(h)  # expect: MDL104
                return h
        """,
    ),
    (
        "drawn-always-used-under-mode",
        """
        class LayerSkip(nn.Module):
            def forward(self, h):
                coins = torch.rand(len(self.blocks))
                drop = coins < self.skip_rate
                for i, blk in enumerate(self.blocks):
                    if self.training and drop[i]:
                        continue
                    h = blk(h)
                return h
        """,
        """
        class LayerSkip(nn.Module):
            def forward(self, h):
                coins = torch.rand(len(self.blocks))  # expect: MDL104
                drop = coins < self.skip_rate
                for i, blk in enumerate(self.blocks):
                    if drop[i]:
                        continue
                    h = blk(h)
                return h
        """,
    ),
    (
        "selection-by-mode-arithmetic",
        """
        class Head(nn.Module):
            def forward(self, mu, std):
                t = float(self.training)
                a = self.training * (mu + std * torch.randn_like(mu)) + (1 - self.training) * mu
                b = torch.where(torch.tensor(t > 0), torch.randn_like(mu), mu)
                return a + b
        """,
        """
        class Head(nn.Module):
            def forward(self, mu, std):
                return torch.where(mu > 0, torch.randn_like(mu), mu)  # expect: MDL104
        """,
    ),
    (
        "probability-from-the-mode",
        """
        class TokenDrop(nn.Module):
            def forward(self, x):
                rate = 0.0 if not self.training else self.rate
                keep = x.new_empty(x.shape[:2]).bernoulli_(1 - rate)
                return x * keep[..., None]
        """,
        """
        class TokenDrop(nn.Module):
            def forward(self, x):
                rate = self.rate
                keep = x.new_empty(x.shape[:2]).bernoulli_(1 - rate)  # expect: MDL104
                return x * keep[..., None]
        """,
    ),
    (
        "mode-flag-unpacked",
        """
        class Smear(nn.Module):
            def forward(self, x):
                smear_on, scale = self.training and self.p > 0, 0.5
                if smear_on:
                    x = x + scale * torch.rand_like(x)
                return x
        """,
        """
        class Smear(nn.Module):
            def forward(self, x):
                smear_on, scale = self.p > 0, 0.5
                if smear_on:
                    x = x + scale * torch.rand_like(x)  # expect: MDL104
                return x
        """,
    ),
    (
        "one-time-lazy-init",
        """
        class Codebook(nn.Module):
            def forward(self, z):
                if not self.ready:
                    self.codes.data.copy_(torch.randn(self.n, z.shape[-1]))
                    self.ready.fill_(True)
                return torch.cdist(z, self.codes).argmin(-1)
        """,
        """
        class Codebook(nn.Module):
            def forward(self, z):
                if not self.ready:
                    self.codes.data.copy_(torch.randn(self.n, z.shape[-1]))  # expect: MDL104
                return torch.cdist(z, self.codes).argmin(-1)
        """,
    ),
    (
        "init-method-reached-from-forward",
        """
        class Lazy(nn.Module):
            def _init_weights(self):
                self.w.data.normal_(0.0, 0.02)

            def forward(self, x):
                if self.w is None:
                    self.w = nn.Parameter(x.new_empty(x.shape[-1], 4))
                self._init_weights()
                return x @ self.w
        """,
        """
        class Lazy(nn.Module):
            def _perturb(self):
                self.w.data.normal_(0.0, 0.02)  # expect: MDL104

            def forward(self, x):
                self._perturb()
                return x @ self.w
        """,
    ),
    (
        "meta-device-shape-only",
        """
        class Probe(nn.Module):
            def forward(self, x):
                shape = self.body(torch.randn(1, *x.shape[1:], device="meta")).shape
                return x.reshape(-1, shape[-1])
        """,
        """
        class Probe(nn.Module):
            def forward(self, x):
                shape = self.body(torch.randn(1, *x.shape[1:], device=x.device)).shape  # expect: MDL104
                return x.reshape(-1, shape[-1])
        """,
    ),
    (
        "dead-code-after-raise",
        """
        class Abstract(nn.Module):
            def forward(self, x):
                raise NotImplementedError("subclasses decide")
                return x + torch.randn_like(x)
        """,
        """
        class Abstract(nn.Module):
            def forward(self, x):
                if x.ndim != 3:
                    raise ValueError("3-d input")
                return x + torch.randn_like(x)  # expect: MDL104
        """,
    ),
    (
        "objective-returns-a-loss",
        """
        class NoisePredictionObjective(nn.Module):
            def forward(self, x0):
                t = torch.randint(0, self.steps, (x0.shape[0],), device=x0.device)
                eps = torch.randn_like(x0)
                pred = self.net(self.q_sample(x0, t, eps), t)
                return F.mse_loss(pred, eps)

        class MaskedPretrainer(nn.Module):
            def forward(self, tokens):
                order = torch.rand(tokens.shape[:2], device=tokens.device).argsort(1)
                recon = self.decoder(self.encoder(tokens, order))
                loss = ((recon - tokens) ** 2).mean()
                return loss, recon
        """,
        """
        class NoisePredictionObjective(nn.Module):
            def forward(self, x0, fixed_t=None):
                if x0.shape[0] > 1:
                    t = torch.randint(0, self.steps, (x0.shape[0],), device=x0.device)  # expect: MDL104
                else:
                    t = fixed_t
                return F.mse_loss(self.net(x0, t), x0)

        class MaskedPredictor(nn.Module):
            def forward(self, tokens):
                order = torch.rand(tokens.shape[:2], device=tokens.device).argsort(1)  # expect: MDL104
                return self.decoder(self.encoder(tokens, order))
        """,
    ),
    (
        "noise-source",
        """
        class WhiteNoise(nn.Module):
            def forward(self, like, lengths=None):
                noise = torch.randn_like(like)
                if lengths is not None:
                    noise.masked_fill_(self.pad_mask(lengths, like), 0.0)
                return noise

        class TimestepDraw(nn.Module):
            def forward(self, batch):
                return torch.randint(0, self.steps, (batch.shape[0],), device=batch.device)
        """,
        """
        class PickNext(nn.Module):
            def forward(self, logits):
                return torch.multinomial(logits.softmax(-1), 1)  # expect: MDL104

        class Perturb(nn.Module):
            def forward(self, like):
                return like + torch.randn_like(like)  # expect: MDL104
        """,
    ),
    (
        "vae-reparameterisation",
        """
        class Posterior(nn.Module):
            def forward(self, h):
                loc, log_scale = self.proj(h).chunk(2, -1)
                z = loc + torch.randn_like(loc) * log_scale.exp()
                return self.out(z), loc, log_scale

        class Autoencoder(nn.Module):
            def _draw(self, loc, log_scale):
                return loc + torch.randn_like(loc) * log_scale.exp()

            def forward(self, h):
                loc, log_scale = self.proj(h).chunk(2, -1)
                return self.out(self._draw(loc, log_scale)), loc, log_scale
        """,
        """
        class Posterior(nn.Module):
            def forward(self, h):
                loc, log_scale = self.proj(h).chunk(2, -1)
                z = loc + torch.randn_like(loc) * log_scale.exp()  # expect: MDL104
                return self.out(z), h

        class Chooser(nn.Module):
            def forward(self, probs):
                pick = torch.multinomial(probs, 1)  # expect: MDL104
                return pick, probs
        """,
    ),
    (
        "named-for-its-draw",
        """
        class GumbelSoftmax(nn.Module):
            def forward(self, logits):
                return F.gumbel_softmax(logits, tau=self.tau, hard=True)
        """,
        """
        class CodeSelector(nn.Module):
            def forward(self, logits):
                return F.gumbel_softmax(logits, tau=self.tau, hard=True)  # expect: MDL104

        class Normalize(nn.Module):
            def forward(self, x):
                return x / x.norm() + x.new_empty(x.shape).normal_()  # expect: MDL104
        """,
    ),
    (
        "sampler-without-data-input",
        """
        class LatentGenerator(nn.Module):
            def forward(self, n, device=None):
                z = torch.randn(n, self.latent_dim, device=device)
                return self.decoder(z)

        class PriorSampler(nn.Module):
            def forward(self, like):
                eps = torch.randn(like.shape[0], self.k, device=like.device)
                return self.loc + self.scale * eps + 0 * torch.rand(len(like), 1)
        """,
        """
        class ConditionalGenerator(nn.Module):        # the condition's values are data
            def forward(self, cond):
                z = torch.randn(cond.shape[0], self.latent_dim, device=cond.device)  # expect: MDL104
                return self.decoder(torch.cat([z, cond], 1))

        class Indexed(nn.Module):
            def forward(self, counts):
                return self.decoder(torch.randn(counts[0], 3))  # expect: MDL104
        """,
    ),
    (
        "comment-says-eval-too",
        """
        class Prenet(nn.Module):
            def _drop(self, h):
                keep = torch.bernoulli(torch.full_like(h[0], 0.5))
                return h * keep * 2

            def forward(self, h):
                # as in the paper, this dropout is applied even at inference
                return self._drop(self.fc(h))
        """,
        """
        class Prenet(nn.Module):
            def _drop(self, h):
                keep = torch.bernoulli(torch.full_like(h[0], 0.5))  # expect: MDL104
                return h * keep * 2

            def forward(self, h):
                # as in the paper, this dropout uses p = 0.5
                return self._drop(self.fc(h))
        """,
    ),
    (
        "pretraining-class",
        """
        class EncoderForPreTraining(nn.Module):
            def forward(self, feats):
                swap = torch.bernoulli(torch.full(feats.shape[:2], self.swap_prob)).bool()
                return self.head(torch.where(swap[..., None], self.codes(feats), feats))
        """,
        """
        class EncoderForTokenClassification(nn.Module):
            def forward(self, feats):
                swap = torch.bernoulli(torch.full(feats.shape[:2], self.swap_prob)).bool()  # expect: MDL104
                return self.head(torch.where(swap[..., None], self.codes(feats), feats))
        """,
    ),
    (
        "branch-returns-a-loss",
        """
        class DurationFlow(nn.Module):
            def forward(self, h, target=None, reverse=False):
                if not reverse:
                    eps = torch.randn(h.shape[0], 2, h.shape[-1])
                    z, logdet = self.flow(eps, h)
                    nll = (0.5 * (z - target) ** 2).sum() - logdet
                    return nll
                return self.flow.inverse(h)
        """,
        """
        class DurationFlow(nn.Module):
            def forward(self, h, target=None, reverse=False):
                if not reverse:
                    eps = torch.randn(h.shape[0], 2, h.shape[-1])  # expect: MDL104
                    z, logdet = self.flow(eps, h)
                    return z
                return self.flow.inverse(h)
        """,
    ),
]


def _lines(source: str, options=None):
    found = check_source(source, select=["MDL104"], rule_options=options)
    assert not [f for f in found if f.code in ("MDL000", "MDL999")], found
    return [f.line for f in found if f.code == "MDL104"]


def _source(body: str) -> str:
    return HEAD + textwrap.dedent(body).lstrip("\n")


def _expected(source: str):
    return [i for i, line in enumerate(source.splitlines(), 1) if "# expect: MDL104" in line]


@pytest.mark.parametrize("pattern,valid,invalid", PAIRS, ids=[p[0] for p in PAIRS])
def test_valid_is_not_reported(pattern, valid, invalid):
    assert _lines(_source(valid)) == []


@pytest.mark.parametrize("pattern,valid,invalid", PAIRS, ids=[p[0] for p in PAIRS])
def test_invalid_twin_is_reported(pattern, valid, invalid):
    source = _source(invalid)
    assert _expected(source), "an INVALID twin needs an expect line"
    assert _lines(source) == _expected(source)


@pytest.mark.parametrize("name", ["objective-returns-a-loss", "noise-source", "vae-reparameterisation",
                                  "named-for-its-draw", "comment-says-eval-too", "pretraining-class",
                                  "sampler-without-data-input",
                                  "branch-returns-a-loss"])
def test_report_objectives_option_brings_the_deliberate_findings_back(name):
    valid = _source(dict((p[0], p[1]) for p in PAIRS)[name])
    assert _lines(valid, {"MDL104": {"report-by-design": True}}) != []


def test_default_helper_defined_in_file_must_be_a_default():
    """A same-file helper that is not `x if x is not None else f()` keeps the draw reported, even with an
    optional first argument; an imported one is judged by the call's shape."""
    src = _source(
        """
        def twice(value, fn):
            return fn() + fn()

        class M(nn.Module):
            def forward(self, x, noise=None):
                return twice(noise, lambda: torch.randn_like(x))
        """
    )
    assert _lines(src) == [len(src.splitlines())]


# Near misses of the idioms above: each looks like one but leaves eval random, so it stays reported.
STILL_REPORTED = [
    # the drawn local is read only in eval (a mode check, but the wrong arm)
    """
    class EvalWobble(nn.Module):
        def forward(self, x):
            wobble = torch.rand_like(x)  # expect: MDL104
            if not self.training:
                x = x + 0.01 * wobble
            return x
    """,
    # a counter is not a one-time flag: the draw runs on every call after the tenth
    """
    class Warm(nn.Module):
        def forward(self, x):
            if self.calls > 10:
                x = x + torch.randn_like(x)  # expect: MDL104
            self.calls += 1
            return x
    """,
    # a random hidden state drawn on every call is not parameter initialisation
    """
    class Rnn(nn.Module):
        def init_hidden(self, n):
            return torch.randn(1, n, self.hidden)  # expect: MDL104

        def forward(self, x):
            return self.rnn(x, self.init_hidden(x.shape[1]))
    """,
    # scaled by data, tested on data: not a knob the user sets
    """
    class DataScaled(nn.Module):
        def forward(self, x, w):
            if w.sum() > 0:
                x = x + w * torch.randn_like(x)  # expect: MDL104
            return x
    """,
    # the mode passed on to a layer call computes data; a draw shaped like that data is not
    # parametrised by the mode (it is random in eval)
    """
    class AfterDropout(nn.Module):
        def forward(self, x):
            x = F.dropout(x, 0.1, self.training)
            return x + torch.randn_like(x)  # expect: MDL104
    """,
    """
    class AfterNorm(nn.Module):
        def forward(self, x, training=None):
            x = self.norm(x, training=training)
            return x + 0.1 * torch.randn(x.shape)  # expect: MDL104
    """,
    # a comment that mentions evaluation without saying the draw is wanted there
    """
    class Drop(nn.Module):
        def forward(self, x):
            # TODO: evaluation
            return x * torch.rand_like(x).lt(0.9)  # expect: MDL104
    """,
]


@pytest.mark.parametrize("body", STILL_REPORTED, ids=range(len(STILL_REPORTED)))
def test_near_misses_stay_reported(body):
    source = _source(body)
    assert _lines(source) == _expected(source)


# --- default helpers judged by their body (`analysis.fillins`), in this file and in other checked files ----

HELPERS = [  # `x if x is not None else f()` in its spellings
    "def default(v, d):\n    return v if v is not None else d()\n",
    "def default(v, d):\n    return d() if v is None else v\n",
    "def default(val, d):\n    if exists(val):\n        return val\n    return d() if callable(d) else d\n",
    "def pick(val, d):\n    \"\"\"doc\"\"\"\n    if val is None:\n        return d()\n    return val\n",
    "def pick(val, d):\n    if not is_none(val):\n        return val\n    else:\n        return d\n",
    "def pick(val, d, *rest):\n    if val:\n        return val\n    raise_if(rest)\n    return d() if callable(d) else d\n",
]
NOT_HELPERS = [
    # a helper named `default` that always calls f() (the draw runs, and is used, whatever is passed)
    "def default(val, d):\n    noise = d()\n    if val is not None:\n        return val + noise\n    return noise\n",
    "def default(val, d):\n    return val + d()\n",
    # returns f() exactly when x is given
    "def default(val, d):\n    return d() if val is not None else val\n",
    "def default(val, d):\n    if exists(val):\n        return d()\n    return val\n",
    # a test whose polarity cannot be read: either arm may run with the value set
    "def default(val, d):\n    if check(val, d):\n        return val\n    return d()\n",
    # the value given back only after calling the fallback
    "def default(val, d):\n    fallback = d()\n    return val if val is not None else fallback\n",
    # falls off the end when the value is set
    "def default(val, d):\n    if val is None:\n        return d()\n",
    "def one(val):\n    return val\n",
]


@pytest.mark.parametrize("text", HELPERS)
def test_default_helper_spellings(text):
    assert is_default_helper(ast.parse(text).body[0])


@pytest.mark.parametrize("text", NOT_HELPERS)
def test_default_helper_near_misses(text):
    assert not is_default_helper(ast.parse(text).body[0])


def test_index_records_short_top_level_fill_in_helpers():
    source = (HELPERS[0] + "\n\n" + NOT_HELPERS[0] + "\n\nclass C:\n    def default(self, v, d):\n        return v\n\n\n"
              "def long(v, d):\n" + "    x = 1\n" * 20 + "    return v if v is not None else d()\n").encode()
    source = source.replace(b"def default(val, d):\n    noise", b"def always(val, d):\n    noise")
    facts = facts_from_source(source, Path("/x/pkg/u.py"), "pkg.u")
    assert facts.fillins == {"default": True, "always": False}  # methods and long functions are not indexed
    index, other = ProjectIndex(), ProjectIndex()
    index.add(facts)
    other.add(facts_from_source(source.replace(b"return v if v is not None", b"return d() if v is not None"),
                                Path("/x/pkg/u.py"), "pkg.u"))
    assert index.fingerprint() != other.fingerprint()


def _project(tmp_path, helper: str):
    files = {
        "pkg/__init__.py": "from .utils import default\n",
        "pkg/utils.py": helper,
        "pkg/model.py": (
            "import torch\nimport torch.nn as nn\nfrom pkg import default\nfrom pkg.utils import default as fill\n\n\n"
            "class Denoiser(nn.Module):\n"
            "    def forward(self, x, noise=None, shift=None):\n"
            "        noise = default(noise, lambda: torch.randn_like(x))\n"
            "        shift = fill(shift, lambda: torch.rand(x.shape[0]))\n"
            "        return self.net(x + noise + shift)\n"
        ),
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return sorted(tmp_path.rglob("*.py"))


def _found(tmp_path, helper, cache=None):
    paths = _project(tmp_path, helper)
    result = check_paths(paths, EngineSettings(select=("MDL104",), root=str(tmp_path), jobs=1, cache=cache))
    return sorted((Path(f.path).name, f.line) for f in result.findings if f.code == "MDL104")


@pytest.mark.parametrize("helper", HELPERS[:3])
def test_imported_helper_of_a_checked_file_is_judged_by_its_body(tmp_path, helper):
    assert _found(tmp_path, helper) == []


@pytest.mark.parametrize("helper", NOT_HELPERS[:4])
def test_imported_near_miss_of_a_checked_file_stays_reported(tmp_path, helper):
    assert _found(tmp_path, helper) == [("model.py", 9), ("model.py", 10)]


def test_cache_follows_a_change_of_the_helper_in_the_other_file(tmp_path):
    """The helper's body changes in utils.py; model.py's findings must change with it under the cache and
    agree with a run without the cache, and come back when the body does."""
    cache = Cache(tmp_path / ".modelint_cache", salt="test")
    good, bad = HELPERS[2], NOT_HELPERS[3]
    assert _found(tmp_path, good, cache) == []
    warm = _found(tmp_path, bad, cache)
    assert warm == _found(tmp_path, bad) == [("model.py", 9), ("model.py", 10)]
    assert _found(tmp_path, good, cache) == []
    assert cache.hits > 0  # the unchanged files' facts were served from the cache


def test_fill_ins_survive_the_facts_cache_and_old_entries_are_misses(tmp_path):
    cache = Cache(tmp_path, salt="s")
    facts = facts_from_source(HELPERS[0].encode(), Path("/x/pkg/u.py"), "pkg.u")
    cache.put_facts("k", facts)
    assert cache.get_facts("k").fillins == {"default": True}
    entry = next(tmp_path.rglob("*.json"))
    entry.write_text(entry.read_text().replace('"fillins"', '"other"'))
    assert cache.get_facts("k") is None


def test_editor_workspace_key_sees_a_helper_body_change(tmp_path):
    utils = tmp_path / "utils.py"
    utils.write_text(HELPERS[0])
    ws = WorkspaceIndex()
    ws.refresh(utils)
    assert ws.set_open(utils, facts_from_source(NOT_HELPERS[2].encode(), utils)) is True
    assert ws.set_open(utils, facts_from_source(NOT_HELPERS[2].encode(), utils)) is False


@pytest.mark.parametrize("helper,reported", [(h, False) for h in HELPERS[:3]] + [(h, True) for h in NOT_HELPERS[:4]])
def test_same_file_helper_and_method_helper_are_judged_by_the_same_definition(helper, reported):
    method = textwrap.indent(helper.replace("(v, d)", "(self, v, d)").replace("(val, d)", "(self, val, d)"), "    ")
    src = _source(
        helper + "\n\nclass M(nn.Module):\n" + method
        + "\n    def forward(self, x, noise=None, shift=None):\n"
        "        noise = default(noise, lambda: torch.randn_like(x))\n"
        "        shift = self.default(shift, lambda: torch.rand(x.shape[0]))\n"
        "        return x + noise + shift\n"
    )
    n = len(src.splitlines())
    assert _lines(src) == ([n - 2, n - 1] if reported else [])


def test_a_static_method_helper_has_no_receiver():
    src = _source(
        """
        class M(nn.Module):
            @staticmethod
            def fill(v, d):
                return v if v is not None else d()

            def forward(self, x, noise=None):
                return x + self.fill(noise, lambda: torch.randn_like(x))
        """
    )
    assert _lines(src) == []
    assert _lines(src.replace("return v if v is not None else d()", "return d() if v is not None else v")) == [
        len(src.splitlines())]
