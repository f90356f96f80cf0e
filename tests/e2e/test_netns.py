"""The test-pod network itself: pods get 10.x addresses, the host reaches their servers, and nothing
is left behind after close()."""
import json
import urllib.request

import netns


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_host_reaches_echo_servers_in_pods():
    with netns.PodNetwork() as network:
        a = network.add_pod("pod-a")
        b = network.add_pod("pod-b")
        a.echo([8080])
        b.echo([8080, 9090])
        assert a.address.startswith("10.") and a.address != b.address
        assert get(f"http://{a.address}:8080/x")["name"] == "pod-a"
        reply = get(f"http://{b.address}:9090/y?z=1")
        assert reply["name"] == "pod-b"
        assert reply["path"] == "/y?z=1"
        assert reply["peer"][0] == network.gateway  # the host reaches pods from the bridge address


def test_close_removes_namespaces_bridge_and_processes():
    network = netns.PodNetwork()
    pod = network.add_pod("pod")
    server = pod.echo([8080])
    tag = network.tag
    network.close()
    assert server.poll() is not None
    assert not [name for name in netns.leftovers() if tag in name]
