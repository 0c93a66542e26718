"""The shipped scenarios load, say what the issue asks, and bad scenario files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim.impairment import BernoulliLoss, GilbertElliottLoss, ImpairedPath
from netsim.scenario import IP_TCP_OVERHEAD, IP_UDP_OVERHEAD, ScenarioError, load_scenario, scenario_names

SHIPPED = ["burst-15", "cap-24", "capacity-drop", "clean", "jitter-50", "loss-10", "loss-20", "loss-5", "mobile"]


def test_all_shipped_scenarios_load() -> None:
    assert scenario_names() == SHIPPED
    for name in SHIPPED:
        s = load_scenario(name)
        assert s.name == name and s.description and s.duration_s > 0
        for t in range(int(s.duration_s)):
            s.config_at(t, "udp")  # every row makes a valid config


def test_capacity_drop() -> None:
    s = load_scenario("capacity-drop")
    assert s.duration_s == 40
    assert [s.config_at(t, "udp").rate_kbps for t in (0, 9.9, 10, 24.9, 25, 39)] == [16, 16, 4, 4, 16, 16]
    assert s.config_for("udp").overhead_bytes == s.config_for("tcp").overhead_bytes == 0  # payload only, see the file
    loss = load_scenario("loss-10")  # the others count the IP headers the relay cannot see
    assert loss.config_for("udp").overhead_bytes == IP_UDP_OVERHEAD
    assert loss.config_for("tcp").overhead_bytes == IP_TCP_OVERHEAD


def test_loss_scenarios() -> None:
    for name, rate in (("loss-5", 0.05), ("loss-10", 0.1), ("loss-20", 0.2)):
        assert load_scenario(name).impairment.loss == BernoulliLoss(rate=rate), name
    burst = load_scenario("burst-15").impairment.loss
    assert isinstance(burst, GilbertElliottLoss)
    assert burst.mean_loss() == pytest.approx(0.15, abs=0.001)
    assert 1 / burst.p_bad_good == pytest.approx(3.0, abs=0.01)
    path = ImpairedPath(load_scenario("burst-15").config_for("udp"), rng=1)
    for i in range(30_000):
        path.submit(bytes(40), i * 0.02)
    assert path.counters.dropped_loss / 30_000 == pytest.approx(0.15, abs=0.015)


def test_jitter_and_mobile() -> None:
    j = load_scenario("jitter-50").impairment
    assert (j.delay_ms, j.jitter_ms, j.jitter_distribution) == (50, 30, "uniform")
    m = load_scenario("mobile")
    assert m.trace is not None
    rows = m.trace.rows
    caps = [r.capacity_kbps for r in rows]
    assert min(caps) == 8 and max(caps) == 32  # type: ignore[type-var]
    assert max(r.delay_ms or 0 for r in rows) >= 300
    assert sum(1 for r in rows if (r.loss or 0) > 0) >= 5


def test_by_path_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    (tmp_path / "steps.csv").write_text("time_s,capacity_kbps\n0,10\n1,20\n")
    good.write_text('name = "mine"\nduration_s = 5\ntrace_file = "steps.csv"\n[impairment]\nqueue_ms = 100\nrate_kbps = 64\n')
    assert load_scenario(good).config_at(1.5, "udp").rate_kbps == 20
    assert load_scenario(str(good)).name == "mine"

    def fails(body: str, message: str) -> None:
        p = tmp_path / "bad.toml"
        p.write_text(body)
        with pytest.raises(ScenarioError) as info:
            load_scenario(p)
        assert message in str(info.value) and "\n" not in str(info.value)

    fails("name = \n", "not TOML")
    fails('name = "x"\n', "duration_s: Field required")
    fails('name = "x"\nduration_s = 5\nbogus = 1\n', "bogus: Extra inputs are not permitted")
    fails('name = "x"\nduration_s = 5\n[impairment]\nloss = { kind = "bernoulli", rate = 10 }\n', "impairment.loss.bernoulli.rate")
    fails('name = "x"\nduration_s = 5\n[impairment]\nqueue_ms = 10\n', "needs a rate cap")
    fails('name = "x"\nduration_s = 5\n[[trace]]\ntime_s = 0\nloss = 2\n', "trace row 0: loss")
    fails('name = "x"\nduration_s = 5\n[[trace]]\ntime_s = 1\n', "first row must be at time_s 0")
    fails('name = "x"\nduration_s = 5\n[[trace]]\ntime_s = 0\n[[trace]]\ntime_s = 6\n', "after duration_s")
    fails('name = "x"\nduration_s = 5\ntrace_file = "nope.csv"\n', "nope.csv: cannot read")
    fails('name = "x"\nduration_s = 5\ntrace_file = "steps.csv"\n[[trace]]\ntime_s = 0\n', "not both")
    with pytest.raises(ScenarioError, match="unknown scenario 'nope' \\(shipped: burst-15, cap-24, capacity-drop"):
        load_scenario("nope")
