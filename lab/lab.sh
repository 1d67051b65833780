#!/usr/bin/env bash
# lab.sh: the memoryx-deploy lab - local containers standing in for the GPU
# servers, NVIDIA's apt repository and the container images.
#
#   lab/lab.sh images   build the lab images (skips what is up to date) and
#                       save the deployable ones to lab/build/images/*.tar
#   lab/lab.sh up       network memoryx-lab, repo stand-in, registry (with the
#                       simulator images under production's names), two hosts, probe
#   lab/lab.sh down     remove the lab containers, volumes and network
#   lab/lab.sh status   show what exists
#
# Every command is idempotent: running it again is quick and changes nothing
# that is already right. Only docker objects named mx-lab-* / memoryx-lab are
# touched.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$LAB_DIR")
BUILD_DIR=$LAB_DIR/build
IMAGES_OUT=$BUILD_DIR/images
SSH_KEY=$BUILD_DIR/ssh/id_ed25519
HASH_LABEL=org.memoryx.lab.context-hash
PY=python3

NETWORK=memoryx-lab
SUBNET=10.99.0.0/24
REPO_NAME=mx-lab-nvidia-repo
REPO_IP=10.99.0.5
REGISTRY_NAME=mx-lab-registry
REGISTRY_IP=10.99.0.6
REGISTRY=$REGISTRY_IP:5000
REGISTRY_USER=memoryx-lab
REGISTRY_DIR=$BUILD_DIR/registry
PKI_DIR=$BUILD_DIR/pki
# The controller's Docker client logs in with a config of the lab's own, never ~/.docker.
LAB_DOCKER_CONFIG=$BUILD_DIR/docker
PROBE_NAME=mx-lab-probe
PROBE_IP=10.99.0.99
# container name | inventory hostname | address
HOSTS=(
  "mx-lab-llm mx-llm-01 10.99.0.10"
  "mx-lab-embed mx-embed-01 10.99.0.65"
)
BASE_IMAGE=memoryx-lab/debian:bookworm
HOST_IMAGE=memoryx-lab/host:bookworm
NGINX_IMAGE=memoryx-lab/nginx:bookworm
REPO_IMAGE=memoryx-lab/nvidia-repo:lab
REGISTRY_IMAGE=memoryx-lab/registry:lab
VLLM_IMAGE=memoryx-lab/vllm-sim:lab
OLLAMA_IMAGE=memoryx-lab/ollama-sim:lab
VLLM_NO_SM70_IMAGE=memoryx-lab/vllm-sim:no-sm70
SAVED_IMAGES=("$VLLM_IMAGE" "$OLLAMA_IMAGE" "$NGINX_IMAGE" "$VLLM_NO_SM70_IMAGE")

# What a container needs to run systemd and its own dockerd here:
# --privileged fails (the kernel withholds CAP_SYS_RESOURCE).
CAPS=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
  SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
  SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE
  MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ)

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

# Poll COMMAND... every second until it succeeds or TIMEOUT seconds pass.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 1
  done
}

ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io"
    apt-get install -y docker.io >/dev/null
  fi
  log "starting dockerd"
  (dockerd >/var/log/dockerd.log 2>&1 &)
  wait_for 60 "dockerd" docker info
}

image_label() {  # IMAGE -> the content-hash label, empty if no such image
  docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$1" 2>/dev/null || true
}

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

# Hash of a build context (file names, modes and contents), the Dockerfile
# and any extra words (the base image id), so a change anywhere rebuilds.
context_hash() {
  local context=$1 dockerfile=$2; shift 2
  {
    (cd "$context" && find . -type f ! -path './build/*' ! -path '*/.*' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z |
      xargs -0 -r sha256sum)
    sha256sum <"$dockerfile"
    printf '%s\n' "$@"
  } | sha256sum | cut -c1-32
}

