"""`make conformance`: the Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance) against kroute.

Starts a cluster that runs pods on docker with the Gateway API CRDs (experimental channel, so that extended
features can be claimed), kroute-agent and nginx with the module as processes on this machine (as `make run`
does, tests/lib/host_kroute.py) with nginx on the node's address (the pods' docker network gateway, which this
machine owns) on ports 80 and 443, the GatewayClass `kroute`, and runs the suite's test binary
(tests/cluster/tools.sh conformance) with the profiles GATEWAY-HTTP and GATEWAY-GRPC and the features of
docs/conformance/features.txt. The suite writes its report to docs/conformance/<date>-<commit>.yaml.

--core runs only the core tests of GATEWAY-HTTP (what the suite `conformance` of `make test` runs) and writes the
report into the state directory instead. Whatever happens, everything is stopped at the end: the suite, nginx, the
agent, the pods, the cluster and its docker network, and the image names the suite's manifests needed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests" / "lib")]

from host_kroute import HostKroute, StartError, tail  # noqa: E402
from kube import Cluster, echo_image, tools_bin  # noqa: E402

TOOLS = ROOT / "tests" / "cluster" / "tools.sh"
CONFORMANCE_MODULE = ROOT / "tests" / "cluster" / "tools" / "conformance"
FEATURES = ROOT / "docs" / "conformance" / "features.txt"
REPORTS = ROOT / "docs" / "conformance"
SUITE_PACKAGE = "sigs.k8s.io/gateway-api/conformance"

GATEWAY_CLASS = "kroute"
CONTROLLER_NAME = "kroute.dev/gateway-controller"
PROFILES = ["GATEWAY-HTTP", "GATEWAY-GRPC"]
# The core features of GATEWAY-HTTP: with only these the suite runs that profile's core tests and nothing else.
CORE_PROFILE, CORE_FEATURES = "GATEWAY-HTTP", ["Gateway", "HTTPRoute", "ReferenceGrant"]
# The namespace of the agent's leader Lease (it writes status as the leader).
AGENT_NAMESPACE = "kroute-system"
# Addresses of the Gateways' own (127.0.10.1 up): more than the suite has Gateways at any one time.
SLOTS = 24
URL = "https://github.com/kroute/kroute"
# Bounds: the whole suite (the go test timeout; the runner stops it a minute later), the core tests alone.
SUITE_TIMEOUT = {"full": 90 * 60, "core": 30 * 60}
# The suite's manifests name registry images, and nothing is pulled here: the names get the local echo image
# (echo-basic of the same Gateway API release, tests/cluster/tools/echo) for as long as the run lasts.
ECHO_IMAGE = re.compile(r"^registry\.k8s\.io/gateway-api/echo-basic:\S+$")
# The base manifests also run CoreDNS, for the UDPRoute tests only (GATEWAY-UDP, not run here); its pod just has
# to be Ready, so the echo image stands in for it.
STAND_INS = re.compile(r"^registry\.k8s\.io/coredns/coredns:\S+$")
LABEL = "kroute.dev/conformance-stand-in"


def say(text: str = "") -> None:
    print(text, flush=True)


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True, **kwargs)


def git(*args: str) -> str:
    return run(["git", "-C", ROOT, *args]).stdout.strip()


def features() -> list[str]:
    """docs/conformance/features.txt: one feature a line; # starts a comment."""
    names = [line.split("#", 1)[0].strip() for line in FEATURES.read_text().splitlines()]
    return [n for n in names if n]


def elapsed(began: float) -> str:
    return f"{time.monotonic() - began:.0f} s"


