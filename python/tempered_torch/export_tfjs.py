"""A tfjs-engine model as a plain Hugging Face GPT-2 checkpoint directory, with its tokenizer.

    python -m tempered_torch.export_tfjs job.json

The job (written by activities/export/tfjs-gpt2.ts):
    weights        a file of little-endian float32 tensors, LoRA adapters already merged
    tensors        [{name, shape, offset, byteLength}]: Tempered's names (`wte`, `h.0.ln_1.gamma`, ...)
    gpt2           GPT2Config keyword arguments (the TypeScript side maps Tempered's model config)
    tokenizer      Tempered's tokenizer JSON ({"format": "tempered.bpe", specialTokens, merges})
    labels         a classifier's class names (index = class id); absent for a language model
    out_dir        where config.json, model.safetensors, the tokenizer files (and a classifier's
                   classifier.safetensors) are written

The model is built in transformers and written by its own save_pretrained; the tokenizer is built
in `tokenizers` and written by PreTrainedTokenizerFast.save_pretrained. Prints one JSON line: the
files written and the architecture.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .finetune import BadInput, job_main

# The classifier head's file and how it pools (no transformers class pools by the mean).
CLASSIFIER_FILE = "classifier.safetensors"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte alphabet, the one of Tempered's merges (activities/ml/tokenizer.ts) and of ByteLevel."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {}
    shifted = 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


def tokenizer_vocab(tokenizer: dict[str, Any]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Tempered's implied ids (special tokens, then the 256 bytes, then each new merge result) as a vocab and merges."""
    if tokenizer.get("format") != "tempered.bpe" or tokenizer.get("version") != 1 or tokenizer.get("preTokenizer") != "gpt2":
        raise BadInput(f"the model's tokenizer is not a tempered.bpe v1 tokenizer with the gpt2 pre-tokenizer (format {tokenizer.get('format')!r}, version {tokenizer.get('version')!r})")
    specials: list[str] = tokenizer["specialTokens"]
    # Ordinary tokens by their byte-level spelling; a merge whose result is already spelled reuses its id.
    ordinary: dict[str, int] = {}
    for char in bytes_to_unicode().values():
        ordinary[char] = len(specials) + len(ordinary)
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for rank, merge in enumerate(tokenizer["merges"]):
        parts = merge.split(" ")
        if len(parts) != 2 or parts[0] not in ordinary or parts[1] not in ordinary:
            raise BadInput(f"tokenizer merge {rank} {merge!r} is not two known tokens separated by one space")
        pair = (parts[0], parts[1])
        if pair not in seen:  # Tempered applies a repeated pair at its first rank
            seen.add(pair)
            merges.append(pair)
        ordinary.setdefault(pair[0] + pair[1], len(specials) + len(ordinary))
    clashes = sorted(token for token in specials if token in ordinary)
    if clashes:
        raise BadInput(
            f"the tokenizer's special token(s) {clashes} are spelled like ordinary tokens it also has (ids "
            f"{[ordinary[t] for t in clashes]}); a Hugging Face vocabulary maps each spelling to one id, so it cannot hold both: "
            "retrain the tokenizer with special tokens that are not text of the corpus (the defaults <pad>, <bos>, <eos>, <unk> on a corpus without them)"
        )
    vocab = {token: i for i, token in enumerate(specials)} | ordinary
    return vocab, merges


def build_tokenizer(tokenizer: dict[str, Any], context: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab, merges = tokenizer_vocab(tokenizer)
    specials: list[str] = tokenizer["specialTokens"]
    # Byte-level BPE with GPT-2's pre-tokenizer, no prefix space, no unknown token (every byte is a token).
    model = models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False)
    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    for token in specials:
        if backend.token_to_id(token) != specials.index(token):
            raise AssertionError(f"special token {token!r} got id {backend.token_to_id(token)}, expected {specials.index(token)}")
    named = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=context,
        # Tempered encodes "<eos>" in text as text, never as the special id (data cannot inject control tokens).
        split_special_tokens=True,
        clean_up_tokenization_spaces=False,
        **{key: token for key, token in named.items() if token in specials},
    )


