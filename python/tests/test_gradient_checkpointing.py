"""Activation checkpointing (`gradientCheckpointing`): each transformer block runs its forward again
in backward instead of keeping its activations, and training is unchanged by it: the same weights
with and without, dropout included (the recomputation replays the RNG state).

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

from tempered_torch.finetune import Job, load_base, run, with_checkpointing, with_lora
from tests.tiny_base import tiny_bert, tiny_llama


class GradientCheckpointingTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def job(self, base: Path, name: str, **over) -> Job:
        return Job(**{"objective": "causal-lm", "base": {"dir": str(base)}, "train": str(self.root / "train.jsonl"), "validation": None, "output_dir": str(self.root / name), "checkpoint_dir": str(self.root / f"{name}-ck"), "steps": 3, "batch_size": 4, "max_length": 16, "lr": 0.01, "seed": 11, "threads": 1, **over})

    def test_each_block_runs_again_in_backward(self) -> None:
        base = self.root / "llama"
        base.mkdir()
        tiny_llama(base)
        calls = {}
        for checkpointing in (False, True):
            job = self.job(base, "x", gradient_checkpointing=checkpointing, lora={"rank": 2, "alpha": 4})
            model = with_lora(with_checkpointing(load_base(job)[0], job), job)
            model.train()
            count = [0]
            for layer in model.base_model.model.model.layers:
                layer.self_attn.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1))  # inside the checkpointed forward; a pre-hook, since recomputation stops once it has what backward needs
            ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
            model(input_ids=ids, labels=ids).loss.backward()
            calls[checkpointing] = count[0]
        self.assertEqual(calls, {False: 2, True: 4})  # two layers: once each, or again in backward

    def test_training_is_the_same_with_and_without(self) -> None:
        base = self.root / "bert"
        base.mkdir()
        tiny_bert(base)  # dropout 0.1 left on: recomputation must draw the masks the forward drew
        texts = ["win free money prize now offer", "meeting notes attached team lunch report", "hello team the report"]
        (self.root / "train.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "text": texts[i % 3] + " the a" * (i % 4), "label": ["ham", "spam"][i % 3 == 0]}) + "\n" for i in range(12)))
        weights, metrics = {}, {}
        for checkpointing in (False, True):
            name = f"gc-{checkpointing}"
            with contextlib.redirect_stdout(io.StringIO()):
                metrics[checkpointing] = run(self.job(base, name, objective="classify", labels=["ham", "spam"], gradient_checkpointing=checkpointing))
            weights[checkpointing] = load_file(str(self.root / name / "model.safetensors"))
        self.assertEqual((metrics[False]["gradientCheckpointing"], metrics[True]["gradientCheckpointing"]), (False, True))
        self.assertEqual(metrics[False]["finalLoss"], metrics[True]["finalLoss"])
        moved = max(float((weights[True][k] - load_file(str(base / "model.safetensors")).get(k.removeprefix("bert."), weights[True][k])).abs().max()) for k in weights[True] if k.startswith("bert."))
        self.assertGreater(moved, 1e-3)
        for key in weights[False]:
            self.assertTrue(torch.allclose(weights[False][key], weights[True][key], atol=1e-6), key)


if __name__ == "__main__":
    unittest.main()
