#!/usr/bin/env bash
# Builds the guest image `vdtu vm` boots: Debian's packaged kernel and an
# initramfs of busybox-static, the virtio-net modules (with their
# dependencies, from modinfo), iperf3 and a small /init. Files given with
# --with (vdtu's programs, for nodes in guests) go into a second archive at
# the same paths, with the shared libraries ldd names for them.
#
# Everything is cached under --cache, keyed by its inputs (this script, the
# package versions, the --with files' contents): a second call with the same
# inputs only prints the paths. Prints, one per line:
#   kernel PATH        the kernel (bzImage)
#   initrd PATH        an initramfs archive; several in the order to concatenate
#
# The kernel package is fetched with `apt-get download` and unpacked with
# dpkg-deb -x: installing it would run the host's initramfs and bootloader
# hooks. Needs busybox-static and iperf3 installed (scripts/install-deps.sh).
set -euo pipefail

usage() { echo "usage: $0 --cache DIR [--with FILE]..." >&2; exit 2; }
cache=""
with=()
while (($#)); do
  case "$1" in
    --cache) (($# >= 2)) || usage; cache="$2"; shift 2 ;;
    --with) (($# >= 2)) || usage; with+=("$(realpath "$2")"); shift 2 ;;
    *) usage ;;
  esac
done
[[ -n "$cache" ]] || usage
mkdir -p "$cache"
cache="$(realpath "$cache")"

die() { echo "vm-image: $*" >&2; exit 1; }
[[ -x /bin/busybox ]] || die "busybox-static is not installed (scripts/install-deps.sh)"
command -v iperf3 >/dev/null || die "iperf3 is not installed (scripts/install-deps.sh)"

# One writer at a time per cache: a demo and a test building at once would
# otherwise unpack into the same directories.
exec 9>"$cache/.lock"
flock 9

# The kernel package linux-image-amd64 depends on (the metapackage holds no kernel).
kernel_package="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[[ -n "$kernel_package" ]] || die "apt-cache does not know linux-image-amd64 (apt-get update?)"
kernel_version="$(apt-cache policy "$kernel_package" | awk '/Candidate:/ {print $2}')"
release="${kernel_package#linux-image-}"

debs="$cache/debs"
mkdir -p "$debs"
deb="$(ls "$debs/${kernel_package}_"*.deb 2>/dev/null | head -n1 || true)"
if [[ -z "$deb" ]]; then
  (cd "$debs" && apt-get download -q "$kernel_package" 2>&1 | grep -v "unsandboxed" >&2; test "${PIPESTATUS[0]}" = 0) || die "cannot download $kernel_package"
  deb="$(ls "$debs/${kernel_package}_"*.deb | head -n1)"
fi

versions="$(dpkg-query -W busybox-static iperf3 libiperf0 2>/dev/null)"
base_key="$( (sha256sum "$0" | cut -d' ' -f1; echo "$kernel_package $kernel_version $(basename "$deb")"; echo "$versions") |
  sha256sum | cut -c1-16)"
base="$cache/base-$base_key"

# Copies a program and the libraries ldd names for it to the same paths under $1.
copy_with_libraries() {
  local root="$1" file="$2" lib
  mkdir -p "$root$(dirname "$file")"
  cp -L "$file" "$root$file"
  for lib in $(ldd "$file" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}'); do
    if [[ ! -e "$root$lib" ]]; then
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    fi
  done
}

# The modules `name` needs first, then `name`, each once (modinfo's depends).
declare -A listed=()
module_order() {
  local name="$1" dep path
  [[ -n "${listed[$name]:-}" ]] && return
  listed[$name]=1
  path="$(modinfo -b "$unpacked" -k "$release" -F filename "$name")"
  for dep in $(modinfo -F depends "$path" | tr ',' ' '); do module_order "$dep"; done
  echo "$path"
}

build_base() {
  local work="$base.tmp"
  rm -rf "$work"
  mkdir -p "$work/root"
  unpacked="$work/deb"
  dpkg-deb -x "$deb" "$unpacked"
  depmod -b "$unpacked" "$release"  # the package ships no modules.dep; modinfo -b needs it
  cp "$unpacked/boot/vmlinuz-$release" "$work/vmlinuz"

  local root="$work/root" dir
  for dir in bin sbin usr/bin usr/sbin lib/modules etc proc sys dev tmp run root vdtu; do mkdir -p "$root/$dir"; done
  cp /bin/busybox "$root/bin/busybox"
  # One link per applet, but never one named busybox (a link to itself: no init).
  local applet
  for applet in $(/bin/busybox --list-full); do
    [[ "$(basename "$applet")" == busybox ]] && continue
    [[ -e "$root/$applet" ]] || ln -s /bin/busybox "$root/$applet"
  done

  local m
  : >"$root/etc/modules"
  for m in $( (module_order virtio_pci; module_order virtio_net) ); do
    cp "$m" "$root/lib/modules/"
    basename "$m" >>"$root/etc/modules"
  done
  [[ -s "$root/etc/modules" ]] || die "no virtio modules found in $deb"

  copy_with_libraries "$root" "$(command -v iperf3)"
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
  install -m 0755 /dev/stdin "$root/init" <<'EOF'
#!/bin/sh
# vdtu guest init: mounts, the virtio-net modules, the address from the
# kernel command line (vdtu.ip=ADDR/LEN), then /vdtu/run (from the run's own
# archive). Its exit status is reported on the console after the nonce the
# host chose (vdtu.nonce=), then the guest powers off.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# Not a tmpfs: files of the run may sit at host paths under /tmp (the root is
# already in memory).
chmod 1777 /tmp
for m in $(cat /etc/modules); do insmod /lib/modules/$m || echo "vdtu-vm: insmod $m failed"; done
ip=""; nonce=""
for word in $(cat /proc/cmdline); do
  case "$word" in
    vdtu.ip=*) ip="${word#vdtu.ip=}" ;;
    vdtu.nonce=*) nonce="${word#vdtu.nonce=}" ;;
  esac
done
ip link set lo up
if [ -n "$ip" ]; then
  ip link set eth0 up && ip addr add "$ip" dev eth0 || echo "vdtu-vm: cannot configure eth0"
fi
echo "vdtu-vm: up after $(cut -d' ' -f1 /proc/uptime) s"
if [ -x /vdtu/run ]; then
  cd /root && /vdtu/run </dev/null
  rc=$?
else
  echo "vdtu-vm: no /vdtu/run"
  rc=127
fi
echo "vdtu-vm-exit $nonce $rc"
sync
poweroff -f
EOF
  (cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$work/initrd.gz")
  rm -rf "$unpacked" "$root"
  rm -rf "$base"
  mv "$work" "$base"
}

[[ -f "$base/initrd.gz" ]] || build_base
echo "kernel $base/vmlinuz"
echo "initrd $base/initrd.gz"

if ((${#with[@]})); then
  layer_key="$( (sha256sum "$0" | cut -d' ' -f1; for f in "${with[@]}"; do echo "$f"; sha256sum <"$f"; done) |
    sha256sum | cut -c1-16)"
  layer="$cache/layer-$layer_key.gz"
  if [[ ! -f "$layer" ]]; then
    work="$cache/layer-$layer_key.tmp"
    rm -rf "$work"
    mkdir -p "$work"
    for f in "${with[@]}"; do copy_with_libraries "$work" "$f"; done
    (cd "$work" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$layer.tmp")
    rm -rf "$work"
    mv "$layer.tmp" "$layer"
    # Old layers of earlier builds: keep the cache from growing with every build.
    find "$cache" -maxdepth 1 -name 'layer-*.gz' ! -newer "$layer" ! -name "$(basename "$layer")" -mmin +60 -delete
  fi
  echo "initrd $layer"
fi
