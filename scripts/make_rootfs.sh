#!/bin/sh
# A Debian bookworm root filesystem with Python 3.11 and venv, for building and running the images
# without a registry: the stand-in for python:3.11-slim-bookworm that `make image-test` imports
# into buildah, and the arm64 root filesystem of `make image-test-arm64`.
#
#   sh scripts/make_rootfs.sh ARCH DIR        (ARCH: amd64 or arm64; needs root and debootstrap)
#
# The Debian mirror is the one apt on this machine uses (read from its sources), so the script
# names none. The machine's own CA certificates (/usr/local/share/ca-certificates) are added to
# the root filesystem's trust store, so TLS through an intercepting proxy works in it as it does
# here. A foreign ARCH needs qemu-user-static registered with binfmt_misc (F flag).
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 amd64|arm64 DIR" >&2
    exit 2
fi
arch=$1
dir=$2

# The first bookworm "main" mirror of apt's sources (deb822 .sources files, then sources.list).
mirror=$(
    { cat /etc/apt/sources.list.d/*.sources 2>/dev/null; echo; } | awk '
        /^[[:space:]]*$/ { if (uri != "" && suites ~ /(^| )bookworm( |$)/) { print uri; exit } uri = ""; suites = ""; next }
        $1 == "URIs:" { uri = $2 }
        $1 == "Suites:" { $1 = ""; suites = $0 " " }'
)
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
    echo "$0: no bookworm mirror in apt's sources" >&2
    exit 1
fi

mkdir -p "$dir"
# --foreign then --second-stage in a chroot: the same two steps for the native architecture and
# for an emulated one.
debootstrap --foreign --arch="$arch" --variant=minbase \
    --include=python3,python3-venv,ca-certificates bookworm "$dir" "$mirror" >"$dir.debootstrap.log" 2>&1 \
    || { tail -20 "$dir.debootstrap.log" >&2; exit 1; }
chroot "$dir" /debootstrap/debootstrap --second-stage >>"$dir.debootstrap.log" 2>&1 \
    || { tail -20 "$dir.debootstrap.log" >&2; exit 1; }
rm -f "$dir.debootstrap.log"

if [ -d /usr/local/share/ca-certificates ]; then
    cp -R /usr/local/share/ca-certificates/. "$dir/usr/local/share/ca-certificates/"
fi
chroot "$dir" update-ca-certificates >/dev/null

# What an image never needs: apt's package cache and lists, documentation, locales.
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
