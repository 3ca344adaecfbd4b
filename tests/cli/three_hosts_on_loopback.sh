#!/bin/sh
# Runs examples/three-hosts (the node files of docs/CLUSTER.md) on this
# machine: the same files with a fresh cluster key, and each host's address
# turned into 127.0.0.1 with a port of its own (base + node id). Every node must end cleanly.
#   three_hosts_on_loopback.sh VDTU EXAMPLES_DIR
set -eu
vdtu=$1
examples=$2
work=$(mktemp -d /tmp/vdtu-three-hosts-XXXXXX)
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
base=$(( 20000 + $$ % 40000 ))
for n in 0 1 2; do
  # Each node's port is base + its id, in [node] and in every [[peer]].
  awk -v key="$key" -v base="$base" '
    /^\[/ { section = $0 }
    /^id = / { id = $3 }
    /^(bridge_)?port = 7700/ { sub(/7700/, base + id) }
    /^cluster_key = / { $0 = "cluster_key = \"" key "\"" }
    { gsub(/10\.0\.0\.[1-3]/, "127.0.0.1"); print }
  ' "$examples/node-$n.toml" > "$work/node-$n.toml"
done
for n in 0 1 2; do
  "$vdtu" node --config "$work/node-$n.toml" --timeout 60 > "$work/out-$n" 2>&1 &
  pids="$pids $!"
done
status=0
for p in $pids; do wait "$p" || status=1; done
pids=""
for n in 0 1 2; do sed "s/^/node $n: /" "$work/out-$n"; done
exit $status
