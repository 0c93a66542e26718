"""netsim/netem.py: scenarios as tc netem/tbf commands, checked against the scenario files
themselves (read here with tomllib and csv, not through the module), the Gilbert-Elliott
mapping against netem's own algorithm, the timed runner, the CLI, and, where this machine
lets us (root, iproute2), that tc itself parses every command."""

from __future__ import annotations

import csv
import itertools
import os
import random
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest

from netsim.__main__ import main
from netsim.impairment import BernoulliLoss, GilbertElliottLoss, ImpairmentConfig
from netsim.netem import NetemError, check_dev, commands, commands_at, netem_options, run_schedule, schedule, stab_overhead, tbf_options
from netsim.scenario import IP_TCP_OVERHEAD, IP_UDP_OVERHEAD, SCENARIO_DIR, load_scenario, scenario_names

ROOT_PREFIX = ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "netem"]
RATE_PREFIX = ["tc", "qdisc", "replace", "dev", "eth0", "parent", "1:1", "handle", "10:"]
# what tbf on eth0 sees beyond the payload: Ethernet 14 + IPv4 20 + UDP 8 / TCP 20 + 12 (timestamps)
FRAME = {"udp": 42, "tcp": 66}


def _pct(text: str) -> float:
    assert text.endswith("%"), text
    return float(text[:-1]) / 100


def _ms(text: str) -> float:
    assert text.endswith("ms"), text
    return float(text[:-2])


def parse_netem(opts: list[str]) -> dict[str, object]:
    """netem options back into numbers, strictly: anything unexpected fails the test."""
    out: dict[str, object] = {}
    i = 0
    while i < len(opts):
        word = opts[i]
        if word == "delay":
            out["delay_ms"] = _ms(opts[i + 1])
            i += 2
            if i < len(opts) and opts[i].endswith("ms"):
                out["jitter_ms"] = _ms(opts[i])
                i += 1
        elif word == "distribution":
            out["distribution"] = opts[i + 1]
            i += 2
        elif word == "loss" and opts[i + 1] == "random":
            out["loss_random"] = _pct(opts[i + 2])
            i += 3
        elif word == "loss" and opts[i + 1] == "gemodel":
            out["gemodel"] = tuple(_pct(x) for x in opts[i + 2 : i + 6])
            i += 6
        else:
            raise AssertionError(f"unexpected netem option {word!r} in {opts}")
    return out


def parse_tbf(opts: list[str]) -> dict[str, float]:
    """`[stab overhead O] tbf rate R burst B latency L|limit N` back into numbers."""
    out: dict[str, float] = {"stab_overhead": 0.0}
    if opts[0] == "stab":
        assert opts[1] == "overhead", opts
        out["stab_overhead"] = float(opts[2])
        opts = opts[3:]
    assert opts[0] == "tbf", opts
    opts = opts[1:]
    assert opts[0] == "rate" and opts[1].endswith("kbit") and opts[2] == "burst", opts
    out |= {"rate_kbit": float(opts[1][:-4]), "burst": float(opts[3])}
    assert len(opts) == 6, opts
    if opts[4] == "latency":
        out["latency_ms"] = _ms(opts[5])
    else:
        assert opts[4] == "limit", opts
        out["limit"] = float(opts[5])
    return out


def _split(cmds: list[list[str]]) -> tuple[dict[str, object], dict[str, float] | None]:
    root = [c for c in cmds if c[:9] == ROOT_PREFIX]
    tbf = [c for c in cmds if c[:9] == RATE_PREFIX]
    assert len(root) == 1 and len(tbf) <= 1 and len(cmds) == len(root) + len(tbf), cmds
    return parse_netem(root[0][9:]), (parse_tbf(tbf[0][9:]) if tbf else None)


def _toml(name: str) -> dict:
    return tomllib.loads((SCENARIO_DIR / f"{name}.toml").read_text())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("name", scenario_names())
