"""The environment trains and round-trips models: tiny BERT and GPT-2 built from configs here (no
downloads), one AdamW step on CPU, saved with ``save_pretrained`` (safetensors) and reloaded with
``from_pretrained`` unchanged; a LoRA adapter through PEFT likewise.

Run: ``PYTHONPATH=python <env>/bin/python -m unittest discover -s python/tests -t python``.
"""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

SEED = 0
DEVICE = torch.device("cpu")


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(SEED)
    config = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, num_labels=2)
    return BertForSequenceClassification(config).to(DEVICE)


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(SEED)
    config = GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).to(DEVICE)


def one_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """One AdamW step with global-norm clipping; returns the loss before it."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.01)
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    return float(loss.detach())


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


class TinyTrainingTest(unittest.TestCase):
    def setUp(self) -> None:
        generator = torch.Generator().manual_seed(SEED)
        self.ids = torch.randint(0, 128, (4, 16), generator=generator)  # [B, T]
        self.labels = torch.tensor([0, 1, 0, 1])  # [B]

    def assert_round_trip(self, model: torch.nn.Module, cls: type, weights_file: str) -> None:
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=self.ids).logits
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder, safe_serialization=True)
            self.assertTrue((Path(folder) / weights_file).is_file(), f"expected {weights_file} in {sorted(p.name for p in Path(folder).iterdir())}")
            self.assertTrue((Path(folder) / "config.json").is_file())
            reloaded = cls.from_pretrained(folder).eval()
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(reloaded.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
        with torch.no_grad():
            torch.testing.assert_close(reloaded(input_ids=self.ids).logits, logits, rtol=0, atol=0)

    def test_bert_classifier_trains_saves_and_reloads(self) -> None:
        model = tiny_bert()
        before = snapshot(model)
        loss = one_step(model, {"input_ids": self.ids, "labels": self.labels})
        self.assertTrue(0 < loss < 10, f"loss {loss}")
        changed = [n for n, t in model.state_dict().items() if not torch.equal(t, before[n])]
        self.assertIn("classifier.weight", changed)
        self.assert_round_trip(model, BertForSequenceClassification, "model.safetensors")

    def test_gpt2_causal_lm_trains_saves_and_reloads(self) -> None:
        model = tiny_gpt2()
        first = one_step(model, {"input_ids": self.ids, "labels": self.ids})
        second = one_step(model, {"input_ids": self.ids, "labels": self.ids})
        self.assertLess(second, first, "a second step on the same batch should lower the loss")
        self.assert_round_trip(model, GPT2LMHeadModel, "model.safetensors")

    def test_cpu_training_is_deterministic(self) -> None:
        losses = [one_step(tiny_gpt2(), {"input_ids": self.ids, "labels": self.ids}) for _ in range(2)]
        self.assertEqual(losses[0], losses[1])

    def test_lora_adapter_trains_saves_and_reloads(self) -> None:
        model = get_peft_model(tiny_gpt2(), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        self.assertTrue(trainable and all("lora_" in n for n in trainable), trainable)
        one_step(model, {"input_ids": self.ids, "labels": self.ids})
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=self.ids).logits
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            self.assertTrue((Path(folder) / "adapter_model.safetensors").is_file())
            self.assertTrue((Path(folder) / "adapter_config.json").is_file())
            reloaded = PeftModel.from_pretrained(tiny_gpt2(), folder).eval()
        with torch.no_grad():
            torch.testing.assert_close(reloaded(input_ids=self.ids).logits, logits, rtol=0, atol=0)


if __name__ == "__main__":
    unittest.main()
