#!/usr/bin/env bash
# Start a local container engine with the settings a machine without systemd needs.
#
#   scripts/container-engine.sh [start] [docker|podman]   start one (default docker), or say it runs
#   scripts/container-engine.sh status                    which engine answers, and its settings
#   scripts/container-engine.sh stop [docker|podman]      stop what this script started (both by default)
#
# What such a machine needs (found on the development machines):
# - cgroupfs as the cgroup driver: there is no systemd to delegate cgroups to;
# - default ulimits no higher than this shell's hard limits (nofile, nproc): the engine's own
#   defaults (1048576 open files) are refused, because raising a hard limit needs
#   CAP_SYS_RESOURCE and that capability is not granted here;
# - podman: the runc runtime (its default crun is not installed) and the same two settings, with
#   nproc at most 32768: podman lowers its own hard nproc limit to that when it starts, and runc
#   then may not set a higher one.
# Both serve the Docker API on a socket, which is what kfp.local's DockerRunner talks to; this
# script prints the DOCKER_HOST to export when it is not the default socket.
# Needs root and Debian's packages: apt-get install -y docker.io (or podman).
set -euo pipefail

state=/run/x2vlm-engine
docker_sock=/var/run/docker.sock
podman_sock=/run/podman/podman.sock
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"

die() { echo "container-engine: $*" >&2; exit 1; }

need() {  # need BINARY PACKAGE
    command -v "$1" >/dev/null || die "$1 is missing: apt-get install -y $2"
}

answers() {  # answers SOCKET: the Docker API on SOCKET replies
    [ -S "$1" ] && curl -sf --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1
}

wait_for() {  # wait_for SOCKET LOG
    for _ in $(seq 60); do
        answers "$1" && return 0
        sleep 1
    done
    tail -20 "$2" >&2
    die "the engine did not answer on $1 within 60 s; its log is $2"
}

preflight() {
    [ "$(id -u)" = 0 ] || die "needs root (the engines here run rootful)"
    [ -d /sys/fs/cgroup ] && [ -n "$(ls /sys/fs/cgroup)" ] || die "no cgroup filesystem at /sys/fs/cgroup"
    need curl curl
    need runc runc
}

start_docker() {
    need dockerd docker.io
    need containerd containerd
    if answers "$docker_sock"; then
        echo "docker answers on $docker_sock"
        return
    fi
    mkdir -p "$state"
    # Started by hand: without systemd there is no docker.service to start.
    nohup dockerd --exec-opt native.cgroupdriver=cgroupfs \
        --default-ulimit "nofile=$nofile:$nofile" --default-ulimit "nproc=$nproc:$nproc" \
        --host "unix://$docker_sock" >"$state/dockerd.log" 2>&1 &
    echo $! >"$state/dockerd.pid"
    wait_for "$docker_sock" "$state/dockerd.log"
    echo "dockerd started (cgroupfs, nofile=$nofile, nproc=$nproc); log $state/dockerd.log"
}

start_podman() {
    need podman podman
    if answers "$podman_sock"; then
        echo "podman answers on $podman_sock; export DOCKER_HOST=unix://$podman_sock"
        return
    fi
    mkdir -p "$state" "$(dirname "$podman_sock")"
    local podman_nproc=$(( nproc < 32768 ? nproc : 32768 ))
    # podman reads its defaults from CONTAINERS_CONF; the same file serves podman build and run.
    cat >"$state/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$podman_nproc:$podman_nproc"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
EOF
    echo "export CONTAINERS_CONF=$state/containers.conf  # for podman commands in this shell"
    CONTAINERS_CONF="$state/containers.conf" nohup podman --runtime runc --cgroup-manager=cgroupfs \
        system service --time=0 "unix://$podman_sock" >"$state/podman.log" 2>&1 &
    echo $! >"$state/podman.pid"
    wait_for "$podman_sock" "$state/podman.log"
    echo "podman's Docker API started (runc, cgroupfs, nofile=$nofile, nproc=$podman_nproc); log $state/podman.log"
    echo "export DOCKER_HOST=unix://$podman_sock"
}

status() {
    local found=1
    if answers "$docker_sock"; then
        echo "docker answers on $docker_sock: $(docker info --format '{{.ServerVersion}} cgroup driver {{.CgroupDriver}}' 2>/dev/null)"
        found=0
    fi
    if answers "$podman_sock"; then
        echo "podman answers on $podman_sock (export DOCKER_HOST=unix://$podman_sock)"
        found=0
    fi
    [ $found = 0 ] || echo "no container engine answers; start one with: $0 start [docker|podman]"
    return $found
}

stop() {  # stop [docker|podman]: the one named, else both
    local names=(dockerd podman)
    case "${1:-}" in docker) names=(dockerd) ;; podman) names=(podman) ;; esac
    for name in "${names[@]}"; do
        if [ -f "$state/$name.pid" ]; then
            kill "$(cat "$state/$name.pid")" 2>/dev/null && echo "stopped $name" || true
            rm -f "$state/$name.pid"
        fi
    done
}

action="${1:-start}"
case "$action" in
    start) preflight; case "${2:-docker}" in
        docker) start_docker ;;
        podman) start_podman ;;
        *) die "engine must be docker or podman, not '${2}'" ;;
    esac ;;
    docker | podman) preflight; "start_$action" ;;
    status) status ;;
    stop) stop "${2:-}" ;;
    *) die "usage: $0 [start] [docker|podman] | status | stop [docker|podman]" ;;
esac