def test_each_scenario_numbers_match_its_file(name: str, transport: str) -> None:
    raw = _toml(name)
    imp = raw.get("impairment", {})
    first_row: dict[str, float] = {}
    if "trace" in raw:
        first_row = raw["trace"][0]
    elif "trace_file" in raw:
        with open(SCENARIO_DIR / raw["trace_file"]) as f:
            rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
        first_row = {k: float(v) for k, v in rows[0].items() if v != ""}
    netem, tbf = _split(commands_at(load_scenario(name), 0.0, transport=transport))  # type: ignore[arg-type]

    delay = first_row.get("delay_ms", imp.get("delay_ms", 0))
    jitter = first_row.get("jitter_ms", imp.get("jitter_ms", 0))
    assert netem.get("delay_ms", 0) == pytest.approx(delay)
    assert netem.get("jitter_ms", 0) == pytest.approx(jitter)
    if jitter:  # netem without a table is uniform; the scenarios' default is normal
        want = None if imp.get("jitter_distribution", "normal") == "uniform" else "normal"
        assert netem.get("distribution") == want

    loss = first_row.get("loss")
    if loss is not None:
        assert netem["loss_random"] == pytest.approx(loss)
    elif "loss" in imp and imp["loss"]["kind"] == "bernoulli":
        assert netem["loss_random"] == pytest.approx(imp["loss"]["rate"])
    elif "loss" in imp:
        ge = imp["loss"]
        assert netem["gemodel"] == pytest.approx((ge["p_good_bad"], ge["p_bad_good"], ge.get("loss_bad", 1.0), ge.get("loss_good", 0.0)))
    else:
        assert "loss_random" not in netem and "gemodel" not in netem

    rate = first_row.get("capacity_kbps", imp.get("rate_kbps"))
    if rate is None:
        assert tbf is None
    else:
        assert tbf is not None and tbf["rate_kbit"] == pytest.approx(rate)
        if "queue_ms" in imp:
            assert tbf["latency_ms"] == pytest.approx(imp["queue_ms"])
        elif "queue_bytes" in imp:
            assert tbf["limit"] == imp["queue_bytes"]
        else:
            assert tbf["latency_ms"] == 10_000
        assert tbf["burst"] >= 1600
        # the kernel counts what the scenario counts: its overhead (default: the IP headers)
        counted = raw.get("overhead_bytes", IP_UDP_OVERHEAD if transport == "udp" else IP_TCP_OVERHEAD)
        assert tbf["stab_overhead"] == counted - FRAME[transport]


def test_the_shipped_numbers_spelled_out() -> None:
    """The figures docs/netsim.md quotes, as tc will see them."""
    assert schedule(load_scenario("loss-10"))[0][1][9:] == ["delay", "20ms", "loss", "random", "10%"]
    assert schedule(load_scenario("jitter-50"))[0][1][9:] == ["delay", "50ms", "30ms"]  # uniform: no table
    assert schedule(load_scenario("burst-15"))[0][1][9:] == ["delay", "20ms", "loss", "gemodel", "5.8824%", "33.3333%", "100%", "0%"]


def test_capacity_drop_schedule_matches_its_trace() -> None:
    rows = _toml("capacity-drop")["trace"]
    steps = schedule(load_scenario("capacity-drop"))
    # everything at 0, then only tbf changes (the trace varies the capacity alone)
    assert [t for t, _ in steps] == [0.0, 0.0] + [float(r["time_s"]) for r in rows[1:]]
    tbf_steps = [(t, parse_tbf(argv[9:])) for t, argv in steps if argv[:9] == RATE_PREFIX]
    assert [(t, p["rate_kbit"]) for t, p in tbf_steps] == [(float(r["time_s"]), r["capacity_kbps"]) for r in rows]
    assert all(p["latency_ms"] == 200 for _, p in tbf_steps)


def test_mobile_schedule_matches_the_csv() -> None:
    raw = _toml("mobile")
    with open(SCENARIO_DIR / raw["trace_file"]) as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    scenario = load_scenario("mobile")
    steps = schedule(scenario)
    assert steps[0][0] == 0 and steps == sorted(steps, key=lambda s: s[0])
    assert {t for t, _ in steps} <= {float(r["time_s"]) for r in rows}
    # replaying the schedule's commands gives each row's values at its time
    state: dict[str, list[str]] = {}
    by_time: dict[float, list[list[str]]] = {}
    for t, argv in steps:
        by_time.setdefault(t, []).append(argv)
    for row in rows:
        t = float(row["time_s"])
        for argv in by_time.get(t, []):
            state["root" if argv[5] == "root" else "rate"] = argv
        netem, tbf = _split(list(state.values()))
        assert tbf is not None and tbf["rate_kbit"] == float(row["capacity_kbps"]), row
        assert tbf["latency_ms"] == raw["impairment"]["queue_ms"]
        assert netem["delay_ms"] == float(row["delay_ms"]) and netem["jitter_ms"] == float(row["jitter_ms"]), row
        assert netem["loss_random"] == pytest.approx(float(row["loss"])), row
    # every change in the CSV shows up at its time, and nothing else
    changed = {float(b["time_s"]) for a, b in itertools.pairwise(rows) if any(a[k] != b[k] for k in a if k != "time_s")}
    assert {t for t, _ in steps if t > 0} == changed
    assert steps[-1][0] < scenario.duration_s


