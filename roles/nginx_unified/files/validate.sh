# nginx -t of the staged set in $1: the client side, the router, and the certificate with its
# key (the client side names gateway.pem through a variable, read at each handshake, which
# nginx -t does not open): a throwaway configuration loads it as a static certificate, so a
# key that does not match the certificate fails here, before anything is promoted.
set -eu
nginx -t -c "$1/nginx.conf"
nginx -t -c "$1/router.conf"
if [ -f "$1/gateway.pem" ]; then
    printf '%s\n' \
        'pid /tmp/mx_pem_check.pid;' 'error_log stderr;' 'events {}' \
        "http { server { listen 127.0.0.1:9 ssl; ssl_certificate $1/gateway.pem; ssl_certificate_key $1/gateway.pem; } }" \
        > /tmp/mx_pem_check.conf
    nginx -t -c /tmp/mx_pem_check.conf
fi
