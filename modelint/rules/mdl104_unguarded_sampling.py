from __future__ import annotations

from typing import Dict, Optional

import libcst as cst

from modelint.analysis.calls import callee_name
from modelint.analysis.sampling import (
    ForwardReach,
    caller_generator,
    caller_supplied,
    random_by_design_class,
    sampling_op,
    scaled_by_switch,
    seeds_rng,
)
from modelint.frameworks import union
from modelint.rules.base import Rule


class UnguardedSamplingInForward(Rule):
    code = "MDL104"
    name = "unguarded-sampling-in-forward"
    level = "warning"
    summary = "A random sampling op runs in `forward` whatever the mode, so eval outputs are random."
    what = (
        "Reports a random-sampling op executed by an `nn.Module`'s `forward`, or by a method of the same "
        "class that `forward` calls (followed transitively through `self.<method>` references; a `forward` "
        "inherited from a base class in the same file counts, with this class's overrides), when no mode "
        "check guards it: `torch.multinomial` / `probs.multinomial()`, `bernoulli`, `torch.rand`, `randn`, "
        "`randint`, `randperm`, `rand_like`, `randn_like`, `randint_like`, `normal`, `poisson`, `binomial`, "
        "the in-place `uniform_`/`normal_`/`bernoulli_`/`exponential_`/`geometric_`/`cauchy_`/`log_normal_`/"
        "`random_`, `torch.distributions` `.sample()` (on a distribution built in the function) / "
        "`.rsample()`, and `F.gumbel_softmax`. Guarded means: in either arm of an `if`/conditional "
        "expression whose test reads the mode (`self.training`, a `training` parameter, a local derived "
        "from them), after an early `if not self.training: return ...`, or reached only through a call "
        "that is itself guarded (`if self.training: x = self.drop_path(x)`).\n\n"
        "Not reported (the randomness is explicit or controlled by the caller): an op guarded by a sampling "
        "switch on the path - a parameter, local or configured attribute named `sample`, `do_sample`, "
        "`greedy`, `temperature`, `deterministic`, `stochastic`, `noise`, `sample_posterior`, `use_mean`, "
        "`generator`, ... (`self.stochastic`, `if generator is None`), or a setting compared with a strategy "
        "name (`if self.policy == \"random\":`, `decode_type == \"sampling\"`); an op that only fills in a "
        "parameter the caller did not pass (`if noise is None: noise = torch.randn_like(x)`); a draw from a "
        "`generator=` that is a parameter of the function (the caller seeds it); a draw multiplied by a "
        "knob such as `noise_scale`; a function that seeds the RNG itself (`torch.manual_seed(...)`); "
        "methods named `sample*`, `generate*`, `rollout*`, `act*` (explicit sampling APIs, never entered "
        "from `forward`); methods `forward` never calls (`reset_parameters`); NumPy and `random` draws "
        "(not torch ops); and data-augmentation and loss classes, random by design: a class or base named "
        "`Random*`, `*Augment*`, `*Jitter`, `*Transform`, `*Erasing`, `Mixup`/`CutMix`/`Mosaic`, a module in "
        "a `transforms`/`augment*` package, or a class named `*Loss`, `*Criterion`, `*Matcher`."
    )
    why = (
        "`model.eval()` only flips `self.training`; it does not turn sampling into a deterministic choice. "
        "A policy decoder that draws its next action with `probs.multinomial(1)` keeps drawing at "
        "evaluation, so a greedy validation tour (or a prediction) changes from run to run and validation "
        "scores are noisy. Sample in training and take the deterministic choice in eval (`argmax`, the "
        "distribution's mean or mode), or make sampling an explicit argument of `forward`. A `generator=` "
        "kept on the module is not an exemption: its state advances from call to call, so two evaluations "
        "of the same input still differ. Sampling that is wanted in eval too (a noise-injection layer, an "
        "MAE-style random mask, a VAE posterior, Reformer's random LSH rotations, Tacotron-style prenet "
        "dropout) is worth a `# modelint: ignore[MDL104]` that says so."
    )
    example = (
        "class Decoder(nn.Module):\n"
        "    def forward(self, logits):\n"
        "        probs = logits.softmax(-1)\n"
        "        return probs.multinomial(1).squeeze(1)\n"
    )
    use_instead = (
        "class Decoder(nn.Module):\n"
        "    def forward(self, logits):\n"
        "        probs = logits.softmax(-1)\n"
        "        if self.training:\n"
        "            return probs.multinomial(1).squeeze(1)  # explore while training\n"
        "        return probs.argmax(-1)                     # deterministic in eval\n"
    )
    triggers = union("sampling_triggers")
    fix_safety = (
        "No fix: what eval should do instead of sampling (the mean, `argmax`, a fixed seed, an explicit "
        "`sample=` argument) depends on the model."
    )

    VALID = (
        # the seed's correct decoder: sampling in a helper that forward calls, guarded there
        """
import torch
import torch.nn as nn

class Decoder(nn.Module):
    def select(self, probs):
        if self.training:
            return probs.multinomial(1).squeeze(1)
        return probs.argmax(-1)

    def forward(self, probs):
        return self.select(probs)
""",
        # stochastic depth with an early exit, and a helper only called under a mode check
        """
import torch
from torch import nn

class Block(nn.Module):
    def drop_path(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1 - self.p
        return x * x.new_empty(x.shape[0], 1).bernoulli_(keep) / keep

    def _noise(self, x):
        return x + 0.1 * torch.randn_like(x)

    def forward(self, x):
        x = self.drop_path(x)
        if self.training:
            x = self._noise(x)
        return x + torch.randn_like(x) * self.sigma if self.training else x
""",
        # explicit sampling switches on the path
        """
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Categorical

class Policy(nn.Module):
    def forward(self, logits, greedy=False, temperature=1.0):
        if greedy:
            action = logits.argmax(-1)
        else:
            action = Categorical(logits=logits / temperature).sample()
        return action

class Head(nn.Module):
    def forward(self, logits, do_sample: bool = True):
        probs = F.softmax(logits, -1)
        return torch.multinomial(probs, 1) if do_sample else probs.argmax(-1, keepdim=True)

class NoisyLayer(nn.Module):
    def forward(self, x, noise=None):
        if noise is None:
            noise = torch.randn_like(x)   # the caller may pass fixed noise
        return x + self.scale * noise

class VAE(nn.Module):
    def forward(self, x, sample_posterior=False):
        mean, logvar = self.enc(x).chunk(2, dim=1)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample_posterior else mean
        return self.dec(z)

class Gumbel(nn.Module):
    def __init__(self, stochastic=True):
        super().__init__()
        self.stochastic = stochastic

    def forward(self, logits):
        if not self.stochastic:
            return logits.argmax(-1)
        return F.gumbel_softmax(logits, tau=1.0, hard=True)
""",
        # exemptions found on real code (torchvision, diffusers, transformers)
        """
import torch
import torch.nn as nn

class RandomHorizontalFlip(nn.Module):          # data augmentation: random by design
    def forward(self, img):
        return img.flip(-1) if torch.rand(1) < self.p else img

class HungarianMatcher(nn.Module):              # a loss-side matcher samples points by design
    def forward(self, outputs, targets):
        return torch.rand(1, self.num_points, 2)

class Quantizer(nn.Module):
    def forward(self, idx):
        if self.unknown_index == "random":      # a configured strategy
            idx = torch.randint(0, self.n, idx.shape)
        return idx

class ResnetBlock(nn.Module):
    def forward(self, x, generator=None):
        noise = torch.randn(x.shape[-2:], generator=generator)   # the caller seeds it
        return x + noise * self.scale

class CanvasDecoder(nn.Module):
    def forward(self, ids, canvas=None):
        if canvas is None:                      # the caller may pass the canvas
            canvas = torch.randint(0, self.vocab, ids.shape)
        return self.net(ids, canvas)

class StochasticDurationPredictor(nn.Module):
    def forward(self, x, noise_scale=1.0):
        return self.flow(torch.randn(x.size(0), 2, x.size(2)).to(x) * noise_scale)

class LSHAttention(nn.Module):
    def forward(self, x):
        if self.hash_seed is not None:
            torch.manual_seed(self.hash_seed)   # determinism handled explicitly
        return x @ torch.randn(x.shape[-1], self.buckets)
""",
        # sampling APIs, initialisation and non-module classes are not forward
        """
import numpy as np
import random
import torch
import torch.nn as nn

class Policy(nn.Module):
    def reset_parameters(self):
        nn.init.normal_(self.w)
        self.w.data.uniform_(-0.1, 0.1)

    def sample_actions(self, probs):
        return probs.multinomial(1)

    def _generate(self, n):
        return torch.randn(n, self.dim)

    def act(self, obs):
        return self.dist(obs).sample()

    def forward(self, x):
        j = np.random.randint(4)          # numpy / random are out of scope
        k = random.random()
        return self.sample(x) + self.net(x)   # a user method called `sample`: not a distribution

class Sampler:
    def forward(self, probs):             # not an nn.Module
        return probs.multinomial(1)

def shuffle(x):                           # a plain function: not forward
    return x[torch.randperm(len(x))]
""",
    )
    INVALID = (
        # the seed's bug
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Decoder(nn.Module):
    def forward(self, logits):
        probs = F.softmax(logits, dim=-1)
        return probs.multinomial(1).squeeze(1)  # expect: MDL104
""",
        # through a helper method forward calls, several op spellings
        """
import torch
from torch import nn
from torch.distributions import Normal
import torch.distributions as D

class Actor(nn.Module):
    def pick(self, logits):
        return torch.distributions.Categorical(logits=logits).sample()  # expect: MDL104

    def noise(self, x):
        eps = torch.randn_like(x)  # expect: MDL104
        mask = torch.empty_like(x).bernoulli_(0.9)  # expect: MDL104
        return x + eps * mask

    def forward(self, x, mu, sigma):
        d = D.Normal(mu, sigma)
        z = d.rsample()  # expect: MDL104
        w = Normal(mu, sigma)
        y = w.sample()  # expect: MDL104
        return self.pick(self.noise(x)) + z + y
""",
        # a forward inherited from a base class in the same file calls the overriding method
        """
import torch.nn as nn
import torch.nn.functional as F

class PointerAttention(nn.Module):
    def _project_out(self, out):
        return self.proj(out)

    def forward(self, q, k):
        return self._project_out(F.softmax(q @ k.transpose(-2, -1), -1))

class PointerAttnMoE(PointerAttention):
    def _project_out(self, out):
        selected = self.gate_probs.multinomial(1)  # expect: MDL104
        return self.experts[selected.item()](out)
""",
        # a sampling switch that does not guard the op, and a generator kept across calls
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Quantizer(nn.Module):
    def __init__(self):
        super().__init__()
        self.gen = torch.Generator().manual_seed(0)

    def forward(self, logits, temperature=1.0):
        codes = F.gumbel_softmax(logits, tau=temperature, hard=True)  # expect: MDL104
        perm = torch.randperm(logits.shape[0], generator=self.gen)  # expect: MDL104
        return codes[perm]
""",
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._checked: Dict[int, bool] = {}
        self._seeds: Dict[int, bool] = {}

    def _reach_for(self, classdef: cst.ClassDef) -> Optional[ForwardReach]:
        """What `forward` runs, for a module class that is not random by design (else None)."""
        key = id(classdef)
        if key not in self._checked:
            self._checked[key] = self.ctx.is_module_class(classdef) and random_by_design_class(self.ctx, classdef) is None
        return self.ctx.forward_reach(classdef) if self._checked[key] else None

    def _exempt(self, node: cst.Call, fn: cst.CSTNode, reach: ForwardReach) -> bool:
        chain = self.ctx.chain(node)
        guards = reach.guards(fn)
        facts = guards.facts
        if guards.guard(node, chain) is not None:
            return True
        if caller_supplied(chain, facts.params) or caller_generator(node, facts, self.ctx.framework.generator_keywords):
            return True
        if scaled_by_switch(chain, guards.switch_locals):
            return True
        key = id(fn)
        if key not in self._seeds:
            self._seeds[key] = seeds_rng(self.ctx, fn)
        return self._seeds[key]

    def visit_Call(self, node: cst.Call) -> None:
        if callee_name(node) not in self.ctx.framework.sampling_last_names:
            return
        method, classdef = self.ctx.enclosing_method_and_class()
        if method is None:
            return
        reach = self._reach_for(classdef)
        if reach is None or method.name.value not in reach.reach(unguarded_only=True):
            return
        fn = self.ctx.enclosing(cst.FunctionDef, cst.Lambda) or method
        op = sampling_op(self.ctx, node, self.ctx.function_facts(fn))
        if op is None:
            return
        if self._exempt(node, fn, reach):
            return
        shown = self._shown(node, op)
        fw = self.ctx.framework  # the forward's name and the mode's words are the framework's own
        forward = next((m for m in reach.path_to(method.name.value, True) if m in fw.forward_methods), "forward")
        where = f"`{forward}`"
        if method.name.value != forward:
            path = " -> ".join(f"{m}()" for m in reach.path_to(method.name.value, True))
            where = f"`{method.name.value}()`, which `{forward}` runs unguarded ({path}),"
        self.report(
            node,
            f"{shown} samples in {where} in training and in eval alike: after {fw.eval_words} the outputs are "
            f"still random, so evaluation is non-deterministic; sample only {fw.mode_check_words} and take a "
            f"deterministic choice in eval (e.g. `argmax` / the mean), or make sampling an explicit argument",
        )

    def _shown(self, node: cst.Call, op: str) -> str:
        if op.startswith("."):
            text = self.ctx.module.code_for_node(node.func.value)  # type: ignore[attr-defined]
            if len(text) > 30 or "\n" in text:
                text = "<tensor>"
            return f"`{text}{op}`"
        if self.ctx.framework.in_namespace(op):
            return f"`{self.ctx.module.code_for_node(node.func)}()`"
        return f"`{op}`"
