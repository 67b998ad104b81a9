# Shared by run.sh and demo.sh (sourced). Uses kubectl on PATH and the current KUBECONFIG.

# sa_kubeconfig SERVICEACCOUNT NAMESPACE OUT DURATION: a kubeconfig at OUT for the current
# cluster that authenticates with a token of the ServiceAccount (`kubectl create token`).
sa_kubeconfig() {
  local token server ca
  token="$(kubectl create token "$1" -n "$2" --duration="$4")"
  server="$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')"
  cat > "$3" <<KC
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "$server", certificate-authority: "$ca"}}]
users: [{name: sa, user: {token: "$token"}}]
contexts: [{name: c, context: {cluster: c, user: sa}}]
current-context: c
KC
}

# wait_cond KIND/NAME NAMESPACE TYPE TIMEOUT: until condition TYPE is True (kubectl wait errors
# out while .status.conditions is still empty, so poll). NAMESPACE may be "" for cluster objects.
wait_cond() {
  local deadline=$(( $(date +%s) + $4 )) ns_args=()
  [[ -n "$2" ]] && ns_args=(-n "$2")
  until [[ "$(kubectl get "$1" "${ns_args[@]}" -o jsonpath="{.status.conditions[?(@.type==\"$3\")].status}" 2>/dev/null)" == True ]]; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.3
  done
}
