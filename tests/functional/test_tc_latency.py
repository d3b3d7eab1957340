"""Functional tests for documents/tc-latency.sh.

The script runs for real inside throw-away network namespaces joined by a veth
pair, and every assertion reads the kernel's qdisc state with `tc qdisc show`.
The module is skipped when it cannot run here (not root, missing tools, no
network namespaces, no netem in the kernel).
"""

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "documents" / "tc-latency.sh"

SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"]
)
PARAM_VARS = ("DELAY_MS", "JITTER_MS", "DURATION_SECONDS", "INTERFACE")

COMMAND_TIMEOUT = 10
SCRIPT_TIMEOUT = 15
APPEAR_TIMEOUT = 5

ADDR_A = "10.213.0.1"
ADDR_B = "10.213.0.2"
DEV_A = "va"
DEV_B = "vb"

TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")
DELAY_RE = re.compile(
    r"\bdelay\s+(?P<delay>[\d.]+(?:us|ms|s))(?:\s+(?P<jitter>[\d.]+(?:us|ms|s)))?"
)
RTT_RE = re.compile(r"=\s*([\d.]+)/([\d.]+)/([\d.]+)")


def _which(tool):
    return shutil.which(tool, path=SEARCH_PATH)


def _run(args, timeout=COMMAND_TIMEOUT):
    return subprocess.run(
        [str(a) for a in args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_base_env(),
        stdin=subprocess.DEVNULL,
    )


def _base_env():
    env = {k: v for k, v in os.environ.items() if k not in PARAM_VARS}
    env["PATH"] = SEARCH_PATH
    return env


def _unique_ns():
    return f"opsflow-tc-{uuid.uuid4().hex[:8]}"


def _delete_ns(name):
    try:
        _run([_which("ip"), "netns", "del", name])
    except (subprocess.TimeoutExpired, OSError):
        pass


def _default_signals():
    """Reset dispositions a backgrounded pytest may pass on as ignored.

    A shell cannot trap a signal that was ignored when it started.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _to_ms(value):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    raise ValueError(value)


def _netem_lines(qdiscs):
    return [line for line in qdiscs.splitlines() if line.startswith("qdisc netem ")]


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(0.05)


@pytest.fixture(scope="module", autouse=True)
def _requirements():
    if os.geteuid() != 0:
        pytest.skip("tc-latency functional tests need root (network namespaces and tc)")
    for tool in ("ip", "tc", "bash"):
        if _which(tool) is None:
            pytest.skip(f"tc-latency functional tests need '{tool}' (install iproute2)")
    probe = _unique_ns()
    added = _run([_which("ip"), "netns", "add", probe])
    if added.returncode != 0:
        pytest.skip(f"'ip netns add' is not permitted here: {added.stderr.strip()}")
    try:
        steps = [
            (
                ["ip", "link", "add", "pa", "type", "veth", "peer", "name", "pb"],
                "cannot create a veth pair",
            ),
            (["ip", "link", "set", "pa", "up"], "cannot bring a veth up"),
            (
                ["tc", "qdisc", "add", "dev", "pa", "root", "netem", "delay", "1ms"],
                "netem is unavailable (kernel without sch_netem?)",
            ),
        ]
        for command, reason in steps:
            result = _run(
                [_which("ip"), "netns", "exec", probe, _which(command[0]), *command[1:]]
            )
            if result.returncode != 0:
                pytest.skip(
                    f"{reason}: `{' '.join(command)}` failed: {result.stderr.strip()}"
                )
    finally:
        _delete_ns(probe)


@dataclass
class Lab:
    """Two namespaces joined by a veth pair: ns_a/va (10.213.0.1) <-> ns_b/vb (10.213.0.2).

    ns_a has a default route via vb's address, ns_b has no default route.
    """

    ns_a: str = field(default_factory=_unique_ns)
    ns_b: str = field(default_factory=_unique_ns)
    processes: list = field(default_factory=list)

    def ip(self, ns, command):
        return self.checked(ns, "ip", *command.split())

    def tc(self, command, ns=None):
        return self.checked(ns or self.ns_a, "tc", *command.split())

    def checked(self, ns, tool, *args):
        result = self.exec(ns, tool, *args)
        assert result.returncode == 0, (
            f"{tool} {' '.join(args)} failed: {result.stderr}"
        )
        return result.stdout

    def exec(self, ns, tool, *args, timeout=COMMAND_TIMEOUT):
        return _run(
            [_which("ip"), "netns", "exec", ns, _which(tool), *args], timeout=timeout
        )

    def qdiscs(self, ns=None, dev=DEV_A):
        return self.checked(ns or self.ns_a, "tc", "qdisc", "show", "dev", dev)

    def netem(self, ns=None, dev=DEV_A):
        return _netem_lines(self.qdiscs(ns, dev))

    def script_command(self, ns, args):
        return [_which("ip"), "netns", "exec", ns, _which("bash"), str(SCRIPT), *args]

    def run_script(self, args="", env=None, ns=None):
        return subprocess.run(
            self.script_command(ns or self.ns_a, args.split()),
            check=False,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
            env={**_base_env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            preexec_fn=_default_signals,
        )

    def start_script(self, args="", env=None, ns=None):
        process = subprocess.Popen(
            self.script_command(ns or self.ns_a, args.split()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_base_env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            preexec_fn=_default_signals,  # noqa: PLW1509
        )
        self.processes.append(process)
        return process

    def wait_for_netem(self, process, ns=None, dev=DEV_A):
        lines = _wait_for(
            lambda: self.netem(ns, dev) or process.poll() is not None, APPEAR_TIMEOUT
        )
        if process.poll() is not None:
            out, err = process.communicate(timeout=COMMAND_TIMEOUT)
            pytest.fail(f"script exited early with {process.returncode}:\n{out}\n{err}")
        assert lines, "netem qdisc did not appear"
        return self.netem(ns, dev)

    def stop_processes(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()


@pytest.fixture
def lab(request):
    lab = Lab()
    for ns in (lab.ns_a, lab.ns_b):
        request.addfinalizer(lambda ns=ns: _delete_ns(ns))
        result = _run([_which("ip"), "netns", "add", ns])
        assert result.returncode == 0, f"ip netns add {ns} failed: {result.stderr}"
    request.addfinalizer(lab.stop_processes)

    lab.ip(lab.ns_a, f"link add {DEV_A} type veth peer name {DEV_B} netns {lab.ns_b}")
    for ns, dev, addr in ((lab.ns_a, DEV_A, ADDR_A), (lab.ns_b, DEV_B, ADDR_B)):
        lab.ip(ns, "link set lo up")
        lab.ip(ns, f"addr add {addr}/24 dev {dev}")
        lab.ip(ns, f"link set {dev} up")
    lab.ip(lab.ns_a, f"route add default via {ADDR_B} dev {DEV_A}")
    return lab


def _parse_netem(line):
    match = DELAY_RE.search(line)
    assert match, f"no delay in {line!r}"
    jitter = match.group("jitter")
    return _to_ms(match.group("delay")), _to_ms(jitter) if jitter else 0.0


def _assert_timestamped(output):
    lines = output.splitlines()
    assert lines
    for line in lines:
        assert TIMESTAMPED.match(line), f"line without timestamp: {line!r}"


def test_netem_present_during_hold_and_removed_after_duration(lab):
    before = lab.qdiscs()
    started = time.monotonic()
    process = lab.start_script(
        f"--delay-ms 120 --jitter-ms 15 --duration-seconds 2 --interface {DEV_A}"
    )

    lines = lab.wait_for_netem(process)
    assert len(lines) == 1
    assert " root " in lines[0]
    assert _parse_netem(lines[0]) == (120.0, 15.0)
    assert process.poll() is None

    out, err = process.communicate(timeout=SCRIPT_TIMEOUT)
    elapsed = time.monotonic() - started
    assert process.returncode == 0, err
    assert err == ""
    assert 2.0 <= elapsed < 2.0 + APPEAR_TIMEOUT
    assert lab.netem() == []
    assert lab.qdiscs() == before
    _assert_timestamped(out)
    assert "netem delay 120ms 15ms" in out


def test_environment_parameters_and_default_route_interface(lab):
    before = lab.qdiscs()
    process = lab.start_script(
        env={"DELAY_MS": "40", "JITTER_MS": "0", "DURATION_SECONDS": "1"}
    )

    lines = lab.wait_for_netem(process)
    assert _parse_netem(lines[0]) == (40.0, 0.0)

    out, err = process.communicate(timeout=SCRIPT_TIMEOUT)
    assert process.returncode == 0, err
    assert f"interface={DEV_A} " in out
    assert lab.qdiscs() == before


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name
)
def test_signal_mid_hold_removes_netem(lab, sig):
    before = lab.qdiscs()
    process = lab.start_script(
        f"--delay-ms 200 --duration-seconds 30 --interface {DEV_A}"
    )
    lab.wait_for_netem(process)

    started = time.monotonic()
    process.send_signal(sig)
    out, _ = process.communicate(timeout=SCRIPT_TIMEOUT)

    assert time.monotonic() - started < 5
    assert process.returncode == 128 + sig
    assert f"received {sig.name}" in out
    assert lab.netem() == []
    assert lab.qdiscs() == before


def test_refuses_when_netem_already_present(lab):
    lab.tc(f"qdisc add dev {DEV_A} root handle 1: netem delay 7ms")
    before = lab.qdiscs()

    result = lab.run_script(f"--delay-ms 100 --duration-seconds 1 --interface {DEV_A}")

    assert result.returncode != 0
    assert result.returncode != 2
    assert "netem qdisc is already present" in result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert lab.qdiscs() == before


def test_never_removes_a_qdisc_it_did_not_add(lab):
    process = lab.start_script(
        f"--delay-ms 100 --duration-seconds 1 --interface {DEV_A}"
    )
    lab.wait_for_netem(process)

    lab.tc(f"qdisc del dev {DEV_A} root")
    lab.tc(f"qdisc add dev {DEV_A} root handle 1: netem delay 9ms")
    foreign = lab.qdiscs()

    _, err = process.communicate(timeout=SCRIPT_TIMEOUT)
    assert process.returncode == 0, err
    assert "not removing anything" in err
    assert lab.qdiscs() == foreign
    (line,) = lab.netem()
    assert line.startswith("qdisc netem 1: root ")
    assert _parse_netem(line) == (9.0, 0.0)


INVALID = [
    pytest.param("--delay-ms 0 --duration-seconds 1", {}, "delay-ms", id="delay-zero"),
    pytest.param(
        "--delay-ms 60001 --duration-seconds 1", {}, "delay-ms", id="delay-max"
    ),
    pytest.param(
        "--delay-ms abc --duration-seconds 1", {}, "delay-ms", id="delay-word"
    ),
    pytest.param(
        "--delay-ms 1.5 --duration-seconds 1", {}, "delay-ms", id="delay-float"
    ),
    pytest.param(
        "--delay-ms -5 --duration-seconds 1", {}, "delay-ms", id="delay-negative"
    ),
    pytest.param(
        "--delay-ms 99999999999999999999 --duration-seconds 1",
        {},
        "delay-ms",
        id="delay-overflow",
    ),
    pytest.param(
        "--delay-ms 10 --jitter-ms 11 --duration-seconds 1",
        {},
        "jitter-ms",
        id="jitter-above-delay",
    ),
    pytest.param(
        "--duration-seconds 1",
        {"DELAY_MS": "10", "JITTER_MS": "x"},
        "jitter-ms",
        id="jitter-env-word",
    ),
    pytest.param(
        "--delay-ms 10 --duration-seconds 0", {}, "duration", id="duration-zero"
    ),
    pytest.param(
        "--delay-ms 10 --duration-seconds 86401", {}, "duration", id="duration-max"
    ),
    pytest.param("--delay-ms 10", {}, "duration", id="duration-missing"),
    pytest.param("--duration-seconds 1", {}, "delay", id="delay-missing"),
    pytest.param("--delay-ms", {}, "--delay-ms", id="flag-without-value"),
    pytest.param(
        "--delay-ms 10 --duration-seconds 1 --bogus", {}, "--bogus", id="unknown-flag"
    ),
    pytest.param(
        "--delay-ms 10 --duration-seconds 1 --interface nosuch0",
        {},
        "nosuch0",
        id="interface-missing",
    ),
    pytest.param(
        "",
        {"DELAY_MS": "10", "DURATION_SECONDS": "1", "INTERFACE": "../x"},
        "interface",
        id="interface-bad-name",
    ),
]


@pytest.mark.parametrize("args, env, mentions", INVALID)
def test_invalid_parameters_exit_2_and_change_nothing(lab, args, env, mentions):
    before = lab.qdiscs()

    result = lab.run_script(args, env=env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "ERROR" in lines[0] and mentions in lines[0]
    assert lab.qdiscs() == before


def test_no_interface_and_no_default_route_exits_2(lab):
    before = lab.qdiscs(lab.ns_b, DEV_B)

    result = lab.run_script("--delay-ms 10 --duration-seconds 1", ns=lab.ns_b)

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "no default route" in result.stderr
    assert lab.qdiscs(lab.ns_b, DEV_B) == before


def _ping_rtt(lab, count):
    result = lab.exec(
        lab.ns_a, "ping", *f"-n -q -c {count} -i 0.2 -W 2 {ADDR_B}".split()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = RTT_RE.search(result.stdout)
    assert match, result.stdout
    rtt_min, rtt_avg, rtt_max = (float(v) for v in match.groups())
    return rtt_min, rtt_avg, rtt_max


def test_ping_rtt_increases_by_the_delay(lab, record_property):
    if _which("ping") is None:
        pytest.skip("'ping' is not installed (iputils-ping)")
    delay = 100

    _ping_rtt(lab, 1)
    baseline = _ping_rtt(lab, 3)

    process = lab.start_script(
        f"--delay-ms {delay} --duration-seconds 20 --interface {DEV_A}"
    )
    lab.wait_for_netem(process)
    delayed = _ping_rtt(lab, 3)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=SCRIPT_TIMEOUT)
    assert process.returncode == 128 + signal.SIGTERM
    assert lab.netem() == []

    restored = _ping_rtt(lab, 3)
    record_property("rtt_baseline_ms", baseline)
    record_property("rtt_delayed_ms", delayed)
    record_property("rtt_restored_ms", restored)
    print(
        f"RTT min/avg/max ms: baseline={baseline} delayed({delay}ms)={delayed} restored={restored}"
    )

    added = delayed[1] - baseline[1]
    assert delayed[0] >= 0.95 * delay
    assert 0.9 * delay <= added <= delay + 60
    assert restored[1] < baseline[1] + delay / 2
