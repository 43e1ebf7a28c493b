#!/usr/bin/env bash
# Builds the image the docker driver's tests and benchmarks run in, without any registry: Debian's
# busybox-static in an otherwise empty rootfs (one symlink in /bin per applet), turned into an image
# with `docker import`. Idempotent: an image that already has the tag is kept. Never pulls.
#   usage: bash infra/test-images/busybox.sh [tag]     (default kiln-test/busybox:1)
set -euo pipefail

TAG=${1:-kiln-test/busybox:1}
log() { printf '[test-image] %s\n' "$*"; }

# Test files run in parallel and may all ask for the image at once: build it once.
exec 9>/tmp/kiln-test-image.lock
flock 9

if docker image inspect "$TAG" >/dev/null 2>&1; then exit 0; fi

BUSYBOX=/bin/busybox
if ! [ -x "$BUSYBOX" ] || ! "$BUSYBOX" --list >/dev/null 2>&1 || ldd "$BUSYBOX" >/dev/null 2>&1; then
  # Debian's busybox-static installs /bin/busybox statically linked (ldd fails on it).
  log "installing busybox-static"
  APT=(apt-get -o DPkg::Lock::Timeout=600)
  if [ -z "${KILN_APT_UPDATED:-}" ]; then "${APT[@]}" update -qq; export KILN_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends busybox-static >/dev/null
fi

root=$(mktemp -d /tmp/kiln-test-image.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

log "importing $TAG"
tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | docker import -c 'ENV PATH=/bin' - "$TAG" >/dev/null
log "built $TAG"