class Images:
    """The image names the suite's manifests use, tagged onto the local echo image for the run, untagged after
    unless a container still uses them. A name that already names another image (pulled elsewhere) is left alone
    and used as it is."""

    def __init__(self, go: str):
        self.go = go
        self.tagged: list[str] = []

    def suite_images(self) -> set[str]:
        env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=readonly"}
        run([self.go, "mod", "download", SUITE_PACKAGE], cwd=CONFORMANCE_MODULE, env=env)
        source = Path(run([self.go, "list", "-m", "-f", "{{.Dir}}", SUITE_PACKAGE], cwd=CONFORMANCE_MODULE,
                          env=env).stdout.strip())
        names = set()
        for manifest in [source / "base" / "manifests.yaml", *sorted((source / "tests").glob("*.yaml"))]:
            names.update(re.findall(r"^\s*image:\s*(\S+)\s*$", manifest.read_text(), re.M))
        return names

    def tag(self, echo: str) -> list[str]:
        wanted = sorted(n for n in self.suite_images() if ECHO_IMAGE.match(n) or STAND_INS.match(n))
        echo_id = run(["docker", "image", "inspect", "-f", "{{.Id}}", echo]).stdout.strip()
        for name in wanted:
            found = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                                   text=True)
            if found.returncode == 0 and found.stdout.strip() != echo_id and not self._ours(name):
                continue
            run(["docker", "tag", echo, name])
            self.tagged.append(name)
        return wanted

    @staticmethod
    def _ours(name: str) -> bool:
        """A name this runner tagged before and could not untag (a killed run): its image is an echo image."""
        labels = run(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", name]).stdout
        return "kroute.dev/binary" in (json.loads(labels) or {})

    def untag(self) -> None:
        """Removes the names, but not one that a container still uses: another conformance run on this machine
        (its pods are made from the same names) needs them until it ends."""
        in_use = set(run(["docker", "ps", "-a", "--format", "{{.Image}}"]).stdout.split())
        for name in self.tagged:
            if name not in in_use:
                subprocess.run(["docker", "image", "rm", "--no-prune", name], capture_output=True)
        self.tagged.clear()


class Suite:
    """The test binary under `go tool test2json`: its events go to <state>/conformance.json (for JUnit), its
    text to <state>/conformance.log, and one line per finished test to the terminal."""

    def __init__(self, go: str, binary: str, state: Path, kubeconfig: Path):
        self.go, self.binary, self.state, self.kubeconfig = go, binary, state, kubeconfig
        self.process: subprocess.Popen[str] | None = None
        self.started: set[str] = set()
        self.verdicts: dict[str, str] = {}
        self.top = ""
        self.timeout = 0

    @property
    def log(self) -> Path:
        return self.state / "conformance.log"

    @property
    def events(self) -> Path:
        return self.state / "conformance.json"

    def run(self, flags: list[str], timeout: int) -> int:
        self.timeout = timeout
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        command = [self.go, "tool", "test2json", "-t", "-p", SUITE_PACKAGE, self.binary, "-test.v=test2json",
                   f"-test.timeout={timeout}s", "-test.run=^TestConformance$", *flags]
        (self.state / "conformance.command").write_text(" ".join(command) + "\n")
        with open(self.log, "w") as log, open(self.events, "w") as events:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                            env=env, cwd=self.state, start_new_session=True)
            assert self.process.stdout is not None
            # The binary stops itself at -test.timeout; this is the net under it, should it hang.
            overdue = threading.Timer(timeout + 60, self.stop)
            overdue.start()
            try:
                for line in self.process.stdout:
                    events.write(line)
                    self.event(line, log)
                return self.process.wait()
            finally:
                overdue.cancel()

    def event(self, line: str, log: IO[str]) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            log.write(line)
            return
        action, test = event.get("Action"), event.get("Test", "")
        if action == "output":
            log.write(event.get("Output", ""))
        elif action == "run" and test.count("/") == 1:
            self.started.add(test.split("/", 1)[1])
        elif action in ("pass", "fail", "skip") and test:
            # Only the suite's own tests (TestConformance/<ShortName>), not the steps inside them.
            if test.count("/") == 1:
                name = test.split("/", 1)[1]
                self.verdicts[name] = action
                say(f"  {action.upper():4} {name} ({event.get('Elapsed', 0):.1f} s)")
            elif "/" not in test:
                self.top = action
        log.flush()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def summarize(suite: Suite, report: Path) -> list[str]:
    """What the suite said: test counts, the failures, and the report's verdict per profile."""
    counts = {v: sum(1 for x in suite.verdicts.values() if x == v) for v in ("pass", "fail", "skip")}
    lines = [f"{len(suite.verdicts)} tests finished: {counts['pass']} passed, {counts['fail']} failed, "
             f"{counts['skip']} skipped (features not claimed, or not in the profiles)"]
    failed = sorted(n for n, v in suite.verdicts.items() if v == "fail")
    if failed:
        lines.append("failed: " + " ".join(failed))
    unfinished = sorted(suite.started - suite.verdicts.keys())
    if unfinished:
        # Parallel tests wait for the sequential ones and report last: an early end leaves them open.
        lines.append(f"started, never finished (parallel tests report last): {' '.join(unfinished)}")
    if "panic: test timed out" in tail(suite.log, 200000):
        # Go ends the binary at -test.timeout without running its cleanups: the report is written in one.
        lines.append(f"the suite ran out of its {suite.timeout} s (--timeout) and was ended without its report")
    if suite.top == "fail" and not failed:
        # The setup (GatewayClass Accepted, base manifests, Gateways Programmed, pods Ready) failed.
        reasons = [ln.strip() for ln in tail(suite.log, 20000).splitlines()
                   if re.search(r"Error:|Messages:|error waiting|panic:", ln)]
        lines.append("the suite failed before or outside its tests: " + (" | ".join(reasons[-4:]) or "see the log"))
    if not report.exists():
        lines.append(f"no report was written ({report})")
        return lines
    data = yaml.safe_load(report.read_text()) or {}
    lines.append(f"report {report}: Gateway API {data.get('gatewayAPIVersion')} "
                 f"({data.get('gatewayAPIChannel')} channel), mode {data.get('mode')}")
    for profile in data.get("profiles") or []:
        core = profile.get("core") or {}
        stats = core.get("statistics") or {}
        lines.append(f"  {profile.get('name')}: core {core.get('result')} (passed {stats.get('Passed', 0)}, "
                     f"failed {stats.get('Failed', 0)}, skipped {stats.get('Skipped', 0)})"
                     + (f", extended {profile['extended'].get('result')}" if profile.get("extended") else ""))
    return lines


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.build: Path = args.build.resolve()
        self.state: Path = (args.state or self.build / "conformance").resolve()
        self.core: bool = args.core
        self.cluster: Cluster | None = None
        self.kroute: HostKroute | None = None
        self.images: Images | None = None
        self.suite: Suite | None = None
        self.timings: list[tuple[str, float]] = []

    def step(self, what: str, began: float) -> None:
        took = time.monotonic() - began
        self.timings.append((what, took))
        say(f"  ({what}: {took:.1f} s)")

    def report_path(self) -> Path:
        if self.args.report:
            return self.args.report.resolve()
        if self.core:
            return self.state / "report-core.yaml"
        commit = git("rev-parse", "--short", "HEAD") + ("-dirty" if git("status", "--porcelain") else "")
        return REPORTS / f"{datetime.date.today().isoformat()}-{commit}.yaml"

    def suite_flags(self, report: Path) -> list[str]:
        release = re.search(r"version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text())
        version = f"{release.group(1) if release else 'unknown'}-{git('describe', '--tags', '--always', '--dirty')}"
        flags = [f"--gateway-class={GATEWAY_CLASS}", f"--report-output={report}",
                 "--organization=kroute", "--project=kroute", f"--url={URL}", f"--version={version}",
                 f"--contact={URL}/issues",
                 # The cluster goes when the run ends: deleting the base namespaces first only costs time.
                 "--cleanup-base-resources=false",
                 # GatewayStaticAddresses: the last slot is free while the suite runs (Gateways take free slots
                 # from the first); a TEST-NET-1 address is no slot.
                 f"--usable-address=127.0.10.{SLOTS}", "--unusable-address=192.0.2.1"]
        if self.core:
            flags += [f"--conformance-profiles={CORE_PROFILE}", f"--supported-features={','.join(CORE_FEATURES)}"]
        else:
            flags += [f"--conformance-profiles={','.join(PROFILES)}", f"--supported-features={','.join(features())}"]
        return flags + self.args.suite_args

    def start(self) -> tuple[Suite, Path, list[str]]:
        began = time.monotonic()
        say("Building: the conformance suite's test binary (cached) and the echo image")
        # Its build (minutes, the first time) reports progress on stderr.
        binary = subprocess.run(["bash", str(TOOLS), "conformance"], stdout=subprocess.PIPE, text=True,
                                check=True).stdout.strip()
        go = run(["bash", TOOLS, "go"]).stdout.strip()
        echo = echo_image()
        self.images = Images(go)
        names = self.images.tag(echo)
        say(f"  suite {binary}\n  echo image {echo}, also named {' '.join(names)}")
        self.step("binary and images", began)

        began = time.monotonic()
        say("Starting the cluster (workloads, Gateway API CRDs of the experimental channel)")
        # A fresh cluster each run; the last run's state (stopped) stays until then, next to the logs.
        shutil.rmtree(self.state / "cluster", ignore_errors=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.cluster = Cluster(self.state / "cluster", tools_bin(), workloads=True, gateway_api="experimental")
        self.cluster.start()
        node_ip = self.cluster.node_ip
        say(f"  API server {self.cluster.server}, node {node_ip}, pods in {self.cluster.pod_cidr}")
        self.step("cluster and CRDs", began)

        began = time.monotonic()
        self.cluster.kubectl("create", "namespace", AGENT_NAMESPACE)
        self.kroute = HostKroute(self.build, self.cluster.kubeconfig, self.state, agent=self.args.agent)
        # Every Gateway an address of its own (docs/gateway-api.md, "Isolation"), on loopback: the suite's
        # client runs on this machine. More than the suite ever has at once.
        slots = [f"127.0.10.{i}" for i in range(1, SLOTS + 1)]
        gateway_flags = [f"--gateway-controller={CONTROLLER_NAME}", f"--gateway-address={node_ip}",
                         "--gateway-http-port=80,8080,8090", *(f"--gateway-slot={a}" for a in slots)]
        say(f"Starting kroute-agent {' '.join(gateway_flags)}")
        try:
            self.kroute.start_agent("--election-namespace", AGENT_NAMESPACE, "--publish-address", node_ip,
                                    "--identity", "conformance", "--log-level", "debug", *gateway_flags)
        except StartError as e:
            if re.search(r"gateway-(controller|address)", str(e)):
                raise StartError(f"kroute-agent ({self.kroute.agent_binary}) refused the Gateway API flags "
                                 f"{' '.join(gateway_flags)}: it has no Gateway API support yet, so there is "
                                 f"nothing to run the suite against.\n{e}") from None
            raise
        say(f"Starting nginx on {node_ip}:80 (http) and {node_ip}:443 (https), and the same ports of "
            f"{slots[0]}-{slots[-1]} (the Gateways' own addresses; 8080 and 8090 too, for listeners on those ports)")
        self.kroute.start_nginx(80, address=node_ip, tls_port=443, more_addresses=tuple(slots), more_ports=(8080, 8090))
        self.cluster.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                            "metadata": {"name": GATEWAY_CLASS}, "spec": {"controllerName": CONTROLLER_NAME}})
        say(f"  GatewayClass {GATEWAY_CLASS} (controllerName {CONTROLLER_NAME}); logs in {self.state}")
        self.step("kroute", began)

        self.suite = Suite(go, binary, self.state, self.cluster.kubeconfig)
        report = self.report_path()
        report.parent.mkdir(parents=True, exist_ok=True)
        report.unlink(missing_ok=True)
        return self.suite, report, self.suite_flags(report)

    def diagnose(self, suite: Suite) -> list[str]:
        """Why the suite's setup waited in vain: its last complaint, the pods and Gateways of its namespaces that
        are not ready (with their containers' states and the Gateways' conditions), and the last warnings of the
        node agent and of kroute-agent."""
        lines = []
        waits = [ln.strip() for ln in tail(suite.log, 200000).splitlines()
                 if re.search(r"not ready yet|not Accepted yet|not Programmed yet|No pods deployed|[Gg]eneration", ln)]
        lines.append("the suite's last complaint: " + (waits[-1] if waits else "none in its log"))
        if self.cluster is None:
            return lines
        try:
            pods = json.loads(self.cluster.kubectl("get", "pods", "-A", "-o", "json"))["items"]
            gateways = json.loads(self.cluster.kubectl("get", "gateways", "-A", "-o", "json"))["items"]
        except Exception as e:  # noqa: BLE001 - a diagnosis must not hide the failure it explains
            return lines + [f"cannot list pods and Gateways: {e}"]
        for pod in pods:
            meta, status = pod["metadata"], pod.get("status", {})
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
            if ready or status.get("phase") == "Succeeded" or not meta["namespace"].startswith("gateway-conformance"):
                continue
            states = []
            for c in status.get("containerStatuses", []):
                state = c.get("state", {})
                kind = next(iter(state), "unknown")
                detail = state.get(kind, {})
                states.append(f"{c.get('name')} {kind} {detail.get('reason', '')} {detail.get('message', '')} "
                              f"restarts={c.get('restartCount', 0)}".strip())
            lines.append(f"pod {meta['namespace']}/{meta['name']}: phase {status.get('phase')}, node "
                         f"{pod.get('spec', {}).get('nodeName', 'none')}, {'; '.join(states) or 'no container status'}")
        def described(conditions: list[dict[str, Any]]) -> str:
            return "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason')} (observed "
                             f"{c.get('observedGeneration')}): {c.get('message')}" for c in conditions)

        for gw in gateways:
            status = gw.get("status", {})
            conditions = status.get("conditions", [])
            generation = gw["metadata"].get("generation")
            bad = [c for c in conditions if c.get("status") != "True" or c.get("observedGeneration") != generation]
            if bad or not conditions:
                name = f"{gw['metadata']['namespace']}/{gw['metadata']['name']}"
                lines.append(f"gateway {name} (generation {generation}): " + (described(bad) or "no conditions"))
                # Its listeners' own conditions say which reference or port is the matter.
                for listener in status.get("listeners", []):
                    wrong = [c for c in listener.get("conditions", [])
                             if c.get("status") != ("False" if c.get("type") == "Conflicted" else "True")]
                    if wrong:
                        lines.append(f"  listener {listener.get('name')}: {described(wrong)}")
        for name, path in (("node agent", self.state / "cluster" / "kroute-node.log"),
                           ("kroute-agent", self.kroute.agent_log if self.kroute else None)):
            if path is None:
                continue
            warnings = [ln for ln in tail(path, 400000).splitlines()
                        if re.search(r'"level":"(WARN|ERROR)"|\blevel=(warn|error)\b', ln)]
            lines += [f"{name}: {ln[:400]}" for ln in warnings[-8:]] or [f"{name}: no warnings in {path}"]
        return lines

    def stop(self) -> None:
        began = time.monotonic()
        if self.suite is not None:
            self.suite.stop()
        if self.kroute is not None:
            gone = self.kroute.exited() if self.suite is not None else ""
            if gone:
                say(f"{gone} had exited before the end; the end of its log:\n"
                    + tail(self.kroute.agent_log if gone == "kroute-agent" else self.kroute.nginx_dir / "error.log"))
            self.kroute.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self.images is not None:
            self.images.untag()
        self.step("stopping everything", began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--state", type=Path, help="logs, the cluster's state (default <build>/conformance)")
    parser.add_argument("--core", action="store_true", help="only the core tests of GATEWAY-HTTP")
    parser.add_argument("--report", type=Path, help="where the suite writes its report (default: "
                        "docs/conformance/<date>-<commit>.yaml; with --core <state>/report-core.yaml)")
    parser.add_argument("--agent", type=Path, help="the kroute-agent to run (default <build>/agent/kroute-agent)")
    parser.add_argument("--timeout", type=int, help=f"seconds the suite may take (default {SUITE_TIMEOUT['full']}, "
                        f"with --core {SUITE_TIMEOUT['core']}); it writes no report when it runs out")
    parser.add_argument("suite_args", nargs="*", help="more flags for the suite, after --: "
                        "-- --run-test=HTTPRouteSimpleSameNamespace, --skip-tests=A,B, --debug")
    args = parser.parse_args()
    if os.geteuid() != 0:
        say("make conformance needs root: nginx listens on ports 80 and 443, the node agent mounts the pods' volumes")
        return 1

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    conformance = Run(args)
    began = time.monotonic()
    rc = 1
    try:
        suite, report, flags = conformance.start()
        timeout = args.timeout or SUITE_TIMEOUT["core" if args.core else "full"]
        say(f"Running the Gateway API conformance suite ({'GATEWAY-HTTP core' if args.core else ', '.join(PROFILES)}"
            f"; log {suite.log})")
        say(f"  flags: {' '.join(flags)}")
        suite_began = time.monotonic()
        rc = suite.run(flags, timeout)
        conformance.step("the suite", suite_began)
        say("Summary:")
        for line in summarize(suite, report):
            say(f"  {line}")
        if suite.top == "fail" and "fail" not in suite.verdicts.values():
            # CI keeps only this output: say here why the setup did not get ready.
            say("What was not ready when the suite gave up:")
            for line in conformance.diagnose(suite):
                say(f"  {line}")
    except KeyboardInterrupt:
        say("\nInterrupted; stopping.")
        rc = 130
    except Exception as e:  # noqa: BLE001 - shown once, then everything is stopped
        say(f"make conformance failed: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        conformance.stop()
        say("Times: " + ", ".join(f"{what} {took:.0f} s" for what, took in conformance.timings)
            + f"; total {elapsed(began)}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
