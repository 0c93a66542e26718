#!/usr/bin/env bash
# Container entrypoint: impair this container's egress for $SCENARIO, then run the command.
#
#   SCENARIO   a shipped scenario (python -m netsim scenarios) or "none" (default): no impairment
#   TRANSPORT  webrtc (default) or websocket: the call's media transport, which sets what
#              the scenario's rate cap counts (UDP or TCP packets; see netsim/netem.py)
#   NETEM_DEV  the interface to impair (default eth0, the compose network's)
#   WAIT_FOR   HOST:PORT to wait for (up to 120 s) before running the command: the caller
#              waits for the listener, which loads the codec before it listens
#
# The tc commands come from the scenario files through `python -m netsim netem`, never from
# this script. The settings at 0 s are in place before the command starts; a trace's later
# changes (capacity-drop, mobile) are applied in the background, timed from the container's
# start. Each container shapes only its own egress, so with both impaired the scenario
# applies in both directions, as it does in the relays. Needs cap_add: NET_ADMIN.
set -euo pipefail

SCENARIO="${SCENARIO:-none}"
NETEM_DEV="${NETEM_DEV:-eth0}"
case "${TRANSPORT:-webrtc}" in
    webrtc) proto=udp ;;
    websocket) proto=tcp ;;
    *) echo "entrypoint: TRANSPORT must be webrtc or websocket, not '$TRANSPORT'" >&2; exit 2 ;;
esac

if [[ "$SCENARIO" != "none" ]]; then
    echo "entrypoint: scenario $SCENARIO on $NETEM_DEV ($proto)" >&2
    python -m netsim netem "$SCENARIO" --dev "$NETEM_DEV" --transport "$proto" --run --part initial
    python -m netsim netem "$SCENARIO" --dev "$NETEM_DEV" --transport "$proto" --run --part changes &
fi

if [[ -n "${WAIT_FOR:-}" ]]; then
    host="${WAIT_FOR%:*}"
    port="${WAIT_FOR##*:}"
    for i in $(seq 240); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            break
        fi
        if [[ "$i" == 240 ]]; then
            echo "entrypoint: $WAIT_FOR not reachable after 120 s; running the command anyway" >&2
        fi
        sleep 0.5
    done
fi

exec "$@"
