#!/usr/bin/env bash
# build/venv: Debian's python3 (with its numpy, and torch where python3-torch is installed) plus PyPI's safetensors,
# the reference reader the checkpoint tests check jepa.c's files with, tensorboard (its event reader checks the
# run folder's events file), matplotlib (scripts/plot_run.py) and NVIDIA's cuobjdump + nvdisasm (6 MB; the
# toolkit here lacks them; tests/test_sm90_sass.sh reads the sm_90a attention's SASS with them). Idempotent. Never
# fails the build: without PyPI the tests that need it print SKIP with the reason.
set -u
cd "$(dirname "$0")/.."
venv=build/venv
"$venv/bin/python" -c "import safetensors, tensorboard, matplotlib" 2>/dev/null &&
    ls "$venv"/lib/python3*/site-packages/nvidia/cu*/bin/nvdisasm > /dev/null 2>&1 && exit 0
mkdir -p build
if [ ! -x "$venv/bin/pip" ] && ! /usr/bin/python3 -m venv --system-site-packages "$venv" > build/venv.log 2>&1; then
    echo "note: could not create $venv (see build/venv.log; is python3-venv installed?); Python reader tests will SKIP"
    exit 0
fi
"$venv/bin/pip" install -q --disable-pip-version-check safetensors >> build/venv.log 2>&1 ||
    echo "note: pip could not install safetensors into $venv (see build/venv.log); Python reader tests will SKIP"
"$venv/bin/pip" install -q --disable-pip-version-check tensorboard matplotlib >> build/venv.log 2>&1 ||
    echo "note: pip could not install tensorboard, matplotlib into $venv (see build/venv.log); their tests will SKIP"
"$venv/bin/pip" install -q --disable-pip-version-check nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm >> build/venv.log 2>&1 ||
    echo "note: pip could not install nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm into $venv (see build/venv.log); the SASS test will SKIP"
exit 0
