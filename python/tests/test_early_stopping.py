"""Early stopping in the torch fine-tune (tempered_torch.finetune.EarlyStopping) on a tiny BERT
classifier: a learning rate too high for it makes the validation loss turn, training stops once
`patience` validations bring no improvement, and the stored model is the best step's weights. A run
resumed from a checkpoint, before or after its best step, takes the same decisions and ends with
the same weights; two data-parallel processes stop together at the step one process does.

Run: ``PYTHONPATH=python <env>/bin/python -m unittest discover -s python/tests -t python``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch
from safetensors.torch import load_file

from tempered_torch.finetune import BEST_WEIGHTS, EARLY_STOPPING_STATE, BadInput, Job, macro_f1, run
from tests.tiny_base import tiny_bert

PYTHON_DIR = Path(__file__).resolve().parents[1]
STEPS, VALIDATE_EVERY, PATIENCE = 40, 2, 2


def write_records(path: Path, n: int, offset: int = 0) -> None:
    with path.open("w") as f:
        for i in range(n):
            spam = (i + offset) % 3 == 0
            text = ("win free money prize now offer" if spam else "meeting notes attached team lunch report") + " the a" * (i % 4)
            f.write(json.dumps({"id": f"r{i}", "text": text, "label": "spam" if spam else "ham"}) + "\n")


def job_spec(root: Path, name: str, **over) -> dict:
    return {
        "objective": "classify",
        "base": {"dir": str(root / "base")},
        "train": str(root / "train.jsonl"),
        "validation": str(root / "validation.jsonl"),
        "output_dir": str(root / name / "out"),
        "checkpoint_dir": str(root / name / "checkpoints"),
        "steps": STEPS,
        "batch_size": 4,
        "lr": 0.05,  # too high for this model: the validation loss falls, then rises
        "warmup_steps": 0,
        "max_length": 16,
        "seed": 7,
        "checkpoint_every": 1,
        "validate_every": VALIDATE_EVERY,
        "labels": ["ham", "spam"],
        "threads": 1,
        "early_stopping": {"metric": "valLoss", "patience": PATIENCE},
        **over,
    }


def train(root: Path, name: str, **over) -> tuple[dict, list[dict], dict[str, torch.Tensor]]:
    """Runs the fine-tune in this process: its metrics, progress lines and stored weights."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        metrics = run(Job(**job_spec(root, name, **over)))
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith('{"tempered"')]
    return metrics, [line for line in lines if line["tempered"] == "progress"], load_file(str(root / name / "out" / "model.safetensors"))


