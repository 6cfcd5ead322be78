"""Distillation and int8 quantization of torch models on a tiny BERT made here (no downloads).

Run: ``PYTHONPATH=python <env>/bin/python -m unittest discover -s python/tests -t python``.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tempered_torch import distill, quantize
from tempered_torch.finetune import BadInput
from tests.tiny_base import tiny_bert

LABELS = ["ham", "spam"]


def records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        spam = i % 3 == 0
        words = "win free money prize now offer" if spam else "meeting notes attached team lunch report"
        out.append({"id": f"r{i}", "text": f"{words} {'the a ' * (i % 4)}", "label": "spam" if spam else "ham"})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


class DistillQuantizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        base = root / "base"
        base.mkdir()
        tiny_bert(base)
        # A teacher classifier: the tiny encoder with a head, saved as a fine-tune stores it.
        torch.manual_seed(1)
        teacher = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2, id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
        cls.teacher_dir = root / "teacher"
        teacher.save_pretrained(cls.teacher_dir, safe_serialization=True)
        AutoTokenizer.from_pretrained(base).save_pretrained(cls.teacher_dir)
        cls.train = write_jsonl(root / "train.jsonl", records(24))
        cls.validation = write_jsonl(root / "validation.jsonl", records(9))
        cls.root = root

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def distill_job(self, name: str, **overrides) -> distill.DistillJob:
        out = self.root / name
        values = dict(
            objective="classify",
            base={},
            train=self.train,
            validation=self.validation,
            output_dir=str(out / "model"),
            checkpoint_dir=str(out / "checkpoints"),
            eval_dir=str(out / "eval"),
            steps=4,
            batch_size=4,
            lr=1e-3,
            max_length=16,
            labels=LABELS,
            teacher={"model_dir": str(self.teacher_dir), "objective": "classify", "labels": LABELS, "adapter": False},
            student_layers=1,
            checkpoint_every=2,
        )
        values.update(overrides)
        return distill.DistillJob(**values)

    def quiet(self, fn, *args):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            result = fn(*args)
        return result, [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]

    def test_kd_loss_is_zero_only_for_the_teachers_distribution(self) -> None:
        logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
        self.assertAlmostEqual(float(distill.kd_loss(logits, logits, None, 2.0)), 0.0, places=6)
        self.assertGreater(float(distill.kd_loss(logits.flip(-1), logits, None, 2.0)), 0.01)
        # Masked tokens do not count.
        tokens = torch.stack([logits, logits.flip(-1)])  # [2 records, 2 tokens, 2 classes]
        teacher = torch.stack([logits, logits])
        self.assertAlmostEqual(float(distill.kd_loss(tokens, teacher, torch.tensor([[1, 1], [0, 0]]), 1.0)), 0.0, places=6)

    def test_student_keeps_evenly_spaced_teacher_layers(self) -> None:
        self.assertEqual(distill.kept_layers(6, 3), [0, 2, 5])
        self.assertEqual(distill.kept_layers(12, 2), [0, 11])
        self.assertEqual(distill.kept_layers(4, 1), [0])

    def test_distill_trains_a_smaller_student_that_loads_with_transformers(self) -> None:
        metrics, lines = self.quiet(distill.run, self.distill_job("plain"))
        student = AutoModelForSequenceClassification.from_pretrained(self.root / "plain" / "model")
        self.assertEqual(student.config.num_hidden_layers, 1)
        self.assertEqual(metrics["studentLayers"], 1)
        self.assertLess(metrics["studentParameters"], metrics["teacherParameters"])
        self.assertEqual(metrics["layersKept"], [0])
        self.assertGreater(metrics["initialisedFromTeacher"], 0.9)
        self.assertEqual([l["step"] for l in lines if l["tempered"] == "progress"], [1, 2, 3, 4])
        self.assertEqual([l["step"] for l in lines if l["tempered"] == "checkpoint"], [2])
        for name in ("teacher", "student"):
            rows = [json.loads(l) for l in (self.root / "plain" / "eval" / f"{name}.jsonl").read_text().splitlines()]
            self.assertEqual(len(rows), 9)
            self.assertTrue(all(r["predicted"] in LABELS for r in rows))
        self.assertGreater(metrics["teacherLatencyMs"], 0)

    def test_a_resumed_distillation_ends_with_identical_weights(self) -> None:
        self.quiet(distill.run, self.distill_job("whole"))
        checkpoint = self.root / "whole" / "checkpoints" / "step-00000002"
        metrics, _ = self.quiet(distill.run, self.distill_job("resumed", resume_dir=str(checkpoint)))
        self.assertEqual(metrics["resumedFromStep"], 2)
        a = load_file(str(self.root / "whole" / "model" / "model.safetensors"))
        b = load_file(str(self.root / "resumed" / "model" / "model.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        for key in a:
            self.assertTrue(torch.equal(a[key], b[key]), key)

    def test_a_student_as_deep_as_its_teacher_is_refused(self) -> None:
        with self.assertRaisesRegex(BadInput, "fewer layers than its teacher's 2"):
            self.quiet(distill.run, self.distill_job("deep", student_layers=2))

    def test_int8_model_round_trips_and_scores_like_the_float_one(self) -> None:
        out = self.root / "int8"
        test = write_jsonl(self.root / "test.jsonl", records(20))
        job = {"model_dir": str(self.teacher_dir), "objective": "classify", "labels": LABELS, "adapter": False, "out_dir": str(out), "eval_dir": str(self.root / "int8-eval"), "test": test, "max_length": 16}
        _, lines = self.quiet(quantize.run, job)
        metrics = next(l for l in lines if l["tempered"] == "metrics")
        self.assertLess(metrics["bytesAfter"], metrics["bytesBefore"] * 0.5)
        self.assertGreater(metrics["linearLayers"], 0)
        self.assertGreater(metrics["latencyBeforeMs"], 0)
        manifest = json.loads((out / quantize.MANIFEST).read_text())
        self.assertEqual(manifest["scheme"], "dynamic-int8")
        self.assertIn("bert.embeddings.word_embeddings", manifest["embeddings"])
        # The stored int8 model predicts as the float model does on nearly every record, and its
        # logits stay close to the float ones.
        model, tokenizer = quantize.load_quantized(str(out), "classify", LABELS)
        float_model = AutoModelForSequenceClassification.from_pretrained(self.teacher_dir).eval()
        batch = tokenizer([r["text"] for r in records(20)], padding=True, truncation=True, max_length=16, return_tensors="pt")
        with torch.no_grad():
            q, f = model(**batch).logits, float_model(**batch).logits
        self.assertLess(float((q - f).abs().max()), 0.1)
        self.assertTrue(any("Quantized" in type(m).__name__ or "quantized" in type(m).__module__ for m in model.modules()))
        rows = {name: [json.loads(l)["predicted"] for l in (self.root / "int8-eval" / f"{name}.jsonl").read_text().splitlines()] for name in ("float", "int8")}
        agreement = sum(a == b for a, b in zip(rows["float"], rows["int8"])) / 20
        self.assertGreaterEqual(agreement, 0.9)


if __name__ == "__main__":
    unittest.main()
