"""Data-parallel fine-tuning (tempered_torch.launch: torchrun, DDP over gloo on CPU) computes the
same training as one process: two processes each take half of every batch, DDP averages their
gradients, and the final weights match a single-process run on a tiny BERT without dropout.

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

from tests.tiny_base import tiny_bert

PYTHON_DIR = Path(__file__).resolve().parents[1]


class DataParallelTest(unittest.TestCase):
    def test_two_processes_train_the_weights_one_process_does(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            base = root / "base"
            base.mkdir()
            tiny_bert(base)
            config = json.loads((base / "config.json").read_text())
            (base / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}))
            records = [{"id": f"r{i}", "text": ("win free money prize" if i % 3 == 0 else "meeting notes team lunch report") + " the a" * (i % 4), "label": "spam" if i % 3 == 0 else "ham"} for i in range(16)]
            (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}

            def train(name: str, argv: list[str]) -> tuple[dict, list[dict]]:
                job = {"objective": "classify", "base": {"dir": str(base)}, "train": str(root / "train.jsonl"), "validation": None, "output_dir": str(root / name), "checkpoint_dir": str(root / f"{name}-ck"), "steps": 4, "batch_size": 4, "lr": 0.01, "max_length": 16, "labels": ["ham", "spam"], "seed": 3}
                (root / f"{name}.json").write_text(json.dumps(job))
                done = subprocess.run([sys.executable, *argv, str(root / f"{name}.json")], env=env, capture_output=True, text=True, timeout=300)
                self.assertEqual(done.returncode, 0, done.stderr[-3000:])
                lines = [json.loads(l) for l in done.stdout.splitlines() if l.startswith('{"tempered"')]
                return load_file(str(root / name / "model.safetensors")), lines

            single, _ = train("single", ["-m", "tempered_torch.finetune"])
            parallel, lines = train("parallel", ["-m", "tempered_torch.launch", "2", "finetune"])
            # Rank 0 alone speaks the protocol: one progress line per step, one metrics line.
            self.assertEqual([l["step"] for l in lines if l["tempered"] == "progress"], [1, 2, 3, 4])
            metrics = [l for l in lines if l["tempered"] == "metrics"]
            self.assertEqual(len(metrics), 1)
            self.assertEqual(metrics[0]["processes"], 2)
            self.assertEqual(sorted(single), sorted(parallel))
            moved = max(float((parallel[k] - load_file(str(base / "model.safetensors")).get(k.removeprefix("bert."), parallel[k])).abs().max()) for k in parallel if k.startswith("bert."))
            self.assertGreater(moved, 1e-3)  # training changed the weights ...
            for key in single:
                self.assertTrue(torch.allclose(single[key], parallel[key], atol=2e-5), f"{key}: {float((single[key] - parallel[key]).abs().max())}")  # ... alike in both runs

    def test_a_batch_that_does_not_split_evenly_is_refused_as_bad_input(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            base = root / "base"
            base.mkdir()
            tiny_bert(base)
            (root / "train.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "text": "meeting notes", "label": ["ham", "spam"][i % 2]}) + "\n" for i in range(8)))
            job = {"objective": "classify", "base": {"dir": str(base)}, "train": str(root / "train.jsonl"), "validation": None, "output_dir": str(root / "out"), "checkpoint_dir": str(root / "ck"), "steps": 1, "batch_size": 3, "max_length": 16, "labels": ["ham", "spam"]}
            (root / "job.json").write_text(json.dumps(job))
            done = subprocess.run([sys.executable, "-m", "tempered_torch.launch", "2", "finetune", str(root / "job.json")], env={**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
            self.assertEqual(done.returncode, 3, done.stderr[-2000:])
            self.assertIn("must divide evenly among the 2 data-parallel processes", done.stderr)


if __name__ == "__main__":
    unittest.main()
