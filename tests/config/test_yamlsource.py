"""The YAML reader: values like YAML 1.1 minus its traps, every duplicate key, bounded aliases, positions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from mirage.config.yamlsource import MAX_FILE_BYTES, Source, YamlError, build, compose, decode, plain_scalar


def load(text: str) -> tuple[Any, list[tuple[int, int, str]]]:
    value, problems = build(compose(text))
    return value, [(p.line, p.col, p.message) for p in problems]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("hello", "hello"),
        ("true", True),
        ("off", False),
        ("Yes", True),
        ("~", None),
        ("null", None),
        ("42", 42),
        ("-7", -7),
        ("0x1f", 31),
        ("1_000", 1000),
        ("0.8", 0.8),
        ("1.5e3", 1500.0),
        ("1e3", "1e3"),  # YAML 1.1 floats need a dot
        ("2026-10-01", date(2026, 10, 1)),
        ("2026-10-01T08:30:00Z", datetime(2026, 10, 1, 8, 30, tzinfo=UTC)),
        ("22:00", "22:00"),  # YAML 1.1 would read 1320 (base 60)
        ("7:30", "7:30"),
        ("+5511987654321", "+5511987654321"),  # YAML 1.1 would read an int and drop the '+'
        ("2026-13-45", "2026-13-45"),
        ("não quero", "não quero"),
    ],
)
def test_plain_scalars_resolve_like_yaml_but_keep_times_and_phone_numbers(text: str, value: Any) -> None:
    assert plain_scalar(text) == value
    assert type(plain_scalar(text)) is type(value)


def test_mapping_keys_are_always_text() -> None:
    value, _ = load("days:\n  off: 1\n  no: 2\n  1: 3\n")
    assert value == {"days": {"off": 1, "no": 2, "1": 3}}


def test_every_duplicate_key_is_reported_at_its_position() -> None:
    value, problems = load("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert value == {"a": 1, "b": {"c": 1}}
    assert problems == [
        (4, 3, "duplicate key 'c' (first at line 3)"),
        (5, 1, "duplicate key 'a' (first at line 1)"),
    ]


def test_merge_keys_fill_in_and_explicit_keys_win() -> None:
    value, problems = load("base: &b {x: 1, y: 2}\nother: &o {y: 9, z: 3}\nthing:\n  <<: [*b, *o]\n  x: 0\n")
    assert problems == []
    assert value["thing"] == {"x": 0, "y": 2, "z": 3}


def test_alias_bomb_is_stopped_at_the_anchor_that_explodes() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, cur in zip("abcdefg", "bcdefgh", strict=True):
        levels.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(YamlError) as e:
        build(compose("\n".join(levels) + "\n"))
    assert "alias bomb" in e.value.message
    assert e.value.line > 1


def test_nesting_is_bounded() -> None:
    with pytest.raises(YamlError) as e:
        load("a: " + "[" * 2000 + "]" * 2000)
    assert e.value.message == "YAML syntax error: exceeded maximum nesting depth"
    with pytest.raises(YamlError, match="nesting deeper than 64 levels"):
        load("a: " + "[" * 70 + "]" * 70)


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("a: [1, 2\n", 2, 1, "YAML syntax error: did not find expected ',' or ']'"),
        (
            "a: 1\n---\nb: 2\n",
            2,
            1,
            "YAML syntax error: expected a single document in the stream, but found another document",
        ),
        ("a: *nope\n", 1, 4, "YAML syntax error: found undefined alias"),
        ("a: b\n\tc: d\n", 2, 1, "YAML syntax error: found a tab character that violates indentation"),
    ],
)
def test_syntax_errors_carry_their_position(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(YamlError) as e:
        compose(text)
    assert (e.value.line, e.value.col, e.value.message) == (line, col, message)


def test_unsupported_tags_are_rejected() -> None:
    _, problems = load("a: !!python/name:os.system x\nb: !!str 12\n")
    assert problems == [(1, 4, "unsupported YAML tag 'tag:yaml.org,2002:python/name:os.system'")]


def test_decode_accepts_a_bom_and_locates_the_first_non_utf8_byte() -> None:
    assert decode("\ufeffa: ção".encode()) == "a: ção"
    with pytest.raises(YamlError) as e:
        decode(b"a: 1\nnome: Jos" + b"\xe9 \xe7\n")
    assert (e.value.line, e.value.col, e.value.message) == (2, 10, "not UTF-8 (byte 0xe9); save the file as UTF-8")


def test_files_over_the_size_limit_are_refused_before_parsing() -> None:
    with pytest.raises(YamlError, match="over the 1024 KiB limit"):
        decode(b"#" * (MAX_FILE_BYTES + 1))
    assert decode(b"#" * MAX_FILE_BYTES)


def test_source_finds_values_and_keys_and_recomposes_after_release(tmp_path: Any) -> None:
    text = "numbers:\n  tio:\n    persona: tio\n  tia: {persona: tia}\n"
    src = Source(tmp_path / "n.yaml", "n.yaml", text, "numbers", compose(text))
    assert src.find(("numbers", "tia", "persona")) == (4, 18, 3)
    assert src.find(("numbers", "tia"), key=True) == (4, 3, 2)
    src.release()
    assert src.find(("numbers", "tio", "missing")) == (3, 5, 2)  # the deepest node that exists
    assert src.find(("numbers", "tio", "persona")) == (3, 14, 3)


def test_the_pure_python_composer_gives_the_same_values_and_positions() -> None:
    from pathlib import Path

    from mirage.config.yamlsource import PurePythonLoader

    root = Path(__file__).resolve().parents[2] / "tenants.d"
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        fast, slow = compose(text), compose(text, PurePythonLoader)
        assert build(fast) == build(slow), path
        assert fast is not None and slow is not None
        assert [(k.start_mark.line, k.start_mark.column) for k, _ in fast.value] == [
            (k.start_mark.line, k.start_mark.column) for k, _ in slow.value
        ]


@pytest.mark.parametrize("text", ["0x_", "-0b_", "._", "9" * 5000, "-" + "1_" * 4400])
def test_number_like_text_that_converts_to_no_number_stays_text(text: str) -> None:
    """PyYAML's int/float patterns accept these, but int()/float() raise: text, never a crash."""
    assert plain_scalar(text) == text
    assert load(f"a: !!int {text}\n") == ({"a": text}, [])


def test_find_survives_a_mapping_that_merges_itself(tmp_path: Any) -> None:
    """`<<: *x` inside the node anchored as x is legal YAML (build stops it by depth); looking up a key must end."""
    text = "a: &r\n  x: 1\n  <<: *r\n"
    src = Source(tmp_path / "t.yaml", "t.yaml", text, "tenant", compose(text))
    assert src.find(("a", "missing")) == (1, 4, 1)  # the anchored mapping starts at its anchor
    assert src.find(("a", "x")) == (2, 6, 2)
