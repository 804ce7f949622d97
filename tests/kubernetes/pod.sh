#!/usr/bin/env bash
# Runs a Kubernetes pod's processes on this machine as a kubelet would, without a cluster. Started
# by tests/it/deploy/kubernetes/pod.rs, as root, in namespaces of its own:
#
#   unshare --net --mount --propagation private --fork -- tests/kubernetes/pod.sh SIDECAR...
#
# The pod gets its own loopback and one address on a veth pair whose other end the host has (its
# pod IP); a read-only root filesystem with the pod's volumes mounted where its containers mount
# them; and its processes run as the pod's user with no capabilities and no privilege escalation.
#
# Environment:
#   POD_INTERFACE   the veth end the host moves into this namespace
#   POD_ADDRESS     its address, ADDRESS/PREFIX
#   POD_USER        UID:GID the processes run as
#   POD_SCRATCH     an empty host directory, for the tmpfs that holds new mount points
#   POD_MOUNTS      one "MOUNT_PATH HOST_DIRECTORY rw|ro" per line: each directory bound where
#                   the pod mounts it, read-only or not
#   MAIN_COMMAND    the main container's command (the origin), run in the background
# and the arguments: the sidecar's command (sidecache).
#
# Prints "namespace PID" once it runs in its namespaces, then waits for a line on stdin (the host
# has moved the veth end in). Prints "sidecar PID" and "main PID" once both run, and exits with the
# sidecar's status after stopping the main container (SIGQUIT: nginx's graceful stop).
set -euo pipefail

echo "namespace $$"
read -r _

ip link set lo up
ip addr add "$POD_ADDRESS" dev "$POD_INTERFACE"
ip link set "$POD_INTERFACE" up

# A mount point the image lacks is made in an overlay of its parent whose changes live in a tmpfs:
# the pod sees the parent's contents and the new directory, the host sees nothing.
mount -t tmpfs -o size=1m tmpfs "$POD_SCRATCH"
overlays=()
make_mount_point() {
    local target=$1 parent layer
    parent=$(dirname "$target")
    [ -d "$parent" ] || make_mount_point "$parent"
    layer=$(mktemp -d "$POD_SCRATCH/layer.XXXXXX")
    mkdir "$layer/upper" "$layer/work"
    mount -t overlay overlay -o "lowerdir=$parent,upperdir=$layer/upper,workdir=$layer/work" "$parent"
    mkdir "$target"
    overlays+=("$parent")
}

# Every mount point first: an overlay made for one would hide volumes already bound beneath it.
while read -r target _; do
    [ -z "$target" ] || [ -d "$target" ] || make_mount_point "$target"
done <<<"$POD_MOUNTS"
while read -r target source mode; do
    [ -n "$target" ] || continue
    mount --bind "$source" "$target"
    if [ "$mode" = ro ]; then
        mount -o remount,bind,ro "$target"
    fi
done <<<"$POD_MOUNTS"

# readOnlyRootFilesystem: the root and the overlays read-only, the volumes bound above writable.
mount -o remount,bind,ro /
for overlay in "${overlays[@]}"; do
    mount -o remount,ro "$overlay"
done

cd /
# exec: the background job's process id is then the container's own.
as_pod_user() {
    exec setpriv --reuid "${POD_USER%:*}" --regid "${POD_USER#*:}" --clear-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
}
as_pod_user "$@" &
sidecar=$!
# shellcheck disable=SC2086 # the main command is words
as_pod_user $MAIN_COMMAND &
main=$!
echo "sidecar $sidecar"
echo "main $main"

status=0
wait "$sidecar" || status=$?
kill -QUIT "$main" 2>/dev/null || true
wait "$main" || true
exit "$status"
