"""A tiny BERT checkpoint built from a config, with a word-level tokenizer: a real Hugging Face
directory (config.json, model.safetensors, tokenizer.json) for tests, made without any download.

    python python/tests/tiny_base.py <dir> [llama|bpe-llama]
"""

import sys
from pathlib import Path


def tiny_bert(directory: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = "the a mail win prize now meeting notes attached hello free money offer team lunch report".split()
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    # BERT's template: [CLS] text [SEP], so windows and special-token masks behave as with a real BERT.
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tokenizer.save_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory, safe_serialization=True)


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_llama(directory: Path, chat_template: bool = True) -> None:
    """A tiny Llama (SmolLM2's architecture) with a word-level tokenizer and, unless told not to, a
    ChatML chat template like SmolLM2-Instruct's."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = "the a mail win prize now meeting notes attached hello free money offer team lunch report subject write line of this user assistant system".split()
    vocab = {t: i for i, t in enumerate(["<unk>", "<|im_start|>", "<|im_end|>", "<pad>", *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<pad>")
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)


# What the byte-level tokenizer of bpe_llama is trained on.
BPE_TEXTS = [
    "the meeting notes are attached, see the report",
    "win a free prize now! 100 dollars of money",
    "hello team, lunch at 12:30?",
    "write one line of this report for the user",
    "Subject: offer ends now",
]


def byte_level_tokenizer():
    """A byte-level BPE tokenizer (GPT-2's split, SmolLM2's special tokens) trained on BPE_TEXTS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(BPE_TEXTS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<|endoftext|>", bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def bpe_llama(directory: Path, tied: bool, vocab_padding: int = 0) -> None:
    """A tiny Llama with a byte-level tokenizer. Tied: SmolLM2's shape (tied head, 2 key/value heads
    for 4 query heads), its vocab padded past the tokenizer's; untied: one key/value head per head."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_level_tokenizer()
    tokenizer.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer) + vocab_padding, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2 if tied else 4, max_position_embeddings=256, rope_theta=50000.0,
        rms_norm_eps=1e-5, tie_word_embeddings=tied, initializer_range=0.1,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # norms away from 1, so a norm stored wrong shows in the logits
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.uniform_(0.5, 1.5)
    model.save_pretrained(directory, safe_serialization=True)


class TinyChatModelCase:
    """A test-case mixin: a tiny chat Llama (tiny_llama) in a temporary directory for the whole class,
    as `cls.base`, with its tokenizer as `cls.tokenizer`."""

    @classmethod
    def setUpClass(cls) -> None:
        import tempfile

        from transformers import AutoTokenizer

        cls.tmp = tempfile.TemporaryDirectory()
        cls.base = Path(cls.tmp.name) / "base"
        tiny_llama(cls.base)
        cls.tokenizer = AutoTokenizer.from_pretrained(cls.base)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    kind = sys.argv[2] if len(sys.argv) > 2 else "bert"
    if kind == "llama":
        tiny_llama(target)
    elif kind == "bpe-llama":
        bpe_llama(target, tied=True)
    else:
        tiny_bert(target)
