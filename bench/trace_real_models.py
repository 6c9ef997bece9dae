"""Run `modelint.verify_modes` on real `transformers` architectures built from tiny configs.

For each architecture: trace the clean model (expect no findings), then inject one realistic
mode bug into a fresh copy and trace again (expect exactly the bug's codes). No weights are
downloaded: every model is built from a config with random initialisation.

    pip install transformers -c <(echo torch==2.13.0)   # never upgrade the pinned torch
    python bench/trace_real_models.py

Prints one table row per architecture and exits 1 if any clean model has findings or any
injected bug is missed (or reported with other codes).
"""

from __future__ import annotations

import sys
import time
import types
from dataclasses import dataclass
from typing import Callable, Dict, List, Set, Tuple

import torch
import torch.nn.functional as F
from torch import nn

import modelint

try:
    import transformers
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        BertConfig,
        BertForSequenceClassification,
        ConvNextConfig,
        ConvNextForImageClassification,
        GPT2Config,
        GPT2LMHeadModel,
        ResNetConfig,
        ResNetForImageClassification,
        T5Config,
        T5ForConditionalGeneration,
        ViTConfig,
        ViTForImageClassification,
    )
except ImportError:  # pragma: no cover - bench only
    sys.exit("transformers is not installed: pip install transformers -c <(echo torch==2.13.0)")

transformers.logging.set_verbosity_error()


# ----------------------------------------------------------------------------- models


def tokens(batch=2, length=12, vocab=100):
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(0))


def images(batch=2, channels=3, size=32):
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0))


def bert():
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    ids = tokens()
    return BertForSequenceClassification(config), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def gpt2():
    config = GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    return GPT2LMHeadModel(config), {"input_ids": tokens(), "use_cache": False}


def vit():
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=64, num_labels=5,
                       hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    return ViTForImageClassification(config), {"pixel_values": images()}


def t5():
    config = T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=4, dropout_rate=0.1, decoder_start_token_id=0, pad_token_id=0)
    return T5ForConditionalGeneration(config), {"input_ids": tokens(), "labels": tokens(length=8),
                                                "use_cache": False}


def bart():
    config = BartConfig(vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_position_embeddings=64, dropout=0.1,
                        attention_dropout=0.1, activation_dropout=0.1, encoder_layerdrop=0.1,
                        decoder_layerdrop=0.1)
    return BartForConditionalGeneration(config), {"input_ids": tokens(), "labels": tokens(length=8),
                                                  "use_cache": False}


def resnet():
    config = ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                          layer_type="basic", num_labels=4)
    return ResNetForImageClassification(config), {"pixel_values": images()}


def convnext():
    config = ConvNextConfig(num_channels=3, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=4,
                            drop_path_rate=0.0)
    return ConvNextForImageClassification(config), {"pixel_values": images()}


# ----------------------------------------------------------------------------- injected bugs


def functional_dropout_ignoring_training(model):
    """BertSelfOutput.forward rewritten with F.dropout(x, p) (training defaults to True)."""
    layer = model.bert.encoder.layer[0].output

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = F.dropout(hidden_states, self.dropout.p)
        return self.LayerNorm(hidden_states + input_tensor)

    layer.forward = types.MethodType(forward, layer)
    return model


def blocks_in_plain_list(model):
    """GPT-2's blocks kept in a plain Python list instead of nn.ModuleList."""
    transformer = model.transformer
    blocks = list(transformer.h)
    del transformer._modules["h"]
    transformer.__dict__["h"] = blocks
    return model


def broken_train_override(model):
    """A train() override that only flips its own flag (never calls super().train(mode))."""

    def train(self, mode=True):
        self.training = mode
        return self

    model.train = types.MethodType(train, model)
    return model


def norm_updates_statistics_in_eval(model):
    """T5's RMS norm keeps a running mean-square buffer, updated on every call (also in eval)."""
    norm = model.encoder.final_layer_norm
    norm.register_buffer("running_ms", torch.ones(1))
    original = type(norm).forward

    def forward(self, hidden_states):
        with torch.no_grad():
            self.running_ms.mul_(0.9).add_(0.1 * hidden_states.pow(2).mean())
        return original(self, hidden_states)

    norm.forward = types.MethodType(forward, norm)
    return model


def no_grad_forward(model):
    """The whole forward decorated with @torch.no_grad() (meant for inference only)."""
    original = model.forward
    model.forward = torch.no_grad()(original)
    return model