build_base() {
  local hash
  hash=$(printf 'debootstrap --variant=minbase bookworm v1\n' | sha256sum | cut -c1-32)
  if [[ $(image_label "$BASE_IMAGE") == "$hash" ]]; then
    log "$BASE_IMAGE up to date"; return 0
  fi
  command -v debootstrap >/dev/null 2>&1 || apt-get install -y debootstrap >/dev/null
  local dir
  dir=$(mktemp -d /tmp/mx-lab-debootstrap.XXXXXX)
  log "debootstrap minbase bookworm -> $BASE_IMAGE"
  debootstrap --variant=minbase bookworm "$dir" >"$dir.log" 2>&1 ||
    { tail -20 "$dir.log" >&2; rm -rf "$dir"; die "debootstrap failed"; }
  tar -C "$dir" -c . | docker import --change "LABEL $HASH_LABEL=$hash" \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir" "$dir.log"
}

# build_image NAME DOCKERFILE CONTEXT [--build-arg K=V ...]
build_image() {
  local name=$1 dockerfile=$2 context=$3 hash
  shift 3
  hash=$(context_hash "$context" "$dockerfile" "$(image_id "$BASE_IMAGE")" "$@")
  if [[ $(image_label "$name") == "$hash" ]]; then
    log "$name up to date"; return 0
  fi
  log "building $name"
  local out
  if ! out=$(DOCKER_BUILDKIT=0 docker build --label "$HASH_LABEL=$hash" -f "$dockerfile" -t "$name" \
      "$@" "$context" 2>&1); then
    printf '%s\n' "$out" | tail -30 >&2
    die "building $name failed"
  fi
}

save_image() {  # docker save IMAGE when its id changed since the last save
  local name=$1 file id
  # The archive's name is the stack model's (python -m memoryx_deploy archive-name), as the
  # preflight and role container_image expect it.
  [[ -x $ROOT_DIR/.venv/bin/python ]] || die "no .venv: run scripts/bootstrap first"
  file=$IMAGES_OUT/$(cd "$ROOT_DIR" && .venv/bin/python -m memoryx_deploy archive-name "$name")
  id=$(image_id "$name")
  [[ -n $id ]] || { log "not saving $name: no such image"; return 0; }
  if [[ -f $file && -f $file.id && $(cat "$file.id") == "$id" ]]; then
    log "$file up to date"; return 0
  fi
  log "saving $name -> $file"
  docker save -o "$file.tmp" "$name"
  chmod 0644 "$file.tmp"
  mv "$file.tmp" "$file"
  printf '%s\n' "$id" >"$file.id"
}

cmd_images() {
  ensure_docker
  mkdir -p "$IMAGES_OUT"
  build_base
  build_image "$HOST_IMAGE" "$LAB_DIR/images/host/Dockerfile" "$LAB_DIR/images/host"
  build_image "$NGINX_IMAGE" "$LAB_DIR/images/nginx/Dockerfile" "$LAB_DIR/images/nginx"
  build_image "$REPO_IMAGE" "$LAB_DIR/images/nvidia-repo/Dockerfile" "$LAB_DIR/nvidia"
  build_image "$REGISTRY_IMAGE" "$LAB_DIR/images/registry/Dockerfile" "$LAB_DIR/images/registry"
  local sim=$LAB_DIR/simulators kind
  for kind in vllm ollama; do
    if [[ -f $sim/Dockerfile.$kind ]]; then
      build_image "memoryx-lab/$kind-sim:lab" "$sim/Dockerfile.$kind" "$sim"
    else
      log "SKIPPED memoryx-lab/$kind-sim:lab: $sim/Dockerfile.$kind does not exist yet"
    fi
  done
  # A vLLM build without compute 7.0 kernels, like vLLM 0.20.0's image (CUDA 13): the lab's
  # V100s cannot run it (the compatibility gate and the smoke run refuse it).
  build_image "$VLLM_NO_SM70_IMAGE" "$sim/Dockerfile.vllm" "$sim" --build-arg VLLM_VERSION=0.20.0 \
    --build-arg CUDA_ARCHS="7.5 8.0 8.6 8.9 9.0 10.0 11.0 12.0+PTX"
  local image
  for image in "${SAVED_IMAGES[@]}"; do save_image "$image"; done
}

container_state() { docker inspect -f '{{.State.Status}}' "$1" 2>/dev/null || true; }

