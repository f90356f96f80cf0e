"""The chart's client-address and HSTS settings (templates/nginx-config.yaml): what `helm template` renders
into the nginx ConfigMap for ingress-nginx's use-forwarded-headers, forwarded-for-header, proxy-real-ip-cidr,
use-proxy-protocol and hsts* keys, that bad CIDRs and header names fail the install with a clear message,
that the defaults are the image's own files byte for byte, and that every variant passes `nginx -t`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from chart_fixtures import Helm, containers, find, helm, one  # noqa: F401
from kube import ROOT
from stack import Nginx  # noqa: E402 (puts tests/lib on the path)
from nginx_runner import MODULE  # noqa: E402

IMAGE_FILES = ROOT / "nginx-conf" / "kroute"


def nginx_values(**realip: Any) -> dict[str, Any]:
    base = {"useProxyProtocol": False, "forwardedForHeader": "X-Forwarded-For", "proxyRealIpCidr": ["0.0.0.0/0"]}
    base.update(realip)
    return {"nginx": {"realIP": base}}


def config_of(helm: Helm, values: dict[str, Any] | None = None) -> dict[str, str]:  # noqa: F811
    objects = helm.objects(values, release="edge", namespace="ingress")
    return one(objects, "ConfigMap", "edge-kroute-nginx")["data"]


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_defaults_are_the_images_files(helm: Helm) -> None:  # noqa: F811
    data = config_of(helm)
    assert data["http.conf"] == (IMAGE_FILES / "http.conf").read_text()
    assert data["listen.conf"] == (IMAGE_FILES / "listen.conf").read_text()
    assert not any(line.startswith(("real_ip", "set_real_ip_from")) for line in lines(data["http.conf"]))


def test_the_pod_mounts_the_config_and_rolls_when_it_changes(helm: Helm) -> None:  # noqa: F811
    def pod(values: dict[str, Any] | None) -> dict[str, Any]:
        objects = helm.objects(values, release="edge", namespace="ingress")
        workload = find(objects, "Deployment")[0]
        return workload["spec"]["template"]

    template = pod(None)
    nginx = containers({"spec": {"template": template}})["nginx"]
    mount = [m for m in nginx["volumeMounts"] if m["name"] == "nginx-config"]
    assert mount == [{"name": "nginx-config", "mountPath": "/etc/nginx/kroute", "readOnly": True}]
    volume = [v for v in template["spec"]["volumes"] if v["name"] == "nginx-config"]
    assert volume[0]["configMap"]["name"] == "edge-kroute-nginx"
    checksum = template["metadata"]["annotations"]["checksum/nginx-config"]
    assert pod(nginx_values(useProxyProtocol=True))["metadata"]["annotations"]["checksum/nginx-config"] != checksum
    assert pod({"podAnnotations": {"a": "b"}})["metadata"]["annotations"] == {"checksum/nginx-config": checksum, "a": "b"}


def test_forwarded_headers_trust_the_named_proxies(helm: Helm) -> None:  # noqa: F811
    values = nginx_values(forwardedForHeader="X-Client-Chain", proxyRealIpCidr=["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"])
    values["controller"] = {"useForwardedHeaders": True}
    http = lines(config_of(helm, values)["http.conf"])
    assert http[:5] == ["real_ip_header X-Client-Chain;", "real_ip_recursive on;", "set_real_ip_from 10.0.0.0/8;",
                        "set_real_ip_from 2001:db8::/32;", "set_real_ip_from 192.0.2.1;"]
    assert 'default "$http_x_forwarded_for, $realip_remote_addr";' in http
    assert not any("proxy_protocol" in line for line in lines(config_of(helm, values)["listen.conf"]))
    # The trusted list alone, without use-forwarded-headers, trusts nobody.
    assert not any(line.startswith("set_real_ip_from") for line in lines(config_of(helm, nginx_values(
        proxyRealIpCidr=["10.0.0.0/8"]))["http.conf"]))


def test_proxy_protocol_on_every_traffic_listener(helm: Helm) -> None:  # noqa: F811
    data = config_of(helm, nginx_values(useProxyProtocol=True, proxyRealIpCidr=["10.1.0.0/16"]))
    assert lines(data["listen.conf"]) == [
        "listen 80 default_server reuseport proxy_protocol;", "listen [::]:80 default_server reuseport proxy_protocol;",
        "listen 443 ssl http2 default_server reuseport proxy_protocol;",
        "listen [::]:443 ssl http2 default_server reuseport proxy_protocol;"]
    http = lines(data["http.conf"])
    assert http[:2] == ["real_ip_header proxy_protocol;", "set_real_ip_from 10.1.0.0/16;"]
    assert "''      $proxy_protocol_addr;" in http
    # The container ports follow nginx.containerPorts.
    ports = config_of(helm, {"nginx": {"containerPorts": {"http": 8080, "https": 8443, "status": 10246}}})
    assert lines(ports["listen.conf"])[0] == "listen 8080 default_server reuseport;"
    assert lines(ports["listen.conf"])[2] == "listen 8443 ssl http2 default_server reuseport;"


def test_hsts_settings(helm: Helm) -> None:  # noqa: F811
    def header(hsts: dict[str, Any]) -> list[str]:
        base = {"enabled": True, "maxAge": 31536000, "includeSubdomains": True, "preload": False}
        base.update(hsts)
        return [line for line in lines(config_of(helm, {"nginx": {"hsts": base}})["http.conf"])
                if line.startswith("on ") or "Strict-Transport-Security" in line]

    assert header({}) == ['on      "max-age=31536000; includeSubDomains";',
                          "add_header Strict-Transport-Security $kroute_hsts always;"]
    assert header({"maxAge": 60, "includeSubdomains": False, "preload": True})[0] == 'on      "max-age=60; preload";'
    assert header({"enabled": False}) == []


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "300.1.1.1", "10.0.0", "10.0.0.0/8; deny all", "10.0.0.0/8 10.1.0.0/16",
                                  "2001:db8::/129", "2001:db8:::1", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::1",
                                  "::1/-1", "", "010.0.0.1", "10.0.0.0/08"])
def test_a_bad_cidr_fails_the_install_with_a_clear_message(helm: Helm, cidr: str) -> None:  # noqa: F811
    result = helm.template(nginx_values(proxyRealIpCidr=["10.0.0.0/8", cidr]), check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert f'nginx.realIP.proxyRealIpCidr: "{cidr}" is not an IPv4 or IPv6 address or CIDR' in result.stderr, result.stderr


def test_good_cidrs_and_the_other_refusals(helm: Helm) -> None:  # noqa: F811
    good = ["10.0.0.0/8", "192.168.1.1", "0.0.0.0/0", "2001:db8::/32", "::1", "::/0", "fe80::1:2:3:4:5:6",
            "1:2:3:4:5:6:7:8/128"]
    values = nginx_values(proxyRealIpCidr=good)
    values["controller"] = {"useForwardedHeaders": True}
    http = lines(config_of(helm, values)["http.conf"])
    assert [line for line in http if line.startswith("set_real_ip_from")] == [f"set_real_ip_from {c};" for c in good]
    for header in ("X-Forwarded-For;", "X Forwarded", "", "X-Forwarded-For\nreal_ip_header"):
        result = helm.template(nginx_values(forwardedForHeader=header), check=False)
        assert result.returncode != 0, header
    empty = nginx_values(proxyRealIpCidr=[], useProxyProtocol=True)
    result = helm.template(empty, check=False)
    assert result.returncode != 0 and "nginx.realIP.proxyRealIpCidr is empty" in result.stderr, result.stderr


@pytest.mark.parametrize("variant", ["default", "forwarded", "proxy-protocol", "no-hsts"])
def test_every_variant_passes_nginx_t(helm: Helm, variant: str) -> None:  # noqa: F811
    if not Path(MODULE).exists():
        pytest.fail(f"the module is not built: {MODULE}")
    values = {
        "default": None,
        "forwarded": {"controller": {"useForwardedHeaders": True},
                      "nginx": {"realIP": {"useProxyProtocol": False, "forwardedForHeader": "X-Real-Client",
                                           "proxyRealIpCidr": ["10.0.0.0/8", "2001:db8::/32"]}}},
        "proxy-protocol": {"controller": {"useForwardedHeaders": True}, **nginx_values(useProxyProtocol=True)},
        "no-hsts": {"nginx": {"hsts": {"enabled": False, "maxAge": 1, "includeSubdomains": False, "preload": False}}},
    }[variant]
    table = Path(tempfile.mkdtemp(prefix="kroute-chart-access-"))
    n = Nginx(table, includes=config_of(helm, values))
    try:
        result = n.test_config()
        assert result.returncode == 0, result.stderr
    finally:
        n.cleanup()
