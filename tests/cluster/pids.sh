# stop_pidfile FILE: stops the process whose pid FILE holds (SIGTERM, up to 5 s, then SIGKILL)
# and removes FILE; nothing to do if FILE is missing. Sourced by the cluster scripts.
stop_pidfile() {
  local file="$1" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}