ensure_network() {
  docker network inspect "$NETWORK" >/dev/null 2>&1 && return 0
  log "creating network $NETWORK $SUBNET"
  docker network create --subnet "$SUBNET" "$NETWORK" >/dev/null
}

# ensure_container NAME IMAGE DOCKER-RUN-ARGS...: run it unless it exists;
# start it if it is stopped. A container of an older image is only reported
# (hosts keep state); recreate_if_stale replaces stateless ones.
ensure_container() {
  local name=$1 image=$2; shift 2
  if [[ -n $(container_state "$name") ]] &&
    [[ $(docker inspect -f '{{.Image}}' "$name") != "$(image_id "$image")" ]]; then
    log "NOTE: $name runs an older $image (lab/lab.sh down && lab/lab.sh up to renew)"
  fi
  case $(container_state "$name") in
    running) return 0 ;;
    "") log "starting $name"; docker run -d --name "$name" "$@" >/dev/null ;;
    *) log "restarting $name"; docker start "$name" >/dev/null ;;
  esac
}

# NAME IMAGE [DIR...]: remove a stateless container of an older image, or one whose bind
# mounts are not DIR... (made from another checkout of the repository, whose files it reads)
recreate_if_stale() {
  local name=$1 image=$2 dir mounts; shift 2
  [[ -n $(container_state "$name") ]] || return 0
  if [[ $(docker inspect -f '{{.Image}}' "$name") != "$(image_id "$image")" ]]; then
    log "replacing $name (its image $image was rebuilt)"
    docker rm -f "$name" >/dev/null
    return 0
  fi
  mounts=$(docker inspect -f '{{range .Mounts}}{{if eq .Type "bind"}}{{.Source}}|{{end}}{{end}}' "$name")
  for dir; do
    if [[ "|$mounts" != *"|$dir|"* ]]; then
      log "replacing $name (it mounts ${mounts%|}, not $dir)"
      docker rm -f "$name" >/dev/null
      return 0
    fi
  done
}

host_run_args() {  # NAME HOSTNAME IP -> docker run arguments of a lab host
  local name=$1 hostname=$2 ip=$3 cap
  # SIGRTMIN+3 is systemd's "halt": `docker stop`/`restart` of a lab host is an orderly
  # shutdown (units stopped, memoryx-boot's stop included), as on a server (tests/lab/test_reboot.py)
  printf '%s\n' --hostname "$hostname" --network "$NETWORK" --ip "$ip" --stop-signal RTMIN+3 \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    -v "$name-docker:/var/lib/docker" --label org.memoryx.lab=host
  for cap in "${CAPS[@]}"; do printf '%s\n' --cap-add "$cap"; done
  printf '%s\n' "$HOST_IMAGE"
}

ensure_ssh_key() {
  [[ -f $SSH_KEY ]] && return 0
  mkdir -p "$(dirname "$SSH_KEY")"
  chmod 700 "$(dirname "$SSH_KEY")"
  ssh-keygen -q -t ed25519 -N '' -C memoryx-lab -f "$SSH_KEY"
}

# GPU table of one host from lab.yml as JSON (stable made-up UUIDs).
gpu_table() {
  "$PY" - "$LAB_DIR/lab.yml" "$1" <<'PYEOF'
import json, sys, uuid
import yaml
data = yaml.safe_load(open(sys.argv[1]))["hosts"][sys.argv[2]]
gpus = [{"index": g["index"], "name": g["name"], "memory_total_mib": g["memory_mib"],
         "compute_cap": g["compute_cap"],
         "uuid": "GPU-%s" % uuid.uuid5(uuid.NAMESPACE_DNS, "%s.gpu%d.memoryx-lab" % (sys.argv[2], g["index"]))}
        for g in data["gpus"]]
print(json.dumps({"driver_version": data["driver_version"], "cuda_version": data["cuda_version"],
                  "gpus": gpus}, indent=2))
PYEOF
}

