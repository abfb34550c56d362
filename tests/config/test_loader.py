"""load_fleet: the example tenants, defaults merging, tag expansion, secrets, positions, file layouts."""

from __future__ import annotations

import logging
import textwrap
from datetime import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from mirage.config import DOWS, ConfigError, Fleet, SecretRef, load_fleet
from mirage.logs import redact_text
from tests.config.helpers import BASE, write_tenant

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tenants.d"


@pytest.fixture(scope="module")
def examples() -> Fleet:
    return load_fleet(EXAMPLES, environ={})


def test_small_example_has_three_numbers_and_one_pair_conversation(examples: Fleet) -> None:
    t = examples.tenants["padaria-do-ze"]
    assert len(t.numbers) == 3
    assert [(k, c.mode) for k, c in t.conversations.items()] == [("balcao-e-forno", "pair")]
    assert t.timezone == "America/Sao_Paulo" and t.locale == "pt-BR"


def test_agency_example_has_the_promised_shape(examples: Fleet) -> None:
    t = examples.tenants["agencia-aurora"]
    assert len(t.numbers) == 12
    assert {c.mode for c in t.conversations.values()} >= {"round_robin", "random"}
    assert {"tio", "tia"} <= set(t.personas)
    assert all(c.topics for c in t.conversations.values())
    (policy,) = t.outreach.values()
    assert policy.active and len(policy.targets) == 2
    assert {tg.contact for tg in policy.targets} == set(t.contacts)


def test_every_schedule_holds_all_seven_weekdays(examples: Fleet) -> None:
    for tenant in examples.tenants.values():
        for conv in tenant.conversations.values():
            assert conv.schedule is not None
            assert tuple(conv.schedule.days) == DOWS


def test_tenant_defaults_are_merged_and_the_conversation_wins(examples: Fleet) -> None:
    t = examples.tenants["agencia-aurora"]
    resenha, papo = t.conversations["resenha-da-manha"], t.conversations["papo-de-familia"]
    assert resenha.temperature == 0.85  # its own value
    assert papo.temperature == 0.9  # from defaults
    assert resenha.schedule is not None and papo.schedule is not None
    mon = resenha.schedule.days["mon"]
    assert (mon.morning.start, mon.morning.end, mon.max_rounds_per_window) == (time(8), time(11, 30), 2)
    assert resenha.schedule.days["sat"].afternoon.start == time(15)  # the conversation adds a daypart
    assert resenha.schedule.days["sat"].max_rounds_per_window == 1
    assert not papo.schedule.days["wed"].evening.enabled  # the conversation turns a default window off
    assert papo.schedule.days["wed"].afternoon.enabled  # ... and keeps the rest
    assert not resenha.schedule.days["sun"].morning.enabled


def test_locate_points_at_the_yaml_that_set_a_value(examples: Fleet) -> None:
    slug = "agencia-aurora"
    folder = "tenants.d/agencia-aurora"
    assert examples.locate(slug, "numbers", "tia-marlene", "persona") == (f"{folder}/numbers.yaml", 19, 14)
    # A weekday of a conversation that comes from the tenant defaults' `weekdays` group.
    assert examples.locate(slug, "conversations", "resenha-da-manha", "schedule", "days", "tue", "morning") == (
        f"{folder}/tenant.yaml",
        50,
        18,
    )
    assert examples.locate(slug, "conversations", "papo-de-familia", "schedule", "days", "tue", "evening") == (
        f"{folder}/conversations/papo-de-familia.yaml",
        23,
        16,
    )
    assert examples.locate(slug, "contacts", "+5511987005678", "name") == (f"{folder}/contacts.yaml", 9, 11)
    assert examples.locate(slug, "outreach", "boas-vindas-vip", "targets", "+5511987005678") == (
        f"{folder}/outreach.yaml",
        18,
        9,
    )
    assert examples.locate(slug, "settings", "quiet_hours", "start") == (f"{folder}/tenant.yaml", 15, 24)
    assert examples.locate(slug, "numbers", "tio-jair", key=True) == (f"{folder}/numbers.yaml", 7, 3)


