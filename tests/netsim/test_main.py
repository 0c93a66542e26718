"""`python -m netsim`: a real relay process, and one-line errors for bad input."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from netsim.__main__ import _config, _parser, main


def test_relay_process_counts_and_stops_cleanly() -> None:
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = echo.recvfrom(2048)
            except TimeoutError:
                continue
            echo.sendto(data, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = echo.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netsim",
            "relay",
            "--udp",
            "--listen",
            "127.0.0.1:0",
            "--target",
            f"127.0.0.1:{port}",
            "--loss",
            "0.5",
            "--delay-ms",
            "10",
            "--seed",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()  # "netsim relay: udp 127.0.0.1:PORT -> ..."
        relay_port = int(banner.split()[3].rsplit(":", 1)[1])
        client.settimeout(0.5)
        for i in range(200):
            client.sendto(i.to_bytes(4, "big"), ("127.0.0.1", relay_port))
            time.sleep(0.001)
        got = 0
        try:
            while True:
                client.recvfrom(64)
                got += 1
        except TimeoutError:
            pass
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        counters = json.loads(out)
        fwd, bwd = counters["forward"], counters["backward"]
        assert fwd["sent"] == 200
        # loss in both directions: about a quarter comes back
        assert fwd["dropped_loss"] / 200 == pytest.approx(0.5, abs=0.12)
        assert got == bwd["delivered"] and got / 200 == pytest.approx(0.25, abs=0.1)
        assert fwd["delivered_wire_bytes"] == fwd["delivered_bytes"] + 28 * fwd["delivered"]  # IP/UDP by default
    finally:
        if proc.poll() is None:
            proc.kill()
        stop.set()
        thread.join()
        client.close()
        echo.close()


RELAY = ["relay", "--udp", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["relay", "--udp", "--listen", "nope", "--target", "127.0.0.1:9"], "expected HOST:PORT, got 'nope'"),
        (["relay", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9"], "one of the arguments --udp --tcp is required"),
        (RELAY + ["--loss", "2"], "--loss must be in 0..1, got 2"),
        (RELAY + ["--loss", "0.1", "--burst", "0.1,2"], "not allowed with argument"),
        (RELAY + ["--burst", "0.15"], "expected AVG_LOSS,MEAN_BURST"),
        (RELAY + ["--burst", "1.5,3"], "average loss must be in [0, 1), got 1.5"),
        (RELAY + ["--scenario", "nope"], "unknown scenario 'nope'"),
        (RELAY + ["--queue-ms", "100"], "a queue limit needs a rate cap"),
        (RELAY + ["--rate-kbps", "-3"], "rate_kbps: Input should be greater than 0"),
        (RELAY + ["--trace", "/nonexistent/t.csv"], "/nonexistent/t.csv: cannot read"),
        (["relay", "--udp", "--listen", "192.0.2.1:5", "--target", "127.0.0.1:9"], "cannot listen on 192.0.2.1:5"),
    ],
)
def test_bad_input_is_one_error_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_scenarios_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "burst-15",
        "cap-24",
        "capacity-drop",
        "clean",
        "jitter-50",
        "loss-10",
        "loss-20",
        "loss-5",
        "mobile",
    ]


def test_scenario_flags_override(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(
        ["relay", "--tcp", "--listen", "h:1", "--target", "h:2", "--scenario", "capacity-drop", "--delay-ms", "5", "--burst", "0.15,3", "--queue-bytes", "3000"]
    )
    cfg, trace = _config(args)
    # capacity-drop counts payload only (overhead_bytes = 0 in the scenario)
    assert (cfg.delay_ms, cfg.queue_bytes, cfg.queue_ms, cfg.overhead_bytes, cfg.rate_kbps) == (5, 3000, None, 0, 16)
    assert cfg.loss is not None and cfg.loss.mean_loss() == pytest.approx(0.15)
    assert trace is not None and trace.row_at(12).capacity_kbps == 4
    assert (
        main(["relay", "--tcp", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--scenario", "capacity-drop", "--delay-ms", "5", "--duration", "0.2"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["forward"]["sent"] == 0