model_paths() {  # every model_path of the vLLM profiles, one per line
  "$PY" - "$ROOT_DIR/group_vars/all/memoryx.yml" <<'PYEOF'
import sys
import yaml
for profile in (yaml.safe_load(open(sys.argv[1])).get("memoryx_vllm_profiles") or {}).values():
    print(profile["model_path"])
PYEOF
}

# Install the stand-in driver (nvidia-smi + GPU table) and the ssh key.
provision_host() {
  local name=$1 hostname=$2
  docker exec -i "$name" sh -c 'mkdir -p /etc/nvidia-sim /run/nvidia-sim && chmod 1777 /run/nvidia-sim &&
    cat > /etc/nvidia-sim/gpus.json.new && mv /etc/nvidia-sim/gpus.json.new /etc/nvidia-sim/gpus.json' \
    < <(gpu_table "$hostname")
  docker exec -i "$name" sh -c 'cat > /usr/bin/nvidia-smi.new && chmod 0755 /usr/bin/nvidia-smi.new &&
    mv /usr/bin/nvidia-smi.new /usr/bin/nvidia-smi' <"$LAB_DIR/nvidia/nvidia-smi"
  docker exec -i "$name" sh -c 'install -d -m 0700 -o memoryx -g memoryx ~memoryx/.ssh &&
    cat > ~memoryx/.ssh/authorized_keys && chown memoryx:memoryx ~memoryx/.ssh/authorized_keys &&
    chmod 0600 ~memoryx/.ssh/authorized_keys' <"$SSH_KEY.pub"
}

seed_models() {  # stand-in model directories, as an admin copies weights
  local name=$1 path
  while IFS= read -r path; do
    docker exec "$name" sh -c "mkdir -p '/data/projects/models/$path' &&
      [ -f '/data/projects/models/$path/config.json' ] ||
      printf '{\"_comment\": \"memoryx-deploy lab stand-in weights\", \"model\": \"%s\"}\n' '$path' \
        > '/data/projects/models/$path/config.json'"
  done < <(model_paths)
}

host_ready() {  # NAME IP: systemd up (running or degraded) and sshd answering
  local state
  state=$(docker exec "$1" systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] || return 1
  docker exec "$PROBE_NAME" python3 -c "import socket; socket.create_connection(('$2', 22), 2).close()"
}

# The lab CA (lab/build/pki/ca.crt, ca.key): made once, reused by everything the lab
# serves over TLS. A certificate for the registry's address, signed by it.
ensure_pki() {
  mkdir -p "$PKI_DIR" "$REGISTRY_DIR"
  if [[ ! -s $PKI_DIR/ca.key || ! -s $PKI_DIR/ca.crt ]]; then
    log "creating the lab CA in $PKI_DIR"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI_DIR/ca.key")
    openssl req -x509 -new -key "$PKI_DIR/ca.key" -sha256 -days 3650 -subj "/CN=memoryx-lab CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$PKI_DIR/ca.crt" 2>/dev/null
    rm -f "$REGISTRY_DIR/tls.crt"
  fi
  if [[ ! -s $REGISTRY_DIR/tls.crt ]] ||
    ! openssl verify -CAfile "$PKI_DIR/ca.crt" "$REGISTRY_DIR/tls.crt" >/dev/null 2>&1 ||
    ! openssl x509 -in "$REGISTRY_DIR/tls.crt" -checkend 2592000 -noout >/dev/null; then
    log "issuing the registry's certificate for $REGISTRY_IP"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$REGISTRY_DIR/tls.key")
    openssl req -new -key "$REGISTRY_DIR/tls.key" -subj "/CN=$REGISTRY_IP" -out "$REGISTRY_DIR/tls.csr"
    printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$REGISTRY_IP" \
      >"$REGISTRY_DIR/tls.ext"
    openssl x509 -req -in "$REGISTRY_DIR/tls.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
      -CAcreateserial -days 825 -sha256 -extfile "$REGISTRY_DIR/tls.ext" -out "$REGISTRY_DIR/tls.crt" 2>/dev/null
    rm -f "$REGISTRY_DIR/tls.csr" "$REGISTRY_DIR/tls.ext"
  fi
  # The registry runs as root in its container; the key stays unreadable to others here.
  chmod 0644 "$REGISTRY_DIR/tls.crt"
}

