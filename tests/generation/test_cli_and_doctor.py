"""`mirage say`, `mirage sim openai` and the OpenAI line of `mirage doctor`, against the simulator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from mirage.cli import cli
from mirage.doctor import Level, check_openai
from mirage.engine.generation import LENGTH_BOUNDS
from mirage.integrations.openai_sim import OpenAISimHandle
from mirage.settings import Settings
from tests.generation.conftest import KEY
from tests.generation.helpers import ROOT


def test_say_previews_a_persona_offline_by_default() -> None:
    args = ["say", "padaria-do-ze/balcao-e-forno", "--step", "greeting", "--n", "5", "--daypart", "evening"]
    result = CliRunner().invoke(cli, [*args, "--seed", "3", "--dir", str(ROOT / "tenants.d")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "offline" in lines[0] and len(lines) == 6
    for line in lines[1:]:
        assert line.startswith("greeting") and "boa noite" in line.lower() and "(offline)" in line


def test_say_without_a_step_shows_whole_rounds_alternating_the_personas() -> None:
    args = ["say", "padaria-do-ze/balcao-e-forno", "--n", "2", "--seed", "1", "--dir", str(ROOT / "tenants.d")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("Tio Zé") >= 6 and result.output.count("Tio Juca") >= 6
    assert result.output.count("goodbye") == 4


def test_say_goes_through_the_configured_model(openai_sim: OpenAISimHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    from mirage.settings import get_settings

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_sim.base_url)
    get_settings.cache_clear()
    args = ["say", "agencia-aurora/papo-de-familia", "--step", "question", "--n", "3", "--dir", str(ROOT / "tenants.d")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("(openai, ") == 3 and KEY not in result.output
    assert len(openai_sim.requests()) == 3


@pytest.mark.parametrize(
    ("target", "message"),
    [("padaria-do-ze", "TENANT/CONVERSATION"), ("padaria-do-ze/nope", "unknown conversation")],
)
def test_say_refuses_an_unknown_target_with_a_clear_message(target: str, message: str) -> None:
    result = CliRunner().invoke(cli, ["--lang", "en", "say", target, "--dir", str(ROOT / "tenants.d")])
    assert result.exit_code != 0 and message in result.output


def test_doctor_reports_the_model_available_at_the_configured_endpoint(openai_sim: OpenAISimHandle) -> None:
    check = check_openai(Settings.from_env({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": openai_sim.base_url}))
    assert check.level is Level.OK and "gpt-4o-mini" in check.summary and openai_sim.base_url in check.summary
    assert KEY not in json.dumps(check.as_dict())


def test_doctor_warns_when_the_model_is_not_offered(openai_sim: OpenAISimHandle) -> None:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": openai_sim.base_url, "OPENAI_MODEL": "gpt-9"}
    check = check_openai(Settings.from_env(env))
    assert check.level is Level.WARN and "gpt-9" in check.summary and "gpt-4o-mini" in check.summary


@pytest.mark.parametrize("base", ["sim-wrong-key", "closed-port"])
def test_doctor_warns_on_a_refused_key_or_an_unreachable_endpoint_without_printing_the_key(
    openai_sim: OpenAISimHandle, base: str
) -> None:
    url = openai_sim.base_url if base == "sim-wrong-key" else "http://127.0.0.1:9/v1"
    wrong = "sk-wrong-9a8b7c6d5e4f3a2b1c0d"
    started = time.monotonic()
    check = check_openai(Settings.from_env({"OPENAI_API_KEY": wrong, "OPENAI_BASE_URL": url}), timeout=1.0)
    assert check.level is Level.WARN and time.monotonic() - started < 5
    assert ("401" in check.summary) if base == "sim-wrong-key" else ("unreachable" in check.summary)
    assert wrong not in json.dumps(check.as_dict())


def test_doctor_says_offline_when_nothing_is_configured() -> None:
    check = check_openai(Settings.from_env({}))
    assert check.level is Level.WARN and check.details == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_sim_openai_command_serves_models_and_in_character_chat() -> None:
    port = _free_port()
    env = {**os.environ, "MIRAGE_DOTENV": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirage", "sim", "openai", "--port", str(port), "--seed", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                models = httpx.get(f"{url}/models", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert "gpt-4o-mini" in [m["id"] for m in models.json()["data"]]
        body = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Você é Tio Zé e está conversando pelo WhatsApp. Agora é de manhã."},
                {"role": "user", "content": "Mande uma saudação de de manhã para abrir a conversa."},
            ],
        }
        answer = httpx.post(f"{url}/chat/completions", json=body, timeout=5).json()
        text = answer["choices"][0]["message"]["content"]
        assert "bom dia" in text.lower() and len(text) <= LENGTH_BOUNDS["greeting"][1]
        assert answer["usage"]["total_tokens"] > 0
    finally:
        proc.terminate()
        proc.wait(10)
