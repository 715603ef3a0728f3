"""Status at a glance (issue 16): the sandbox_info module, the host command jailhost-status and the
node exporter textfile its timer writes, each compared with what systemd (`systemctl show`) and
/proc say on the host, read here directly and not through the code under test.

On the lab hosts the cgroup controllers are read-only (docs/testing.md): systemd prints
MemoryCurrent, TasksCurrent and CPUUsageNSec as "[not set]", and the status must say unknown
(null, '?', no sample) there; on a host with accounting the same tests compare the numbers.
"""

from __future__ import annotations

import json
import re
import shlex
import time

import jsonschema
import pytest

from hostlib import arp_probe_failures, host_state, jail_pids, load_vars, proc_status, run_play, run_role, wait_until

VARS = load_vars(__file__)
JAILS = VARS["jails_under_test"]
NAMES = [j["name"] for j in JAILS]
TEXTFILE = VARS["status_textfile"]
PROPERTIES = "NRestarts,MainPID,ActiveState,ActiveEnterTimestamp,MemoryCurrent,MemoryMax,TasksCurrent,TasksMax,CPUUsageNSec"

USAGE = {"type": "object", "required": ["current", "max", "percent"], "additionalProperties": False,
         "properties": {"current": {"type": ["integer", "null"], "minimum": 0},
                        "max": {"type": ["integer", "null"], "minimum": 0},
                        "percent": {"type": ["number", "null"]}}}
JAIL_SCHEMA = {
    "type": "object",
    "required": ["name", "state", "since", "restarts", "unit", "memory", "tasks", "cpu_seconds", "ip", "bridge",
                 "root", "published_ports", "pid", "child_pid", "daemon_pids", "network", "processes", "confined",
                 "confinement"],
    "properties": {
        "name": {"type": "string"},
        "state": {"enum": ["running", "stopped", "failed", "missing"]},
        "since": {"type": ["integer", "null"]},
        "restarts": {"type": ["integer", "null"], "minimum": 0},
        "memory": USAGE, "tasks": USAGE,
        "cpu_seconds": {"type": ["number", "null"], "minimum": 0},
        "ip": {"type": ["string", "null"]},
        "published_ports": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["proto", "public_address", "public_port", "jail_port"],
            "properties": {"proto": {"enum": ["tcp", "udp"]}, "public_address": {"type": ["string", "null"]},
                           "public_port": {"type": "integer"}, "jail_port": {"type": "integer"}}}},
        "pid": {"type": ["integer", "null"]},
        "daemon_pids": {"type": "array", "items": {"type": "integer"}},
        "confined": {"type": "boolean"},
        "confinement": {"type": "object", "required": ["confined", "processes", "seccomp", "no_new_privs",
                                                       "own_namespaces", "cap_eff", "cap_bnd", "problems"],
                        "properties": {"processes": {"type": "integer"},
                                       "cap_eff": {"type": ["array", "null"], "items": {"type": "string"}},
                                       "problems": {"type": "array", "items": {"type": "string"}}}},
        "unit": {"type": "object", "required": ["name", "active", "since", "active_since", "restarts", "main_pid"]},
    },
}


def show(host, name: str) -> dict:
    out = host.check_output(f"systemctl show --timestamp=unix -p {PROPERTIES} jailhost-{name}.service")
    return dict(line.split("=", 1) for line in out.splitlines())


def expected_usage(raw_current: str, raw_max: str) -> tuple:
    return (None if raw_current == "[not set]" else int(raw_current),
            None if raw_max == "infinity" else int(raw_max))


