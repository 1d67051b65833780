# The numeric group the nginx workers of this image run as: the group of the `user`
# directive ($1: "user [group]") or, when it is empty, of the user and group the image's nginx
# was built with (nginx -V: --user, --group; nobody when not given, whose group nginx takes
# as the user's primary one). Prints one number; fails naming what it could not resolve.
set -eu
user=${1%% *}
group=
case ${1:-} in *" "*) group=${1#* } ;; esac
if [ -z "$user" ]; then
    built=$(nginx -V 2>&1)
    user=$(printf '%s\n' "$built" | sed -n 's/.*--user=\([^ ]*\).*/\1/p')
    group=$(printf '%s\n' "$built" | sed -n 's/.*--group=\([^ ]*\).*/\1/p')
    user=${user:-nobody}
fi
if [ -n "$group" ]; then
    gid=$(sed -n "s/^$group:[^:]*:\([0-9][0-9]*\):.*/\1/p" /etc/group)
    [ -n "$gid" ] || { echo "worker_gid.sh: no group $group in the image's /etc/group" >&2; exit 1; }
    echo "$gid"
else
    id -g "$user" || { echo "worker_gid.sh: no user $user in the image" >&2; exit 1; }
fi
