"""A Hugging Face Llama or GPT-2 checkpoint as one GGUF file (F16 or Q8_0) for llama.cpp and Ollama.

    python -m tempered_torch.export_gguf <hf_dir> <out.gguf> [--type f16|q8_0]

`hf_dir` is what `from_pretrained` opens: safetensors (or pytorch_model.bin), or a folder holding
one GGUF file (a packaged base such as SmolLM2's). Prints one JSON line, what it wrote:

    {"tempered": "metrics", "file": ..., "type": "q8_0", "architecture": "llama", "tensors": 30,
     "bytes": 123, "tensorTypes": {"F32": 5, "Q8_0": 25}}

and exits 3 (finetune.EXIT_BAD_INPUT) for a model no retry can export: another architecture, a
tokenizer GGUF cannot describe.

The file is written by gguf-py (llama.cpp's own writer and quantizer), and follows what llama.cpp's
convert_hf_to_gguf.py does for LlamaForCausalLM, so llama.cpp reads it as one of its own:
  - tensor names from gguf.TensorNameMap (`model.layers.0.self_attn.q_proj.weight` →
    `blk.0.attn_q.weight`); no `output.weight` when the LM head is tied to the embeddings (llama.cpp
    then reads token_embd twice);
  - q_proj and k_proj rows permuted (`permute`): Hugging Face's rotary embedding rotates the two
    halves of each head, llama.cpp's rotates interleaved pairs;
  - tensor types as llama.cpp picks them: 1-D tensors and norms F32; matrices F16, or Q8_0 when
    their rows are whole 32-value blocks (else F16, as llama.cpp falls back);
  - the tokenizer as `gpt2` (byte-level BPE): tokens, token types, merges, special ids, whether BOS
    is added, the chat template; the pre-tokenizer named from what the tokenizer actually splits by.
The weights are read through transformers' from_pretrained, so every layout it loads (sharded,
bf16, GGUF) converts the same way; the converted tensors are held in memory until written.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from .finetune import EXIT_BAD_INPUT, BadInput, exit_with_parent

TYPES = ("f16", "q8_0")


def _architectures():
    import gguf

    # Mistral is Llama's computation and tensor names (llama.cpp converts it as Llama), but for its sliding window.
    return {"llama": gguf.MODEL_ARCH.LLAMA, "mistral": gguf.MODEL_ARCH.LLAMA, "gpt2": gguf.MODEL_ARCH.GPT2}

SUPPORTED = "Llama-architecture decoders (LlamaForCausalLM, e.g. SmolLM2; MistralForCausalLM, its context capped at its sliding window) and GPT-2 (GPT2LMHeadModel, what a tfjs model exports as), with a byte-level BPE tokenizer"

# Hugging Face rope types written: `default` and `linear` as metadata, `llama3` (Llama 3.1+) as
# llama.cpp's rope_freqs tensor. `yarn` and others need keys not written here, so such models are
# refused, not exported wrong.
ROPE_TYPES = ("default", "linear", "llama3")


def pre_tokenizer_names() -> dict[tuple, str]:
    """llama.cpp's names (tokenizer.ggml.pre) for the byte-level pre-tokenizers it splits the same way."""
    llama3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    return {
        (("ByteLevel", True),): "gpt-2",
        (("Digits", True), ("ByteLevel", True)): "smollm",  # GPT-2's split after each digit alone
        (("Split", llama3, "Isolated"), ("ByteLevel", False)): "llama-bpe",
    }


