# What each replica of the demo's TFJob runs on the real node (busybox standing in for
# TensorFlow): it prints its TF_CONFIG, resolves every host named there through the cluster DNS,
# and worker 0 ends the job; the PS serves until it is deleted.
trap "exit 0" TERM
me=$(hostname)
echo "$me: TF_CONFIG=$TF_CONFIG"
for peer in $(echo "$TF_CONFIG" | grep -o '"[a-z0-9.-]*:[0-9][0-9]*"' | tr -d '"'); do
  host="${peer%:*}.cluster.local"
  until nslookup "$host" >/dev/null 2>&1; do sleep 0.5; done
  echo "$me: $peer is $(nslookup "$host" | sed -n 's/^Address: //p' | tail -n1)"
done
case "$me" in
  *-worker-0) echo "$me: done"; exit 0 ;;
  *) while :; do sleep 1; done ;;
esac