# The registry's login: a password made once (lab/vault.sh puts it in the vault) and
# its bcrypt line in htpasswd.
ensure_registry_login() {
  [[ -s $REGISTRY_DIR/password ]] ||
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$REGISTRY_DIR/password")
  if [[ ! -s $REGISTRY_DIR/htpasswd ]] || ! grep -q "^$REGISTRY_USER:" "$REGISTRY_DIR/htpasswd"; then
    docker run --rm -i "$REGISTRY_IMAGE" sh -c "htpasswd -Bin '$REGISTRY_USER'" \
      <"$REGISTRY_DIR/password" >"$REGISTRY_DIR/htpasswd.new"
    mv "$REGISTRY_DIR/htpasswd.new" "$REGISTRY_DIR/htpasswd"
  fi
}

# lab image -> the production reference it is pushed as: the pins of
# group_vars/all/memoryx.yml (memoryx_images), and vLLM 0.20.0 for the build
# without compute 7.0 kernels (the version it is built as).
pushed_images() {
  "$PY" - "$ROOT_DIR/group_vars/all/memoryx.yml" "$VLLM_IMAGE" "$OLLAMA_IMAGE" "$NGINX_IMAGE" \
    "$VLLM_NO_SM70_IMAGE" <<'PYEOF'
import sys
import yaml
images = yaml.safe_load(open(sys.argv[1]))["memoryx_images"]
vllm, ollama, nginx, no_sm70 = sys.argv[2:6]
print(vllm, images["vllm"])
print(ollama, images["ollama"])
print(nginx, images["nginx"])
print(no_sm70, images["vllm"].rsplit(":", 1)[0] + ":v0.20.0")
PYEOF
}

# The simulator images under production's names. A push of layers the registry has is a
# no-op; the tag is set again, so `up` also undoes a tag a test pushed elsewhere.
registry_push() {
  local lab_image ref target
  mkdir -p "$LAB_DOCKER_CONFIG"
  # The controller's engine trusts the lab CA for this one address (removed by `down`).
  install -D -m 0644 "$PKI_DIR/ca.crt" "/etc/docker/certs.d/$REGISTRY/ca.crt"
  DOCKER_CONFIG=$LAB_DOCKER_CONFIG docker login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" \
    <"$REGISTRY_DIR/password" >/dev/null 2>&1 || die "docker login to the lab registry $REGISTRY failed"
  while read -r lab_image ref; do
    # where the hosts pull it from (the stack model's rule: official images under library/)
    target=$(cd "$ROOT_DIR" && .venv/bin/python -m memoryx_deploy pull-reference --registry "$REGISTRY" "$ref")
    [[ -n $(image_id "$lab_image") ]] || die "image $lab_image missing: run lab/lab.sh images first"
    log "pushing $lab_image as $target"
    docker tag "$lab_image" "$target"
    DOCKER_CONFIG=$LAB_DOCKER_CONFIG docker push -q "$target" >/dev/null
  done < <(pushed_images)
}

registry_ready() {
  [[ $(curl -sS --cacert "$PKI_DIR/ca.crt" -o /dev/null -w '%{http_code}' "https://$REGISTRY/v2/") == 401 ]]
}

