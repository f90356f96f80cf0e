"""Security properties of the whole stack, against the real API server, kroute-agent and nginx:
- annotation text written like nginx configuration is never interpreted: the route works, the nginx
  configuration on disk is byte-for-byte unchanged, the text is in no file the agent writes;
- the agent writes only inside its table directory (strace of a whole run);
- cluster data that can become a header (the module's $kroute_* variables) carries no CR, LF or other
  control character, and the one header the module composes (the HTTPS redirect) holds client data only;
- snapshots, which hold private keys, give other users no access."""

from __future__ import annotations

import grp
import hashlib
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from agent_fixtures import AGENT, dump_table, lookup, wait_for
from kube import ROOT, free_ports
from stack import Nginx, Stack, module_stack, rule  # noqa: F401 (Nginx: tests/lib/nginx_runner.py, on the path stack.py sets)
from test_hostile import HEALTHY, Steady, wait_warning, with_healthy_route

NGINX_CONF = ROOT / "nginx-conf" / "nginx.conf"
INJECTED = "injected.security.test"
DENIED = "denied.security.test"
# ingress-nginx copied these annotations into nginx.conf (CVE-2025-1974 and its family); kroute must not.
HOSTILE_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/configuration-snippet": "}; location / { return 200 owned; }",
    "nginx.ingress.kubernetes.io/server-snippet": "location /owned { return 200 owned; }\n",
    "kroute.dev/ssl-redirect": "\"; return 200 owned; #\r\n",
    "example.com/multiline": "line\r\nSet-Cookie: owned=1\r\n\r\n}}}",
}


# An access annotation (issue 19) with nginx syntax: kroute cannot read it, so the Ingress fails closed (503).
HOSTILE_ACCESS = {"nginx.ingress.kubernetes.io/auth-url": "http://x/\";\nreturn 200 owned;#"}


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    yield with_healthy_route(module_stack, "web")


def injected_ingress(stack: Stack) -> dict:
    ingress = stack.ingress("injected", {"rules": [rule(INJECTED, ("/", "Prefix", "web"))]})
    ingress["metadata"]["annotations"] = dict(HOSTILE_ANNOTATIONS)
    return ingress


def file_hashes(root: Path, skip: set[Path]) -> dict[str, str]:
    """sha256 of every regular file under root, except those under `skip`."""
    out = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip) or not path.is_file():
            continue
        out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_annotation_text_in_nginx_syntax_is_never_interpreted(stack: Stack) -> None:
    assert stack.agent is not None and stack.nginx is not None
    nginx_dir = stack.nginx.workdir
    logs = {nginx_dir / name for name in ("error.log", "access.log", "stderr.log")}
    config_before = file_hashes(nginx_dir, logs)
    assert "nginx.conf" in config_before
    agent_dir = stack.agent.dir
    agent_files_before = file_hashes(agent_dir, {stack.agent.table_dir, stack.agent.log_path})
    error_log_before = len(stack.nginx.error_log())

    with Steady(stack):
        stack.apply(injected_ingress(stack))
        assert stack.wait_status(INJECTED).service == "web"
        # Every request reaches the echo pod: no `return 200 owned` and no `location /owned` took effect.
        for path in ("/owned", "/x", "/owned?x=1"):
            reply = stack.request(INJECTED, path)
            assert (reply.status, reply.service, reply.echo["path"]) == (200, "web", path)
            assert "set-cookie" not in reply.headers
        # The one annotation kroute reads is a boolean; junk in it is reported, never copied.
        wait_warning(stack, "injected", "InvalidAnnotation", "kroute.dev/ssl-redirect is ignored")
        denied = stack.ingress("denied", {"rules": [rule(DENIED, ("/", "Prefix", "web"))]})
        denied["metadata"]["annotations"] = dict(HOSTILE_ACCESS)
        stack.apply(denied)
        reply = stack.wait_status(DENIED, status=503)
        assert not reply.echo and b"owned" not in reply.body
        wait_warning(stack, "denied", "AccessAnnotationInvalid", "auth-url")

    # nginx's configuration is what it was, byte for byte, and nginx never reloaded.
    assert file_hashes(nginx_dir, logs) == config_before
    assert "reconfiguring" not in stack.nginx.error_log()[error_log_before:]
    # The agent wrote nothing new outside its table; the table holds no annotation text.
    assert file_hashes(agent_dir, {stack.agent.table_dir, stack.agent.log_path}) == agent_files_before
    tables = list(stack.agent.table_dir.iterdir())
    assert any(t.name.startswith("table.") for t in tables)
    for table in tables:
        data = table.read_bytes()
        assert b"owned" not in data and b"snippet" not in data, table


