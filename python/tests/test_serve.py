"""The torch classifier server (tempered_torch.serve): it labels texts as evaluation does, with and
without windows, and answers a bad request without ending. On a tiny BERT made here (no downloads).

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
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tempered_torch.inference import score_rows
from tempered_torch.serve import class_logits
from tests.tiny_base import tiny_bert

TEXTS = ["meeting notes", " ".join(["win free money prize now offer"] * 6), "team lunch report the a", "free money"]
LABELS = ["ham", "spam"]


class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model_dir = Path(cls.tmp.name) / "model"
        base = Path(cls.tmp.name) / "base"
        base.mkdir()
        tiny_bert(base)
        torch.manual_seed(1)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).eval()
        model.save_pretrained(cls.model_dir)
        AutoTokenizer.from_pretrained(base).save_pretrained(cls.model_dir)
        cls.model, cls.tokenizer = model, AutoTokenizer.from_pretrained(cls.model_dir)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_labels_are_the_evaluation_labels_with_and_without_windows(self) -> None:
        rows = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
        for overlap in (None, 4):
            with self.subTest(overlap=overlap):
                evaluated, _ = score_rows(self.model, self.tokenizer, rows, "classify", LABELS, 12, window_overlap=overlap)
                with torch.no_grad():
                    logits = class_logits(self.model, self.tokenizer, TEXTS, 12, overlap, torch.device("cpu"))
                self.assertEqual([LABELS[int(i)] for i in logits.argmax(-1)], [r["predicted"] for r in evaluated])

    def test_the_process_answers_each_request_and_survives_a_bad_one(self) -> None:
        job = Path(self.tmp.name) / "job.json"
        job.write_text(json.dumps({"model_dir": str(self.model_dir), "objective": "classify", "labels": LABELS, "adapter": False, "max_length": 12}))
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        requests = [{"id": 1, "texts": TEXTS[:2]}, {"id": 2, "texts": "not a list"}, {"id": 3, "texts": TEXTS[2:]}]
        done = subprocess.run([sys.executable, "-m", "tempered_torch.serve", str(job)], input="".join(json.dumps(r) + "\n" for r in requests), capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        self.assertEqual(lines[0]["tempered"], "ready")
        self.assertEqual(lines[0]["labels"], LABELS)
        answers = {a["id"]: a for a in lines[1:]}
        self.assertIn("must be a list of strings", answers[2]["error"])
        predicted = [p["label"] for p in answers[1]["predictions"] + answers[3]["predictions"]]
        evaluated, _ = score_rows(self.model, self.tokenizer, [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)], "classify", LABELS, 12)
        self.assertEqual(predicted, [r["predicted"] for r in evaluated])
        for p in answers[1]["predictions"]:
            self.assertAlmostEqual(sum(p["scores"].values()), 1.0, places=5)


if __name__ == "__main__":
    unittest.main()
