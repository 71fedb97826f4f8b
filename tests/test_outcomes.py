"""Outcome sets: the reference format, the project format, the shipped set, clear errors."""

import json

import pytest
from conftest import OPTIONS_HIERARCHICAL

from utility_jax.outcomes import OutcomeSetError, load_outcomes


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