def test_gilbert_elliott_maps_to_gemodel_p_r_1h_1k() -> None:
    ge = GilbertElliottLoss(p_good_bad=0.02, p_bad_good=0.25, loss_bad=0.8, loss_good=0.01)
    assert netem_options(ImpairmentConfig(loss=ge)) == ["loss", "gemodel", "2%", "25%", "80%", "1%"]
    ge15 = GilbertElliottLoss.from_average(0.15, 3)
    assert parse_netem(netem_options(ImpairmentConfig(loss=ge15)))["gemodel"] == pytest.approx((ge15.p_good_bad, 1 / 3, 1.0, 0.0), abs=1e-6)


@pytest.mark.parametrize("ge", [GilbertElliottLoss.from_average(0.15, 3), GilbertElliottLoss(p_good_bad=0.02, p_bad_good=0.25, loss_bad=0.8, loss_good=0.01)])
def test_gemodel_numbers_reproduce_the_loss_in_netems_algorithm(ge: GilbertElliottLoss) -> None:
    """Run the kernel's Gilbert-Elliott loop (net/sched/sch_netem.c, loss_gilb_ell: a1 = p,
    a2 = r, a3 = h, a4 = 1-k; the fate is drawn in the state before the move) on the percentages
    we emit: the average loss is the model's, so 1-h and 1-k are loss chances, as mapped."""
    p, r, one_minus_h, one_minus_k = parse_netem(netem_options(ImpairmentConfig(loss=ge)))["gemodel"]
    h = 1 - one_minus_h
    rng = random.Random(7)
    bad = False
    lost = 0
    n = 200_000
    for _ in range(n):
        if not bad:
            if rng.random() < p:
                bad = True
            lost += rng.random() < one_minus_k
        else:
            if rng.random() < r:
                bad = False
            lost += rng.random() > h
    assert lost / n == pytest.approx(ge.mean_loss(), abs=0.006)


def test_option_mappings() -> None:
    assert netem_options(ImpairmentConfig()) == []
    assert netem_options(ImpairmentConfig(delay_ms=40, jitter_ms=10)) == ["delay", "40ms", "10ms", "distribution", "normal"]
    assert netem_options(ImpairmentConfig(jitter_ms=5, jitter_distribution="uniform")) == ["delay", "0ms", "5ms"]
    assert netem_options(ImpairmentConfig(loss=BernoulliLoss(rate=0.125))) == ["loss", "random", "12.5%"]
    assert tbf_options(ImpairmentConfig()) is None
    assert tbf_options(ImpairmentConfig(rate_kbps=24, queue_ms=150)) == ["rate", "24kbit", "burst", "1600", "latency", "150ms"]
    assert tbf_options(ImpairmentConfig(rate_kbps=8000, queue_bytes=3000)) == ["rate", "8000kbit", "burst", "5000", "limit", "3000"]
    assert tbf_options(ImpairmentConfig(rate_kbps=16)) == ["rate", "16kbit", "burst", "1600", "latency", "10000ms"]
    assert commands(ImpairmentConfig(), "veth0") == [["tc", "qdisc", "replace", "dev", "veth0", "root", "handle", "1:", "netem"]]


def test_the_cap_counts_what_the_scenario_counts() -> None:
    """tbf sees Ethernet frames; a size table takes off what the scenario does not count."""
    assert stab_overhead(IP_UDP_OVERHEAD, "udp") == -14  # IP packets: the Ethernet header off
    assert stab_overhead(IP_TCP_OVERHEAD, "tcp") == -26  # also TCP's 12 B of timestamps
    assert stab_overhead(0, "udp") == -42 and stab_overhead(0, "tcp") == -66  # payload only
    cfg = ImpairmentConfig(rate_kbps=24, queue_ms=200, overhead_bytes=0)
    assert commands(cfg, transport="tcp")[1][9:13] == ["stab", "overhead", "-66", "tbf"]
    assert commands(cfg.model_copy(update={"overhead_bytes": 42}))[1][9] == "tbf"  # nothing to correct
    with pytest.raises(ValueError, match="transport must be"):
        commands(cfg, transport="sctp")  # type: ignore[arg-type]


@pytest.mark.parametrize("dev", ["", "a b", "x" * 16, "eth0;rm", "../x"])
def test_bad_interface_names_refused(dev: str) -> None:
    with pytest.raises(ValueError, match="not an interface name"):
        check_dev(dev)


