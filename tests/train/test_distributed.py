"""DistributedDataParallel on CPU: ``torchrun`` with the gloo backend, two processes."""

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

from wmhkit.train.segmentation import weights_sha256


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_end_with_identical_weights(tiny_cohort, make_config, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(make_config()))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
               "-m", "wmhkit", "train", str(config_path), "--out", str(tmp_path / "run"),
               "--manifest", str(tiny_cohort), "--no-progress"]
    # every rank gathers the SHA-256 of its final weights; a mismatch fails the run (non-zero exit)
    completed = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    done = json.loads((tmp_path / "run/stages/gold/axial/done.json").read_text())
    assert done["ranks"] == 2
    saved = torch.load(tmp_path / "run/stages/gold/axial/last.pt", weights_only=True)["model"]
    assert weights_sha256(saved) == done["weights_sha256"]
    assert len(pd.read_csv(tmp_path / "run/stages/gold/axial/history.csv")) == 2
