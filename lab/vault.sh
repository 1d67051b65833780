#!/usr/bin/env bash
# The lab's secrets (the gateway API key, the registry password), kept the way
# production keeps them: in an Ansible
# Vault file (inventory/lab/group_vars/lab/vault.yml) encrypted under the
# vault id `lab`, whose password lab/vault-password prints. Both are generated
# once on this machine and never committed. Ansible gets the password the
# Ansible way: ANSIBLE_VAULT_IDENTITY_LIST=lab@lab/vault-password (lab/up and
# scripts/test export it; so does lab/env for a shell of your own).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p lab/build
umask 077
[[ -s lab/build/vault-pass ]] || head -c 32 /dev/urandom | base64 > lab/build/vault-pass
mkdir -p lab/build/registry
[[ -s lab/build/registry/password ]] || head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > lab/build/registry/password
[[ -s lab/build/api-key ]] || echo "mx-lab-$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" > lab/build/api-key
vault=inventory/lab/group_vars/lab/vault.yml
export ANSIBLE_CONFIG="$root/ansible.cfg"
export ANSIBLE_VAULT_IDENTITY_LIST="lab@$root/lab/vault-password"
want=$(printf -- '---\nvault_memoryx_gateway_api_keys:\n  - name: memoryx-lab\n    key: "%s"\nvault_memoryx_registry_password: "%s"\n' \
  "$(cat lab/build/api-key)" "$(cat lab/build/registry/password)")
# (Re)write the vault when it is missing, was made with another password, or
# holds other secrets than lab/build's.
if [[ ! -s $vault ]] || [[ "$(.venv/bin/ansible-vault view "$vault" 2>/dev/null)" != "$want" ]]; then
  printf '%s\n' "$want" > "$vault"
  .venv/bin/ansible-vault encrypt --encrypt-vault-id lab "$vault" >/dev/null
  echo "vault.sh: wrote the encrypted lab API key and registry password to $vault"
fi
