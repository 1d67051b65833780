#!/bin/sh
# Reload nginx, then wait until every worker from before the reload has stopped accepting
# (nginx retitles it "worker process is shutting down" as it closes its listening sockets).
# When this returns 0, new connections meet the new configuration only. If the master refused
# the new configuration, the old workers keep accepting and this fails after TIMEOUT seconds.
#
# With -q (the client side), the reload is quiesced first, so that it closes no idle client
# connection: a reload makes the old workers close their idle keep-alive connections at once,
# and a client that sends a request on one at that instant gets no answer. So:
#   1. FLAG is created: while it exists, nginx answers every request with "Connection: close"
#      and closes the connection after the answer (nginx.conf: the /_mx/closing locations);
#   2. this waits until nginx counts no idle connection (stub_status "Waiting" on the status
#      port): each client connection from before has either sent a request (and is closed after
#      its answer) or closed; at most WAIT seconds (the client keep-alive timeout: by then every
#      connection from before the flag is closed by its timeout);
#   3. nginx reloads; the old workers finish what is in flight and close after each answer;
#   4. FLAG is removed.
# If the status port does not answer (an nginx whose configuration predates it does not know
# the flag either), the reload is not quiesced.
#
# usage: reload.sh [-q FLAG STATUS_ADDRESS STATUS_PORT WAIT] PIDFILE TIMEOUT [nginx options]
# Runs inside the gateway container (POSIX sh, /proc; bash for the status read); NGINX
# overrides the binary.
set -eu
flag=""
if [ "${1:-}" = "-q" ]; then
    flag=$2 status_address=$3 status_port=$4 wait=$5
    shift 5
fi
pidfile=$1
timeout=$2
shift 2
master=$(cat "$pidfile")

accepting() {  # pids of the master's children still titled "worker process"
    for dir in /proc/[0-9]*; do
        read -r stat < "$dir/stat" 2>/dev/null || continue
        # shellcheck disable=SC2086 # split on purpose: the fields after "(comm) "
        set -- ${stat##*) }  # state ppid ...
        [ "$2" = "$master" ] || continue
        case $(tr '\0' ' ' < "$dir/cmdline" 2>/dev/null) in
            *"shutting down"*) ;;
            *"worker process"*) echo "${dir#/proc/}" ;;
        esac
    done
}

idle_connections() {  # nginx's count of idle client connections; nothing if it cannot tell
    # shellcheck disable=SC2016 # expanded by bash
    bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET /_mx/connections HTTP/1.0\r\n\r\n" >&3 && cat <&3' \
        "$status_address" "$status_port" 2>/dev/null \
        | sed -n 's/.*Waiting: \([0-9][0-9]*\).*/\1/p'
}

if [ -n "$flag" ]; then
    trap 'rm -f "$flag"' EXIT
    if [ -n "$(idle_connections)" ]; then
        : > "$flag"
        deadline=$(($(date +%s) + wait))
        while [ "$(idle_connections)" != 0 ] && [ "$(date +%s)" -lt "$deadline" ]; do
            sleep 0.05
        done
    else
        echo "nginx reload: no connection count on $status_address:$status_port;" \
             "reloading without quiescing" >&2
    fi
fi

old=$(accepting)
"${NGINX:-nginx}" "$@" -s reload
deadline=$(($(date +%s) + timeout))
while :; do
    now=" $(accepting | tr '\n' ' ') "
    left=""
    for pid in $old; do
        case $now in *" $pid "*) left="$left $pid" ;; esac
    done
    [ -z "$left" ] && exit 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "nginx reload: workers$left still accept after ${timeout}s;" \
             "the master did not take the new configuration (see its error log)" >&2
        exit 1
    fi
    sleep 0.1
done
