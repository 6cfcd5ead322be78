"""Fully sharded data parallel (`parallel: fsdp`, FSDP2 over gloo on CPU) computes the training one
process does: two processes each hold half of every parameter and optimizer state and take half of
every batch, and the final weights match a single-process run; a run resumed from a sharded
checkpoint ends with the same weights as one that never stopped; LoRA adapters over a sharded
model save as a plain PEFT adapter.

Run: ``PYTHONPATH=python <env>/bin/python -m unittest discover -s python/tests -t python``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.tiny_base import tiny_bert, tiny_llama

PYTHON_DIR = Path(__file__).resolve().parents[1]


def no_dropout(base: Path) -> None:
    config = json.loads((base / "config.json").read_text())
    config.update({k: 0.0 for k in ("hidden_dropout_prob", "attention_probs_dropout_prob", "attention_dropout") if k in config or k == "attention_dropout"})
    (base / "config.json").write_text(json.dumps(config))


class FsdpTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        self.env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def train(self, name: str, job: dict, processes: int) -> tuple[Path, list[dict]]:
        out = self.root / name
        spec = {**job, "output_dir": str(out), "checkpoint_dir": str(self.root / f"{name}-ck")}
        (self.root / f"{name}.json").write_text(json.dumps(spec))
        argv = ["-m", "tempered_torch.finetune"] if processes == 1 else ["-m", "tempered_torch.launch", str(processes), "finetune"]
        done = subprocess.run([sys.executable, *argv, str(self.root / f"{name}.json")], env=self.env, capture_output=True, text=True, timeout=600)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        return out, [json.loads(l) for l in done.stdout.splitlines() if l.startswith('{"tempered"')]

    def assert_same_weights(self, a: dict, b: dict, atol: float) -> None:
        self.assertEqual(sorted(a), sorted(b))
        for key in a:
            self.assertTrue(torch.allclose(a[key], b[key], atol=atol), f"{key}: {float((a[key] - b[key]).abs().max())}")

    def classifier_job(self, n: int, validation) -> Path:
        """A tiny BERT without dropout, `n` ham/spam records to train on and `validation(records)` to
        validate on; sets self.job to a classify job over them. Returns the base directory."""
        base = self.root / "base"
        base.mkdir()
        tiny_bert(base)
        no_dropout(base)
        records = [{"id": f"r{i}", "text": ("win free money prize now offer" if i % 3 == 0 else "meeting notes attached team lunch report") + " the a" * (i % 4), "label": "spam" if i % 3 == 0 else "ham"} for i in range(n)]
        (self.root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (self.root / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation(records)))
        self.job = {"objective": "classify", "base": {"dir": str(base)}, "train": str(self.root / "train.jsonl"), "validation": str(self.root / "validation.jsonl"), "batch_size": 4, "max_length": 16, "labels": ["ham", "spam"], "validate_every": 2}
        return base

    def test_a_sharded_classifier_trains_the_weights_one_process_does(self) -> None:
        base = self.classifier_job(16, lambda records: records[:6])
        job = {**self.job, "steps": 4, "lr": 0.01, "seed": 3}

        single, _ = self.train("single", job, 1)
        sharded, lines = self.train("sharded", {**job, "parallel": "fsdp"}, 2)
        metrics = [l for l in lines if l["tempered"] == "metrics"]
        self.assertEqual(len(metrics), 1)  # rank 0 alone speaks
        self.assertEqual((metrics[0]["processes"], metrics[0]["parallel"]), (2, "fsdp"))
        self.assertGreaterEqual(metrics[0]["shardedUnits"], 3)  # each BertLayer, and the root
        # Every process validated the sharded model; rank 0 reported it, at steps 2 and 4.
        self.assertEqual([l["step"] for l in lines if l["tempered"] == "progress" and "valLoss" in l], [2, 4])
        self.assertIn("valAccuracy", metrics[0]["final"])
        a, b = load_file(str(single / "model.safetensors")), load_file(str(sharded / "model.safetensors"))
        moved = max(float((b[k] - load_file(str(base / "model.safetensors")).get(k.removeprefix("bert."), b[k])).abs().max()) for k in b if k.startswith("bert."))
        self.assertGreater(moved, 1e-3)  # training changed the weights ...
        self.assert_same_weights(a, b, 2e-5)  # ... alike, sharded or not
        # The stored model is a plain checkpoint, whole.
        from transformers import AutoModelForSequenceClassification

        self.assertEqual(AutoModelForSequenceClassification.from_pretrained(sharded).num_labels, 2)

    def test_early_stopping_on_a_sharded_model_keeps_its_best_weights(self) -> None:
        # Half of the validation spam relabelled ham, and a learning rate too high for this model: the validation loss falls, then rises.
        self.classifier_job(24, lambda records: [{**r, "label": "ham" if r["label"] == "spam" and i % 2 else r["label"]} for i, r in enumerate(records[:8])])
        job = {**self.job, "steps": 30, "lr": 0.05, "warmup_steps": 0, "seed": 7, "early_stopping": {"metric": "valLoss", "patience": 2}}

        _, single = self.train("single", job, 1)
        _, sharded = self.train("sharded", {**job, "parallel": "fsdp"}, 2)
        one, two = ([l for l in lines if l["tempered"] == "metrics"][0] for lines in (single, sharded))
        self.assertTrue(two["stoppedEarly"])
        self.assertLess(two["steps"], 30)
        self.assertEqual((two["bestStep"], two["steps"]), (one["bestStep"], one["steps"]))  # the same decisions as one process
        # The stored model is the best validation's, gathered from the shards: scoring it again gives the best metric.
        self.assertAlmostEqual(two["final"]["valLoss"], two["bestMetric"], places=5)

    def test_a_sharded_lora_run_resumes_from_its_checkpoint_to_the_same_adapters(self) -> None:
        base = self.root / "llama"
        base.mkdir()
        tiny_llama(base)
        no_dropout(base)
        texts = ["write the subject line of this mail", "hello team lunch meeting notes attached", "win free money prize now offer", "the report of the team"]
        (self.root / "train.jsonl").write_text("".join(json.dumps({"id": f"t{i}", "text": texts[i % 4] + " the a" * (i % 3)}) + "\n" for i in range(12)))
        job = {"objective": "causal-lm", "base": {"dir": str(base)}, "train": str(self.root / "train.jsonl"), "validation": None, "steps": 4, "batch_size": 4, "lr": 0.01, "warmup_steps": 1, "max_length": 16, "seed": 5, "checkpoint_every": 2, "lora": {"rank": 4, "alpha": 8, "dropout": 0.0, "targets": None}, "parallel": "fsdp"}

        whole, lines = self.train("whole", job, 2)
        self.assertEqual([l["step"] for l in lines if l["tempered"] == "checkpoint"], [2])
        resumed, lines = self.train("resumed", {**job, "resume_dir": str(self.root / "whole-ck" / "step-00000002")}, 2)
        self.assertEqual([l["step"] for l in lines if l["tempered"] == "progress"], [3, 4])
        self.assertEqual([l for l in lines if l["tempered"] == "metrics"][0]["resumedFromStep"], 2)
        single, _ = self.train("single", {**job, "parallel": "ddp"}, 1)
        replicated, _ = self.train("replicated", {**job, "parallel": "ddp", "checkpoint_every": 0}, 2)

        adapters = {name: load_file(str(path / "adapter_model.safetensors")) for name, path in (("whole", whole), ("resumed", resumed), ("single", single), ("replicated", replicated))}
        self.assertTrue(any(float(t.abs().max()) > 1e-3 for k, t in adapters["whole"].items() if "lora_B" in k))  # the adapters trained
        self.assert_same_weights(adapters["whole"], adapters["resumed"], 1e-6)
        # The processes' shares of a batch hold different numbers of tokens; each process's loss is
        # weighted by its share, so sharded and replicated runs both train what one process does.
        self.assert_same_weights(adapters["whole"], adapters["single"], 2e-5)
        self.assert_same_weights(adapters["replicated"], adapters["single"], 2e-5)
        # A plain PEFT adapter over the unchanged base.
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        self.assertIsNotNone(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), whole))


if __name__ == "__main__":
    unittest.main()
