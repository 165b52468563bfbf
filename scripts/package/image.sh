#!/usr/bin/env bash
# Assembles the container image's file tree (deploy/container/Containerfile builds FROM
# scratch on it):
#
#   scripts/package/image.sh [--bin target/release/cronvisor] [--out target/image]
#
# <out>/rootfs: /usr/bin/cronvisor and the shared libraries it needs (from ldd), /bin/sh (dash)
# and the coreutils jobs most use, /etc/passwd and /etc/group (root, cronvisor = 10001,
# nobody), /etc/cronvisor/cronvisor.toml (the standalone defaults, data in /var/lib/cronvisor),
# /tmp (1777); <out>/data: the empty data dir, given to uid 10001 by the Containerfile. Every
# file's mtime is the last commit's (SOURCE_DATE_EPOCH), so the tree is reproducible.
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$here/target/release/cronvisor"
out="$here/target/image"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "image.sh: unknown argument $1 (--bin PATH, --out DIR)" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "image.sh: no executable at $bin (build it: cargo build --release)" >&2; exit 2; }
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}"

rm -rf "$out"
root="$out/rootfs"
mkdir -p "$root" "$out/data"

# A program and every shared library it loads, at the same paths.
with_libs() {
  local prog="$1" dest="$2"
  install -D -m 0755 "$prog" "$root$dest"
  ldd "$prog" | awk '/=> \//{print $3} /^\s*\/[^ ]+ \(/{print $1}' | while read -r lib; do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

with_libs "$bin" /usr/bin/cronvisor
with_libs "$(type -P dash)" /bin/sh
for tool in sleep true false cat echo env date; do
  with_libs "$(type -P "$tool")" "/usr/bin/$tool"
done
mkdir -p "$root/bin"
for tool in sleep true false cat echo env date; do
  ln -s "/usr/bin/$tool" "$root/bin/$tool"
done

install -D -m 0644 /dev/stdin "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
cronvisor:x:10001:10001:cronvisor:/var/lib/cronvisor:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
PASSWD
install -D -m 0644 /dev/stdin "$root/etc/group" <<'GROUP'
root:x:0:
cronvisor:x:10001:
nogroup:x:65534:
GROUP
install -D -m 0644 /dev/stdin "$root/etc/nsswitch.conf" <<'NSS'
passwd: files
group: files
hosts: files dns
NSS
sed 's#^data_dir = "./var"#data_dir = "/var/lib/cronvisor"#' "$here/conf/standalone.toml" \
  | install -D -m 0644 /dev/stdin "$root/etc/cronvisor/cronvisor.toml"
install -d -m 1777 "$root/tmp"
install -d -m 0755 "$root/var/lib"

find "$out" -exec touch -h -d "@$epoch" {} +
echo "$out"
