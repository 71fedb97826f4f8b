"""Outcome sets: the reference format, the project format, the shipped set, clear errors."""

import json

import pytest
from conftest import OPTIONS_HIERARCHICAL

from utility_jax.io.outcomes import OutcomeSetError, load_outcomes


def test_reference_format_ids_follow_file_order():
    o = load_outcomes(OPTIONS_HIERARCHICAL)
    raw = json.loads(OPTIONS_HIERARCHICAL.read_text())
    flat = [t for items in raw.values() for t in items]
    assert len(o) == 510 == len(flat)
    assert o.texts == flat and o.ids == list(range(510))
    assert len(set(o.categories)) == 30
    assert o.categories[0] == next(iter(raw))


def test_shipped_default_set():
    o = load_outcomes()
    assert len(o) >= 80
    assert len(set(o.categories)) >= 15
    money = [x for x in o.outcomes if "amount" in x.extra]
    assert len(money) >= 10 and all(x.category == "Money" for x in money)
    assert money[5].text == "You receive $1,000 to spend however you like."
    # none of the paper's outcome texts are shipped
    paper = set(load_outcomes(OPTIONS_HIERARCHICAL).texts)
    assert not paper & set(o.texts)


def test_project_format_json_and_yaml(tmp_path):
    p = tmp_path / "o.json"
    p.write_text(
        json.dumps(
            {"outcomes": [{"id": 7, "text": "x", "category": "c", "amount": 3}, {"text": "y"}]}
        )
    )
    o = load_outcomes(p)
    assert o.ids == [7, 1] and o[0].extra == {"amount": 3} and o[1].category == "uncategorised"
    y = tmp_path / "o.yaml"
    y.write_text("- {text: a, category: k}\n- {text: b, category: k}\n")
    assert load_outcomes(y).texts == ["a", "b"]


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("bad.json", "{not json", "bad.json: not valid JSON"),
        ("bad.yaml", "a: [1,", "bad.yaml: not valid YAML"),
        ("empty.json", "{}", "empty.json: the outcome set is empty"),
        ("empty.yaml", "", "empty.yaml: the outcome set is empty"),
        ("dup.json", '{"c": ["x", "x"]}', r"dup.json: outcome 1 \(id=1\): duplicate outcome text"),
        (
            "nonstr.json",
            '{"c": ["x", 3]}',
            "nonstr.json: category 'c' entry 1: text must be a string",
        ),
        (
            "nonstr2.json",
            '{"outcomes": [{"text": 5}]}',
            r"nonstr2.json: outcome 0 \(id=0\): text must be a string",
        ),
        ("notext.json", '{"outcomes": [{"id": 1}]}', "notext.json: outcome 0 has no 'text'"),
        (
            "dupid.json",
            '{"outcomes": [{"id": 1, "text": "a"}, {"id": 1, "text": "b"}]}',
            "duplicate id",
        ),
        ("scalar.json", "3", "expected an object or a list"),
    ],
)
def test_errors_name_file_and_entry(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(OutcomeSetError, match=match):
        load_outcomes(p)


def test_missing_file(tmp_path):
    with pytest.raises(OutcomeSetError, match="nope.json: outcome file not found"):
        load_outcomes(tmp_path / "nope.json")


def test_plain_text_csv_and_string_list_formats(tmp_path):
    (tmp_path / "a.txt").write_text("# my outcomes\nYou get a cat.\n\n  You get a dog.  \n")
    o = load_outcomes(tmp_path / "a.txt")
    assert o.texts == ["You get a cat.", "You get a dog."] and o.categories == ["uncategorised"] * 2
    (tmp_path / "b.csv").write_text(
        'id,text,category,note\n5,You get a cat.,Pets,x\n7,"You get a dog, a big one.",Pets,y\n'
    )
    o = load_outcomes(tmp_path / "b.csv")
    assert [x.id for x in o.outcomes] == [5, 7] and o.texts[1] == "You get a dog, a big one."
    assert o.categories == ["Pets", "Pets"] and o.outcomes[0].extra == {"note": "x"}
    (tmp_path / "c.csv").write_text("text\nA happens.\nB happens.\n")
    assert [x.id for x in load_outcomes(tmp_path / "c.csv").outcomes] == [0, 1]
    (tmp_path / "d.json").write_text('["A happens.", "B happens.", "C happens."]')
    assert load_outcomes(tmp_path / "d.json").texts == ["A happens.", "B happens.", "C happens."]
    assert len(load_outcomes(tmp_path / "a.txt", limit=1)) == 1


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("dup.txt", "x\nYou get a cat.\nYou get a cat.\n", r"dup.txt: line 3: duplicate of line 2"),
        ("empty.txt", "# nothing\n\n", r"empty.txt: the outcome set is empty"),
        ("nohead.csv", "name\nfoo\n", r"nohead.csv: line 1: the header needs a 'text' column"),
        ("badid.csv", "id,text\nq,You get a cat.\n", r"badid.csv: line 2: id must be an integer"),
        ("short.csv", "id,text,category\n1,You get a cat.\n", r"short.csv: line 2: expected 3"),
        ("blank.csv", "text\n  \n", r"blank.csv: line 2: text is empty"),
        ("nums.json", "[1, 2]", r"nums.json: outcome 0 must be a string or an object"),
    ],
)
def test_text_and_csv_errors_name_the_file_and_line(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(OutcomeSetError, match=match):
        load_outcomes(tmp_path / name)


def test_a_folder_or_binary_file_is_a_clear_error(tmp_path):
    with pytest.raises(OutcomeSetError, match="is a folder, not an outcome file"):
        load_outcomes(tmp_path)
    (tmp_path / "x.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(OutcomeSetError, match="x.txt: not UTF-8 text"):
        load_outcomes(tmp_path / "x.txt")


def test_missing_paper_file_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("UTILITY_JAX_DATA", str(tmp_path / "data"))
    with pytest.raises(OutcomeSetError, match="utility-jax data fetch"):
        load_outcomes(tmp_path / "data" / "utility_analysis" / "options_hierarchical.json")


@pytest.mark.parametrize("name", ["o.txt", "o.csv", "o.json"])
def test_a_byte_order_mark_is_not_part_of_the_first_outcome(tmp_path, name):
    """Files saved by Excel or Notepad start with U+FEFF; it stayed in the first outcome."""
    body = {
        "o.txt": "You get a cat.\nYou get a dog.\n",
        "o.csv": "text\nYou get a cat.\nYou get a dog.\n",
        "o.json": '["You get a cat.", "You get a dog."]',
    }[name]
    p = tmp_path / name
    p.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert load_outcomes(p).texts[:2] == ["You get a cat.", "You get a dog."]
