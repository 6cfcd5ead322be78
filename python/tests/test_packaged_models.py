"""The two pretrained models the lock installs load offline with plain transformers.

Slower than the tiny tests (SmolLM2's GGUF is dequantized on load: ~20 s on 2 cores).
"""

from __future__ import annotations

import os
import unittest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from tempered_torch.packaged_models import MINILM, SMOLLM2


class PackagedModelsTest(unittest.TestCase):
    def test_minilm_loads_as_bert_and_embeds(self) -> None:
        directory = MINILM.directory()
        self.assertTrue((directory / "model.safetensors").is_file(), directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModel.from_pretrained(directory).eval()
        self.assertEqual(type(model).__name__, "BertModel")
        self.assertEqual(sum(p.numel() for p in model.parameters()), 22_713_216)
        with torch.no_grad():
            hidden = model(**tokenizer(["win a free prize now", "meeting moved to 3pm"], return_tensors="pt", padding=True)).last_hidden_state
        self.assertEqual(hidden.shape[0], 2)
        self.assertEqual(hidden.shape[-1], 384)  # [B, T, 384]

    def test_smollm2_gguf_loads_as_llama_and_chats(self) -> None:
        directory = SMOLLM2.directory()
        self.assertTrue((directory / SMOLLM2.gguf_file).is_file(), directory)
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=SMOLLM2.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=SMOLLM2.gguf_file).eval()
        self.assertEqual(type(model).__name__, "LlamaForCausalLM")
        self.assertEqual(sum(p.numel() for p in model.parameters()), 134_515_008)
        self.assertTrue(tokenizer.chat_template, "SmolLM2's tokenizer should carry a chat template")
        encoded = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            generated = model.generate(**encoded, max_new_tokens=12, do_sample=False)
        answer = tokenizer.decode(generated[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        self.assertIn("Paris", answer)


if __name__ == "__main__":
    unittest.main()
