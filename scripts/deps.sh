#!/usr/bin/env bash
# Installs the Debian packages jepa.c builds and tests with. Idempotent: installs only what is missing.
set -eu
packages="make gcc libopenblas-dev libyaml-dev libjson-c-dev libhdf5-dev zlib1g-dev libturbojpeg0-dev ffmpeg python3-h5py libopenmpi-dev openmpi-bin libxxhash-dev python3 python3-numpy python3-venv clang libclang-rt-14-dev libchipmunk-dev"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi
bash "$(dirname "$0")/python_env.sh"  # build/venv with PyPI's safetensors, for the checkpoint tests
