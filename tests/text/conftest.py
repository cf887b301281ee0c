"""Tokenizers for the text-layer tests: the real SmolLM2 one, and small ones trained here.

No OPT/GPT-2 tokenizer can be downloaded in our build environment, so the
GPT-2/OPT-style byte-level BPE is trained on text made in this file, with
GPT-2's pre-tokenizer and post-processor (``ByteLevel(trim_offsets=True)``,
whose offset trimming the text layer must undo). Variants swap in other
pre-tokenizers on the same vocabulary: Llama-3's split regex, Hugging Face
SmolLM2's digit splitting, and two that are not byte-level (Metaspace and a
BERT WordPiece with a normalizer) for "any fast tokenizer".
"""

from __future__ import annotations

import pytest
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from vqlsp.text.tokenizer import TextTokenizer

from .strategies import FRAGMENTS

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def training_corpus() -> list[str]:
    sentence = "the writer keeps on writing a sentence about language and models it's we'll don't"
    words = sentence.split()
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    return lines * 20 + ["".join(FRAGMENTS)] * 5


def byte_level_bpe(pre_tokenizer: pre_tokenizers.PreTokenizer | None = None) -> Tokenizer:
    """A GPT-2/OPT-style byte-level BPE (vocabulary ~600) trained on ``training_corpus``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["</s>", "<pad>"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    if pre_tokenizer is not None:
        tokenizer.pre_tokenizer = pre_tokenizer
    return tokenizer


def metaspace_bpe() -> Tokenizer:
    """A SentencePiece-like BPE whose pre-tokenizer marks only the text's start specially."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>"], show_progress=False)
    tokenizer.train_from_iterator(training_corpus(), trainer)
    return tokenizer


def bert_wordpiece() -> Tokenizer:
    """A BERT-style WordPiece: lowercasing, accent-stripping normalizer; drops whitespace."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[UNK]", "[CLS]", "[SEP]"], show_progress=False
    )
    tokenizer.train_from_iterator(training_corpus(), trainer)
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    return tokenizer


BYTE_LEVEL = ("gpt2", "llama3_split", "hf_smollm2_digits")
OTHER = ("metaspace", "bert")


@pytest.fixture(scope="session")
def made_tokenizers() -> dict[str, Tokenizer]:
    """The tokenizers built here, by name (raw ``tokenizers.Tokenizer``s)."""
    return {
        "gpt2": byte_level_bpe(),
        "llama3_split": byte_level_bpe(
            pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            )
        ),
        "hf_smollm2_digits": byte_level_bpe(
            pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Digits(individual_digits=True),
                    pre_tokenizers.ByteLevel(add_prefix_space=False),
                ]
            )
        ),
        "metaspace": metaspace_bpe(),
        "bert": bert_wordpiece(),
    }


@pytest.fixture(scope="session")
def smollm2(default_tokenizer: Tokenizer) -> TextTokenizer:
    """The default model's tokenizer (SmolLM2 byte-level BPE, from its GGUF)."""
    return TextTokenizer(default_tokenizer)


@pytest.fixture(scope="session")
def text_tokenizer(request: pytest.FixtureRequest, made_tokenizers) -> TextTokenizer:
    """Indirect-parametrized: ``"smollm2"`` or a name from ``made_tokenizers``."""
    name = request.param
    if name == "smollm2":
        return request.getfixturevalue("smollm2")
    return TextTokenizer(made_tokenizers[name])
