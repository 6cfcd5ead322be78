"""Long records as overlapping windows (tempered_torch.inference.windows / score_windows and the
fine-tune's window_records), on a tiny BERT made here (no downloads).

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
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tempered_torch import finetune
from tempered_torch.inference import score_rows, windows
from tests.tiny_base import tiny_bert

LONG = " ".join(["win free money prize now offer"] * 6)  # 36 words
SHORT = "meeting notes"


class WindowsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.base = Path(cls.tmp.name) / "base"
        cls.base.mkdir()
        tiny_bert(cls.base)
        cls.tokenizer = AutoTokenizer.from_pretrained(cls.base)
        torch.manual_seed(0)
        cls.model = AutoModelForSequenceClassification.from_pretrained(cls.base, num_labels=2).eval()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_windows_cover_every_token_with_the_overlap_and_special_tokens_in_each(self) -> None:
        found = windows(self.tokenizer, LONG, 12, 4)
        content = self.tokenizer(LONG, add_special_tokens=False)["input_ids"]
        self.assertEqual(len(content), 36)
        self.assertGreater(len(found), 3)
        for ids in found:
            self.assertLessEqual(len(ids), 12)
            self.assertEqual((ids[0], ids[-1]), (self.tokenizer.cls_token_id, self.tokenizer.sep_token_id))
        inner = [ids[1:-1] for ids in found]
        # Consecutive windows share exactly `overlap` tokens; stitched together they are the record.
        stitched = inner[0] + [t for w in inner[1:] for t in w[4:]]
        self.assertEqual(stitched, content)
        for a, b in zip(inner, inner[1:]):
            self.assertEqual(a[-4:], b[:4])

    def test_a_record_that_fits_scores_as_without_windows_and_a_long_one_sees_every_window(self) -> None:
        rows = [{"id": "s", "text": SHORT}, {"id": "l", "text": LONG}]
        windowed, tokens = score_rows(self.model, self.tokenizer, rows, "classify", ["ham", "spam"], 12, window_overlap=4)
        plain, _ = score_rows(self.model, self.tokenizer, rows[:1], "classify", ["ham", "spam"], 12)
        self.assertEqual(windowed[0]["predicted"], plain[0]["predicted"])
        self.assertEqual(windowed[0]["windows"], 1)
        self.assertEqual(windowed[1]["windows"], len(windows(self.tokenizer, LONG, 12, 4)))
        self.assertEqual(tokens, sum(len(w) for r in rows for w in windows(self.tokenizer, r["text"], 12, 4)))
        # The long record's prediction is the argmax of its windows' mean logits.
        batch = self.tokenizer.pad({"input_ids": windows(self.tokenizer, LONG, 12, 4)}, return_tensors="pt")
        with torch.no_grad():
            mean = self.model(**batch).logits.mean(0)
        self.assertEqual(windowed[1]["predicted"], ["ham", "spam"][int(mean.argmax())])

    def test_fine_tuning_on_windows_trains_on_each_window_with_its_records_label(self) -> None:
        root = Path(self.tmp.name) / "train"
        root.mkdir()
        records = [{"id": f"r{i}", "text": LONG if i % 2 else SHORT, "label": "spam" if i % 2 else "ham"} for i in range(8)]
        (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        job = finetune.Job(objective="classify", base={"dir": str(self.base)}, train=str(root / "train.jsonl"), validation=None, output_dir=str(root / "out"), checkpoint_dir=str(root / "ck"), steps=2, batch_size=4, max_length=12, labels=["ham", "spam"], long_records="windows", window_overlap=4)
        expanded = finetune.window_records(records, self.tokenizer, job)
        per_long = len(windows(self.tokenizer, LONG, 12, 4))
        self.assertEqual(len(expanded), 4 + 4 * per_long)
        self.assertTrue(all(r["label"] == "spam" for r in expanded if r["id"] in ("r1", "r3", "r5", "r7")))
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = finetune.run(job)
        self.assertEqual(metrics["steps"], 2)
        with self.assertRaisesRegex(finetune.BadInput, "less than half of maxLength"):
            finetune.window_records(records, self.tokenizer, finetune.Job(**{**job.__dict__, "window_overlap": 6}))


if __name__ == "__main__":
    unittest.main()
