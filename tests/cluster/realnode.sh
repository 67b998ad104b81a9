#!/usr/bin/env bash
# Adds a real node to a control plane started by up.sh: kubelet (built by build-node.sh),
# Debian's containerd and runc, a CNI bridge, and CoreDNS for Services and pods. up.sh calls
# this when TFJOB_CLUSTER_REAL_NODE=1; down.sh takes it all away (realnode-down.sh).
#
# The network rule: everything of the node lives in one network namespace this script creates
# (tfn-<id>): containerd, kubelet, the pods' bridge (10.244.0.0/24, no masquerading, no route
# out), CoreDNS on the bridge's gateway address. It reaches the API server, and the API server
# reaches the kubelet (logs, exec), only through unix sockets bridged by socat to 127.0.0.1 on
# both sides. Pods reach the API server at the `kubernetes` Service's address (10.96.0.1:443),
# which is an address of the namespace itself, served by socat the same way. No packet of a pod,
# the kubelet or containerd leaves that namespace for anything but loopback on this machine.
#
# The host: kubelet and containerd run in a private mount namespace, with tmpfs over the paths
# they write (/var/lib/kubelet, /var/log/containers, /var/lib/cni, /run/containerd, ...), so
# their mounts vanish with them; their cgroups live under /tfjob-<id> in every hierarchy; the
# kernel settings the kubelet rewrites are saved here and restored by realnode-down.sh.
#
# Usage: realnode.sh DIR. Writes DIR/realnode/ (configuration, logs, pids, the saved sysctls).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$(cd "$1" && pwd)"
log() { echo "[realnode $(date +%H:%M:%S)] $*" >&2; }
start=$(date +%s.%N)
for tool in containerd runc containerd-shim-runc-v2 socat nsenter unshare ip busybox; do
  command -v "$tool" >/dev/null || { log "missing $tool: apt-get install containerd runc containernetworking-plugins socat busybox-static iproute2 util-linux"; exit 1; }
done
[[ -x /usr/lib/cni/bridge ]] || { log "missing the CNI plugins: apt-get install containernetworking-plugins"; exit 1; }
node_bin="$("$here/build-node.sh" | tail -n1)"
images="$("$here/../images/build.sh" | tail -n1)"
# TFJOB_REAL_NODE_TENSORFLOW=1 also imports the TensorFlow image of the examples (1.4 GB).
tf_image=""
if [[ "${TFJOB_REAL_NODE_TENSORFLOW:-0}" == 1 ]]; then
  tf_image="$("$here/../images/build-tensorflow.sh" | tail -n1)/tensorflow.tar"
fi
d="$dir/realnode"
[[ -d "$d" ]] && "$here/realnode-down.sh" "$dir"
mkdir -p "$d"/{run,pids,logs,pki,cni/net.d,cni/ipam,pod-logs,kubelet,plugins,containerd}
id="$(basename "$dir" | tr -c 'a-zA-Z0-9\n' '-' | tail -c 12)"; id="${id#-}"
netns="tfn-$id"; cgroot="tfjob-$id"; name="real-node-0"
echo "$netns" > "$d/netns"; echo "$cgroot" > "$d/cgroup"
ap=$(cat "$dir/apiserver-port"); pki="$dir/pki"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kp=$(free_port); echo "$kp" > "$d/kubelet-port"
kc() { "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
spawn() { # name, then the command (outside the node's namespaces)
  local n="$1"; shift
  setsid "$@" >"$d/logs/$n.log" 2>&1 < /dev/null &
  echo $! > "$d/pids/$n.pid"
}

# --- kernel settings the kubelet rewrites (not namespaced): saved for realnode-down.sh ----------
for k in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
  echo "$k=$(sysctl -n "$k")"
done > "$d/sysctl.orig"

# --- the network namespace: a bridge for the pods, the kubernetes Service address --------------
ip netns del "$netns" 2>/dev/null || true # left by a crashed run
ip netns add "$netns"
nsx() { nsenter --net="/run/netns/$netns" "$@"; }
nsx ip link set lo up
nsx ip link add tfbr0 type bridge
nsx ip addr add 10.244.0.1/24 dev tfbr0
nsx ip link set tfbr0 up
nsx ip addr add 10.96.0.1/32 dev lo

# --- identity: the kubelet's client certificate (system:node:<name>) ----------------------------
openssl req -newkey rsa:2048 -nodes -keyout "$d/pki/kubelet.key" -out "$d/pki/kubelet.csr" \
  -subj "/O=system:nodes/CN=system:node:$name" 2>/dev/null
openssl x509 -req -in "$d/pki/kubelet.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -CAcreateserial -CAserial "$d/pki/ca.srl" -days 30 -out "$d/pki/kubelet.crt" \
  -extfile "$pki/client.ext" 2>/dev/null
kc create clusterrolebinding tfjob-test-system-nodes --clusterrole=system:node \
  --group=system:nodes --dry-run=client -o yaml | kc apply -f - >/dev/null
kubeconfig() { # file, then the user's two credential lines
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$ap", certificate-authority: $pki/ca.crt}}]
users: [{name: u, user: {$2, $3}}]
contexts: [{name: local, context: {cluster: local, user: u}}]
current-context: local
KC
}
kubeconfig "$d/kubelet.kubeconfig" "client-certificate: $d/pki/kubelet.crt" "client-key: $d/pki/kubelet.key"
kubeconfig "$d/coredns.kubeconfig" "client-certificate: $pki/admin.crt" "client-key: $pki/admin.key"

# --- configuration ------------------------------------------------------------------------------
cat > "$d/containerd.toml" <<TOML
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$d/run/containerd.sock"
[ttrpc]
  address = "$d/run/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "tfjob-test.local/pause:1"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below its own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
TOML
cat > "$d/cni/net.d/10-tfjob.conflist" <<CNI
{"cniVersion": "1.0.0", "name": "tfjob-test", "plugins": [
  {"type": "bridge", "bridge": "tfbr0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$d/cni/ipam"}},
  {"type": "loopback"}]}
