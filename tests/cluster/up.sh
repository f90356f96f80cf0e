#!/usr/bin/env bash
set -euo pipefail
# Starts a single-node control plane on loopback: etcd and kube-apiserver with RBAC, then waits for /readyz.
# With KROUTE_CLUSTER_WORKLOADS=1 (what `make cluster-up` does) the cluster also runs workloads: kube-controller-manager,
# kube-scheduler and the node agent kroute-node (tests/cluster/node), which runs the pods on the local docker engine
# in a docker network of their own; up.sh then waits for the Node to be Ready and the default ServiceAccount.
#
# With KROUTE_CLUSTER_GATEWAY_API=standard or experimental it also installs that channel of the Gateway API CRDs
# (the release tools/conformance/go.mod requires, from the Go module cache: tools.sh gateway-crds) and waits until
# they are Established; also into a cluster that is already up.
#
# Settings (environment): see lib.sh. KROUTE_CLUSTER_TIMEOUT bounds the wait for /readyz (seconds, default 60).
# Writes into $KROUTE_CLUSTER_DIR: pki/ (CA, serving and client certificates, the service-account key),
# etcd/ (data), *.log, *.pid, kubeconfig (the admin identity, system:masters) and cluster.env (for `source`).
# Running it again for a cluster that is up does nothing. On any failure it stops what it started.

here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
start_ms=$(date +%s%3N)

timeout="${KROUTE_CLUSTER_TIMEOUT:-60}"
pki="$cluster_dir/pki"
server="https://127.0.0.1:$apiserver_port"
issuer="https://kubernetes.default.svc.cluster.local"
service_cidr="10.96.0.0/16"

case "$gateway_api" in
  "" | none | standard | experimental) ;;
  *) die "KROUTE_CLUSTER_GATEWAY_API=$gateway_api: give standard, experimental or none" ;;
esac

# The Gateway API CRDs of channel $gateway_api, applied server-side (the largest, HTTPRoute's, is beyond what a
# client-side apply can record in its last-applied annotation), then waited for until Established.
install_gateway_api() {
  local crds began=$SECONDS files f applied names
  [ -n "$gateway_api" ] && [ "$gateway_api" != none ] || return 0
  crds=$("$here/tools.sh" gateway-crds "$gateway_api") || die "the Gateway API CRDs ($gateway_api) are not available"
  files=()
  for f in "$crds"/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || files+=(-f "$f")
  done
  applied=$("$bin/kubectl" --kubeconfig "$cluster_dir/kubeconfig" apply --server-side --force-conflicts \
    --field-manager kroute-cluster -o name "${files[@]}" 2>&1) || die "applying the Gateway API CRDs failed:
$applied"
  names=$(grep '^customresourcedefinition' <<<"$applied")
  "$bin/kubectl" --kubeconfig "$cluster_dir/kubeconfig" wait --for condition=Established --timeout "${timeout}s" \
    $names >/dev/null || die "the Gateway API CRDs were not Established within ${timeout}s"
  say "Gateway API CRDs ($gateway_api channel, $(wc -l <<<"$names") CRDs from $crds) Established in $(( SECONDS - began ))s"
}

if apiserver_pid=$(running_pid kube-apiserver) && running_pid etcd >/dev/null &&
   { [ "$workloads" != 1 ] || running_pid kroute-node >/dev/null; }; then
  say "already running (kube-apiserver pid $apiserver_pid): KUBECONFIG=$cluster_dir/kubeconfig"
  bin=$("$here/tools.sh" path) || die "the control plane binaries are not built: run 'make cluster-tools' first"
  install_gateway_api
  exit 0
fi
stop_cluster

bin=$("$here/tools.sh" path) || die "the control plane binaries are not built: run 'make cluster-tools' first"