def assert_reports_the_host(host, jail: dict, entry: dict) -> None:
    """ENTRY (module or command) against systemctl show and /proc, read now."""
    name = jail["name"]
    jsonschema.validate(entry, JAIL_SCHEMA)
    props = show(host, name)
    main, child, daemons = jail_pids(host, name)
    assert (entry["name"], entry["state"], entry["ip"]) == (name, "running", jail["ip"])
    assert (entry["pid"], entry["child_pid"], entry["daemon_pids"]) == (main, child, daemons)
    assert entry["restarts"] == int(props["NRestarts"])
    assert entry["since"] == int(props["ActiveEnterTimestamp"].lstrip("@")) == entry["unit"]["active_since"]
    memory, memory_max = expected_usage(props["MemoryCurrent"], props["MemoryMax"])
    tasks, tasks_max = expected_usage(props["TasksCurrent"], props["TasksMax"])
    assert (entry["memory"]["max"], entry["tasks"]["max"]) == (memory_max, tasks_max) == (128 * 2 ** 20, 32)
    if memory is None:
        assert entry["memory"]["current"] is None and entry["memory"]["percent"] is None
    else:
        assert abs(entry["memory"]["current"] - memory) < 16 * 2 ** 20
    if tasks is None:
        assert entry["tasks"]["current"] is None
    else:
        assert abs(entry["tasks"]["current"] - tasks) <= 2
    if props["CPUUsageNSec"] == "[not set]":
        assert entry["cpu_seconds"] is None
    else:
        assert entry["cpu_seconds"] == pytest.approx(int(props["CPUUsageNSec"]) / 1e9, abs=1.0)
    published = [{"proto": "tcp", "public_address": None, "public_port": p["public_port"],
                  "jail_port": p.get("jail_port", p["public_port"])}
                 for p in VARS["bridge_published_ports"] if p["jail_ip"] == jail["ip"]]
    assert entry["published_ports"] == published
    # confinement: the daemon's own /proc/PID/status
    status = proc_status(host, daemons[0])
    summary = entry["confinement"]
    assert (status["Seccomp"], status["NoNewPrivs"], status["CapEff"]) == ("2", "1", "0000000000000000")
    assert summary == {"confined": True, "processes": len(entry["processes"]), "seccomp": True,
                       "no_new_privs": True, "own_namespaces": True, "cap_eff": [], "cap_bnd": [], "problems": []}
    assert daemons[0] in [p["pid"] for p in entry["processes"]]