def test_run_schedule_waits_for_each_time_and_stops_at_a_failure() -> None:
    now = [100.0]
    ran: list[tuple[float, list[str]]] = []
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    steps = schedule(load_scenario("capacity-drop"))
    assert run_schedule(steps, runner=lambda argv: ran.append((now[0], argv)), clock=lambda: now[0], sleep=sleep) == 4
    assert [t for t, _ in ran] == [100.0, 100.0, 110.0, 125.0]
    assert slept == [10.0, 15.0]

    def failing(argv: list[str]) -> None:
        if "4kbit" in argv:
            raise NetemError("RTNETLINK answers: Operation not permitted")
        ran.append((now[0], argv))

    ran.clear()
    with pytest.raises(NetemError):
        run_schedule(steps, runner=failing, clock=lambda: now[0], sleep=sleep)
    assert len(ran) == 2


# -- the command line ------------------------------------------------------------------------
def test_cli_prints_time_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["netem", "capacity-drop", "--dev", "veth1", "--transport", "tcp"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "0\ttc qdisc replace dev veth1 root handle 1: netem delay 20ms"
    assert lines[2].startswith("10\ttc qdisc replace dev veth1 parent 1:1 handle 10: stab overhead ")
    assert lines[2].endswith(" tbf rate 4kbit burst 1600 latency 200ms")
    assert lines == [f"{t:g}\t{' '.join(argv)}" for t, argv in schedule(load_scenario("capacity-drop"), "veth1", "tcp")]
    assert main(["netem", "capacity-drop", "--part", "changes"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["10", "25"]
    assert main(["netem", str(SCENARIO_DIR / "loss-10.toml"), "--part", "initial"]) == 0
    assert capsys.readouterr().out.count("\n") == 1


@pytest.mark.parametrize(
    "argv,message",
    [
        (["netem", "nope"], "unknown scenario 'nope'"),
        (["netem", "loss-10", "--dev", "a b"], "not an interface name: 'a b'"),
        (["netem", "/nonexistent/s.toml"], "/nonexistent/s.toml: cannot read"),
        (["netem", "loss-10", "--part", "some"], "invalid choice: 'some'"),
        (["netem", "loss-10", "--transport", "webrtc"], "invalid choice: 'webrtc'"),
    ],
)
def test_cli_bad_input_is_one_error_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def _fake_tc(tmp_path: Path, exit_code: int = 0) -> tuple[dict[str, str], Path]:
    """A `tc` first on PATH that logs its arguments (and fails like a missing capability)."""
    log = tmp_path / "tc.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tc"
    fail = f'echo "RTNETLINK answers: Operation not permitted" >&2; exit {exit_code}' if exit_code else "exit 0"
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n{fail}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return env, log


def test_cli_run_applies_with_tc(tmp_path: Path) -> None:
    env, log = _fake_tc(tmp_path)
    done = subprocess.run([sys.executable, "-m", "netsim", "netem", "burst-15", "--run"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["qdisc replace dev eth0 root handle 1: netem delay 20ms loss gemodel 5.8824% 33.3333% 100% 0%"]
    assert done.stderr.startswith("netem: 0 s: tc qdisc replace")


def test_cli_run_reports_a_failing_tc(tmp_path: Path) -> None:
    env, log = _fake_tc(tmp_path, exit_code=2)
    done = subprocess.run([sys.executable, "-m", "netsim", "netem", "capacity-drop", "--run"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: tc qdisc replace dev eth0 root")
    assert done.stderr.rstrip().endswith("RTNETLINK answers: Operation not permitted")
    assert len(log.read_text().splitlines()) == 1  # stopped at the first failure


# -- tc itself -------------------------------------------------------------------------------
def _tc_parse_support() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a throw-away network namespace)"
    if shutil.which("tc") is None or shutil.which("ip") is None:
        return "needs iproute2 (tc, ip)"
    return None


@pytest.mark.skipif(_tc_parse_support() is not None, reason=str(_tc_parse_support()))
def test_tc_parses_every_command() -> None:
    """Each command goes through iproute2's own option parser to the kernel, in a throw-away
    namespace on its loopback. Kernels without netem (like this project's machine) refuse the
    qdisc *after* parsing ("Error: Specified qdisc kind is unknown.", exit 2); a parse error is
    exit 1 with a usage text, which is what this catches (e.g. `distribution uniform`, for
    which iproute2 ships no table)."""
    ns = f"ssn-netem-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"ip netns add failed: {made.stderr.strip()}")
    try:
        for name in scenario_names():
            for _, argv in schedule(load_scenario(name), dev="lo"):
                done = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=False)
                ok = done.returncode == 0 or (done.returncode == 2 and done.stderr.startswith("Error:"))
                assert ok, f"{name}: {' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
