#!/bin/sh
# Build the stand-in NVIDIA container toolkit packages (every VERSION) and a
# flat apt repository laid out like NVIDIA's, signed with a key made here and
# thrown away: only its public half stays in the image.
#   build-repo.sh SRC_DIR REPO_ROOT VERSION...
set -eu
src=$1 root=$2; shift 2
repo=$root/libnvidia-container/stable/deb/amd64
work=$(mktemp -d)
mkdir -p "$repo"

# pkg NAME VERSION DEPENDS DESCRIPTION FILE:DEST...
pkg() {
  name=$1 version=$2 depends=$3 summary=$4; shift 4
  dir=$work/$name-$version
  mkdir -p "$dir/DEBIAN" "$dir/usr/share/doc/$name"
  for spec in "$@"; do
    file=${spec%%:*} dest=${spec#*:}
    mkdir -p "$dir$(dirname "$dest")"
    sed "s/@VERSION@/${version%-*}/g" "$src/$file" > "$dir$dest"
    chmod 0755 "$dir$dest"
  done
  printf 'memoryx-deploy lab stand-in for %s %s: not NVIDIA software.\n' "$name" "$version" \
    > "$dir/usr/share/doc/$name/README.stand-in"
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: amd64\n' "$name" "$version"
    printf 'Maintainer: memoryx-deploy lab <lab@memoryx.invalid>\n'
    [ -z "$depends" ] || printf 'Depends: %s\n' "$depends"
    printf 'Section: utils\nPriority: optional\nHomepage: https://github.com/NVIDIA/nvidia-container-toolkit\n'
    printf 'Description: %s (memoryx-deploy lab stand-in)\n' "$summary"
    printf ' memoryx-deploy lab stand-in: imitates the NVIDIA package of the same\n'
    printf ' name for the lab; it drives no GPU.\n'
  } > "$dir/DEBIAN/control"
  dpkg-deb --root-owner-group -Zgzip --build "$dir" "$repo/${name}_${version}_amd64.deb" >/dev/null
}

for v in "$@"; do
  pkg libnvidia-container1 "$v" "libc6 (>= 2.7)" "NVIDIA container runtime library"
  pkg libnvidia-container-tools "$v" \
    "libnvidia-container1 (>= $v), libnvidia-container1 (<< 2.0.0), libc6 (>= 2.7), python3" \
    "NVIDIA container runtime library (command-line tools)" \
    nvidia-container-cli:/usr/bin/nvidia-container-cli
  pkg nvidia-container-toolkit-base "$v" "python3" "NVIDIA Container Toolkit Base" \
    nvidia-ctk:/usr/bin/nvidia-ctk nvidia-container-runtime:/usr/bin/nvidia-container-runtime
  pkg nvidia-container-toolkit "$v" \
    "nvidia-container-toolkit-base (= $v), libnvidia-container-tools (>= $v), libnvidia-container-tools (<< 2.0.0), python3, util-linux" \
    "NVIDIA Container toolkit" \
    nvidia-container-runtime-hook:/usr/bin/nvidia-container-runtime-hook
done

export GNUPGHOME="$work/gnupg"
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --passphrase '' --quick-gen-key \
  'memoryx-deploy lab stand-in NVIDIA repository <lab@memoryx.invalid>' ed25519 sign never 2>/dev/null
cd "$repo"
apt-ftparchive packages . > Packages
gzip -9kn Packages
apt-ftparchive -o APT::FTPArchive::Release::Origin='memoryx-deploy lab stand-in' \
  -o APT::FTPArchive::Release::Label='libnvidia-container (memoryx-deploy lab stand-in)' \
  -o APT::FTPArchive::Release::Architectures=amd64 release . > Release
gpg --batch --yes --clearsign -o InRelease Release
gpg --batch --yes -abs -o Release.gpg Release
gpg --batch --armor --export > "$root/libnvidia-container/gpgkey"
rm -rf "$work"