# Workloads mode: the pods' network and the node's address on it (the bridge's gateway, its first address).
if [ "$workloads" = 1 ]; then
  [[ "$pod_cidr" =~ ^10\.([0-9]+)\.([0-9]+)\.0/(1[6-9]|2[0-4])$ ]] ||
    die "KROUTE_POD_CIDR=$pod_cidr: give a 10.x network of /16 to /24 ending in .0, such as 10.244.0.0/16"
  node_ip="10.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.1"
  docker info >/dev/null 2>&1 || die "workloads mode runs pods on docker, and 'docker info' fails: start the docker engine"
  node_agent=$("$here/tools.sh" node) || die "the node agent (tests/cluster/node) did not build"
else
  node_ip=""
fi

# A port in use is the most common failure; say which one and how to choose another.
check_port_free() {
  local port=$1 what=$2 variable=$3 holder
  if [[ ! "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "$variable=$port is not a port number"
  fi
  holder=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
  if [ -n "$holder" ]; then
    die "port $port ($what) is already in use on this machine:
  $holder
  Stop whatever listens there ('make cluster-down' if it is a kroute cluster), or pick another port: $variable=<port>"
  fi
}
check_port_free "$apiserver_port" "kube-apiserver" KROUTE_APISERVER_PORT
check_port_free "$etcd_port" "etcd client" KROUTE_ETCD_PORT
check_port_free "$etcd_peer_port" "etcd peer" KROUTE_ETCD_PEER_PORT
if [ "$(printf '%s\n' "$apiserver_port" "$etcd_port" "$etcd_peer_port" | sort -u | wc -l)" -ne 3 ]; then
  die "KROUTE_APISERVER_PORT, KROUTE_ETCD_PORT and KROUTE_ETCD_PEER_PORT must differ ($apiserver_port, $etcd_port, $etcd_peer_port)"
fi

started=false
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && $started; then
    say "start failed; stopping what was started"
    stop_cluster
  fi
  rm -f "$pki/openssl.cnf"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One ECDSA P-256 certificate signed by the cluster CA: $1 name, $2 subject, $3 extended key usage, $4 subjectAltName.
issue_certificate() {
  local extensions=(-addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature"
                    -addext "extendedKeyUsage=$3")
  [ -z "${4:-}" ] || extensions+=(-addext "subjectAltName=$4")
  openssl req -config "$pki/openssl.cnf" -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -days 365 -subj "$2" \
    -keyout "$pki/$1.key" -out "$pki/$1.crt" "${extensions[@]}" 2>/dev/null
}

# Certificates are made once per cluster directory, so a kubeconfig stays valid across restarts.
make_pki() {
  mkdir -p "$pki"
  chmod 700 "$pki"
  printf '[req]\ndistinguished_name = dn\n[dn]\n' >"$pki/openssl.cnf"
  openssl req -config "$pki/openssl.cnf" -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 3650 -subj "/CN=kroute-test-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  # etcd also dials its own client port with this certificate (for its gRPC gateway), hence clientAuth.
  issue_certificate etcd-server "/CN=etcd" serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
  issue_certificate apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
  issue_certificate admin "/O=system:masters/CN=kroute-admin" clientAuth
  openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$pki/service-account.key"
  openssl ec -in "$pki/service-account.key" -pubout -out "$pki/service-account.pub" 2>/dev/null
  touch "$pki/.complete"
}
[ -e "$pki/.complete" ] || { rm -rf "$pki"; make_pki; }
printf '[req]\ndistinguished_name = dn\n[dn]\n' >"$pki/openssl.cnf"

# The serving certificate names every address a client uses: loopback, the `kubernetes` Service's cluster IP and, in
# workloads mode, the node's address on the pods' network (where the node agent relays to the API server).
apiserver_san="IP:127.0.0.1,IP:10.96.0.1${node_ip:+,IP:$node_ip},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
if [ ! -e "$pki/apiserver.crt" ] || [ "$(cat "$pki/apiserver.san" 2>/dev/null)" != "$apiserver_san" ]; then
  issue_certificate apiserver "/CN=kube-apiserver" serverAuth "$apiserver_san"
  echo "$apiserver_san" >"$pki/apiserver.san"
fi
# Client certificates of the workload components, each the identity its RBAC (or the Node authorizer) expects.
client_certificate() { [ -e "$pki/$1.crt" ] || issue_certificate "$1" "$2" clientAuth; }
if [ "$workloads" = 1 ]; then
  client_certificate controller-manager "/CN=system:kube-controller-manager"
  client_certificate scheduler "/CN=system:kube-scheduler"
  client_certificate node "/O=system:nodes/CN=system:node:$node_name"
fi

# Starts $1 in its own session, detached from this shell, logging to $1.log.
start_component() {
  local name=$1
  shift
  setsid "$@" >"$cluster_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
  started=true
}

start_component etcd "$bin/etcd" \
  --name kroute \
  --data-dir "$cluster_dir/etcd" \
  --listen-client-urls "https://127.0.0.1:$etcd_port" \
  --advertise-client-urls "https://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "kroute=http://127.0.0.1:$etcd_peer_port" \
  --cert-file "$pki/etcd-server.crt" --key-file "$pki/etcd-server.key" \
  --trusted-ca-file "$pki/ca.crt" --client-cert-auth \
  --unsafe-no-fsync \
  --log-level warn

# Polls an HTTPS health URL until it answers "ok" (or etcd's {"health":"true"}), as long as every
# started component lives and the timeout has not passed; otherwise shows the log that explains why.
wait_until_ready() {
  local name=$1 url=$2 answer c
  local deadline=$(( $(date +%s) + timeout ))
  while :; do
    answer=$(curl -fsS --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$url" 2>/dev/null || true)
    case "$answer" in ok | *'"health":"true"'*) return 0 ;; esac
    for c in "${components[@]}"; do
      if [ -e "$(pid_file "$c")" ] && ! running_pid "$c" >/dev/null; then
        say "$c exited during startup; the end of $cluster_dir/$c.log:"
        tail -n 20 "$cluster_dir/$c.log" | sed 's/^/    /' >&2
        exit 1
      fi
    done
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "$name not ready after ${timeout}s; the end of $cluster_dir/$name.log:"
      tail -n 20 "$cluster_dir/$name.log" | sed 's/^/    /' >&2
      [ "$name" != kube-apiserver ] ||
        curl -sS --max-time 2 --cacert "$pki/ca.crt" "$url?verbose" 2>&1 | grep -v '^\[+\]' | sed 's/^/    /' >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}
wait_until_ready etcd "https://127.0.0.1:$etcd_port/health"

# The endpoint reconciler is off because the API server's own address is loopback, which an Endpoints object may not
# hold. The Node authorizer (and NodeRestriction) confine the node agent to its own Node and the pods bound to it.
start_component kube-apiserver "$bin/kube-apiserver" \
  --bind-address 127.0.0.1 \
  --advertise-address 127.0.0.1 \
  --secure-port "$apiserver_port" \
  --cert-dir "$pki" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --etcd-servers "https://127.0.0.1:$etcd_port" \
  --etcd-cafile "$pki/ca.crt" --etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key" \
  --service-account-issuer "$issuer" \
  --service-account-key-file "$pki/service-account.pub" \
  --service-account-signing-key-file "$pki/service-account.key" \
  --service-cluster-ip-range "$service_cidr" \
  --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction \
  --endpoint-reconciler-type none \
  --kubelet-preferred-address-types InternalIP \
  --profiling=false

# A kubeconfig for identity $2 (its certificate and key in pki/), embedded so the file stands alone.
b64() { base64 -w0 <"$1"; }
write_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kroute
  cluster:
    server: $server
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$pki/$2.crt")
    client-key-data: $(b64 "$pki/$2.key")
contexts:
- name: kroute
  context:
    cluster: kroute
    user: $2
current-context: kroute
EOF
}
umask 077
# The admin identity: a client certificate in system:masters.
write_kubeconfig "$cluster_dir/kubeconfig" admin
cat >"$cluster_dir/cluster.env" <<EOF
KUBECONFIG=$cluster_dir/kubeconfig
KROUTE_APISERVER=$server
KROUTE_APISERVER_CA=$pki/ca.crt
KROUTE_TOOLS_BIN=$bin
EOF
if [ "$workloads" = 1 ]; then
  write_kubeconfig "$cluster_dir/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$cluster_dir/scheduler.kubeconfig" scheduler
  write_kubeconfig "$cluster_dir/node.kubeconfig" node
  echo "KROUTE_POD_NETWORK=$pod_network" >>"$cluster_dir/cluster.env"
  echo "KROUTE_NODE_IP=$node_ip" >>"$cluster_dir/cluster.env"
fi
umask 022

wait_until_ready kube-apiserver "$server/readyz"

if [ "$workloads" = 1 ]; then
  # The pods' network: a docker bridge of this cluster's own, whose gateway is the node's address.
  if [ "$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$pod_network" 2>/dev/null)" != "$pod_cidr" ]; then
    docker network rm "$pod_network" >/dev/null 2>&1 || true
    docker network create --driver bridge --subnet "$pod_cidr" --gateway "$node_ip" \
      --label "kroute.dev/cluster=$cluster_id" -o "com.docker.network.bridge.name=kr-$cluster_id" \
      "$pod_network" >/dev/null || die "cannot create the docker network $pod_network ($pod_cidr); is the range in use? set KROUTE_POD_CIDR"
  fi
  # The controllers a single node needs for Deployments, Services and namespaces, and none that would act on a
  # missing cloud or node fleet. Each controller uses its own ServiceAccount, as in a real cluster. The node
  # lifecycle controller removes the not-ready taint that admission puts on a new Node (NodeRestriction forbids a
  # node to touch its taints) and, as in a real cluster, evicts pods from a node whose heartbeats stop.
  start_component kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$cluster_dir/controller-manager.kubeconfig" \
    --controllers deployment,replicaset,endpointslice,endpointslicemirroring,namespace,garbagecollector,serviceaccount,serviceaccount-token,root-ca-cert-publisher,nodelifecycle \
    --use-service-account-credentials \
    --service-account-private-key-file "$pki/service-account.key" \
    --root-ca-file "$pki/ca.crt" \
    --leader-elect=false \
    --secure-port 0
  start_component kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$cluster_dir/scheduler.kubeconfig" \
    --leader-elect=false \
    --secure-port 0
  start_component kroute-node "$node_agent" \
    --kubeconfig "$cluster_dir/node.kubeconfig" \
    --node-name "$node_name" \
    --network "$pod_network" \
    --cluster-id "$cluster_id" \
    --node-ip "$node_ip" \
    --apiserver "127.0.0.1:$apiserver_port" \
    --state-dir "$cluster_dir/node"
  # Ready for workloads when the node says Ready and the serviceaccount controller made the default ServiceAccount.
  wait_for_workloads() {
    local deadline=$(( $(date +%s) + timeout )) c ready account
    while :; do
      ready=$("$bin/kubectl" --kubeconfig "$cluster_dir/kubeconfig" get node "$node_name" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
      account=$("$bin/kubectl" --kubeconfig "$cluster_dir/kubeconfig" get serviceaccount default -n default \
        -o name 2>/dev/null || true)
      [ "$ready" = True ] && [ -n "$account" ] && return 0
      for c in kube-controller-manager kube-scheduler kroute-node; do
        if ! running_pid "$c" >/dev/null; then
          say "$c exited during startup; the end of $cluster_dir/$c.log:"
          tail -n 20 "$cluster_dir/$c.log" | sed 's/^/    /' >&2
          exit 1
        fi
      done
      if [ "$(date +%s)" -ge "$deadline" ]; then
        say "no Ready node and default ServiceAccount after ${timeout}s (node Ready=${ready:-?}); the end of the node agent's log:"
        tail -n 20 "$cluster_dir/kroute-node.log" | sed 's/^/    /' >&2
        exit 1
      fi
      sleep 0.2
    done
  }
  wait_for_workloads
fi
install_gateway_api
elapsed_ms=$(( $(date +%s%3N) - start_ms ))
say "ready in $(( elapsed_ms / 1000 )).$(( elapsed_ms % 1000 / 100 ))s at $server${node_ip:+; node $node_name runs pods on docker network $pod_network ($pod_cidr)}"
say "  export KUBECONFIG=$cluster_dir/kubeconfig; $bin/kubectl get ns"