def test_tag_targets_expand_to_one_per_contact_keeping_the_highest_priority(examples: Fleet) -> None:
    (policy,) = examples.tenants["agencia-aurora"].outreach.values()
    assert [(t.contact, t.priority, t.via_tags) for t in policy.targets] == [
        ("+5511987001234", 10, ["vip"]),
        ("+5511987005678", 5, ["vip"]),
    ]


def test_optout_keywords_are_normalised(examples: Fleet) -> None:
    (policy,) = examples.tenants["agencia-aurora"].outreach.values()
    assert policy.optout_keywords == ["sair", "parar", "stop", "nao quero"]


def test_secret_refs_resolve_on_demand_and_never_print_the_value(
    examples: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    key = examples.tenants["padaria-do-ze"].evolution.api_key
    assert key == SecretRef(env="EVOLUTION_API_KEY")
    value = "evo-secret-0123456789"
    assert str(key) == "${EVOLUTION_API_KEY}" and value not in repr(key)
    assert key.resolve({}) is None
    assert key.resolve({"EVOLUTION_API_KEY": value}) == value
    # The model registers nothing; the shell that resolves secrets registers them (test_import_contracts.py).
    assert redact_text(f"calling with {value}") == f"calling with {value}"
    assert value not in examples.tenants["padaria-do-ze"].model_dump_json()


@pytest.mark.parametrize(
    ("written", "environ", "expected"),
    [
        ("https://evo.example.com/", {}, "https://evo.example.com"),
        ("${EVO_URL}", {"EVO_URL": "http://10.0.0.5:8080"}, "http://10.0.0.5:8080"),
        ("${EVO_URL}", {}, None),
    ],
)
def test_evolution_base_url_is_literal_or_an_env_reference(
    tmp_path: Path, written: str, environ: dict[str, str], expected: str | None
) -> None:
    tenant = textwrap.dedent(BASE["tenant.yaml"]).replace("https://evo.example.com", written)
    fleet = load_fleet(write_tenant(tmp_path, {"tenant.yaml": tenant}), environ=environ)
    assert fleet.tenants["acme"].evolution.base_url == expected


def test_models_are_frozen(examples: Fleet) -> None:
    with pytest.raises(ValidationError):
        examples.tenants["padaria-do-ze"].numbers["ze-balcao"].label = "x"  # type: ignore[misc]


def test_empty_tenant_folders_are_listed_not_loaded(tmp_path: Path) -> None:
    write_tenant(tmp_path)
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / ".gitkeep").write_text("")
    fleet = load_fleet(tmp_path)
    assert list(fleet.tenants) == ["acme"] and fleet.empty_dirs == ["gone"]


def test_only_loads_the_named_tenants_and_rejects_unknown_ones(tmp_path: Path) -> None:
    write_tenant(tmp_path, slug="acme")
    numbers = 'numbers:\n  tio: {label: Tio, number: "+5511999990009"}\n'  # its own (one number, one tenant)
    write_tenant(tmp_path, {"tenant.yaml": "name: Broken\nplan: [\n", "numbers.yaml": numbers}, slug="broken")
    assert list(load_fleet(tmp_path, only=["acme"]).tenants) == ["acme"]
    with pytest.raises(ConfigError) as e:
        load_fleet(tmp_path, only=["nope"])
    assert e.value.problems[0].message == "no such tenant folder"


def test_a_single_tenant_folder_can_be_loaded(tmp_path: Path) -> None:
    write_tenant(tmp_path)
    fleet = load_fleet(tmp_path / "acme")
    assert list(fleet.tenants) == ["acme"] and fleet.root == tmp_path.resolve()


