from __future__ import annotations

from typing import Dict, Optional

import libcst as cst

from modelint.analysis.calls import callee_name
from modelint.analysis.classes import is_decorated_with
from modelint.analysis.fillins import fillin_verdict, judge_cst
from modelint.analysis.sampling import (
    ForwardReach,
    after_exit,
    caller_alternative,
    caller_generator,
    caller_supplied,
    consumed_under_mode,
    fills_default,
    is_init_method,
    knob_guarded,
    mode_parametrised,
    mode_selected,
    on_meta_device,
    path_returns_objective,
    one_time_init,
    objective_class,
    random_by_design_class,
    named_for_its_draw,
    reparameterised,
    returns_noise,
    says_eval_too,
    returns_objective,
    sampling_op,
    scaled_by_switch,
    seeds_rng,
    sizes_only_inputs,
)
from modelint.frameworks import union
from modelint.rules.base import Rule, measured_set6, measured_set13, measured_set14, measured_sets_15_16, remeasured_2026_12_02, remeasured_2026_12_03, measured_set17, measured_set18, measured_set19, measured_set20


class UnguardedSamplingInForward(Rule):
    code = "MDL104"
    name = "unguarded-sampling-in-forward"
    level = "warning"
    default = False  # issue 15's measuring set: see the end of `what`
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
        "name (`if self.policy == \"random\":`, `decode_type == \"sampling\"`); an op in an arm of a conditional "
        "expression on a flag parameter of `forward` itself whatever its name (a `True`/`False` default or a "
        "`bool` annotation: `h = self.perturb(h) if jitter else h` on `forward(self, x, jitter=True)`), since "
        "the module's caller sets it and eval can pass the value without the draw - a flag of a helper that "
        "`forward` fills (often from configuration, `self.pick(x, hard=self.cfg_hard)`), an attribute not named "
        "like a switch (`... if self.jitter else h`), a test on data (`... if x.dim() == 4 else x`) and an `if` "
        "statement on a flag (it may pick a whole other computation, such as a flow's `if not reverse:` "
        "training direction) are not; an op that only fills in a "
        "parameter the caller did not pass (`if noise is None: noise = torch.randn_like(x)`); a draw from a "
        "`generator=` that is a parameter of the function (the caller seeds it); a draw multiplied by a "
        "knob such as `noise_scale`; a function that seeds the RNG itself (`torch.manual_seed(...)`); "
        "methods named `sample*`, `generate*`, `rollout*`, `act*` (explicit sampling APIs, never entered "
        "from `forward`); methods `forward` never calls (`reset_parameters`); NumPy and `random` draws "
        "(not torch ops); and data-augmentation and loss classes, random by design: a class or base named "
        "`Random*`, `*Augment*`, `*Jitter`, `*Transform`, `*Erasing`, `Mixup`/`CutMix`/`Mosaic`, a module in "
        "a `transforms`/`augment*` package, or a class named `*Loss`, `*Criterion`, `*Matcher`.\n\n"
        "Also not reported (issue 15: idioms that control the draw some other way; each a general pattern with "
        "VALID/INVALID twins in `tests/test_mdl104_patterns.py`): a fill-in through a default helper, "
        "`noise = default(noise, lambda: torch.randn_like(x))` (the first argument an optional parameter or a "
        "`kwargs.get(\"noise\")` / `kwargs.pop(\"noise\", None)` lookup in the function's `**kwargs`; the fallback "
        "the lambda itself, or a thunk bound first - `draw = lambda: ...` or a nested `def draw(): ...` - that is "
        "used only as such fallbacks, never called directly; a `functools.partial(torch.randn_like, x)` fallback is "
        "no draw call at all and is never reported; a helper defined in the checked files - this file or, through the cross-file index, another one - must be `x if x "
        "is not None else f()` along both paths, never calling `f` when `x` is given; one from outside the checked "
        "files is judged by the call's shape); a draw scaled by a knob and run only when a test of that knob passes (`if self.gain > "
        "0: h = h + self.gain * torch.randn_like(h)`, also through a local); a draw made every call but read only "
        "under a mode check (`coins = torch.rand(n)` ... `if not self.training or coins[i] > p:`); selection by "
        "the mode written as arithmetic or a select call (`self.training * drawn + (1 - self.training) * mean`, "
        "`float(self.training)` or a local holding it in place of `self.training`, `torch.where(<mode>, drawn, "
        "mean)`), on the draw itself or on a local it is bound to whose every read is so selected (`g = "
        "F.gumbel_softmax(s)` ... `on * g + (1 - on) * s.softmax(-1)`; weights that are not the mode, `self.alpha "
        "* g + ...`, or a second read of `g` outside the blend stay reported); a draw whose argument is chosen by the mode (`p = self.p if "
        "self.training else 0.0` ... `bernoulli_(1 - p)`); one-time lazy initialisation, a draw under a test of a "
        "module flag the same function sets (`if not self.initted: ...; self.initted.fill_(True)`); a draw in an "
        "initialisation method forward reaches (`reset_parameters`, `_init_weights`, `init_*`); a draw on "
        "`device=\"meta\"` (shapes only); and dead code after an unconditional `return`/`raise`.\n\n"
        "Randomness that is the module's computation is left out unless `report-by-design = true` (in the "
        "triage that prompted issue 15 these findings were deliberate, never bugs): a module whose `forward` "
        "returns a loss (a diffusion model's timestep and noise draws, MAE masking, sampled negatives - a Monte "
        "Carlo estimate of the objective), whose class is named `*ForPreTraining`/`*Pretrainer`/`*Objective`, or "
        "a draw whose own branch ends by returning a loss (`if not reverse: ... return nll`); "
        "a noise source (`forward` returns a fixed-distribution draw, `torch.randn_like(x)`); a sampler, whose "
        "`forward` reads no input's values - every parameter only sizes, places or types the draws (`torch.randn(n, "
        "self.dim, device=device)`, `x.shape[0]`, `len(x)`, `x.device`), so the output is a function of its own draws "
        "(a generator fed from its own latent) and there is no input for eval to be deterministic about; a module named after "
        "the op it wraps (`GumbelSoftmax` around `F.gumbel_softmax`); a VAE reparameterisation (a `randn` draw "
        "combined with locals that `forward` returns beside its output, `return x_hat, mu, logvar`); and a draw "
        "whose path has a comment or docstring saying it is wanted in eval too. What is no longer caught by "
        "default, therefore: an objective that should be deterministic in validation and is not (except when it "
        "offers a parameter for the drawn value and picks the draw by some other test than the mode: still "
        "reported), a noise source, a sampler or a `GumbelSoftmax` layer used where a deterministic value was "
        "meant (a generator whose eval should decode a fixed latent), and a VAE whose caller uses the sample "
        "instead of the returned mean in eval."
    )
    what += (
        " "
        'Off by default: on the measuring set (26 code bases never used to develop it: 17 repositories '
        'with training scripts and 9 model packages; `bench/precision.py`, verdicts with reasons in '
        '`bench/verdicts/measuring.tsv`) it reached 90% real-or-deliberate (21 findings: 1 real, 18 '
        'deliberate, 2 false; the deliberate ones are randomness that is the computation in objectives '
        'and samplers that the by-design exemptions do not yet recognise), below the 95% a default rule '
        'needs. Select it with `--select` or `extend-select`.'
    )
    what += remeasured_2026_12_02(
        set3=('10 findings: 1 real, 6 deliberate, 3 false (70%; false: a draw behind a forward '
              'argument written as a conditional expression, a sample picked by mode arithmetic; '
              'deliberate: sampling that is the algorithm, such as sampled-key attention, '
              'stochastic policies, latent draws, denoising noise)'),
        set2=('6 findings, all deliberate (100%, but all of them deliberate)'),
    )
    what += remeasured_2026_12_03(set4="no finding", set5="1 finding, deliberate")
    what += measured_set6("15 findings, all deliberate (noise that is the computation: prior samples, reparameterisation, Monte Carlo metrics)")
    what += measured_set13("4 findings, all deliberate (an augmentation layer's random flip, a GAN's conditioning augmentation, a Gumbel-softmax latent)")
    what += measured_set14("3 findings, all deliberate (a VAE's reparameterisation noise, twice; a distance-weighted negative sampler of a triplet loss)")
    what += measured_sets_15_16("1 finding, false (node dropout already gated by an explicit argument that the evaluation passes as False)",
                                "8 findings: 3 real (random initial LSTM states, twice; word dropout applied in evaluation), 2 deliberate (Monte-Carlo glimpses of a recurrent attention model; a VAE's reparameterisation), 3 false (scheduled sampling gated by a teacher argument the evaluation leaves out, twice; a mask sampled only when a mode local is non-zero)")
    what += (" Set 3 has since been a tuning set: with its 3 false findings exempted (the conditional "
             "expression on a flag of `forward`, the mode blend through a local) it gives 7 findings, 1 real "
             "and 6 deliberate, which no longer measures precision on unseen code. Since set 16, a draw "
             "gated by a local that an evaluation arm of an `if` statement binds to a falsy literal is "
             "exempt (`if not self.training: rate = 0.0`, then `if rate > 0:`): set 16's mask sampled "
             "only when such a local is non-zero.")
    what += measured_set17('9 findings, all deliberate (stochastic policies, three times; random starting views, three times; sampled-key attention; negative sampling in a loss; tie-breaking noise of a graph learner)')
    what += measured_set18("2 findings, both deliberate (a random-selection baseline arm of active learning, and RandLA-Net's random point downsampling, which is the method)")
    what += measured_set19("4 findings: 2 deliberate (a morphing decoder's random grid; MoCo's shuffling BN), 2 false (a patch drop behind an explicit argument that defaults to 0; a one-time lazy initialisation of a power-iteration vector)")
    what += measured_set20('2 findings: 1 deliberate (a multi-agent network whose hard attention samples with Gumbel-softmax by design), 1 false (a draw behind an explicit argument that defaults to False)')
    why = (
        "`model.eval()` only flips `self.training`; it does not turn sampling into a deterministic choice. "
        "A policy decoder that draws its next action with `probs.multinomial(1)` keeps drawing at "
        "evaluation, so a greedy validation tour (or a prediction) changes from run to run and validation "
        "scores are noisy. Sample in training and take the deterministic choice in eval (`argmax`, the "
        "distribution's mean or mode), or make sampling an explicit argument of `forward`. A `generator=` "
        "kept on the module is not an exemption: its state advances from call to call, so two evaluations "
        "of the same input still differ. Sampling that is wanted in eval too (a noise-injection layer, "
        "Reformer's random LSH rotations, Tacotron-style prenet dropout) is worth a `# modelint: ignore[MDL104]` "
        "or a comment that says so; objectives, noise sources and VAE posteriors are left out by default (see "
        "`report-by-design`)."
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
    options_schema = {"report-by-design": False}
    option_docs = {
        "report-by-design": (
            "Also report randomness that is the module's computation, left out by default (issue 15: such "
            "findings were deliberate, not bugs): a module whose `forward` is an objective (every `return` hands "
            "back a loss - `loss`, `F.mse_loss(...)`, `(loss, pred)`, `{\"loss\": ...}` - or the class is named "
            "`*ForPreTraining`/`*Pretrainer`/`*Objective`, or the draw's own branch ends returning a loss), a noise source (`forward` returns a fixed-distribution "
            "draw such as `torch.randn_like(x)`), a sampler whose `forward` reads no input's values (parameters only size "
            "or place the draws: `forward(self, n)` decoding `torch.randn(n, d)`), a module named after the op it wraps "
            "(`GumbelSoftmax`), a VAE "
            "reparameterisation (a `randn` draw mixed with locals `forward` also returns: `return x_hat, mu, "
            "logvar`), and a draw whose path carries a comment saying it is wanted in eval too (`# applied even "
            "when evaluating`)."
        )
    }
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
        # idioms that control the draw (issue 15) and randomness by design
        """
import torch
import torch.nn as nn
import torch.nn.functional as F
from mylib.helpers import default

class Denoiser(nn.Module):
    def forward(self, x, noise=None):
        noise = default(noise, lambda: torch.randn_like(x))   # fills in what the caller did not pass
        return self.net(x + noise)

class Skip(nn.Module):
    def forward(self, h):
        coins = torch.rand(len(self.blocks))
        for i, blk in enumerate(self.blocks):
            if not self.training or coins[i] > self.p:        # read only under the mode check
                h = blk(h)
        return h

class NoiseObjective(nn.Module):
    def forward(self, x0):
        t = torch.randint(0, self.steps, (x0.shape[0],))
        eps = torch.randn_like(x0)
        return F.mse_loss(self.net(self.q_sample(x0, t, eps), t), eps)   # an objective
""",
        # a flag parameter of forward picks the draw or a value without it (conditional expressions),
        # and a draw bound to a local that is only read weighted by the mode
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Encoder(nn.Module):
    def perturb(self, h):
        return h + self.scale * torch.randn_like(h)

    def forward(self, x, jitter=True):
        h = self.body(x)
        h = self.perturb(h) if jitter else h          # forward's own flag: the caller turns it off
        return self.head(h)

class TokenMixer(nn.Module):
    def forward(self, tokens, drop_tokens: bool = False):
        keep = (torch.rand(tokens.shape[:2]) > self.p) if drop_tokens else tokens.new_ones(tokens.shape[:2])
        return self.mixer(tokens * keep.unsqueeze(-1))

class Router(nn.Module):
    def forward(self, scores):
        drawn = F.gumbel_softmax(scores, tau=self.tau, hard=True)
        on = float(self.training)
        weights = on * drawn + (1.0 - on) * F.one_hot(scores.argmax(-1), scores.shape[-1])
        return self.mix(weights)
""",
        # a rate that the evaluation arm of an `if` statement sets to zero gates the draw
        """
import torch
from torch import nn

class TokenDrop(nn.Module):
    def forward(self, tokens):
        rate = self.rate
        if not self.training:
            rate = 0.0
        if rate > 0:
            keep = torch.rand(tokens.shape[:2], device=tokens.device) > rate
            tokens = tokens * keep.unsqueeze(-1)
        return self.mixer(tokens)
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
        # the twins of the idioms with the control gone
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Skip(nn.Module):
    def forward(self, h):
        coins = torch.rand(len(self.blocks))  # expect: MDL104
        for i, blk in enumerate(self.blocks):
            if coins[i] > self.p:
                h = blk(h)
        return h

class Objective(nn.Module):
    def forward(self, x0, fixed_t=None):
        if x0.shape[0] > 1:
            t = torch.randint(0, self.steps, (x0.shape[0],))  # expect: MDL104
        else:
            t = fixed_t
        return F.mse_loss(self.net(x0, t), x0)
""",
        # the twins: a test on an attribute, on a helper's flag that forward fills from configuration, on
        # data, an `if` statement on a flag; weights that are not the mode, a drawn local read outside the blend
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Encoder(nn.Module):
    def perturb(self, h):
        return h + self.scale * torch.randn_like(h)  # expect: MDL104

    def forward(self, x):
        h = self.body(x)
        h = self.perturb(h) if self.jitter else h
        return self.head(h)

class Picker(nn.Module):
    def choose(self, logits, hard=False):
        if hard:
            return F.gumbel_softmax(logits, tau=1.0, hard=True)  # expect: MDL104
        return logits.softmax(-1)

    def forward(self, logits):
        return self.choose(logits, hard=self.hard_choice)

class Smear(nn.Module):
    def forward(self, x, smear=True):
        y = x + torch.randn_like(x) if x.dim() == 4 else x  # expect: MDL104
        if smear:
            y = y + torch.rand_like(y)  # expect: MDL104
        return y

class Router(nn.Module):
    def forward(self, scores):
        drawn = F.gumbel_softmax(scores, tau=self.tau, hard=True)  # expect: MDL104
        weights = self.alpha * drawn + (1.0 - self.alpha) * scores.softmax(-1)
        return self.mix(weights)

class TracedRouter(nn.Module):
    def forward(self, scores):
        drawn = F.gumbel_softmax(scores, tau=self.tau, hard=True)  # expect: MDL104
        weights = self.training * drawn + (1 - self.training) * scores.softmax(-1)
        return self.mix(weights), drawn.argmax(-1)
""",
        # a rate zeroed by a setting or in the training arm does not keep the draw out of eval
        """
import torch
from torch import nn

class TokenDrop(nn.Module):
    def forward(self, tokens):
        rate = self.rate
        if self.config.no_drop:
            rate = 0.0
        if rate > 0:
            keep = torch.rand(tokens.shape[:2], device=tokens.device) > rate  # expect: MDL104
            tokens = tokens * keep.unsqueeze(-1)
        return self.mixer(tokens)

class EvalNoise(nn.Module):
    def forward(self, x):
        if self.training:
            sigma = 0.0
        else:
            sigma = 0.1
        if sigma:
            x = x + sigma * torch.randn_like(x)  # expect: MDL104
        return x
""",
    )

    def __init__(self, ctx, options=None):
        super().__init__(ctx, options)
        self._checked: Dict[int, bool] = {}
        self._seeds: Dict[int, bool] = {}
        self._objectives: Dict[int, bool] = {}
        self._functions: Optional[Dict[str, cst.FunctionDef]] = None

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
        if self._controlled(node, chain, fn, guards):
            return True
        key = id(fn)
        if key not in self._seeds:
            self._seeds[key] = seeds_rng(self.ctx, fn)
        return self._seeds[key]

    def _controlled(self, node: cst.Call, chain, fn: cst.CSTNode, guards) -> bool:
        """The idioms of issue 15 (each documented in `analysis.sampling`): the draw fills in a default
        through a helper, is scaled and guarded by a knob, selected or parametrised by the mode, only
        consumed under a mode check, a one-time initialisation, shape-only or dead code."""
        facts = guards.facts
        outer = self.ctx.enclosing(cst.FunctionDef) or fn
        if on_meta_device(node) or after_exit(chain):
            return True
        if fills_default(chain, outer, self._helper_verdict):
            return True
        if knob_guarded(chain, facts) or mode_selected(chain, guards.mode_locals) or one_time_init(chain, fn):
            return True
        classdef = self.ctx.enclosing_class()
        if mode_parametrised(node, facts, self.ctx.class_mode_attrs(classdef)):
            return True
        return consumed_under_mode(chain, facts)

    def _helper_verdict(self, call: cst.Call) -> Optional[bool]:
        """Is the function a call names a default helper (`analysis.fillins`)? Judged by its body when that
        is known: a top-level function or `self.<method>` of this file, or a top-level function of another
        checked file (the index's `fillins`); None for a helper from outside the checked files."""
        if self._functions is None:
            self._functions = {s.name.value: s for s in self.ctx.module.body if isinstance(s, cst.FunctionDef)}
        func = call.func
        if isinstance(func, cst.Name) and func.value in self._functions:
            return judge_cst(self.ctx.module, self._functions[func.value])
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            classdef = self.ctx.enclosing_class()
            method = self.ctx.methods(classdef).get(func.attr.value) if classdef is not None else None
            if method is None:
                return None
            return judge_cst(self.ctx.module, method, method=not is_decorated_with(method, "staticmethod"))
        qual = self.ctx.resolve(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
        return fillin_verdict(self.ctx.classifier.index, qual) if qual and "." in qual else None

    def _objective(self, classdef: cst.ClassDef, reach: ForwardReach) -> bool:
        key = id(classdef)
        if key not in self._objectives:
            forward = reach.methods.get("forward")
            self._objectives[key] = (objective_class(classdef.name.value) or returns_objective(forward)
                                     or returns_noise(self.ctx, forward) or sizes_only_inputs(self.ctx, forward))
        return self._objectives[key]

    def _by_design(self, node: cst.Call, op: str, method: cst.FunctionDef, classdef: cst.ClassDef, reach: ForwardReach, path) -> bool:
        """Randomness that is the computation (left out unless `report-by-design`): see `option_docs`."""
        if self.options["report-by-design"]:
            return False
        chain = self.ctx.chain(node)
        fn = self.ctx.enclosing(cst.FunctionDef, cst.Lambda) or method
        objective = self._objective(classdef, reach) or path_returns_objective(chain)
        if objective and not caller_alternative(chain, reach.guards(fn).facts):
            return True
        if named_for_its_draw(classdef.name.value, op):
            return True
        if reparameterised(self.ctx, node, chain, method, reach.methods.get("forward")):
            return True
        return says_eval_too(self.ctx, [reach.methods[m] for m in path if m in reach.methods])

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
        path = reach.path_to(method.name.value, True)
        if any(is_init_method(m) for m in path):
            return  # `reset_parameters()` / `_init_weights()` reached from forward: initialisation
        if self._exempt(node, fn, reach):
            return
        if self._by_design(node, op, method, classdef, reach, path):
            return
        shown = self._shown(node, op)
        fw = self.ctx.framework  # the forward's name and the mode's words are the framework's own
        forward = next((m for m in path if m in fw.forward_methods), "forward")
        where = f"`{forward}`"
        if method.name.value != forward:
            shown_path = " -> ".join(f"{m}()" for m in path)
            where = f"`{method.name.value}()`, which `{forward}` runs unguarded ({shown_path}),"
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