def read_tensors(job: dict[str, Any], work: Path) -> dict[str, torch.Tensor]:
    blob = (work / job["weights"]).read_bytes()
    tensors: dict[str, torch.Tensor] = {}
    for t in job["tensors"]:
        values = np.frombuffer(blob, dtype="<f4", count=t["byteLength"] // 4, offset=t["offset"])
        tensors[t["name"]] = torch.from_numpy(values.astype(np.float32).reshape(t["shape"]))
    return tensors


def gpt2_name(name: str) -> str:
    """Tempered's weight names are GPT-2's but for the embeddings' `.weight` and LayerNorm's gamma/beta."""
    if name in ("wte", "wpe"):
        return f"{name}.weight"
    return name.replace(".gamma", ".weight").replace(".beta", ".bias")


def run(job: dict[str, Any], work: Path) -> dict[str, Any]:
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

    tensors = read_tensors(job, work)
    labels: list[str] | None = job.get("labels")
    head = {name: tensors.pop(name) for name in [n for n in tensors if n.startswith("cls.")]}
    extra: dict[str, Any] = {}
    if labels:
        extra = {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}, "tempered_classifier": {"file": CLASSIFIER_FILE, "pooling": "mean over the non-pad positions", "logits": "mean(last_hidden_state[:length]) @ score.weight.T + score.bias"}}
    config = GPT2Config(**job["gpt2"], **extra)
    model = GPT2Model(config) if labels else GPT2LMHeadModel(config)
    prefix = "" if labels else "transformer."
    state = {prefix + gpt2_name(name): value for name, value in tensors.items()}
    expected = set(model.state_dict())
    unknown = sorted(set(state) - expected)
    missing = sorted(expected - set(state) - {"lm_head.weight"})  # the LM head is tied to wte
    if unknown or missing:
        raise BadInput(f"the weights do not map onto GPT-2: unknown {unknown}, missing {missing}")
    model.load_state_dict(state, strict=False)
    if not labels and model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
        raise AssertionError("GPT2LMHeadModel's lm_head is not tied to wte")
    model.eval()
    out = Path(job["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if labels:
        if set(head) != {"cls.weight", "cls.bias"}:
            raise BadInput(f"a classifier's head must be cls.weight and cls.bias, found {sorted(head)}")
        # nn.Linear's layout [out, in]; Tempered's is [in, out].
        save_file({"score.weight": head["cls.weight"].T.contiguous(), "score.bias": head["cls.bias"].contiguous()}, str(out / CLASSIFIER_FILE), metadata={"format": "pt", "pooling": "mean"})
    build_tokenizer(job["tokenizer"], config.n_positions).save_pretrained(out)
    # transformers 5 writes its own class name, TokenizersBackend; PreTrainedTokenizerFast is what
    # 4.x (most serving stacks) knows, and 5 loads it as the same class.
    tokenizer_config = out / "tokenizer_config.json"
    tokenizer_config.write_text(json.dumps({**json.loads(tokenizer_config.read_text(encoding="utf-8")), "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2) + "\n", encoding="utf-8")
    if job.get("peft"):
        write_peft(job["peft"], work, config)
        out = Path(job["peft"]["out_dir"])
    result = {"files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()), "architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())}
    print(json.dumps({"tempered": "metrics", **result}), flush=True)
    return result


# Tempered's LoRA targets and the GPT-2 module each sits on; query, key and value share the fused c_attn.
PEFT_MODULES = {"query": "attn.c_attn", "key": "attn.c_attn", "value": "attn.c_attn", "output": "attn.c_proj", "mlpIn": "mlp.c_fc", "mlpOut": "mlp.c_proj"}
QKV = ("query", "key", "value")


def write_peft(peft: dict[str, Any], work: Path, config) -> None:
    """A tfjs LoRA model's adapters as PEFT LoRA over GPT-2 (fan_in_fan_out: Conv1D's [in, out]).
    Tempered adds scale·x·A·B (A [in, r], B [r, out], scale alpha/r); PEFT adds
    (lora_alpha/R)·x·lora_Aᵀ·lora_Bᵀ. One target maps as lora_A = Aᵀ, lora_B = Bᵀ. On the fused
    c_attn, the query/key/value adapters become one of rank R = r·(their number): lora_A stacks
    their Aᵀ, lora_B places each Bᵀ in its third of the output rows (zeros elsewhere), so each third
    gets exactly its own update; rank_pattern and alpha_pattern keep every module's scale alpha/r."""
    from safetensors.torch import save_file

    rank, alpha, targets = int(peft["rank"]), float(peft["alpha"]), list(peft["targets"])
    scale = alpha / rank
    tensors = read_tensors({"weights": peft["weights"], "tensors": peft["tensors"]}, work)
    d = config.n_embd
    state: dict[str, torch.Tensor] = {}
    fused = [t for t in QKV if t in targets]
    for layer in range(config.n_layer):
        stem = f"base_model.model.transformer.h.{layer}"
        adapter = lambda target, part: tensors[f"h.{layer}.{'mlp' if target.startswith('mlp') else 'attn'}.lora_{target}.{part}"]
        if fused:
            a = torch.cat([adapter(t, "A").T for t in fused])  # [R, in]
            b = torch.zeros(3 * d, rank * len(fused))
            for i, t in enumerate(fused):
                third = QKV.index(t)
                b[third * d : (third + 1) * d, i * rank : (i + 1) * rank] = adapter(t, "B").T
            state[f"{stem}.attn.c_attn.lora_A.weight"], state[f"{stem}.attn.c_attn.lora_B.weight"] = a.contiguous(), b
        for t in [t for t in targets if t not in QKV]:
            state[f"{stem}.{PEFT_MODULES[t]}.lora_A.weight"] = adapter(t, "A").T.contiguous()
            state[f"{stem}.{PEFT_MODULES[t]}.lora_B.weight"] = adapter(t, "B").T.contiguous()
    out = Path(peft["out_dir"])
    save_file(state, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    modules = sorted({PEFT_MODULES[t] for t in targets})
    pattern = {"attn.c_attn": rank * len(fused)} if fused else {}
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "base",
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": float(peft.get("dropout", 0.0)),
        "target_modules": modules,
        "fan_in_fan_out": True,
        "bias": "none",
        "rank_pattern": pattern,
        "alpha_pattern": {key: scale * value for key, value in pattern.items()},
        "inference_mode": True,
    }
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    return job_main(argv, "export_tfjs", lambda path: run(json.loads(Path(path).read_text(encoding="utf-8")), Path(path).parent))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