@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_contacts_csv_loads_with_or_without_bom(tmp_path: Path, bom: str) -> None:
    csv = f'{bom}number,name,tags,notes\n+5511888880001,Rosa,vip;cliente-antigo,"Prefere, à tarde"\n'
    csv += "+5511888880002,Antônio,vip,\n"
    fleet = load_fleet(write_tenant(tmp_path, {"contacts.yaml": None, "contacts.csv": csv}))
    contacts = fleet.tenants["acme"].contacts
    assert contacts["+5511888880001"].tags == ["vip", "cliente-antigo"]
    assert contacts["+5511888880001"].notes == "Prefere, à tarde"
    assert contacts["+5511888880002"].name == "Antônio"
    assert fleet.locate("acme", "contacts", "+5511888880002", "name")[1:] == (3, 16)


def test_yaml_anchors_and_merge_keys_keep_configuration_dry(tmp_path: Path) -> None:
    numbers = """\
        numbers:
          tio: &numero {label: Tio, number: "+5511999990001", persona: tio, warmup_started_on: 2026-01-05}
          tia: {<<: *numero, label: Tia, number: "+5511999990002"}
        """
    fleet = load_fleet(write_tenant(tmp_path, {"numbers.yaml": numbers}))
    tia = fleet.tenants["acme"].numbers["tia"]
    assert (tia.label, tia.number, tia.persona, str(tia.warmup_started_on)) == (
        "Tia",
        "+5511999990002",
        "tio",
        "2026-01-05",
    )
    assert fleet.locate("acme", "numbers", "tia", "persona")[1:] == (2, 64)  # through the merge, at the anchor


def test_unquoted_times_and_plus_numbers_keep_their_meaning(tmp_path: Path) -> None:
    tenant = textwrap.dedent(BASE["tenant.yaml"]).replace('{start: "22:00", end: "07:00"}', "{start: 22:30, end: 7:00}")
    numbers = 'numbers:\n  tio: {label: Tio, number: +5511999990001}\n  tia: {label: Tia, number: "+5511999990002"}\n'
    with pytest.raises(ConfigError) as e:  # "7:00" is not HH:MM
        load_fleet(write_tenant(tmp_path / "a", {"tenant.yaml": tenant, "numbers.yaml": numbers}))
    assert [p.message for p in e.value.problems] == ['end: expected a time "HH:MM" (00:00-23:59)']
    fleet = load_fleet(
        write_tenant(tmp_path / "b", {"tenant.yaml": tenant.replace("7:00", "07:00"), "numbers.yaml": numbers})
    )
    t = fleet.tenants["acme"]
    assert t.settings.quiet_hours.start == time(22, 30)
    assert t.numbers["tio"].number == "+5511999990001"


def test_loading_logs_no_secret_and_reads_no_environment_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    load_fleet(write_tenant(tmp_path), environ={"EVOLUTION_API_KEY": "never-read-at-load-time"})
    assert "never-read-at-load-time" not in caplog.text
    assert redact_text("never-read-at-load-time") == "never-read-at-load-time"  # not resolved, not registered


def test_loading_a_fleet_parses_each_yaml_file_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-number-one-tenant check reads numbers from the models; only a conflict sends it back to the file."""
    import mirage.config.loader as loader
    import mirage.config.tenant_loader as tenant_loader
    import mirage.config.yamlsource as yamlsource

    root = Path(__file__).resolve().parents[2] / "tenants.d"
    files = [p for p in root.rglob("*.yaml") if not any(part.startswith((".", "_")) for part in p.parts)]
    composed: list[int] = []
    original = yamlsource.compose

    def counting(text: str, *args: object, **kwargs: object) -> object:
        composed.append(1)
        return original(text, *args, **kwargs)  # type: ignore[arg-type]

    for module in (yamlsource, loader, tenant_loader):  # each holds its own name for it
        monkeypatch.setattr(module, "compose", counting)
    load_fleet(root)
    assert len(composed) == len(files)
