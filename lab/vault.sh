#!/usr/bin/env bash
# The lab's gateway API key, kept the way production keeps it: in an Ansible
# Vault file (inventory/lab/group_vars/lab/vault.yml) encrypted with a
# password file. Both are generated once on this machine and never committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p lab/build
umask 077
[[ -s lab/build/vault-pass ]] || head -c 32 /dev/urandom | base64 > lab/build/vault-pass
[[ -s lab/build/api-key ]] || echo "mx-lab-$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" > lab/build/api-key
vault=inventory/lab/group_vars/lab/vault.yml
export ANSIBLE_CONFIG="$root/ansible.cfg"
# (Re)write the vault when it is missing or was made with another password.
if [[ ! -s $vault ]] || ! .venv/bin/ansible-vault view "$vault" >/dev/null 2>&1; then
  printf -- '---\nvault_memoryx_gateway_api_keys:\n  - "%s"\n' "$(cat lab/build/api-key)" > "$vault"
  .venv/bin/ansible-vault encrypt "$vault" >/dev/null
  echo "vault.sh: wrote the encrypted lab API key to $vault"
fi