CNI
cat > "$d/Corefile" <<COREFILE
cluster.local:53 {
    bind 10.244.0.1
    errors
    kubernetes cluster.local {
        kubeconfig $d/coredns.kubeconfig local
        pods insecure
    }
}
# Nothing outside the cluster is resolved: the network rule keeps pods off other networks.
.:53 {
    bind 10.244.0.1
    template ANY ANY {
        rcode NXDOMAIN
    }
}
COREFILE
for c in /sys/fs/cgroup/*/; do
  [[ "$c" == */unified/ ]] || mkdir -p "$c$cgroot"
done
if [[ -d /sys/fs/cgroup/cpuset/$cgroot ]]; then
  cat /sys/fs/cgroup/cpuset/cpuset.cpus > "/sys/fs/cgroup/cpuset/$cgroot/cpuset.cpus"
  cat /sys/fs/cgroup/cpuset/cpuset.mems > "/sys/fs/cgroup/cpuset/$cgroot/cpuset.mems"
fi
cat > "$d/kubelet.yaml" <<KCFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroot
containerRuntimeEndpoint: unix://$d/run/containerd.sock
address: 127.0.0.1
port: $kp
readOnlyPort: 0
healthzPort: 0
podLogsDir: $d/pod-logs
clusterDNS: [10.244.0.1]
clusterDomain: cluster.local
resolvConf: $d/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
failSwapOn: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 50
registerWithTaints:
- {key: tfjob-operator.io/real-node, value: "true", effect: NoSchedule}
KCFG
printf 'nameserver 10.244.0.1\n' > "$d/resolv.conf"

# --- API server <-> node, over unix sockets only -----------------------------------------------
spawn socat-api socat UNIX-LISTEN:"$d/run/api.sock",fork,unlink-early TCP:127.0.0.1:"$ap"
spawn socat-kubelet socat TCP-LISTEN:"$kp",bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:"$d/run/kubelet.sock"

# --- the node: everything below runs in the network namespace and one private mount namespace ---
cat > "$d/node.sh" <<NODE
set -e
for p in /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd /run/netns /usr/libexec/kubernetes; do
  mkdir -p \$p; mount -t tmpfs tmpfs \$p
done
run() { local n=\$1; shift; "\$@" > $d/logs/\$n.log 2>&1 & echo \$! > $d/pids/\$n.pid; }
run socat-api-in socat TCP-LISTEN:$ap,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:$d/run/api.sock
run socat-service socat TCP-LISTEN:443,bind=10.96.0.1,fork,reuseaddr UNIX-CONNECT:$d/run/api.sock
run socat-kubelet-in socat UNIX-LISTEN:$d/run/kubelet.sock,fork,unlink-early TCP:127.0.0.1:$kp
run containerd containerd --config $d/containerd.toml
for n in \$(seq 100); do ctr -a $d/run/containerd.sock version >/dev/null 2>&1 && break; sleep 0.1; done
for img in $images/*.tar $tf_image; do ctr -a $d/run/containerd.sock -n k8s.io images import \$img >/dev/null; done
run coredns $node_bin/coredns -conf $d/Corefile
run kubelet $node_bin/kubelet --config=$d/kubelet.yaml --kubeconfig=$d/kubelet.kubeconfig \
  --root-dir=$d/kubelet --cert-dir=$d/kubelet/pki --volume-plugin-dir=$d/plugins \
  --hostname-override=$name --node-labels=type=real,tfjob-operator.io/real-node=true --v=1
wait
NODE
spawn node nsenter --net="/run/netns/$netns" unshare --mount --propagation slave bash "$d/node.sh"
deadline=$(( $(date +%s) + 90 ))
until kc get node "$name" >/dev/null 2>&1; do
  if (( $(date +%s) > deadline )) || ! kill -0 "$(cat "$d/pids/node.pid")" 2>/dev/null; then
    log "the node did not register; last log lines:"; tail -n 20 "$d"/logs/*.log >&2; exit 1
  fi
  sleep 0.2
done
# The kubelet refuses a loopback node IP and publishes none; the API server reaches it at
# 127.0.0.1:<its port> (the socat above). Published once; it survives kubelet restarts.
kc patch node "$name" --subresource=status --type=merge \
  -p '{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}]}}' >/dev/null
kc wait --for=condition=Ready "node/$name" --timeout=90s >/dev/null || {
  log "the node is not Ready; last log lines:"; tail -n 20 "$d"/logs/kubelet.log >&2; exit 1; }
log "real node $name Ready in $(python3 -c "import time; print(round(time.time()-$start,1))")s (network namespace $netns)"