def module_jails(host, tmp_path) -> dict:
    out = tmp_path / "info.json"
    result = run_play(host, {"tasks": [
        {"name": "List the jails", "jailhost.jails.sandbox_info": {}, "register": "info"},
        {"name": "Save them", "ansible.builtin.copy": {"content": "{{ info.jails | to_json }}", "dest": str(out),
                                                       "mode": "0600"},
         "delegate_to": "localhost"},
    ]}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return {j["name"]: j for j in json.loads(out.read_text())}


def command_jails(host) -> dict:
    data = json.loads(host.check_output("jailhost-status --json"))
    assert abs(data["timestamp"] - float(host.check_output("date +%s.%N"))) < 30
    return {j["name"]: j for j in data["jails"]}


@pytest.mark.parametrize("jail", JAILS, ids=NAMES)
def test_module_reports_what_systemd_and_proc_say(host, jail, tmp_path):
    assert_reports_the_host(host, jail, module_jails(host, tmp_path)[jail["name"]])


@pytest.mark.parametrize("jail", JAILS, ids=NAMES)
def test_command_json_reports_what_systemd_and_proc_say(host, jail):
    assert_reports_the_host(host, jail, command_jails(host)[jail["name"]])


def test_command_and_module_are_one_implementation(host, tmp_path):
    # the installed copy is the collection's file, byte for byte
    from pathlib import Path
    source = Path(__file__).resolve().parents[3] / "plugins" / "module_utils" / "jailstatus.py"
    assert host.file("/usr/local/libexec/jailhost/jailstatus.py").content_string == source.read_text()
    wrapper = host.file("/usr/local/sbin/jailhost-status")
    assert (wrapper.user, wrapper.group, wrapper.mode) == ("root", "root", 0o755)
    assert "/usr/bin/python3 -I /usr/local/libexec/jailhost/jailstatus.py" in wrapper.content_string
    module, command = module_jails(host, tmp_path), command_jails(host)
    for name in NAMES:
        drop = ("processes", "confinement", "unit", "memory", "tasks", "cpu_seconds")
        assert {k: v for k, v in module[name].items() if k not in drop} == \
            {k: v for k, v in command[name].items() if k not in drop}


def test_table_is_one_screen_and_says_unknown(host):
    out = host.check_output("jailhost-status")
    lines = out.splitlines()
    assert lines[0].split() == ["JAIL", "STATE", "SINCE", "RESTARTS", "MEMORY", "TASKS", "CPU", "ADDRESS", "PORTS",
                                "CONFINEMENT"]
    assert len(lines) <= 25 and max(len(line) for line in lines) <= 160
    rows = {line.split()[0]: line.split() for line in lines[1:1 + len(NAMES)]}
    assert sorted(rows) == sorted(NAMES)
    for jail in JAILS:
        row, props = rows[jail["name"]], show(host, jail["name"])
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(props["ActiveEnterTimestamp"].lstrip("@"))))
        memory = "?" if props["MemoryCurrent"] == "[not set]" else None
        assert row[1] == "running" and " ".join(row[2:4]) == since
        assert row[5] == props["NRestarts"]
        if memory:
            assert row[6] == "?/128M"
        assert row[7].endswith("/32") and row[9] == jail["ip"]
        assert row[10] == ("80>8080" if jail["name"] == "alpha" else "-")
        assert row[11:] == ["ok", "seccomp", "nnp", "ns", "caps:none"]


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text: str) -> dict:
    """Strict text exposition format: a TYPE before a family's samples, labels quoted, values floats."""
    samples, types = {}, {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types and kind in ("gauge", "counter")
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = LABEL.findall(match.group(3) or "")
        assert "".join(f'{k}="{v}"{s}' for k, v, s in labels) == (match.group(3) or ""), line
        assert match.group(1) in types, line
        key = (match.group(1), tuple((k, v) for k, v, _ in labels))
        assert key not in samples
        samples[key] = float(match.group(4))
    return samples


def textfile(host) -> dict:
    return parse_prometheus(host.file(TEXTFILE).content_string)


@pytest.fixture(scope="module")
def timer(host, tmp_path_factory):
    """The status role as the scenario converged it (the textfile timer of vars.yml). Other suites
    of the scenario run the rootfs role, which depends on the status role, with only their own
    variables: status_textfile empty, so they remove the timer, as documented."""
    result = run_role(host, "jailhost.jails.status", VARS, tmp_path_factory.mktemp("status"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_textfile_is_written_by_the_timer(host, timer):
    assert host.service("jailhost-status-textfile.timer").is_enabled
    assert host.check_output("systemctl show -p ActiveState --value jailhost-status-textfile.timer") == "active"
    # rewritten every status_interval seconds, atomically (no temporary file left beside it)
    first = float(host.check_output(f"stat -c %.9Y {TEXTFILE}"))
    wait_until(lambda: float(host.check_output(f"stat -c %.9Y {TEXTFILE}")) > first,
               timeout=VARS["status_interval"] * 3)
    f = host.file(TEXTFILE)
    assert (f.user, f.mode) == ("root", 0o644)
    directory = TEXTFILE.rsplit("/", 1)[0]
    assert host.check_output(f"ls -A {directory}").split() == [TEXTFILE.rsplit("/", 1)[1]]
    samples = textfile(host)
    stamp = samples[("jailhost_status_timestamp_seconds", ())]
    assert abs(stamp - float(host.check_output("date +%s.%N"))) < VARS["status_interval"] * 3
    for jail in JAILS:
        name, props = jail["name"], show(host, jail["name"])
        label = (("jail", name),)
        assert samples[("jailhost_jail_up", label)] == 1
        assert samples[("jailhost_jail_confined", label)] == 1
        assert samples[("jailhost_jail_effective_capabilities", label)] == 0
        assert samples[("jailhost_jail_memory_max_bytes", label)] == 128 * 2 ** 20
        assert samples[("jailhost_jail_tasks_max", label)] == 32
        assert samples[("jailhost_jail_state_since_seconds", label)] == int(props["ActiveEnterTimestamp"].lstrip("@"))
        for metric, prop in (("jailhost_jail_memory_bytes", "MemoryCurrent"), ("jailhost_jail_tasks", "TasksCurrent"),
                             ("jailhost_jail_cpu_seconds_total", "CPUUsageNSec")):
            # unknown to the host: no sample at all, never a made-up 0
            assert ((metric, label) in samples) == (props[prop] != "[not set]"), metric
        assert samples[("jailhost_jail_info", label + (("unit", f"jailhost-{name}.service"), ("ip", jail["ip"]),
                                                       ("bridge", VARS["bridge_name"]), ("state", "running")))] == 1
    assert samples[("jailhost_jail_published_port_info", (("jail", "alpha"), ("proto", "tcp"), ("public_address", ""),
                                                          ("public_port", "80"), ("jail_port", "8080")))] == 1
    assert not [k for k in samples if k[0] == "jailhost_jail_published_port_info" and k[1][0] == ("jail", "beta")]


def test_restarts_count_up_after_a_kill_9(host, tmp_path, timer):
    main, _, daemons = jail_pids(host, "beta")
    before = command_jails(host)["beta"]["restarts"]
    assert before == int(show(host, "beta")["NRestarts"])
    arp_failures = arp_probe_failures(host, "jailhost-beta.service")
    host.run_expect([0], f"kill -9 {daemons[0]}")
    wait_until(lambda: command_jails(host)["beta"]["state"] == "running"
               and command_jails(host)["beta"]["pid"] not in (None, main), timeout=15)
    expected = before + 1 + arp_probe_failures(host, "jailhost-beta.service") - arp_failures
    assert int(show(host, "beta")["NRestarts"]) == expected
    assert command_jails(host)["beta"]["restarts"] == expected
    assert module_jails(host, tmp_path)["beta"]["restarts"] == expected
    wait_until(lambda: textfile(host).get(("jailhost_jail_restarts_total", (("jail", "beta"),))) == expected,
               timeout=VARS["status_interval"] * 3)
    # the table too
    row = [line.split() for line in host.check_output("jailhost-status beta").splitlines()[1:2]][0]
    assert row[0] == "beta" and row[5] == str(expected)
    # and a stopped jail is reported stopped, since its stop, with no sample of a running one
    host.run_expect([0], "systemctl stop jailhost-beta.service")
    try:
        beta = command_jails(host)["beta"]
        props = host.check_output("systemctl show --timestamp=unix -p InactiveEnterTimestamp --value "
                                  "jailhost-beta.service")
        assert (beta["state"], beta["pid"], beta["confined"]) == ("stopped", None, False)
        assert beta["since"] == int(props.lstrip("@"))
        assert host.check_output("jailhost-status beta").splitlines()[1].split()[1] == "stopped"
    finally:
        host.run_expect([0], "systemctl start jailhost-beta.service")
        jail_pids(host, "beta")


# Run by the host's python3 -I: the command's code with an audit hook (PEP 578) that records every
# file it opens, every directory it lists and every program it starts.
AUDIT = r"""
import json, runpy, sys
events = []
def hook(event, args):
    if event in ('open', 'os.listdir', 'os.scandir'):
        events.append([event, str(args[0])])
    elif event in ('subprocess.Popen', 'os.exec', 'os.posix_spawn', 'os.system', 'os.spawn'):
        events.append([event, str(args[0]), [str(a) for a in args[1]] if len(args) > 1 else []])
sys.addaudithook(hook)
sys.argv = ['jailhost-status', '--json']
try:
    runpy.run_path('/usr/local/libexec/jailhost/jailstatus.py', run_name='__main__')
except SystemExit:
    pass
sys.stderr.write('AUDIT' + json.dumps(events))
"""


def test_command_reads_only_host_state_and_runs_only_systemctl(host):
    """Jails are hostile: the command, root on the host, must not open anything in a jail root or
    run any program but the host's systemctl (docs/operations.md, "Status at a glance")."""
    result = host.run(f"/usr/bin/python3 -I -c {shlex.quote(AUDIT)} >/dev/null")
    assert result.rc == 0, result.stderr
    events = json.loads(result.stderr.rsplit("AUDIT", 1)[1])
    opened = [path for event, path, *_ in events if event in ("open", "os.listdir", "os.scandir")]
    started = [(event, path) for event, path, *_ in events if event not in ("open", "os.listdir", "os.scandir")]
    # controls: the hook sees the reads of a jail daemon's /proc status and the systemctl call
    _, _, daemons = jail_pids(host, "alpha")
    assert f"/proc/{daemons[0]}/status" in opened
    assert started and all(path == "/usr/bin/systemctl" for _, path in started), started
    allowed = ("/proc/", "/run/firejail/", "/etc/jailhost/", "/usr/lib/python3", "/usr/local/libexec/jailhost/",
               "/dev/null")
    assert [path for path in opened if not path.startswith(allowed) and not path.isdigit()] == []
    assert not [path for path in opened if path.startswith("/var/lib/jailhost")]


TIMER_UNITS = ("/etc/systemd/system/jailhost-status-textfile.timer", "/etc/systemd/system/jailhost-status-textfile.service")


def recap(result) -> list:
    return re.findall(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout)


@pytest.mark.parametrize("role_vars, message", [
    ({"status_interval": 4}, "status_interval must be 5 or more"),
    ({"status_textfile": "relative/jailhost.prom"}, "status_textfile empty or an absolute path"),
    ({"status_textfile": "/var/lib/node exporter/jailhost.prom"}, "without blanks"),
    ({"status_firewall_dir": "/etc/jailhost/fire%wall"}, "without blanks"),
], ids=["interval-too-short", "relative-textfile", "blank-in-textfile", "percent-in-firewall-dir"])
def test_status_role_bad_input_fails_before_any_change(host, tmp_path, role_vars, message):
    watched = ["/usr/local/sbin", "/usr/local/libexec/jailhost", "/etc/systemd/system", TEXTFILE.rsplit("/", 1)[0]]
    before = host_state(host, watched[:-1])
    result = run_role(host, "jailhost.jails.status", dict(VARS, **role_vars), tmp_path)
    assert result.returncode != 0 and message in result.stdout, result.stdout[-3000:]
    assert host_state(host, watched[:-1]) == before


def test_status_role_removes_the_timer_and_puts_it_back(host, tmp_path):
    try:
        result = run_role(host, "jailhost.jails.status", dict(VARS, status_textfile=""), tmp_path)
        assert result.returncode == 0, result.stdout[-3000:]
        assert not any(host.file(path).exists for path in TIMER_UNITS)
        assert host.run("systemctl is-active jailhost-status-textfile.timer").stdout.strip() in ("inactive", "unknown")
        # the command stays; the last textfile stays as it was (nothing rewrites it any more)
        assert host.file("/usr/local/sbin/jailhost-status").exists
        written = host.check_output(f"stat -c %.9Y {TEXTFILE}")
        time.sleep(VARS["status_interval"] * 2)
        assert host.check_output(f"stat -c %.9Y {TEXTFILE}") == written
        again = run_role(host, "jailhost.jails.status", dict(VARS, status_textfile=""), tmp_path)
        assert again.returncode == 0 and [r[1] for r in recap(again)] == ["0"], again.stdout[-3000:]
    finally:
        result = run_role(host, "jailhost.jails.status", VARS, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(host.file(path).exists for path in TIMER_UNITS)
    wait_until(lambda: float(host.check_output(f"stat -c %.9Y {TEXTFILE}")) > float(written),
               timeout=VARS["status_interval"] * 3)
    again = run_role(host, "jailhost.jails.status", VARS, tmp_path)
    assert again.returncode == 0 and [r[1] for r in recap(again)] == ["0"], again.stdout[-3000:]