def measured(point: dict) -> dict:
    """A progress line without its timings."""
    return {k: v for k, v in point.items() if k not in ("tokensPerSec", "peakMemoryBytes")}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class EarlyStoppingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = Path(cls.tmp.name)
        (cls.root / "base").mkdir()
        tiny_bert(cls.root / "base")
        write_records(cls.root / "train.jsonl", 40)
        write_records(cls.root / "validation.jsonl", 12, offset=1)
        cls.whole = train(cls.root, "whole")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_stops_when_the_metric_stops_improving_and_stores_the_best_weights(self) -> None:
        metrics, progress, weights = self.whole
        validated = [p for p in progress if "valLoss" in p]
        best = min(validated, key=lambda p: p["valLoss"])
        self.assertTrue(metrics["stoppedEarly"])
        self.assertLess(metrics["steps"], STEPS)
        self.assertEqual(progress[-1]["step"], metrics["steps"])  # no step after the decision
        self.assertEqual(metrics["bestStep"], best["step"])
        self.assertEqual(metrics["bestMetric"], best["valLoss"])
        self.assertEqual(metrics["steps"] - metrics["bestStep"], PATIENCE * VALIDATE_EVERY)  # `patience` validations without improvement
        # The stored model is the best step's: its checkpoint's weights, and its validation loss (all 12 records both times).
        at_best = load_file(str(self.root / "whole" / "checkpoints" / f"step-{best['step']:08d}" / "model" / "model.safetensors"))
        self.assertTrue(same(weights, at_best))
        self.assertAlmostEqual(metrics["final"]["valLoss"], best["valLoss"], places=5)
        self.assertIn("valF1", metrics["final"])
        # Checkpoints carry the state and the best weights; none is written at or after the stop.
        last = self.root / "whole" / "checkpoints" / f"step-{metrics['steps'] - 1:08d}"
        self.assertEqual(json.loads((last / EARLY_STOPPING_STATE).read_text())["bestStep"], best["step"])
        self.assertTrue((last / BEST_WEIGHTS).is_file())
        self.assertFalse((self.root / "whole" / "checkpoints" / f"step-{metrics['steps']:08d}").exists())

    def test_a_resumed_run_takes_the_same_decisions_and_ends_with_the_same_weights(self) -> None:
        metrics, progress, weights = self.whole
        # From the step before the best (nothing best yet) and from the last checkpoint (its best weights only in the checkpoint).
        for step in (metrics["bestStep"] - 1, metrics["steps"] - 1):
            with self.subTest(resumed_from=step):
                checkpoint = self.root / "whole" / "checkpoints" / f"step-{step:08d}"
                resumed, resumed_progress, resumed_weights = train(self.root, f"resumed-{step}", resume_dir=str(checkpoint))
                self.assertEqual(resumed["resumedFromStep"], step)
                for key in ("steps", "bestStep", "bestMetric", "stoppedEarly", "final"):
                    self.assertEqual(resumed[key], metrics[key], key)
                self.assertEqual([measured(p) for p in resumed_progress], [measured(p) for p in progress if p["step"] > step])
                self.assertTrue(same(resumed_weights, weights))

    def test_two_data_parallel_processes_stop_together_where_one_process_does(self) -> None:
        root = self.root / "parallel"
        root.mkdir()
        (root / "base").mkdir()
        tiny_bert(root / "base")
        config = json.loads((root / "base" / "config.json").read_text())
        (root / "base" / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}))
        for name in ("train.jsonl", "validation.jsonl"):
            (root / name).write_text((self.root / name).read_text())
        single, _, _ = train(root, "single")
        (root / "job.json").write_text(json.dumps(job_spec(root, "two", checkpoint_every=0)))
        env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "tempered_torch.launch", "2", "finetune", str(root / "job.json")], env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"tempered"')]
        two = next(line for line in lines if line["tempered"] == "metrics")
        self.assertTrue(single["stoppedEarly"])
        for key in ("steps", "bestStep", "stoppedEarly"):
            self.assertEqual(two[key], single[key], key)
        self.assertEqual([line["step"] for line in lines if line["tempered"] == "progress"][-1], single["steps"])
        # The model rank 0 stored is its best step's (Adam turns the processes' last-bit differences in
        # gradients that should be zero, such as attention key biases, into visible ones: compare losses).
        self.assertAlmostEqual(two["bestMetric"], single["bestMetric"], places=3)
        self.assertAlmostEqual(two["final"]["valLoss"], two["bestMetric"], places=5)

    def test_macro_f1_and_the_job_checks(self) -> None:
        # Class 0: 2·1 / (2·1 + 0 + 1); class 1: 2·2 / (2·2 + 1 + 0).
        self.assertAlmostEqual(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), (2 / 3 + 4 / 5) / 2)
        self.assertEqual(macro_f1([1, 1], [1, 1]), 1.0)  # classes never seen do not count
        path = self.root / "bad.json"
        for over, message in [
            ({"objective": "causal-lm", "labels": [], "early_stopping": {"metric": "valF1", "patience": 2}}, "needs objective classify"),
            ({"early_stopping": {"metric": "valLoss", "patience": 0}}, "patience must be a positive integer"),
            ({"validate_every": 0}, "needs validation"),
        ]:
            path.write_text(json.dumps(job_spec(self.root, "bad", **over)))
            with self.assertRaisesRegex(BadInput, message):
                Job.load(str(path))


if __name__ == "__main__":
    unittest.main()
