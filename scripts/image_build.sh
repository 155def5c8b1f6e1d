#!/bin/sh
# Build an image's Dockerfile here with buildah, no Docker engine and no registry needed:
#
#   sh scripts/image_build.sh DOCKERFILE TAG [PYTHON]          (root; buildah and debootstrap)
#
# 1. The base, python:3.11-slim-bookworm by name, is made here (scripts/make_rootfs.sh: Debian
#    bookworm with Python 3.11 and venv) and imported into buildah's storage; it is made again
#    only when make_rootfs.sh changes.
# 2. The Dockerfile is built as it stands, with one difference from a user's build: pip in the
#    build uses the package sources pip is configured with on this machine (local wheels, a
#    mirror; scripts/local_pip_source.py reads them at run time), mounted into the build, and
#    TORCH_INDEX_URL is emptied when those sources are to supply torch (LOCAL_TORCH=1, default),
#    since PyTorch's index may be out of reach here.
# 3. TAG's previous image, if any, is kept as TAG-previous, so the size can be compared.
#
# PYTHON (default python3) runs local_pip_source.py; it must be the pip whose configuration counts.
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 DOCKERFILE TAG [PYTHON]" >&2
    exit 2
fi
dockerfile=$1
tag=$2
python=${3:-python3}
here=$(cd "$(dirname "$0")" && pwd)
base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$dockerfile")
base_arg=""
case "$dockerfile" in
    *arm64*) arch=arm64; base=$base-arm64; base_arg="--build-arg=PYTHON_IMAGE=$base" ;;  # both in one store
    *) arch=amd64 ;;
esac
recipe=$(cat "$here/make_rootfs.sh" | sha256sum | cut -c1-16)-$arch

# ---- the base
if [ "$(buildah inspect --type image --format '{{index .ImageAnnotations "rootfs.recipe"}}' "$base" 2>/dev/null)" != "$recipe" ]; then
    work=$(mktemp -d /var/tmp/image-base.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    started=$(date +%s)
    sh "$here/make_rootfs.sh" "$arch" "$work/rootfs"
    ctr=$(buildah from --arch "$arch" scratch)
    mnt=$(buildah mount "$ctr")
    tar -C "$work/rootfs" -cf - . | tar -C "$mnt" -xf -
    buildah umount "$ctr" >/dev/null
    buildah config --arch "$arch" --os linux --annotation "rootfs.recipe=$recipe" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
        --cmd python3 "$ctr"
    buildah commit --quiet --rm "$ctr" "$base" >/dev/null
    rm -rf "$work"
    trap - EXIT
    echo "base $base ($arch) made in $(( $(date +%s) - started ))s"
fi

# ---- the build
conf=$(mktemp /var/tmp/image-pip.XXXXXX)
trap 'rm -f "$conf"' EXIT
volumes=$("$python" "$here/local_pip_source.py" "$conf")
# Under qemu-user (arm64) the build needs an Arm /proc/cpuinfo: onnxruntime crashes at import on
# an x86 one. A build volume over /proc/cpuinfo is hidden by the /proc the build mounts, which is
# the host's: so buildah runs in a mount namespace of its own with the file bound over it there.
run_build() {
    if [ "$arch" = arm64 ]; then
        unshare --mount --propagation private \
            sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$here/graviton3.cpuinfo" "$@"
    else
        "$@"
    fi
}
torch_arg=""
if [ "${LOCAL_TORCH:-1}" = 1 ]; then
    torch_arg="--build-arg=TORCH_INDEX_URL="
fi
if buildah inspect --type image "$tag" >/dev/null 2>&1; then
    buildah tag "$tag" "$tag-previous"
fi
started=$(date +%s)
log=$(mktemp /var/tmp/image-build.XXXXXX)
trap 'rm -f "$conf" "$log"' EXIT
# shellcheck disable=SC2086  # $volumes is a list of options
if ! run_build buildah build --isolation chroot --pull=never --arch "$arch" $base_arg \
    -f "$dockerfile" -t "$tag" $torch_arg --build-arg "VERSION=${VERSION:-dev}" \
    "--volume=$conf:/etc/pip.conf:ro" $volumes . >"$log" 2>&1; then
    grep -v "^WARNING: Location '" "$log" | tail -40 >&2
    echo "$0: building $dockerfile failed" >&2
    exit 1
fi
# the previous build's stages and untagged images: disk, not cache (every build starts cold)
buildah rmi --prune >/dev/null 2>&1 || true
echo "built $tag from $dockerfile in $(( $(date +%s) - started ))s"