def describe_pre_tokenizer(pre: dict[str, Any] | None) -> tuple:
    """A pre-tokenizer (tokenizer.json's) as the steps that decide how text is split."""
    if pre is None:
        return ()
    if pre.get("type") == "Sequence":
        return tuple(step for p in pre["pretokenizers"] for step in describe_pre_tokenizer(p))
    kind = pre.get("type")
    if kind == "ByteLevel":
        # add_prefix_space would put a space before the text; llama.cpp's gpt2 vocabularies never do.
        return (("ByteLevel", bool(pre.get("use_regex", True))),) if not pre.get("add_prefix_space") else (("ByteLevel+prefix space",),)
    if kind == "Digits":
        return (("Digits", bool(pre.get("individual_digits"))),)
    if kind == "Split":
        pattern = pre.get("pattern", {})
        return (("Split", pattern.get("Regex", pattern.get("String")), pre.get("behavior")),)
    return ((kind,),)


def tokenizer_metadata(tokenizer, vocab_size: int) -> tuple[str, list[str], list[int]]:
    """(tokenizer.ggml.pre, tokens, token types) of a byte-level BPE tokenizer, as llama.cpp's
    get_vocab_base writes them: ids the tokenizer lacks up to the model's vocab_size become unused
    `[PAD<id>]` tokens; added tokens are control tokens when special, user-defined otherwise."""
    import gguf

    if not getattr(tokenizer, "is_fast", False):
        raise BadInput(f"the tokenizer ({type(tokenizer).__name__}) has no tokenizers backend, so its vocabulary cannot be read as byte-level BPE; GGUF export writes tokenizer.ggml.model gpt2")
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model_type = backend["model"].get("type")
    steps = describe_pre_tokenizer(backend.get("pre_tokenizer"))
    pre = pre_tokenizer_names().get(steps)
    if model_type != "BPE" or pre is None or backend.get("normalizer") is not None:
        raise BadInput(
            f"the tokenizer is {model_type} with pre-tokenizer {[s[0] for s in steps] or 'none'} and normalizer {(backend.get('normalizer') or {}).get('type')}; "
            "GGUF export writes byte-level BPE (tokenizer.ggml.model gpt2) with a pre-tokenizer llama.cpp names: "
            f"{', '.join(sorted(set(pre_tokenizer_names().values())))} (ByteLevel, GPT-2's split; digits one by one; Llama 3's split), and no normalizer"
        )
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise BadInput(f"the tokenizer has ids up to {max(vocab.values())} but the model only {vocab_size} embeddings: the checkpoint mixes a model and another tokenizer")
    by_id = {i: token for token, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return pre, tokens, types


def add_tokenizer(writer, tokenizer, vocab_size: int) -> None:
    """The tokenizer's metadata: vocabulary, merges, special ids and chat template (gguf.SpecialVocab
    reads them from the tokenizer's saved files, as convert_hf_to_gguf.py does)."""
    import gguf

    pre, tokens, types = tokenizer_metadata(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as saved:
        # Saved again rather than read from the source folder: a GGUF source has no tokenizer.json.
        tokenizer.save_pretrained(saved)
        special = gguf.SpecialVocab(saved, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise BadInput("the tokenizer has no merges; a byte-level BPE vocabulary needs them")
    # What the tokenizer does, not what its config says: llama.cpp adds BOS/EOS by these flags.
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    framed = tokenizer("a")["input_ids"]
    special.add_special_token["bos"] = tokenizer.bos_token_id is not None and framed[:1] == [tokenizer.bos_token_id] and plain[:1] != framed[:1]
    special.add_special_token["eos"] = tokenizer.eos_token_id is not None and framed[-1:] == [tokenizer.eos_token_id] and plain[-1:] != framed[-1:]
    if special.chat_template is None and tokenizer.chat_template is not None:
        special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer, quiet=True)


def permute(weights, n_head: int):
    """q_proj/k_proj rows from Hugging Face's rotary layout (each head's first half, then its second)
    to llama.cpp's (pairs interleaved); `n_head` is the heads the rows hold (key/value heads for k)."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def tensor_type(name: str, data, requested):
    """llama.cpp's choice (convert_hf_to_gguf.py, prepare_tensors): norms and 1-D tensors F32,
    matrices the requested type."""
    import gguf

    if data.ndim <= 1 or name.endswith("_norm.weight"):
        return gguf.GGMLQuantizationType.F32
    return requested


def find_weights(directory: Path) -> str | None:
    """The GGUF file to load with gguf_file=, or None for a folder of safetensors / .bin weights."""
    if not directory.is_dir():
        raise BadInput(f"{directory} is not a directory; give a Hugging Face checkpoint directory")
    names = sorted(p.name for p in directory.iterdir())
    if any(n.endswith(".safetensors") or n.endswith(".bin") for n in names):
        return None
    ggufs = [n for n in names if n.endswith(".gguf")]
    if len(ggufs) == 1:
        return ggufs[0]
    if ggufs:
        raise BadInput(f"{directory} holds several GGUF files {ggufs} and no safetensors; give a directory with one model")
    raise BadInput(f"{directory} has no weights (*.safetensors, pytorch_model.bin or one GGUF file); files: {names}")


def rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", "default")
    if rope_type not in ROPE_TYPES:
        raise BadInput(f"rope type {rope_type!r} is not exported (it needs llama.cpp's extra rope tensors or keys); GGUF export supports rope types {list(ROPE_TYPES)}")
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def llama_hparams(writer, config):
    """A Llama's hyperparameters as llama.cpp reads them; returns its tensor transform (q/k permuted)
    and the tensors it adds (llama3 rope's rope_freqs)."""
    theta = rope_theta(config)
    n_head, n_kv_head = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    writer.add_block_count(config.num_hidden_layers)
    # llama.cpp's Llama attends to the whole context; a Mistral attends to its last `sliding_window`
    # tokens. Up to the window they compute the same, so the context the file declares stops there.
    window = getattr(config, "sliding_window", None)
    writer.add_context_length(min(config.max_position_embeddings, window) if window else config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv_head)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(theta)
    writer.add_rope_dimension_count(head_dim)
    params = getattr(config, "rope_parameters", None) or {}
    if params.get("rope_type") == "linear":
        import gguf

        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(params["factor"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)

    def transform(hf_name: str, data):
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            return permute(data, n_head)
        if hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            return permute(data, n_kv_head)
        return data

    extra = {"rope_freqs.weight": llama3_rope_factors(config, head_dim, theta)} if params.get("rope_type") == "llama3" else {}
    return transform, extra


def llama3_rope_factors(config, head_dim: int, theta: float):
    """Llama 3's rope scaling as llama.cpp takes it: per frequency, the factor its rotation angle is
    divided by (rope_freqs). Taken from transformers' own llama3 frequencies, so the file rotates as
    the checkpoint does: factor_i = default_inv_freq_i / llama3_inv_freq_i."""
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaled, attention_factor = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    if abs(float(attention_factor) - 1.0) > 1e-9:
        raise BadInput(f"llama3 rope with attention factor {attention_factor}: llama.cpp's Llama applies none")
    default = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim))
    return (default / scaled.to(torch.float32)).to(torch.float32)


def gpt2_hparams(writer, config):
    """GPT-2's hyperparameters (convert_hf_to_gguf.py's GPT2Model); returns its tensor transform:
    Conv1D weights, stored [in, out], transposed to llama.cpp's [out, in] (and no added tensors). (A tfjs model exports as
    GPT-2, tanh GELU, which is the GELU llama.cpp's GPT-2 computes.)"""
    if getattr(config, "activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise BadInput(f"GPT-2 with activation {config.activation_function!r}: llama.cpp's GPT-2 computes tanh GELU (gelu_new)")
    writer.add_block_count(config.n_layer)
    writer.add_context_length(config.n_positions)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(config.n_inner or 4 * config.n_embd)
    writer.add_head_count(config.n_head)
    writer.add_layer_norm_eps(config.layer_norm_epsilon)
    conv1d = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
    return (lambda hf_name, data: data.transpose(0, 1).contiguous() if hf_name.endswith(conv1d) else data), {}


def export(hf_dir: str | Path, out_file: str | Path, type_name: str = "f16") -> dict[str, Any]:
    """Writes `hf_dir`'s model as GGUF to `out_file`; returns what it wrote (the JSON line's fields)."""
    import gguf
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if type_name not in TYPES:
        raise BadInput(f"GGUF type {type_name!r} is not one of {list(TYPES)}")
    directory = Path(hf_dir)
    gguf_file = find_weights(directory)
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        config = AutoConfig.from_pretrained(directory, **kwargs)
    except (ValueError, KeyError, OSError) as err:
        raise BadInput(f"{directory}: transformers cannot read its config ({err})") from err
    architectures = getattr(config, "architectures", None) or []
    architectures_supported = _architectures()
    if config.model_type not in architectures_supported:
        found = architectures[0] if architectures else type(config).__name__
        raise BadInput(f"{directory} is a {found} (model_type {config.model_type!r}); GGUF export supports {SUPPORTED}")
    arch = architectures_supported[config.model_type]

    tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype="auto", **kwargs)
    except ValueError as err:
        raise BadInput(f"{directory} has no language-model head ({err}); GGUF export writes language models") from err
    tied = bool(model.config.tie_word_embeddings)

    file_type = gguf.LlamaFileType.MOSTLY_F16 if type_name == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    requested = gguf.GGMLQuantizationType.F16 if type_name == "f16" else gguf.GGMLQuantizationType.Q8_0
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(directory.name)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    transform, extra = (llama_hparams if arch == gguf.MODEL_ARCH.LLAMA else gpt2_hparams)(writer, config)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    add_tokenizer(writer, tokenizer, config.vocab_size)

    names = gguf.TensorNameMap(arch, config.num_hidden_layers)
    types: Counter[str] = Counter()
    unknown: list[str] = []

    def add(name: str, data) -> None:
        array = data.numpy()
        qtype = tensor_type(name, array, requested)
        try:
            packed = gguf.quants.quantize(array, qtype)
        except gguf.QuantError:
            # Rows that are not whole Q8_0 blocks (32 values): F16, as convert_hf_to_gguf.py falls back.
            qtype = gguf.GGMLQuantizationType.F16
            packed = gguf.quants.quantize(array, qtype)
        writer.add_tensor(name, packed, raw_dtype=qtype)
        types[qtype.name] += 1

    with torch.no_grad():
        for hf_name, tensor in model.state_dict().items():
            if tied and hf_name == "lm_head.weight" and arch == gguf.MODEL_ARCH.LLAMA:
                continue  # llama.cpp's Llama uses token_embd when output.weight is absent
            if hf_name.endswith((".attn.bias", ".attn.masked_bias")):
                continue  # GPT-2's causal-mask buffers in older checkpoints, not weights
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if name is None:
                unknown.append(hf_name)
                continue
            add(name, transform(hf_name, tensor.to(torch.float32)))
        for name, data in extra.items():
            add(name, data)
    if unknown:
        raise BadInput(f"tensors with no GGUF name for {gguf.MODEL_ARCH_NAMES[arch]}: {unknown}; is this a variant with extra weights?")

    writer.write_header_to_file(path=out)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"file": str(out), "type": type_name, "architecture": gguf.MODEL_ARCH_NAMES[arch], "tensors": sum(types.values()), "bytes": out.stat().st_size, "tensorTypes": dict(sorted(types.items()))}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tempered_torch.export_gguf", description="A Hugging Face Llama checkpoint as one GGUF file.")
    parser.add_argument("hf_dir", help="the checkpoint directory (safetensors, or one GGUF file)")
    parser.add_argument("out", help="the GGUF file to write")
    parser.add_argument("--type", choices=TYPES, default="f16", help="tensor type of the weight matrices (default f16)")
    args = parser.parse_args(argv[1:])
    exit_with_parent()
    try:
        result = export(args.hf_dir, args.out, args.type)
    except BadInput as err:
        print(f"tempered_torch: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps({"tempered": "metrics", **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
