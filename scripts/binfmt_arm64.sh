#!/bin/sh
# Let this (x86) kernel run arm64 programs through Debian's qemu-user-static: binfmt_misc mounted,
# and qemu-aarch64 registered with the F flag (the interpreter opened now, so it also works inside
# a chroot that does not contain it). Idempotent; needs root.
set -eu
dir=/proc/sys/fs/binfmt_misc
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
mountpoint -q "$dir" || mount -t binfmt_misc binfmt_misc "$dir"
if [ -e "$dir/qemu-aarch64" ] && ! grep -q '^flags:.*F' "$dir/qemu-aarch64"; then
    echo -1 > "$dir/qemu-aarch64"  # registered without F: again, with it
fi
if [ ! -e "$dir/qemu-aarch64" ]; then
    test -f "$conf" || { echo "$0: no $conf (apt-get install qemu-user-static)" >&2; exit 1; }
    case "$(cat "$conf")" in
        *:*F*) cat "$conf" > "$dir/register" ;;
        *) sed 's/:\([A-EG-Z]*\)$/:\1F/' "$conf" > "$dir/register" ;;
    esac
fi
grep -q '^enabled' "$dir/qemu-aarch64"
