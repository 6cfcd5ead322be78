"""tempered_torch.export_gguf: tiny Llamas exported to GGUF F16 and Q8_0, loaded back with plain
transformers (from_pretrained(..., gguf_file=)), against the checkpoint they came from: the same
logits within the type's tolerance, the same token ids, llama.cpp's metadata; other architectures
and tokenizers refused with exit 3. Then SmolLM2-135M from its package, F16 round trip.

    PYTHONPATH=python HF_HUB_OFFLINE=1 <env>/bin/python -m unittest tests.test_export_gguf
"""

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path

import torch

from tests.tiny_base import BPE_TEXTS as TEXTS, CHAT_TEMPLATE, bpe_llama, tiny_bert, tiny_llama

PROBE = "hello team, the report 2024 is attached <|im_end|>"


def run_export(hf_dir: Path, out: Path, type_name: str) -> tuple[int, str, str]:
    """main() in process: (exit code, stdout, stderr)."""
    from tempered_torch.export_gguf import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["export_gguf", str(hf_dir), str(out), "--type", type_name])
    return code, stdout.getvalue(), stderr.getvalue()


def logits_of(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def gguf_fields(file: Path) -> dict:
    import gguf

    reader = gguf.GGUFReader(file)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("tokenizer.ggml.") or name.endswith("_id") or name.endswith(("model", "pre"))}
    fields["tensors"] = {t.name: t.tensor_type.name for t in reader.tensors}
    return fields


class TinyLlamaGgufTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        cls.tied, cls.untied = root / "tied", root / "untied"
        bpe_llama(cls.tied, tied=True, vocab_padding=20)
        bpe_llama(cls.untied, tied=False)
        cls.tokenizer = AutoTokenizer.from_pretrained(cls.tied)
        cls.ids = cls.tokenizer(PROBE)["input_ids"]
        cls.results, cls.logits = {}, {}
        for name, source in (("tied", cls.tied), ("untied", cls.untied)):
            cls.logits[name] = logits_of(AutoModelForCausalLM.from_pretrained(source), cls.ids)
            for type_name in ("f16", "q8_0"):
                out = root / f"{name}.{type_name}.gguf"
                code, stdout, stderr = run_export(source, out, type_name)
                assert code == 0, stderr
                cls.results[name, type_name] = (out, json.loads(stdout.strip().splitlines()[-1]))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def reload(self, name: str, type_name: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        out, _ = self.results[name, type_name]
        return AutoModelForCausalLM.from_pretrained(out.parent, gguf_file=out.name), AutoTokenizer.from_pretrained(out.parent, gguf_file=out.name)

    def test_logits_match_the_checkpoint(self) -> None:
        # F16 keeps 11 significant bits: each weight within 2^-11 (0.05 %) of itself; measured, the
        # logits move by 0.8–1.2e-3 of their largest. Q8_0 rounds to 1/127 of each 32-value block's
        # largest weight, ~15x coarser: measured 2.1–2.7e-2. Tolerances: ~4x and ~2x the measured.
        for name in ("tied", "untied"):
            expected = self.logits[name]
            scale = expected.abs().max().item()
            for type_name, tolerance in (("f16", 5e-3), ("q8_0", 5e-2)):
                model, _ = self.reload(name, type_name)
                got = logits_of(model, self.ids)
                worst = (got - expected).abs().max().item()
                with self.subTest(model=name, type=type_name, max_abs_diff=worst, logit_scale=scale):
                    self.assertEqual(got.shape, expected.shape)
                    self.assertLessEqual(worst, tolerance * scale)
                    self.assertTrue(torch.equal(got.argmax(-1), expected.argmax(-1)))

    def test_q8_0_is_smaller_than_f16(self) -> None:
        for name in ("tied", "untied"):
            f16, q8 = self.results[name, "f16"][1], self.results[name, "q8_0"][1]
            self.assertLess(q8["bytes"], f16["bytes"], name)
            self.assertEqual(f16["bytes"], self.results[name, "f16"][0].stat().st_size)

    def test_reports_what_it_wrote(self) -> None:
        out, result = self.results["tied", "q8_0"]
        self.assertEqual(result["type"], "q8_0")
        self.assertEqual(result["architecture"], "llama")
        # 2 blocks × (2 norms + q k v o + gate up down) + token_embd + output_norm; no output (tied).
        self.assertEqual(result["tensors"], 2 * 9 + 2)
        self.assertEqual(result["tensorTypes"], {"F32": 5, "Q8_0": 15})
        self.assertEqual(self.results["untied", "f16"][1]["tensorTypes"], {"F16": 16, "F32": 5})

    def test_the_tokenizer_gives_the_same_ids(self) -> None:
        for type_name in ("f16", "q8_0"):
            _, tokenizer = self.reload("tied", type_name)
            for text in [PROBE, *TEXTS, "unseen wörds ✓ and   spaces\n\ttabs"]:
                self.assertEqual(tokenizer(text)["input_ids"], self.tokenizer(text)["input_ids"], text)
            self.assertEqual((tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token), ("<|im_start|>", "<|im_end|>", "<|im_end|>"))
            conversation = [{"role": "user", "content": "hello team"}]
            self.assertEqual(tokenizer.apply_chat_template(conversation, tokenize=False), self.tokenizer.apply_chat_template(conversation, tokenize=False))

    def test_metadata_is_llama_cpps(self) -> None:
        fields = gguf_fields(self.results["tied", "f16"][0])
        expected = {
            "general.architecture": "llama", "general.file_type": 1, "llama.block_count": 2, "llama.context_length": 256,
            "llama.embedding_length": 64, "llama.feed_forward_length": 128, "llama.attention.head_count": 4,
            "llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 16, "llama.rope.freq_base": 50000.0,
            "llama.vocab_size": len(self.tokenizer) + 20, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
            "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.padding_token_id": 2,
            "tokenizer.chat_template": CHAT_TEMPLATE,
        }
        self.assertEqual({k: fields.get(k) for k in expected}, expected)
        self.assertAlmostEqual(fields["llama.attention.layer_norm_rms_epsilon"], 1e-5, places=9)
        self.assertNotIn("output.weight", fields["tensors"])  # tied: llama.cpp reads token_embd
        self.assertEqual(fields["tensors"]["blk.0.attn_norm.weight"], "F32")
        self.assertEqual(fields["tensors"]["blk.0.attn_q.weight"], "F16")
        untied = gguf_fields(self.results["untied", "q8_0"][0])
        self.assertEqual((untied["general.file_type"], untied["llama.attention.head_count_kv"]), (7, 4))
        self.assertEqual(untied["tensors"]["output.weight"], "Q8_0")


class TinyGpt2GgufTest(unittest.TestCase):
    """GPT-2, the architecture a tfjs model exports as: Conv1D weights transposed, the tied head
    written out, tanh GELU; read back by transformers, the checkpoint's logits."""

    def test_logits_match_the_checkpoint(self) -> None:
        from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

        from tests.tiny_base import byte_level_tokenizer

        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "gpt2"
            tokenizer = byte_level_tokenizer()
            tokenizer.save_pretrained(source)
            config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=64, n_layer=2, n_head=4, activation_function="gelu_new", layer_norm_epsilon=1e-5, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
            torch.manual_seed(0)
            model = GPT2LMHeadModel(config)
            with torch.no_grad():  # norms and biases away from their defaults, so one stored wrong shows
                for name, param in model.named_parameters():
                    if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                        param.uniform_(0.5, 1.5)
                    elif name.endswith(".bias"):
                        param.uniform_(-0.1, 0.1)
            model.save_pretrained(source, safe_serialization=True)
            ids = tokenizer(PROBE)["input_ids"]
            expected = logits_of(model.eval(), ids)
            out = Path(tmp) / "gpt2.f16.gguf"
            code, stdout, stderr = run_export(source, out, "f16")
            self.assertEqual(code, 0, stderr)
            result = json.loads(stdout.strip().splitlines()[-1])
            self.assertEqual(result["architecture"], "gpt2")
            # token_embd, position_embd, output (the tied head, written out), output_norm weight and bias; per block 2 norms, qkv, out, up, down, each weight and bias.
            self.assertEqual(result["tensors"], 5 + 2 * 12)
            fields = gguf_fields(out)
            self.assertEqual((fields["general.architecture"], fields["gpt2.block_count"], fields["gpt2.embedding_length"], fields["gpt2.feed_forward_length"]), ("gpt2", 2, 64, 256))
            # transformers' GGUF reader maps gpt2.context_length to n_ctx, not n_positions (llama.cpp reads it as the context): given here.
            got = logits_of(AutoModelForCausalLM.from_pretrained(out.parent, gguf_file=out.name, n_positions=64), ids)
            self.assertLessEqual((got - expected).abs().max().item(), 5e-3 * expected.abs().max().item())
            self.assertTrue(torch.equal(got.argmax(-1), expected.argmax(-1)))


class TinyMistralGgufTest(unittest.TestCase):
    """A Mistral is written as llama.cpp's Llama, its declared context capped at its sliding window."""

    def test_logits_match_and_the_context_stops_at_the_window(self) -> None:
        from transformers import AutoModelForCausalLM, MistralConfig, MistralForCausalLM

        from tests.tiny_base import byte_level_tokenizer

        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "tiny-sliding"  # not "mistral": transformers reads a GGUF named so as its own Mistral layout
            tokenizer = byte_level_tokenizer()
            tokenizer.save_pretrained(source)
            config = MistralConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, sliding_window=128, rms_norm_eps=1e-5, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
            torch.manual_seed(0)
            model = MistralForCausalLM(config).eval()
            model.save_pretrained(source, safe_serialization=True)
            ids = tokenizer(PROBE)["input_ids"]
            expected = logits_of(model, ids)
            out = Path(tmp) / "mistral.f16.gguf"
            code, stdout, stderr = run_export(source, out, "f16")
            self.assertEqual(code, 0, stderr)
            self.assertEqual(json.loads(stdout.strip().splitlines()[-1])["architecture"], "llama")
            self.assertEqual(gguf_fields(out)["llama.context_length"], 128)
            got = logits_of(AutoModelForCausalLM.from_pretrained(out.parent, gguf_file=out.name), ids)
            self.assertLessEqual((got - expected).abs().max().item(), 5e-3 * expected.abs().max().item())


class Llama3RopeGgufTest(unittest.TestCase):
    """Llama 3's rope scaling as llama.cpp's rope_freqs: dividing the default frequencies by it gives
    the frequencies the checkpoint itself rotates by."""

    def test_rope_freqs_give_the_checkpoints_frequencies(self) -> None:
        import gguf
        from transformers import LlamaConfig, LlamaForCausalLM

        from tests.tiny_base import byte_level_tokenizer

        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "tiny-llama3"
            tokenizer = byte_level_tokenizer()
            tokenizer.save_pretrained(source)
            theta, head_dim = 50000.0, 16
            rope = {"rope_type": "llama3", "rope_theta": theta, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
            config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rope_parameters=rope, rms_norm_eps=1e-5, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
            torch.manual_seed(0)
            model = LlamaForCausalLM(config).eval()
            model.save_pretrained(source, safe_serialization=True)
            out = Path(tmp) / "llama3.f16.gguf"
            code, _, stderr = run_export(source, out, "f16")
            self.assertEqual(code, 0, stderr)
            tensors = {t.name: t for t in gguf.GGUFReader(out).tensors}
            self.assertEqual(tensors["rope_freqs.weight"].tensor_type.name, "F32")
            factors = torch.tensor(tensors["rope_freqs.weight"].data.copy(), dtype=torch.float64)
            default = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
            checkpoint = model.model.rotary_emb.inv_freq.to(torch.float64)
            self.assertEqual(factors.shape, checkpoint.shape)
            self.assertTrue(torch.allclose(default / factors, checkpoint, rtol=1e-5))
            # Long wavelengths slowed by the full factor, short ones kept: the scaling is really there.
            self.assertAlmostEqual(float(factors.max()), 8.0, places=4)
            self.assertAlmostEqual(float(factors.min()), 1.0, places=6)
            self.assertEqual(gguf_fields(out)["llama.rope.freq_base"], theta)


class RefusalTest(unittest.TestCase):
    def test_other_architectures_and_tokenizers_exit_3(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            bert, words = Path(tmp) / "bert", Path(tmp) / "words"
            tiny_bert(bert)
            tiny_llama(words)
            code, stdout, stderr = run_export(bert, Path(tmp) / "bert.gguf", "f16")
            self.assertEqual((code, stdout), (3, ""))
            self.assertIn("BertModel", stderr)
            self.assertIn("LlamaForCausalLM", stderr)
            code, _, stderr = run_export(words, Path(tmp) / "words.gguf", "q8_0")
            self.assertEqual(code, 3)
            self.assertIn("WordLevel", stderr)
            self.assertIn("gpt2", stderr)
            code, _, stderr = run_export(Path(tmp) / "missing", Path(tmp) / "x.gguf", "f16")
            self.assertEqual(code, 3)
            self.assertFalse((Path(tmp) / "bert.gguf").exists() or (Path(tmp) / "words.gguf").exists())


class SmolLM2GgufTest(unittest.TestCase):
    """The demo's base: its package's Q4_1 GGUF, dequantized by transformers, exported F16 and read back."""

    def test_f16_round_trip(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from tempered_torch.packaged_models import SMOLLM2

        try:
            source = SMOLLM2.directory()
        except ModuleNotFoundError as err:
            self.skipTest(str(err))
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2.gguf_file)
        ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France? 42"}], add_generation_prompt=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        expected = logits_of(AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2.gguf_file), ids)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "smollm2.f16.gguf"
            code, stdout, stderr = run_export(source, out, "f16")
            self.assertEqual(code, 0, stderr)
            result = json.loads(stdout.strip().splitlines()[-1])
            self.assertEqual((result["tensors"], result["tensorTypes"]), (272, {"F16": 211, "F32": 61}))
            model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=out.name)
            reloaded = AutoTokenizer.from_pretrained(tmp, gguf_file=out.name)
            fields = gguf_fields(out)
        got = logits_of(model, ids)
        worst, scale = (got - expected).abs().max().item(), expected.abs().max().item()
        print(f"\nSmolLM2 F16: {result['bytes']} bytes, max |logit diff| {worst:.4g} of max |logit| {scale:.4g}")
        # Q4_1 values rounded to F16 once more: within 2^-11 of each weight, through 30 blocks.
        self.assertLessEqual(worst, 1e-2 * scale)
        self.assertTrue(torch.equal(got.argmax(-1), expected.argmax(-1)))
        self.assertEqual(reloaded("Paris, 2024: the capital")["input_ids"], tokenizer("Paris, 2024: the capital")["input_ids"])
        self.assertEqual(
            {k: fields[k] for k in ("llama.block_count", "llama.context_length", "llama.attention.head_count", "llama.attention.head_count_kv", "llama.vocab_size")},
            {"llama.block_count": 30, "llama.context_length": 8192, "llama.attention.head_count": 9, "llama.attention.head_count_kv": 3, "llama.vocab_size": 49152},
        )


if __name__ == "__main__":
    unittest.main()
