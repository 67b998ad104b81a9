# kube_ldflags MINOR: the -ldflags that make a Kubernetes binary built from the Go module report
# K8S_VERSION (as upstream's release builds do). Sourced by build.sh and build-node.sh.
kube_ldflags() {
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=$1"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
  done
  echo "$ld"
}
