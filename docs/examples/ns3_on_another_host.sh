#!/usr/bin/env bash
# ns-3 on one host, the learning loop on another, over ZMQ with CURVE keys
# (docs/guides/ns3-on-another-host.md). Here both "hosts" are this machine, on loopback; the
# comments say on which host each step runs. Extra arguments go to `cosim run` as overrides.
#   bash docs/examples/ns3_on_another_host.sh results_dir=/tmp/remote-demo
set -euo pipefail
WORK=${WORK:-$(mktemp -d)}        # key folders and the server's data folder
PORT=${PORT:-5555}
NS3_HOST=${NS3_HOST:-127.0.0.1}   # the ns-3 host's name or address, as the learning host sees it
CONFIG=${CONFIG:-smoke}

# 1. On the ns-3 host: the server's key pair, a folder for the clients' public keys, a data folder.
cosim keys new server --dir "$WORK/server-keys"
mkdir -p "$WORK/allowed" "$WORK/data"

# 2. On the learning host: the client's key pair.
cosim keys new alice --dir "$WORK/client-keys"

# 3. Hand over the public halves (scp on two hosts): the client's to the server's allow folder,
#    the server's to the client. The secret halves (*.key_secret) never leave their host.
cp "$WORK/client-keys/alice.key" "$WORK/allowed/"
cp "$WORK/server-keys/server.key" "$WORK/client-keys/"

# 4. On the ns-3 host: serve the scenario (tcp://0.0.0.0:PORT to accept other hosts). --once: exit
#    when the session ends. A client may name input files (traces) only inside --data-dir.
python -m cosim.ns3_server --bind "tcp://$NS3_HOST:$PORT" --once \
    --keys "$WORK/server-keys/server.key_secret" --allow "$WORK/allowed" --data-dir "$WORK/data" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

# 5. On the learning host: the run, with ns-3 behind the server.
cosim run "$CONFIG" transport=zmq "ns3_address=tcp://$NS3_HOST:$PORT" \
    "ns3_client_key=$WORK/client-keys/alice.key_secret" "ns3_server_key=$WORK/client-keys/server.key" "$@"
wait "$server"
trap - EXIT
