#!/bin/sh
# Reload nginx, then wait until every worker from before the reload has stopped accepting
# (nginx retitles it "worker process is shutting down" as it closes its listening sockets).
# When this returns 0, new connections meet the new configuration only. If the master refused
# the new configuration, the old workers keep accepting and this fails after TIMEOUT seconds.
#
# usage: reload.sh PIDFILE TIMEOUT [nginx options, e.g. -p PREFIX -c CONF]
# Runs inside the gateway container (POSIX sh, /proc); NGINX overrides the binary.
set -eu
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
