"""docker-compose.yml, docker/Dockerfile and docker/entrypoint.sh, checked without Docker
(this machine has no engine): the compose file parses, names files that exist and scenarios
that are shipped, runs commands that `ssvoip listen` / `ssvoip call` accept, and the
entrypoint applies a scenario's tc commands (a fake `tc` here) before running its command."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netsim.scenario import scenario_names
from ssvoip.calls import call_parser, listen_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCS = REPO / "docs" / "netsim.md"
APP = "/app"  # where the Dockerfile copies the repository
OUT = "/out"  # the ./out volume
INTERPOLATION = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
TRANSPORTS = ("webrtc", "websocket")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:-default}`: from `env`, else the default (compose's own rule)."""
    return INTERPOLATION.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def _command(service: str, env: dict[str, str] | None = None) -> list[str]:
    cmd = _compose()["services"][service]["command"]
    assert isinstance(cmd, list), "exec form, so no shell reinterprets the arguments"
    return [_interpolate(str(a), env or {}) for a in cmd]


def _in_repo(container_path: str) -> Path:
    assert container_path.startswith(APP + "/"), container_path
    return REPO / container_path.removeprefix(APP + "/")


def _docker_section() -> str:
    text = DOCS.read_text()
    start = text.index("## Running the scenarios with Docker")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_compose_parses_with_both_services() -> None:
    services = _compose()["services"]
    assert {"listener", "caller"} <= set(services)
    for name in ("listener", "caller"):
        s = services[name]
        assert "NET_ADMIN" in s["cap_add"], name
        mounts = {tuple(v.split(":")[:2]) for v in s["volumes"]}
        assert any((REPO / host).resolve() == REPO / "out" and inside == OUT for host, inside in mounts), name
        # both follow the shell's variable (the entrypoint's tc needs TRANSPORT too), with a default
        env = s["environment"]
        assert _interpolate(env["SCENARIO"], {}) == "none" and _interpolate(env["SCENARIO"], {"SCENARIO": "loss-10"}) == "loss-10", name
        assert _interpolate(env["TRANSPORT"], {}) == "webrtc" and _interpolate(env["TRANSPORT"], {"TRANSPORT": "websocket"}) == "websocket", name
    assert "listener" in services["caller"]["depends_on"]


def test_every_interpolation_has_a_default() -> None:
    text = COMPOSE.read_text()
    found = re.findall(r"\$\{[^}]*\}", text)
    assert found and all(INTERPOLATION.fullmatch(f) and ":-" in f for f in found), found


def test_build_files_exist() -> None:
    for name, s in _compose()["services"].items():
        build = s["build"]
        context = (REPO / build["context"]).resolve()
        assert context == REPO, name
        assert (context / build["dockerfile"]).is_file(), name


def _instructions(text: str) -> list[tuple[str, str]]:
    """A Dockerfile's (INSTRUCTION, arguments) in order: comments dropped, continued lines
    joined (Docker's rules for `\\` at a line's end)."""
    steps, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        op, _, args = (pending + stripped).partition(" ")
        steps.append((op.upper(), args.strip()))
        pending = ""
    return steps


