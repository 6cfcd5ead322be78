"""A tiny BERT checkpoint built from a config, with a word-level tokenizer: a real Hugging Face
directory (config.json, model.safetensors, tokenizer.json) for tests, made without any download.

    python python/tests/tiny_base.py <dir> [llama]
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
    tiny_llama(target) if len(sys.argv) > 2 and sys.argv[2] == "llama" else tiny_bert(target)
