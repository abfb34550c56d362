# ruff: noqa: E501 - expected messages stay whole, one per line
"""Tenant folders stay inside tenants.d, values are quoted only as short masked excerpts, a number has one tenant."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from mirage.config import ConfigError, load_fleet
from mirage.config.types import excerpt
from tests.config.helpers import run, write_tenant

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
OUTSIDE = f"AWS_SECRET_ACCESS_KEY: {SECRET}\ncontacts:\n  - number: {SECRET}\n"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/tenants.d/acme (a valid tenant) and tmp/outside/ (a folder beside tenants.d, holding a secret)."""
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("tenants.d"))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "contacts.yaml").write_text(OUTSIDE)
    return tmp_path


@pytest.mark.parametrize(
    ("link", "target", "expected"),
    [
        pytest.param(
            "tenants.d/acme/contacts.yaml",
            "outside/contacts.yaml",
            "tenants.d/acme/contacts.yaml: a symbolic link that leaves tenants.d: refused (copy the file into the tenant folder)",
            id="file",
        ),
        pytest.param(
            "tenants.d/acme/conversations",
            "outside",
            "tenants.d/acme/conversations: a symbolic link that leaves tenants.d: refused (copy the file into the tenant folder)",
            id="conversations-folder",
        ),
        pytest.param(
            "tenants.d/acme/conversations/chat.yaml",
            "outside/contacts.yaml",
            "tenants.d/acme/conversations/chat.yaml: a symbolic link that leaves tenants.d: refused (copy the file into the tenant folder)",
            id="conversation-file",
        ),
        pytest.param(
            "tenants.d/beta",
            "outside",
            "tenants.d/beta: a symbolic link that leaves tenants.d: refused (copy the file into the tenant folder)",
            id="tenant-folder",
        ),
    ],
)
def test_a_symlink_leaving_tenants_d_is_refused_and_its_content_never_read(
    tree: Path, link: str, target: str, expected: str
) -> None:
    path = tree / link
    if path.is_dir():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(tree / target)
    result = run("validate", "tenants.d")
    assert result.exit_code == 1
    assert expected in result.output.splitlines()
    assert "AWS_SECRET" not in result.output and "wJal" not in result.output


def test_a_relative_symlink_escaping_with_dot_dot_is_refused(tree: Path) -> None:
    link = tree / "tenants.d" / "acme" / "contacts.yaml"
    link.unlink()
    os.symlink("../../outside/contacts.yaml", link)
    with pytest.raises(ConfigError) as e:
        load_fleet(Path("tenants.d"))
    assert [str(p) for p in e.value.problems] == [
        "tenants.d/acme/contacts.yaml: a symbolic link that leaves tenants.d: refused (copy the file into the tenant folder)"
    ]


def test_a_symlink_that_stays_inside_tenants_d_is_followed(tree: Path) -> None:
    shared = tree / "tenants.d" / "_shared"
    shared.mkdir()
    personas = tree / "tenants.d" / "acme" / "personas.yaml"
    (shared / "personas.yaml").write_bytes(personas.read_bytes())
    personas.unlink()
    os.symlink("../_shared/personas.yaml", personas)
    fleet = load_fleet(Path("tenants.d"))
    assert list(fleet.tenants["acme"].personas) == ["tio"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("+55", "'+55'"),
        ("11 99999-0001", "'11 99999-0001'"),
        ("America/Sao_Paolo", "'America/Sao_Paolo'"),
        ("twenty-four-characters-x", "'twenty-four-characters-x'"),
        ("twenty-five-characters-xy", "'twen…' (25 characters)"),
        (SECRET, "'wJal…' (40 characters)"),
        (12, "12"),
        ("a\nb", "'a\\nb'"),
    ],
)
def test_excerpt_quotes_short_values_whole_and_masks_long_ones(value: object, shown: str) -> None:
    assert excerpt(value) == shown


def test_a_long_value_in_the_wrong_field_is_quoted_as_a_masked_excerpt(tree: Path) -> None:
    write_tenant(
        Path("tenants.d"),
        {
            "numbers.yaml": f'numbers:\n  tio: {{label: Tio, number: "{SECRET}", persona: tio}}\n  tia: {{label: Tia, number: "+5511999990002"}}\n',
            "personas.yaml": f"{SECRET}: 1\npersonas: {{tio: {{name: Tio}}}}\n",
        },
    )
    result = run("validate", "tenants.d")
    assert result.exit_code == 1
    assert SECRET not in result.output and SECRET[:5] not in result.output
    assert (
        "tenants.d/acme/numbers.yaml:2:29: number: 'wJal…' (40 characters) is not an E.164 number like +5511987654321"
        in result.output
    )
    assert "tenants.d/acme/personas.yaml:1:1: unknown key 'wJal…' (40 characters)" in result.output


