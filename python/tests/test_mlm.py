"""The masked-LM objective's corruption (tempered_torch.inference.mlm_mask) on a tiny BERT
tokenizer made here: seeded, never on special or padding tokens, labels only where chosen.

Run: ``PYTHONPATH=python <env>/bin/python -m unittest discover -s python/tests -t python``.
"""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch
from transformers import AutoTokenizer

from tempered_torch.inference import encode_mlm
from tests.tiny_base import tiny_bert

TEXTS = ["win free money prize now offer the a the a", "meeting notes", "team lunch report the a mail hello"]


class MaskedLmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        tiny_bert(Path(cls.tmp.name))
        cls.tokenizer = AutoTokenizer.from_pretrained(cls.tmp.name)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_masks_are_a_function_of_the_seed(self) -> None:
        a, b, c = (encode_mlm(self.tokenizer, TEXTS, 16, seed) for seed in (7, 7, 8))
        self.assertTrue(torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"]))
        self.assertFalse(torch.equal(a["labels"], c["labels"]))

    def test_only_ordinary_tokens_are_chosen_and_labelled_with_their_original(self) -> None:
        plain = self.tokenizer(TEXTS, truncation=True, max_length=16, padding=True, return_tensors="pt", return_special_tokens_mask=True)
        special = plain["special_tokens_mask"].bool() | (plain["attention_mask"] == 0)
        chosen_total = 0
        for seed in range(20):
            encoded = encode_mlm(self.tokenizer, TEXTS, 16, seed)
            chosen = encoded["labels"] != -100
            self.assertFalse((chosen & special).any())
            self.assertTrue(torch.equal(encoded["labels"][chosen], plain["input_ids"][chosen]))
            # Every row with ordinary tokens has at least one chosen; unchosen tokens are untouched.
            self.assertTrue(chosen.any(dim=1).all())
            self.assertTrue(torch.equal(encoded["input_ids"][~chosen], plain["input_ids"][~chosen]))
            chosen_total += int(chosen.sum())
        ordinary = int((~special).sum()) * 20
        self.assertGreater(chosen_total / ordinary, 0.1)
        self.assertLess(chosen_total / ordinary, 0.3)


if __name__ == "__main__":
    unittest.main()
