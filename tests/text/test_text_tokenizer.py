"""Which tokenizers the text layer takes, how it sets them up, and that it never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from vqlsp.text import tokenizer as tokenizer_module
from vqlsp.text.document import TokenizedDocument
from vqlsp.text.tokenizer import TextTokenizer, UnsupportedTokenizer, load_tokenizer

from .strategies import texts


def test_accepts_tokenizers_paths_directories_and_fast_tokenizers(made_tokenizers, tmp_path):
    raw = made_tokenizers["gpt2"]
    raw.save(str(tmp_path / "tokenizer.json"))

    class FastTokenizer:  # what transformers' *Fast classes look like to us
        backend_tokenizer = raw

    text = "the writer's 42 sentences"
    expected = raw.encode(text, add_special_tokens=False).ids
    for source in [raw, tmp_path / "tokenizer.json", str(tmp_path), FastTokenizer()]:
        assert load_tokenizer(source).encode_ids(text) == expected
    shared = TextTokenizer(raw)
    assert load_tokenizer(shared) is shared


@pytest.mark.parametrize("source", [object(), 42, {"model": "BPE"}])
def test_refuses_what_is_not_a_fast_tokenizer(source):
    with pytest.raises(UnsupportedTokenizer, match="fast tokenizer"):
        TokenizedDocument("text", source)


def test_refuses_files_that_are_not_tokenizer_json(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 1}))
    (tmp_path / "broken.json").write_text("{not json")
    for name in ["vocab.json", "broken.json", "missing.json"]:
        with pytest.raises(UnsupportedTokenizer):
            load_tokenizer(tmp_path / name)


def test_caller_tokenizer_settings_are_left_alone(made_tokenizers):
    raw = Tokenizer.from_str(made_tokenizers["gpt2"].to_str())
    raw.enable_truncation(max_length=3)
    TextTokenizer(raw)
    assert raw.truncation is not None and raw.post_processor is not None


def test_documents_are_never_truncated_and_spans_cover_leading_spaces(made_tokenizers):
    raw = Tokenizer.from_str(made_tokenizers["gpt2"].to_str())
    raw.enable_truncation(max_length=3)  # a tokenizer.json may carry a limit
    doc = TokenizedDocument("  the  writer keeps writing", raw)
    assert len(doc) > 3
    # GPT-2's ByteLevel(trim_offsets=True) post-processor would give (2, 2) for a lone space.
    starts = [s for s, _ in doc.spans]
    ends = [e for _, e in doc.spans]
    assert starts[0] == 0 and ends[-1] == len(doc.text)
    assert all(s < e for s, e in doc.spans)


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_special_token_strings_are_plain_text(text_tokenizer, default_tokenizer):
    control = default_tokenizer.token_to_id("<|endoftext|>")
    doc = TokenizedDocument("before <|endoftext|> after", text_tokenizer)
    assert control not in doc.ids
    doc.apply_change(0, 0, "<|im_start|>")
    assert default_tokenizer.token_to_id("<|im_start|>") not in doc.ids


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_matches_the_library_encode_on_ordinary_text(text_tokenizer, default_tokenizer):
    text = "Dear editor,\r\n\tthe draft's 3rd section (p. 12) reads well 👍🏽 — mostly.  "
    assert text_tokenizer.encode_ids(text) == default_tokenizer.encode(text).ids


def test_the_text_layer_does_not_import_torch(made_tokenizers, tmp_path):
    made_tokenizers["gpt2"].save(str(tmp_path / "tokenizer.json"))
    code = (
        "import sys\n"
        "from vqlsp.text import TokenizedDocument, LineIndex, HeadWindow\n"
        f"doc = TokenizedDocument('some text', {str(tmp_path / 'tokenizer.json')!r})\n"
        "doc.apply_change(0, 4, 'more')\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("text_tokenizer", ["smollm2", "gpt2", "llama3_split", "hf_smollm2_digits", "metaspace", "bert"],
                         indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts(max_pieces=60), piece_chars=st.integers(1, 40))
def test_a_long_text_encoded_in_pieces_is_the_text_encoded_whole(text_tokenizer, text, piece_chars):
    whole = text_tokenizer.encode(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokenizer_module, "LONG_TEXT_CHARS", 0)  # every text takes the pieces' path
        patch.setattr(tokenizer_module, "BATCH_PIECES", 3)  # and several encode_batch calls
        pieces = text_tokenizer.encode(text, piece_chars=piece_chars)
    assert pieces == whole


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_a_text_longer_than_32_bit_offsets_is_refused(text_tokenizer):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokenizer_module, "MAX_TEXT_CHARS", 10)
        assert text_tokenizer.encode("ten chars!").ids.tolist() == text_tokenizer.encode_ids("ten chars!")
        with pytest.raises(tokenizer_module.TextTooLong, match="11 characters"):
            text_tokenizer.encode("eleven char")


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_prose_is_cut_into_pieces_every_piece_chars(text_tokenizer):
    text = " ".join(f"The {i}th draft's section reads well, mostly.\n\n" for i in range(4000))
    starts = text_tokenizer._piece_starts(text, 4096)
    assert len(starts) >= len(text) // 4096 - 1
    assert all(text[s] == " " and not text[s - 1].isspace() for s in starts[1:])
    assert text_tokenizer.encode(text, piece_chars=4096).ids.tolist() == text_tokenizer.encode_ids(text)


def test_pieces_are_never_cut_inside_an_added_token(made_tokenizers):
    raw = Tokenizer.from_str(made_tokenizers["gpt2"].to_str())
    raw.add_tokens(["draft reads well"])  # matched on the raw text, spaces and all
    tokenizer = TextTokenizer(raw)
    text = "The draft reads well, mostly. " * 300
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokenizer_module, "LONG_TEXT_CHARS", 0)
        for piece_chars in range(1, 40):
            assert tokenizer.encode(text, piece_chars=piece_chars) == tokenizer.encode(text, piece_chars=len(text))
