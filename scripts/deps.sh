#!/usr/bin/env bash
# Installs the Debian packages jepa.c builds and tests with. Idempotent: installs only what is missing.
set -eu
packages="make gcc libopenblas-dev libyaml-dev libjson-c-dev libhdf5-dev libopenmpi-dev openmpi-bin libxxhash-dev python3 python3-numpy"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
