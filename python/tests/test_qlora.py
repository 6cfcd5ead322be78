"""QLoRA (lora.bits: 4) on a worker without CUDA is refused at once as bad input, naming the fix;
bitsandbytes is in the environment for the GPU nodes that run it.

Run: ``PYTHONPATH=python <env>/bin/python -m unittest discover -s python/tests -t python``.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import unittest
from pathlib import Path

import torch

from tempered_torch import finetune
from tests.tiny_base import tiny_bert


class QloraTest(unittest.TestCase):
    def test_bitsandbytes_is_installed_for_gpu_nodes(self) -> None:
        self.assertIsNotNone(importlib.util.find_spec("bitsandbytes"))

    @unittest.skipIf(torch.cuda.is_available(), "this worker has CUDA: QLoRA runs instead of being refused")
    def test_qlora_without_cuda_is_bad_input_naming_the_fix(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            tiny_bert(root / "base")
            (root / "train.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "text": "meeting notes", "label": ["ham", "spam"][i % 2]}) + "\n" for i in range(4)))
            job = finetune.Job(objective="classify", base={"dir": str(root / "base")}, train=str(root / "train.jsonl"), validation=None, output_dir=str(root / "out"), checkpoint_dir=str(root / "ck"), steps=1, batch_size=2, labels=["ham", "spam"], lora={"rank": 4, "targets": ["query", "value"], "bits": 4})
            with self.assertRaisesRegex(finetune.BadInput, r"lora.bits 4 \(QLoRA\).*CUDA GPUs only.*resources: \{ gpu: 1 \}.*remove lora.bits"):
                finetune.run(job)


if __name__ == "__main__":
    unittest.main()
