"""sft packing (tempered_torch.chat.pack_sft / encode_packed and the fine-tune's `packing` job key)
on a tiny Llama with a ChatML template (tests/tiny_base.tiny_llama): a packed row computes exactly
what its conversations compute apart (no attention across them), the rows are a pure function of
the records, labels stay the assistant's tokens, and a packed fine-tune runs end to end.

Run: ``PYTHONPATH=python <env>/bin/python -m unittest discover -s python/tests -t python``.
"""

from __future__ import annotations

import contextlib
import io
import json
import unittest
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from tempered_torch import finetune
from tempered_torch.chat import IGNORE, encode_packed, encode_sft, pack_sft, sft_example
from tests.tiny_base import TinyChatModelCase

MAX_LENGTH = 64


def conversation(i: int) -> dict:
    """Conversations of 23 to 35 tokens: the prompt grows with i, the reply alternates."""
    prompt = "write the subject line of this mail " + "the mail " * (i % 7) + "win a prize now"
    return {"id": f"r{i}", "messages": [{"role": "system", "content": "team"}, {"role": "user", "content": prompt}, {"role": "assistant", "content": "free money offer" if i % 2 else "meeting notes"}]}


class PackingTest(TinyChatModelCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.records = [conversation(i) for i in range(12)]
        cls.rows = pack_sft(cls.tokenizer, cls.records, MAX_LENGTH)

    def test_rows_hold_every_conversation_once_within_max_length_and_are_a_function_of_the_records(self) -> None:
        self.assertEqual(sorted(i for r in self.rows for i in r["ids"]), sorted(r["id"] for r in self.records))
        self.assertLess(len(self.rows), len(self.records))
        self.assertTrue(any(len(r["ids"]) > 1 for r in self.rows))
        for row in self.rows:
            self.assertLessEqual(len(row["input_ids"]), MAX_LENGTH)
            self.assertEqual(sum(row["conversation_lengths"]), len(row["input_ids"]))
            self.assertEqual(len(row["labels"]), len(row["input_ids"]))
        self.assertEqual(pack_sft(self.tokenizer, self.records, MAX_LENGTH), self.rows)

    def test_each_conversation_keeps_its_tokens_and_learns_only_the_assistants(self) -> None:
        by_id = {r["id"]: r for r in self.records}
        for row in self.rows:
            start = 0
            for record_id, length in zip(row["ids"], row["conversation_lengths"]):
                ids, labels = sft_example(self.tokenizer, by_id[record_id], MAX_LENGTH)
                self.assertEqual(row["input_ids"][start : start + length], ids)
                # As apart, but the first label is never learned: no conversation predicts the next one's start.
                self.assertEqual(row["labels"][start : start + length], [IGNORE, *labels[1:]])
                learned = [t for t in row["labels"][start : start + length] if t != IGNORE]
                reply = "free money offer" if int(record_id[1:]) % 2 else "meeting notes"
                self.assertEqual(self.tokenizer.convert_ids_to_tokens(learned), [*reply.split(), "<|im_end|>"])
                start += length

    def test_a_conversation_longer_than_max_length_is_shortened_as_unpacked(self) -> None:
        long = {**conversation(1), "id": "long"}
        long["messages"][1]["content"] = "the mail " * 40
        rows = pack_sft(self.tokenizer, [conversation(0), long], 24)
        packed = next(r for r in rows if "long" in r["ids"])
        ids, labels = sft_example(self.tokenizer, long, 24)
        self.assertLessEqual(len(ids), 24)
        self.assertEqual(packed["ids"], ["long"])  # it fills a row of its own
        self.assertEqual(packed["input_ids"], ids)
        kept = [t for t in packed["labels"] if t != IGNORE]
        self.assertEqual(self.tokenizer.convert_ids_to_tokens(kept), ["free", "money", "offer", "<|im_end|>"])

    def test_a_packed_batch_computes_what_its_conversations_compute_apart(self) -> None:
        rows = sorted(self.rows, key=lambda r: -len(r["ids"]))[:3]
        self.assertGreater(len(rows[0]["ids"]), 1)
        batch = encode_packed(rows, self.tokenizer.pad_token_id)
        self.assertLess(len(rows[-1]["input_ids"]), batch["input_ids"].shape[1], "the batch should hold a padded row")
        self.assertEqual(finetune.batch_tokens(batch), sum(len(r["input_ids"]) for r in rows))
        by_id = {r["id"]: r for r in self.records}
        from peft import LoraConfig, get_peft_model

        for attention in ("sdpa", "eager", "lora"):
            with self.subTest(attention=attention):
                torch.manual_seed(0)
                model = AutoModelForCausalLM.from_pretrained(self.base, attn_implementation="eager" if attention == "eager" else "sdpa").eval()
                if attention == "lora":  # the adapter wrapper must hand use_cache=False on
                    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=2, lora_alpha=4, init_lora_weights=False)).eval()
                with torch.no_grad():
                    packed = model(**batch)
                    nll, count = 0.0, 0
                    for j, row in enumerate(rows):
                        start = 0
                        for record_id, length in zip(row["ids"], row["conversation_lengths"]):
                            alone = encode_sft(self.tokenizer, [by_id[record_id]], MAX_LENGTH)
                            out = model(**alone)
                            # The same logits at every token, so nothing crossed between conversations.
                            torch.testing.assert_close(packed.logits[j, start : start + length], out.logits[0], atol=1e-5, rtol=1e-5)
                            targets = int((alone["labels"][0, 1:] != IGNORE).sum())
                            nll += float(out.loss) * targets
                            count += targets
                            start += length
                self.assertAlmostEqual(float(packed.loss), nll / count, delta=1e-5)

    def test_a_packed_fine_tune_runs_and_reports_its_packing(self) -> None:
        work = Path(self.tmp.name) / "run"
        work.mkdir()
        records = work / "train.jsonl"
        records.write_text("".join(json.dumps({**r, "text": ""}) + "\n" for r in self.records))
        job = finetune.Job(objective="sft", base={"dir": str(self.base)}, train=str(records), validation=str(records), output_dir=str(work / "out"), checkpoint_dir=str(work / "ck"), steps=3, batch_size=2, max_length=MAX_LENGTH, validate_every=3, lr=1e-2, lora={"rank": 2, "alpha": 4}, threads=1, packing=True)
        runs = []
        for _ in range(2):
            with contextlib.redirect_stdout(io.StringIO()):
                runs.append(finetune.run(job))
        metrics = runs[0]
        self.assertEqual((metrics["packedRows"], metrics["packedConversations"]), (len(self.rows), 12))
        self.assertEqual(metrics["packingEfficiency"], round(sum(len(r["input_ids"]) for r in self.rows) / (len(self.rows) * MAX_LENGTH), 4))
        self.assertGreater(metrics["packingEfficiency"], 0.5)
        self.assertIn("valLoss", metrics["final"])
        self.assertEqual(runs[1]["finalLoss"], metrics["finalLoss"])  # the same rows, the same batches

    def test_packing_is_refused_for_objectives_other_than_sft(self) -> None:
        path = Path(self.tmp.name) / "job.json"
        path.write_text(json.dumps({"objective": "causal-lm", "base": {"dir": str(self.base)}, "train": "t", "validation": None, "output_dir": "o", "checkpoint_dir": "c", "steps": 1, "packing": True}))
        with self.assertRaisesRegex(finetune.BadInput, "remove packing"):
            finetune.Job.load(str(path))


if __name__ == "__main__":
    unittest.main()