def test_the_agent_writes_only_inside_its_table_directory(stack: Stack, tmp_path: Path) -> None:
    """A whole agent run under strace: start, list and watch, publish a table with the hostile Ingress,
    shut down. Every file it creates, writes, renames, links or removes is in its table directory."""
    table_dir = tmp_path / "table"
    trace = tmp_path / "agent.strace"
    port = free_ports(1)[0]
    command = ["strace", "-f", "-qq", "-o", str(trace),
               "-e", "trace=open,openat,openat2,creat,truncate,rename,renameat,renameat2,link,linkat,symlink,"
                     "symlinkat,unlink,unlinkat,mkdir,mkdirat,rmdir,chmod,fchmodat,chown,fchownat,lchown,mknod,mknodat",
               str(AGENT), "--table-dir", str(table_dir), "--listen", f"127.0.0.1:{port}",
               "--identity", f"strace-{uuid.uuid4().hex[:6]}", "--no-election",
               "--controller-class", stack.controller, "--ingress-class", stack.class_name,
               "--kubeconfig", str(stack.cluster.kubeconfig)]
    log = open(tmp_path / "agent.log", "wb")
    tracer = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        stack.apply(injected_ingress(stack))
        wait_for("the traced agent's table", lambda: lookup(table_dir, INJECTED) is not None, timeout=30)
        agent = int(subprocess.run(["pgrep", "-P", str(tracer.pid)], capture_output=True, text=True,
                                   check=True).stdout.split()[0])
        os.kill(agent, signal.SIGTERM)
        tracer.wait(timeout=20)
    finally:
        if tracer.poll() is None:
            children = subprocess.run(["pgrep", "-P", str(tracer.pid)], capture_output=True, text=True).stdout.split()
            for pid in children:
                os.kill(int(pid), signal.SIGKILL)
            tracer.kill()
            tracer.wait(timeout=10)
        log.close()

    writes = []
    opened_for_writing = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
    for line in trace.read_text().splitlines():
        call = re.match(r"\d+\s+(\w+)\((.*)", line)
        if call is None:
            continue
        name, args = call.groups()
        paths = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        if name in ("open", "openat", "openat2") and not opened_for_writing.search(args):
            continue
        writes += [(name, p) for p in paths]
    print("the agent's writes:", sorted({(name, re.sub(r"\.\d+", ".N", p)) for name, p in writes}))
    assert writes, "strace saw no write at all: the trace is not what this test thinks it is"
    outside = [(name, p) for name, p in writes if not (p == str(table_dir) or p.startswith(f"{table_dir}/"))]
    assert not outside, f"the agent wrote outside {table_dir}: {outside[:10]}"
    assert any(name.startswith("rename") for name, _ in writes), writes[:20]


def test_cluster_data_in_headers_carries_no_control_characters(stack: Stack) -> None:
    """The module's variables hold the namespace, Ingress and Service names of the matched rule; a
    configuration may send them as headers. Run nginx with such a configuration and look at them, after
    an Ingress tried to bring CR and LF in where the API server lets it: its paths."""
    assert stack.agent is not None
    crlf = stack.ingress("crlf", {"rules": [{"host": INJECTED, "http": {"paths": [
        {"path": "/h\r\nX-Injected: 1", "pathType": "Prefix",
         "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
        {"path": "/headers", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]})
    stack.apply(injected_ingress(stack), crlf)
    wait_warning(stack, "crlf", "InvalidRule", "spaces or control characters")
    stack.wait_route(INJECTED, "/headers", lambda r: r["ingress"]["name"] == "crlf")

    config = NGINX_CONF.read_text().replace(
        "kroute_route on;",
        "kroute_route on;\n            add_header X-Kroute-Ingress \"$kroute_namespace/$kroute_ingress\" always;"
        "\n            add_header X-Kroute-Service $kroute_service always;", 1)
    exposing = Nginx(stack.agent.table_dir, config)
    try:
        exposing.start()
        for path, ingress in (("/headers", "crlf"), ("/", "injected"), ("/h%0D%0AX-Injected:%201", "injected")):
            status, body, response = exposing.get(INJECTED, path)
            assert status == 200, (path, body[:200])
            assert response.getheader("X-Kroute-Ingress") == f"{stack.namespace}/{ingress}"
            assert response.getheader("X-Kroute-Service") == "web"
            assert response.getheader("X-Injected") is None
            for name, value in response.getheaders():
                assert not re.search(r"[\x00-\x1f\x7f]", value), (name, value)
    finally:
        exposing.stop()
        exposing.cleanup()

    # Every string of the table that reaches nginx: no control characters anywhere in the dump.
    table = dump_table(stack.agent.table_dir)
    assert table is not None

    def strings(value: object) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    assert not [s for s in strings(table) if re.search(r"[\x00-\x1f\x7f]", s)]

    # The redirect to HTTPS, the one header the module writes itself, is made of the client's Host and
    # request URI only.
    redirect = stack.ingress("redirect", {"rules": [rule("redirect.security.test", ("/", "Prefix", "web"))],
                                          "tls": [{"hosts": ["redirect.security.test"], "secretName": "absent"}]})
    stack.apply(redirect)
    stack.wait_route("redirect.security.test", "/", lambda r: r.get("sslRedirect") is True)
    reply = stack.request("redirect.security.test", "/a%0D%0Ab?c=%0A")
    assert reply.status == 308
    assert reply.headers["location"] == "https://redirect.security.test/a%0D%0Ab?c=%0A"


def test_snapshots_give_other_users_no_access(stack: Stack) -> None:
    assert stack.agent is not None
    table_dir = stack.agent.table_dir
    snapshots = [p for p in table_dir.iterdir() if p.name.startswith("table.")]
    assert snapshots
    for snapshot in snapshots:
        info = snapshot.stat()
        assert info.st_mode & 0o777 == 0o640, (snapshot, oct(info.st_mode))
        if os.geteuid() == 0:
            assert info.st_gid == grp.getgrnam("www-data").gr_gid
    # Only the agent writes the directory and the control file (a generation number, no key material).
    control = (table_dir / "control").stat()
    assert control.st_mode & 0o022 == 0, oct(control.st_mode)
    assert table_dir.stat().st_mode & 0o022 == 0, oct(table_dir.stat().st_mode)