cmd_up() {
  ensure_docker
  local image
  for image in "$HOST_IMAGE" "$REPO_IMAGE" "$REGISTRY_IMAGE"; do
    [[ -n $(image_id "$image") ]] || die "image $image missing: run lab/lab.sh images first"
  done
  ensure_network
  ensure_ssh_key
  recreate_if_stale "$REPO_NAME" "$REPO_IMAGE"
  ensure_container "$REPO_NAME" "$REPO_IMAGE" --network "$NETWORK" --ip "$REPO_IP" --label org.memoryx.lab=repo "$REPO_IMAGE"
  ensure_pki
  ensure_registry_login
  recreate_if_stale "$REGISTRY_NAME" "$REGISTRY_IMAGE" "$REGISTRY_DIR"
  ensure_container "$REGISTRY_NAME" "$REGISTRY_IMAGE" --network "$NETWORK" --ip "$REGISTRY_IP" \
    --label org.memoryx.lab=registry -v "$REGISTRY_NAME-data:/var/lib/docker-registry" \
    -v "$REGISTRY_DIR:/run/registry:ro" "$REGISTRY_IMAGE"
  wait_for 30 "the lab registry on $REGISTRY" registry_ready
  registry_push
  recreate_if_stale "$PROBE_NAME" "$HOST_IMAGE"
  ensure_container "$PROBE_NAME" "$HOST_IMAGE" --hostname mx-probe --network "$NETWORK" --ip "$PROBE_IP" \
    --init --label org.memoryx.lab=probe --entrypoint sleep "$HOST_IMAGE" infinity
  local entry name hostname ip args
  for entry in "${HOSTS[@]}"; do
    read -r name hostname ip <<<"$entry"
    mapfile -t args < <(host_run_args "$name" "$hostname" "$ip")
    ensure_container "$name" "$HOST_IMAGE" "${args[@]}"
  done
  for entry in "${HOSTS[@]}"; do
    read -r name hostname ip <<<"$entry"
    wait_for 30 "$name to accept docker exec" docker exec "$name" id memoryx
    provision_host "$name" "$hostname"
    if [[ $hostname == mx-llm-01 ]]; then seed_models "$name"; fi
    if [[ $hostname == mx-embed-01 ]]; then docker exec "$name" mkdir -p /data/ollama_models; fi
  done
  for entry in "${HOSTS[@]}"; do
    read -r name hostname ip <<<"$entry"
    wait_for 120 "$name (systemd running, sshd on $ip:22)" host_ready "$name" "$ip"
  done
  wait_for 30 "the NVIDIA repo stand-in on $REPO_IP:80" docker exec "$PROBE_NAME" \
    curl -fsS -o /dev/null "http://$REPO_IP/libnvidia-container/gpgkey"
  log "lab is up"
  printf 'inventory: %s\n' "$ROOT_DIR/inventory/lab/hosts.yml"
  printf 'ssh key:   %s\n' "$SSH_KEY"
}

cmd_down() {
  local entry name rest
  for name in "$PROBE_NAME" "$REPO_NAME" "$REGISTRY_NAME"; do
    [[ -z $(container_state "$name") ]] || { log "removing $name"; docker rm -f "$name" >/dev/null; }
  done
  if docker volume inspect "$REGISTRY_NAME-data" >/dev/null 2>&1; then
    log "removing volume $REGISTRY_NAME-data"; docker volume rm "$REGISTRY_NAME-data" >/dev/null
  fi
  rm -rf "/etc/docker/certs.d/$REGISTRY"
  for entry in "${HOSTS[@]}"; do
    read -r name rest <<<"$entry"
    [[ -z $(container_state "$name") ]] || { log "removing $name"; docker rm -f "$name" >/dev/null; }
    if docker volume inspect "$name-docker" >/dev/null 2>&1; then
      log "removing volume $name-docker"; docker volume rm "$name-docker" >/dev/null
    fi
  done
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then
    log "removing network $NETWORK"; docker network rm "$NETWORK" >/dev/null
  fi
}

cmd_status() {
  local image name
  printf 'images:\n'
  for image in "$BASE_IMAGE" "$HOST_IMAGE" "$NGINX_IMAGE" "$REPO_IMAGE" "$VLLM_IMAGE" "$OLLAMA_IMAGE"; do
    printf '  %-32s %s\n' "$image" "$(image_id "$image" | cut -c8-19)"
  done
  printf 'network %s: %s\n' "$NETWORK" \
    "$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$NETWORK" 2>/dev/null || echo absent)"
  printf 'containers:\n'
  for name in "$REPO_NAME" "$REGISTRY_NAME" "$PROBE_NAME" mx-lab-llm mx-lab-embed; do
    printf '  %-20s %s\n' "$name" "$(container_state "$name" | grep . || echo absent)"
  done
}

case ${1:-} in
  images) cmd_images ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) printf 'usage: %s images|up|down|status\n' "$0" >&2; exit 2 ;;
esac
