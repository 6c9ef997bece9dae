"""The Lightning and Hugging Face callbacks in real `Trainer.fit` / `Trainer.train` runs on CPU.

Each run is a tiny model for a few steps (about a second each)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import modelint

from .conftest import at_marker, hook_registries, marker_line  # noqa: E402

THIS = Path(__file__).resolve()


def line(marker: str) -> int:
    return marker_line(THIS, marker)


def at(finding, marker: str) -> bool:
    return at_marker(finding, THIS, marker)


registries = hook_registries


def hook_count(model):
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


@pytest.fixture(autouse=True)
def quiet():
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def dataset(n=16):
    torch.manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(n, 4), torch.randint(0, 2, (n,)))


# ----------------------------------------------------------------------------- Lightning


def lightning_module(bug: str = ""):
    import lightning as L

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
            self.drop = nn.Dropout(0.2)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.drop(self.backbone(x)))

        def training_step(self, batch, batch_idx):
            if bug == "raise" and self.global_step == 1:
                raise ValueError("broken batch")
            x, y = batch
            return F.cross_entropy(self(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", F.cross_entropy(self(x), y))

        def on_train_epoch_end(self):
            if bug == "eval":
                self.eval()  # <- lightning eval

        def on_train_epoch_start(self):
            if bug == "frozen":
                self.backbone.requires_grad_(False)
                self.train()  # <- lightning train

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Classifier()


def fit(model, callback, epochs=2):
    import lightning as L

    loader = torch.utils.data.DataLoader(dataset(), batch_size=8)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[callback],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=1)
    trainer.fit(model, loader, torch.utils.data.DataLoader(dataset(8), batch_size=8))
    return trainer


def test_lightning_correct_fit_is_clean():
    from lightning.pytorch import Callback
    from modelint.integrations.lightning import ModeGuard

    callback = ModeGuard()
    assert isinstance(callback, Callback)
    model = lightning_module()
    before, hooks = registries(), hook_count(model)
    fit(model, callback)
    report = callback.report
    assert report.ok, str(report)
    assert report.steps == 4 and report.checked == 4 and report.eval_forwards == 3  # sanity + 2 epochs
    assert registries() == before and hook_count(model) == hooks and not callback.guard.active


def test_lightning_eval_left_on_by_a_hook_is_reported_at_its_line():
    from modelint.integrations.lightning import ModeGuard

    callback = ModeGuard(on_violation="log")
    fit(lightning_module("eval"), callback)
    findings = callback.report.findings
    assert [f.code for f in findings] == ["MDL610"], str(callback.report)
    assert at(findings[0], "lightning eval")  # not Lightning's own eval() around validation
    assert "`drop` (Dropout, p=0.2)" in findings[0].message and "before optimizer step 3" in findings[0].message


def test_lightning_raise_stops_the_fit_with_a_mode_violation():
    from modelint.integrations.lightning import ModeGuard

    model = lightning_module("eval")
    before, hooks = registries(), hook_count(model)
    with pytest.raises(modelint.ModeViolation, match="^MDL610"):
        fit(model, ModeGuard())
    assert registries() == before and hook_count(model) == hooks


def test_lightning_frozen_backbone_and_allow_list():
    from modelint.integrations.lightning import ModeGuard

    callback = ModeGuard(on_violation="log")
    fit(lightning_module("frozen"), callback)
    codes = [f.code for f in callback.report.findings]
    assert codes == ["MDL611"], str(callback.report)
    assert at(callback.report.findings[0], "lightning train")
    assert "frozen `backbone.1` (BatchNorm1d)" in callback.report.findings[0].message


def test_lightning_exception_removes_every_hook():
    from modelint.integrations.lightning import ModeGuard

    model = lightning_module("raise")
    before, hooks = registries(), hook_count(model)
    callback = ModeGuard()
    with pytest.raises(ValueError, match="broken batch"):
        fit(model, callback)
    assert registries() == before and hook_count(model) == hooks and not callback.guard.active
    assert callback.report.ok


# ----------------------------------------------------------------------------- Hugging Face


class FrozenBackboneNet(nn.Module):
    """A plain module the HF Trainer can train: returns {"loss", "logits"}."""

    def __init__(self, fail_at: int = -1):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(8, 2)
        self.calls = 0
        self.fail_at = fail_at

    def forward(self, x, labels=None):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError("broken batch")
        logits = self.head(self.drop(self.backbone(x)))
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


class DictData(torch.utils.data.Dataset):
    def __init__(self, n=16):
        self.data = dataset(n)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        x, y = self.data[i]
        return {"x": x, "labels": y}


def hf_trainer(model, callback, tmp_path, steps=3):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, max_steps=steps,
                             per_device_train_batch_size=4, per_device_eval_batch_size=4,
                             eval_strategy="steps", eval_steps=2, save_strategy="no",
                             logging_strategy="no", report_to=[], disable_tqdm=True,
                             dataloader_num_workers=0)
    return Trainer(model=model, args=args, train_dataset=DictData(), eval_dataset=DictData(8),
                   callbacks=[callback])


def tiny_bert(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    return BertForSequenceClassification.from_pretrained(tmp_path / "bert")  # no download


class TokenData(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, 64, (8,), generator=g), "labels": torch.tensor(i % 2)}


def test_hf_trainer_on_a_from_pretrained_bert_is_clean(tmp_path):
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from modelint.integrations.transformers import ModeGuardCallback

    model = tiny_bert(tmp_path)
    assert not model.training  # from_pretrained: the Trainer's model.train() fixes it every step
    callback = ModeGuardCallback()
    assert isinstance(callback, TrainerCallback)
    before, hooks = registries(), hook_count(model)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, max_steps=3,
                             per_device_train_batch_size=4, eval_strategy="steps", eval_steps=2,
                             save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=TokenData(), eval_dataset=TokenData(),
            callbacks=[callback]).train()
    report = callback.report
    assert report.ok, str(report)
    assert report.steps == 3 and report.eval_forwards >= 1
    assert registries() == before and hook_count(model) == hooks


def test_hf_trainer_train_call_flipping_a_frozen_backbone_is_reported(tmp_path):
    from modelint.integrations.transformers import ModeGuardCallback

    model = FrozenBackboneNet()
    model.backbone.requires_grad_(False)
    model.backbone.eval()
    callback = ModeGuardCallback(on_violation="log")
    hf_trainer(model, callback, tmp_path).train()  # <- hf train
    findings = callback.report.findings
    assert [f.code for f in findings] == ["MDL611"], str(callback.report)
    assert at(findings[0], "hf train")  # the user's line; the Trainer's own line is in the message
    assert "frozen `backbone.1` (BatchNorm1d)" in findings[0].message
    assert "transformers/trainer.py:" in findings[0].message and "`model.train()`" in findings[0].message


class KeepBackboneEval(FrozenBackboneNet):
    """Batch norm kept on its pretrained statistics while every weight trains."""

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # <- keeps backbone eval
        return self


def test_hf_trainer_frozen_allow_list(tmp_path):
    from modelint.integrations.transformers import ModeGuardCallback

    for frozen in (["backbone"], ()):
        callback = ModeGuardCallback(frozen=frozen, on_violation="log")
        hf_trainer(KeepBackboneEval(), callback, tmp_path).train()
        codes = [f.code for f in callback.report.findings]
        if frozen:
            assert codes == [], str(callback.report)
        else:
            assert codes == ["MDL610"], str(callback.report)
            assert at(callback.report.findings[0], "keeps backbone eval")
            assert "`backbone.1` (BatchNorm1d) is in eval mode" in callback.report.findings[0].message


def test_hf_trainer_validation_in_train_mode(tmp_path):
    """A `train()` override that does not reach the children: the Trainer's model.eval() leaves
    dropout and batch norm on during evaluation. Reported once, without its consequences."""
    from modelint.integrations.transformers import ModeGuardCallback

    class NoEval(FrozenBackboneNet):
        def train(self, mode=True):
            self.training = mode
            return self

    callback = ModeGuardCallback(on_violation="log")
    hf_trainer(NoEval(), callback, tmp_path).train()  # <- hf validates
    findings = callback.report.findings
    assert [f.code for f in findings] == ["MDL613"], str(callback.report)
    assert at(findings[0], "hf validates")
    assert "validation in train mode" in findings[0].message
    assert "`drop` (Dropout, p=0.2)" in findings[0].message and "`backbone.1` (BatchNorm1d)" in findings[0].message


def test_hf_trainer_exception_removes_every_hook(tmp_path):
    from modelint.integrations.transformers import ModeGuardCallback

    model = FrozenBackboneNet(fail_at=2)
    before, hooks = registries(), hook_count(model)
    callback = ModeGuardCallback()
    with pytest.raises(ValueError, match="broken batch"):
        hf_trainer(model, callback, tmp_path).train()
    assert registries() == before and hook_count(model) == hooks and not callback.guard.active
