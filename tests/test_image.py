"""The Dockerfile built for real: Debian's podman (vfs storage, chroot isolation), no registry.

The base image is the Debian root filesystem `.ci/offline-fixtures` made with debootstrap, and pip reads
the wheelhouse of constraints.txt through a mounted /etc/pip.conf, so the Dockerfile is the one users
build, unchanged. Its own build steps run `greenops --version`, the last one as the unprivileged user.
"""

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import __version__

from .conftest import PROJECT, require_binary, require_offline_fixture

BASE = "localhost/greenops-test-base:bookworm"
IMAGE = "localhost/greenops:test"
OFFLINE_PIP = "[global]\nno-index = true\nfind-links = /wheelhouse\n"


@pytest.fixture
def podman() -> Iterator[list[str]]:
    """podman with everything it keeps (images, its tmp dir, network configs) in a throwaway directory, so the
    host's podman is never touched; the vfs store holds several GB while it lives."""
    binary = require_binary("podman")
    storage = Path(tempfile.mkdtemp(prefix="greenops-podman-"))
    try:
        yield [binary, "--root", str(storage / "root"), "--runroot", str(storage / "run"),
               "--tmpdir", str(storage / "tmp"), "--network-config-dir", str(storage / "networks"),
               "--storage-driver=vfs"]
    finally:
        shutil.rmtree(storage, ignore_errors=True)  # vfs layers are plain directories: nothing to unmount


def run(command: list[str]) -> str:
    """stdout of a podman command that must succeed (podman prints build steps and RUN output there)."""
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{command}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.integration
def test_the_image_builds_offline_and_runs_greenops_as_the_unprivileged_user(
    podman: list[str], tmp_path: Path
) -> None:
    base_rootfs = require_offline_fixture("debian-python.tar")
    wheelhouse = require_offline_fixture("wheelhouse")
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(OFFLINE_PIP)
    run([*podman, "import", str(base_rootfs), BASE])

    # In a network namespace of its own (no interface up): chroot isolation shares the caller's network,
    # so this is what proves the build needs no registry, PyPI or Debian mirror.
    offline = [require_binary("unshare"), "--net"]
    log = run([*offline, *podman, "build", "--isolation=chroot", "--build-arg", f"PYTHON_IMAGE={BASE}",
               "--volume", f"{wheelhouse}:/wheelhouse:ro", "--volume", f"{pip_conf}:/etc/pip.conf:ro",
               "--tag", IMAGE, str(PROJECT)])

    assert "Looking in links: /wheelhouse" in log
    runtime_step = log.split("RUN greenops --version")[-1]
    assert runtime_step.lstrip().startswith(f"greenops {__version__}"), runtime_step[:500]
    (inspected,) = json.loads(run([*podman, "image", "inspect", IMAGE]))
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["greenops"] and config["Cmd"][0] == "run"
    assert "8080/tcp" in config["ExposedPorts"]