def batch_norm_forced_training(model):
    """One BatchNorm2d called with training=True, whatever the module's mode."""
    bn = model.resnet.embedder.embedder.normalization

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                            self.momentum, self.eps)

    bn.forward = types.MethodType(forward, bn)
    return model


def unused_dropout(model):
    """A classifier dropout added in __init__ that forward never calls."""
    model.dropout = nn.Dropout(0.2)
    return model


class ScriptedClassifier(nn.Module):
    """A text classifier whose encoder is `torch.jit.script`ed (module hooks cannot see inside
    TorchScript; the state snapshot must still handle its OrderedDictWrapper parameters)."""

    def __init__(self, always_drop=False):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.encoder = torch.jit.script(ScriptedBlock(always_drop))
        self.norm = nn.BatchNorm1d(32)
        self.head = nn.Linear(32, 3)

    def forward(self, input_ids):
        return self.head(self.norm(self.encoder(self.embed(input_ids)).mean(1)))


class ScriptedBlock(nn.Module):
    def __init__(self, always_drop=False):
        super().__init__()
        self.fc = nn.Linear(32, 32)
        self.p = 0.1
        self.always_drop = always_drop

    def forward(self, x):
        return F.dropout(torch.relu(self.fc(x)), self.p, self.training or self.always_drop)


def scripted():
    return ScriptedClassifier(), {"input_ids": tokens()}


def scripted_dropout_always_on(model):
    """The scripted encoder's dropout ignores the mode (training=True in eval)."""
    model.encoder = torch.jit.script(ScriptedBlock(always_drop=True))
    return model


def compiled_bert():
    model, inputs = bert()
    return torch.compile(model, backend="eager"), inputs


def compiled_functional_dropout(model):
    functional_dropout_ignoring_training(model._orig_mod)
    return model


@dataclass
class Case:
    name: str
    build: Callable[[], Tuple[nn.Module, Dict]]
    bug: Callable[[nn.Module], nn.Module]
    expected: Set[str]


CASES: List[Case] = [
    Case("BERT", bert, functional_dropout_ignoring_training, {"MDL601"}),
    Case("GPT-2", gpt2, blocks_in_plain_list, {"MDL603", "MDL604"}),
    Case("ViT", vit, broken_train_override, {"MDL603"}),
    Case("T5", t5, norm_updates_statistics_in_eval, {"MDL602"}),
    Case("BART", bart, no_grad_forward, {"MDL607"}),
    Case("ResNet", resnet, batch_norm_forced_training, {"MDL602"}),
    Case("ConvNeXt", convnext, unused_dropout, {"MDL605"}),
    Case("scripted", scripted, scripted_dropout_always_on, {"MDL601"}),
    Case("compiled", compiled_bert, compiled_functional_dropout, {"MDL601"}),
]


def main() -> int:
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, modelint {modelint.__version__}")
    header = f"{'model':<9} {'params':>8} {'clean':>6} {'s':>5}  {'injected bug':<38} {'found':<14} {'s':>5}  ok"
    print(header)
    print("-" * len(header))
    failures = 0
    details = []
    for case in CASES:
        torch.manual_seed(0)
        model, inputs = case.build()
        params = sum(p.numel() for p in model.parameters())
        t0 = time.perf_counter()
        clean = modelint.verify_modes(model, **inputs)
        if case.name == "compiled":
            model(**inputs)  # still compiled and usable after tracing
        t_clean = time.perf_counter() - t0

        torch.manual_seed(0)
        model, inputs = case.build()
        case.bug(model)
        t0 = time.perf_counter()
        buggy = modelint.verify_modes(model, **inputs)
        t_bug = time.perf_counter() - t0

        ok = not clean.findings and set(buggy.codes) == case.expected
        failures += not ok
        found = ",".join(buggy.codes) or "-"
        print(f"{case.name:<9} {params:>8} {len(clean.findings):>6} {t_clean:>5.2f}  "
              f"{case.bug.__name__:<38} {found:<14} {t_bug:>5.2f}  {'yes' if ok else 'NO'}")
        details.append((case.name, clean, buggy))
    print()
    for name, clean, buggy in details:
        if clean.findings:
            print(f"[{name} clean]\n{clean}\n")
        print(f"[{name} injected]\n{buggy}\n")
    print("all as expected" if not failures else f"{failures} case(s) not as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