# --- one WhatsApp number, one tenant ---

SECOND = """\
    numbers:
      outro:
        label: Outro
        number: "+5511999990002"
        persona: p
    """
SECOND_PERSONAS = "personas:\n  p: {name: P, greetings: {morning: [Oi]}}\n"
DUPLICATE = [
    "tenants.d/acme/numbers.yaml:9:13: number +5511999990002 is also declared by tenant 'beta' (tenants.d/beta/numbers.yaml:4:13): one WhatsApp number belongs to one tenant",
    "tenants.d/beta/numbers.yaml:4:13: number +5511999990002 is also declared by tenant 'acme' (tenants.d/acme/numbers.yaml:9:13): one WhatsApp number belongs to one tenant",
]


def _two_tenants_sharing_a_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("tenants.d"))
    write_tenant(
        Path("tenants.d"),
        {
            "numbers.yaml": SECOND,
            "personas.yaml": SECOND_PERSONAS,
            "contacts.yaml": None,
            "outreach.yaml": None,
            "conversations/chat.yaml": None,
        },
        slug="beta",
    )


@pytest.mark.parametrize("command", [["validate"], ["lint", "--strict"], ["plan"]])
def test_one_number_declared_by_two_tenants_is_an_error_naming_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    _two_tenants_sharing_a_number(tmp_path, monkeypatch)
    result = run(*command, "tenants.d")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert [line.removeprefix("error: ") for line in lines if "also declared" in line] == DUPLICATE


def test_one_number_declared_by_two_tenants_fails_load_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_tenants_sharing_a_number(tmp_path, monkeypatch)
    with pytest.raises(ConfigError) as e:
        load_fleet(Path("tenants.d"))
    assert [str(p) for p in e.value.problems] == DUPLICATE


def test_the_same_number_in_one_tenant_and_distinct_numbers_across_tenants_still_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_tenants_sharing_a_number(tmp_path, monkeypatch)
    (tmp_path / "tenants.d" / "beta" / "numbers.yaml").write_text(textwrap.dedent(SECOND).replace("0002", "0003"))
    fleet = load_fleet(Path("tenants.d"))
    assert sorted(fleet.tenants) == ["acme", "beta"]


@pytest.mark.parametrize(
    "command",
    [["validate", "tenants.d", "--tenant", "acme"], ["validate", "tenants.d/acme"], ["plan", "tenants.d/acme"]],
)
def test_a_run_scoped_to_one_tenant_still_sees_the_number_another_tenant_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    _two_tenants_sharing_a_number(tmp_path, monkeypatch)
    result = run(*command)
    assert result.exit_code == 1
    lines = [line.removeprefix("error: ") for line in result.output.splitlines() if "also declared" in line]
    assert lines == DUPLICATE[:1]


def test_a_scoped_run_ignores_the_other_tenants_broken_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_tenants_sharing_a_number(tmp_path, monkeypatch)
    (tmp_path / "tenants.d" / "beta" / "numbers.yaml").write_text("numbers: [\n")
    fleet = load_fleet(Path("tenants.d"), only=["acme"])
    assert list(fleet.tenants) == ["acme"]


def test_a_tenant_with_problems_of_its_own_still_counts_for_shared_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_tenants_sharing_a_number(tmp_path, monkeypatch)
    (tmp_path / "tenants.d" / "beta" / "tenant.yaml").write_text("name: Beta\nplan: [\n")
    with pytest.raises(ConfigError) as e:
        load_fleet(Path("tenants.d"))
    shown = [str(p) for p in e.value.problems]
    assert DUPLICATE[0] in shown and DUPLICATE[1] in shown


def test_a_symlink_loop_is_an_unexpected_file_not_a_crash(tree: Path) -> None:
    os.symlink("loop.yaml", tree / "tenants.d" / "acme" / "loop.yaml")
    os.symlink("spin", tree / "tenants.d" / "spin")
    result = run("validate", "tenants.d")
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("tenants.d/acme/loop.yaml: unexpected file")