def _shell_commands(script: str) -> list[list[str]]:
    """A RUN line's commands (split at `&&`, `||`, `;`), each as its words."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word in ("&&", "||", ";"):
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def _pip_install(command: list[str]) -> list[str] | None:
    """The arguments of a `pip install` / `python -m pip install` command, else None."""
    for i in range(len(command) - 1):
        if command[i].endswith("pip") and command[i + 1] == "install":
            return command[i + 2 :]
    return None


def test_dockerfile() -> None:
    steps = _instructions((REPO / "docker" / "Dockerfile").read_text())
    assert steps[0][0] == "FROM" and steps[0][1].split()[0].startswith("python:3.11")
    runs = [(i, command) for i, (op, args) in enumerate(steps) if op == "RUN" for command in _shell_commands(args)]
    apt = [c for _, c in runs if c[:2] == ["apt-get", "install"]]
    assert len(apt) == 1 and {"iproute2", "libportaudio2", "libsndfile1"} <= set(apt[0][2:])
    pips = [(i, args) for i, c in runs if (args := _pip_install(c)) is not None]
    torch = [(i, args) for i, args in pips if any(a.startswith("torch") for a in args)]
    assert len(torch) == 1, torch
    torch_at, torch_args = torch[0]
    # pinned, and from the CPU index (PyPI's default build pulls gigabytes of CUDA)
    assert "torch==2.13.0" in torch_args and "--index-url" in torch_args
    assert torch_args[torch_args.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    copy_at = [i for i, (op, args) in enumerate(steps) if op == "COPY" and args.split() == [".", APP]]
    package_at = [i for i, args in pips if "." in args]
    assert len(copy_at) == 1 and len(package_at) == 1
    assert torch_at < copy_at[0] < package_at[0]  # torch's layer survives code edits; the package needs the code
    entry = [json.loads(args) for op, args in steps if op == "ENTRYPOINT"]
    assert len(entry) == 1 and isinstance(entry[0], list), "exec form"
    script = _in_repo(entry[0][0])
    assert script.is_file() and os.access(script, os.X_OK), script


def test_named_files_exist_and_reach_the_image() -> None:
    ignored = [line.strip().strip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    paths = [a for name in ("listener", "caller") for a in _command(name) if a.startswith(APP + "/")]
    assert len(paths) == 2  # the two --input files
    for p in paths:
        local = _in_repo(p)
        assert local.is_file(), p
        assert local.relative_to(REPO).parts[0] not in ignored, f"{p} is left out of the build context"
    assert "docker" not in ignored and ".venv" in ignored


def test_scenarios_named_in_compose_and_docs_are_shipped() -> None:
    shipped = set(scenario_names())
    text = COMPOSE.read_text() + _docker_section()
    named = set(re.findall(r"SCENARIO=([\w.-]+)", text)) | set(re.findall(r"\$\{SCENARIO:-([\w.-]+)\}", text))
    listed = re.search(r"#\s*SCENARIO:\s*([^.]*)\(python -m netsim scenarios\)", COMPOSE.read_text(), re.DOTALL)
    assert listed is not None
    in_list = {w.strip("# \n") for w in re.sub(r"\(default\)", "", listed.group(1)).split(",")}
    assert in_list <= shipped | {"none"}, in_list - shipped
    assert named and named <= shipped | {"none"}, named - shipped
    backticked = set(re.findall(r"`([\w-]+)`", _docker_section()))
    mentioned = {w for w in backticked if w in shipped or w in in_list}
    assert mentioned <= shipped | {"none"}
    assert {"capacity-drop", "mobile"} <= mentioned  # the time-varying ones are explained


def test_listener_command_parses() -> None:
    cmd = _command("listener")
    assert cmd[:2] == ["ssvoip", "listen"]
    args = listen_parser().parse_args(cmd[2:])
    assert args.once and args.output == f"{OUT}/at_listener.wav" and str(args.stats_json) == f"{OUT}/listener.json"
    assert args.host == "0.0.0.0"


@pytest.mark.parametrize("transport", [None, *TRANSPORTS])
def test_caller_command_parses(transport: str | None) -> None:
    env = {} if transport is None else {"TRANSPORT": transport}
    cmd = _command("caller", env)
    assert cmd[:2] == ["ssvoip", "call"]
    args = call_parser().parse_args(cmd[2:])
    assert args.transport == (transport or "webrtc")
    assert args.output == f"{OUT}/at_caller.wav" and str(args.stats_json) == f"{OUT}/caller.json"
    listen = listen_parser().parse_args(_command("listener")[2:])
    assert args.url == f"ws://listener:{listen.port}"
    assert _compose()["services"]["caller"]["environment"]["WAIT_FOR"] == f"listener:{listen.port}"


def test_entrypoint_passes_bash_n() -> None:
    done = subprocess.run(["bash", "-n", str(REPO / "docker" / "entrypoint.sh")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def _run_entrypoint(tmp_path: Path, scenario: str | None, *command: str, transport: str | None = None) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The entrypoint with a fake `tc` first on PATH that logs its arguments."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tc").write_text(f'#!/bin/sh\necho "tc $*" >> "{log}"\n')
    (bin_dir / "tc").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SCENARIO", None)
    env.pop("TRANSPORT", None)
    if scenario is not None:
        env["SCENARIO"] = scenario
    if transport is not None:
        env["TRANSPORT"] = transport
    done = subprocess.run(
        ["bash", str(REPO / "docker" / "entrypoint.sh"), *command], capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False
    )
    return done, log


@pytest.mark.parametrize("transport,proto", [(None, "udp"), ("webrtc", "udp"), ("websocket", "tcp")])
def test_entrypoint_applies_the_scenario_before_the_command(tmp_path: Path, transport: str | None, proto: str) -> None:
    """A scenario file with a rate cap (so the transport shows, in tbf's size table) and no
    trace (a trace's later steps would keep the background part running for many seconds)."""
    scenario = tmp_path / "cap.toml"
    scenario.write_text('name = "cap"\nduration_s = 10\n[impairment]\ndelay_ms = 10\nrate_kbps = 24\nqueue_ms = 200\n')
    marker = f'echo "command $*" >> "{tmp_path / "calls.log"}"'
    done, log = _run_entrypoint(tmp_path, str(scenario), "sh", "-c", marker, "x", "ran", transport=transport)
    assert done.returncode == 0, done.stderr
    expected = subprocess.run(
        [sys.executable, "-m", "netsim", "netem", str(scenario), "--transport", proto], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.splitlines()
    commands = [line.split("\t")[1] for line in expected]
    assert len(commands) == 2
    # the rate cap (tbf) counts the transport's header bytes: its size table's overhead
    words = shlex.split(commands[1])
    assert "tbf" in words and words[words.index("stab") + 1] == "overhead"
    assert int(words[words.index("stab") + 2]) == (28 - 42 if proto == "udp" else 40 - 66)
    assert log.read_text().splitlines() == commands + ["command ran"]  # every tc command, then the command


def test_entrypoint_refuses_an_unknown_transport(tmp_path: Path) -> None:
    done, log = _run_entrypoint(tmp_path, "loss-10", "sh", "-c", "echo ran", transport="quic")
    assert done.returncode == 2 and "TRANSPORT must be webrtc or websocket" in done.stderr
    assert "ran" not in done.stdout and not log.exists()


def test_entrypoint_without_a_scenario_touches_nothing(tmp_path: Path) -> None:
    done, log = _run_entrypoint(tmp_path, None, "sh", "-c", f'echo ran >> "{tmp_path / "calls.log"}"')
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["ran"]


def test_entrypoint_stops_on_an_unknown_scenario(tmp_path: Path) -> None:
    done, log = _run_entrypoint(tmp_path, "nope", "sh", "-c", "echo ran")
    assert done.returncode == 2 and "unknown scenario 'nope'" in done.stderr
    assert "ran" not in done.stdout and not log.exists()


def test_docs_commands_use_the_compose_services() -> None:
    section = _docker_section()
    assert "not run here" in section.lower()  # said honestly: no Docker engine on this machine
    for line in section.splitlines():
        if "docker compose" in line and line.strip().startswith(("SCENARIO=", "TRANSPORT=", "docker")):
            words = shlex.split(line.split("#")[0])
            services = [w for w in words if w in ("listener", "caller")]
            assert all(s in _compose()["services"] for s in services)
