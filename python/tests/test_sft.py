"""The sft objective on a tiny Llama with a ChatML chat template (tests/tiny_base.tiny_llama): the
loss falls on the assistant's tokens only, long prompts give way to the reply, finetune and
predict run end to end (greedy generations, deterministic), and a tokenizer without a chat
template is refused at once (exit 3).

Run: ``PYTHONPATH=python <env>/bin/python -m unittest discover -s python/tests -t python``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import unittest
from pathlib import Path

from tempered_torch.chat import IGNORE, encode_sft, prompt_ids, sft_example
from tests.tiny_base import TinyChatModelCase, tiny_llama

HERE = Path(__file__).resolve().parent.parent


def conversation(i: int, prompt: str = "write the subject line of this mail the prize now") -> dict:
    return {"id": f"r{i}", "text": prompt, "messages": [{"role": "system", "content": "team"}, {"role": "user", "content": prompt}, {"role": "assistant", "content": "free money offer" if i % 2 else "meeting notes"}]}


def run_module(name: str, job: dict, work: Path) -> tuple[int, list[dict], str]:
    path = work / f"{name}.json"
    path.write_text(json.dumps(job))
    done = subprocess.run([sys.executable, "-m", f"tempered_torch.{name}", str(path)], cwd=HERE, capture_output=True, text=True)
    return done.returncode, [json.loads(l) for l in done.stdout.splitlines() if l.startswith('{"tempered"')], done.stderr


class SftTest(TinyChatModelCase, unittest.TestCase):
    def test_labels_are_the_assistant_tokens_only(self) -> None:
        ids, labels = sft_example(self.tokenizer, conversation(1), 64)
        learned = [t for t in labels if t != IGNORE]
        # The reply and the template's end-of-turn token; never the system, the user or the role headers.
        self.assertEqual(self.tokenizer.convert_ids_to_tokens(learned), ["free", "money", "offer", "<|im_end|>"])
        self.assertEqual([t for t, l in zip(ids, labels) if l != IGNORE], learned)
        first = labels.index(learned[0])
        self.assertEqual(self.tokenizer.convert_ids_to_tokens(ids[first - 2 : first]), ["<|im_start|>", "assistant"])

    def test_padding_is_masked_and_long_prompts_give_way(self) -> None:
        long = conversation(2, "the mail " * 40)
        batch = encode_sft(self.tokenizer, [conversation(1), long], 24)
        self.assertLessEqual(batch["input_ids"].shape[1], 24)
        self.assertGreater(batch["input_ids"].shape[1], 16)
        short_length = int(batch["attention_mask"][0].sum())
        self.assertTrue((batch["labels"][0, short_length:] == IGNORE).all())
        kept = [t for t in batch["labels"][1].tolist() if t != IGNORE]
        self.assertEqual(self.tokenizer.convert_ids_to_tokens(kept), ["meeting", "notes", "<|im_end|>"])
        prompt = prompt_ids(self.tokenizer, long, 16)
        self.assertLessEqual(len(prompt), 16)
        self.assertEqual(self.tokenizer.convert_ids_to_tokens(prompt[-2:]), ["<|im_start|>", "assistant"])

    def test_finetune_and_predict(self) -> None:
        work = Path(self.tmp.name) / "run"
        work.mkdir()
        records = work / "train.jsonl"
        records.write_text("".join(json.dumps(conversation(i)) + "\n" for i in range(12)))
        code, lines, err = run_module("finetune", {"objective": "sft", "base": {"dir": str(self.base)}, "train": str(records), "validation": str(records), "output_dir": str(work / "out"), "checkpoint_dir": str(work / "ck"), "steps": 3, "batch_size": 4, "max_length": 32, "validate_every": 3, "lora": {"rank": 2, "alpha": 4}, "lr": 1e-2}, work)
        self.assertEqual(code, 0, err[-2000:])
        metrics = next(m for m in lines if m["tempered"] == "metrics")
        self.assertEqual(metrics["objective"], "sft")
        predict = {"objective": "sft", "model_dir": str(work / "out"), "adapter": True, "base": {"dir": str(self.base)}, "records": {"test": str(records)}, "out_dir": str(work / "pred"), "max_length": 32, "max_new_tokens": 4, "batch_size": 5}
        outputs = []
        for k in range(2):
            predict["out_dir"] = str(work / f"pred{k}")
            code, _, err = run_module("predict", predict, work)
            self.assertEqual(code, 0, err[-2000:])
            outputs.append([json.loads(l) for l in (work / f"pred{k}" / "test.jsonl").read_text().splitlines()])
        self.assertEqual(outputs[0], outputs[1])  # greedy: the same generations every run
        self.assertEqual(len(outputs[0]), 12)
        for row in outputs[0]:
            self.assertIsInstance(row["generated"], str)
            self.assertGreater(row["nll"], 0)
            self.assertEqual(row["tokens"], 4 if row["id"] in {f"r{i}" for i in range(1, 12, 2)} else 3)

    def test_zero_steps_store_the_base_as_a_baseline(self) -> None:
        """steps 0: no training; with LoRA the adapters stay at zero, so the model answers as its base does."""
        work = Path(self.tmp.name) / "zero"
        work.mkdir()
        records = work / "train.jsonl"
        records.write_text("".join(json.dumps(conversation(i)) + "\n" for i in range(6)))
        code, lines, err = run_module("finetune", {"objective": "sft", "base": {"dir": str(self.base)}, "train": str(records), "validation": str(records), "output_dir": str(work / "out"), "checkpoint_dir": str(work / "ck"), "steps": 0, "batch_size": 2, "max_length": 32, "validate_every": 1, "lora": {"rank": 2, "alpha": 4}}, work)
        self.assertEqual(code, 0, err[-2000:])
        self.assertEqual([l["tempered"] for l in lines], ["metrics"])  # no step, no checkpoint
        metrics = lines[0]
        self.assertEqual((metrics["steps"], metrics["finalLoss"]), (0, None))
        self.assertGreater(metrics["final"]["valLoss"], 0)
        from safetensors.torch import load_file

        adapters = load_file(str(work / "out" / "adapter_model.safetensors"))
        self.assertTrue(all(float(t.abs().max()) == 0 for k, t in adapters.items() if "lora_B" in k))
        generations = {}
        for name, job in (("adapter", {"model_dir": str(work / "out"), "adapter": True, "base": {"dir": str(self.base)}}), ("base", {"model_dir": str(self.base)})):
            job = {**job, "objective": "sft", "records": {"test": str(records)}, "out_dir": str(work / name), "max_length": 32, "max_new_tokens": 4}
            code, _, err = run_module("predict", job, work)
            self.assertEqual(code, 0, err[-2000:])
            generations[name] = [(r["generated"], round(r["nll"], 4)) for r in map(json.loads, (work / name / "test.jsonl").read_text().splitlines())]
        self.assertEqual(generations["adapter"], generations["base"])

    def test_a_causal_lm_continues_the_first_half_of_each_text(self) -> None:
        work = Path(self.tmp.name) / "lm"
        work.mkdir()
        records = work / "test.jsonl"
        texts = ["the mail " * 12, "win free money prize now offer " * 4, "hello team"]
        records.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
        job = {"objective": "causal-lm", "model_dir": str(self.base), "records": {"test": str(records)}, "out_dir": str(work / "pred"), "max_length": 64, "max_new_tokens": 5, "generate": True}
        code, _, err = run_module("predict", job, work)
        self.assertEqual(code, 0, err[-2000:])
        rows = [json.loads(l) for l in (work / "pred" / "test.generations.jsonl").read_text().splitlines()]
        # Texts under 16 tokens are skipped, as the tfjs engine does; the reference is the next 5 tokens.
        self.assertEqual([r["id"] for r in rows], ["t0", "t1"])
        self.assertEqual(rows[0]["reference"], "the mail the mail the")
        self.assertTrue(all(len(r["generated"].split()) <= 5 for r in rows))

    def test_a_tokenizer_without_a_chat_template_is_refused_at_once(self) -> None:
        work = Path(self.tmp.name) / "plain"
        tiny_llama(work / "base", chat_template=False)
        records = work / "train.jsonl"
        records.write_text(json.dumps(conversation(1)) + "\n")
        code, _, err = run_module("finetune", {"objective": "sft", "base": {"dir": str(work / "base")}, "train": str(records), "validation": None, "output_dir": str(work / "out"), "checkpoint_dir": str(work / "ck"), "steps": 1, "batch_size": 1}, work)
        self.assertEqual(code, 3, err[-2000:])
        self.assertIn("no chat template", err)
        self.assertIn("causal-lm", err)


if __name__ == "__main__":
    unittest.main()
