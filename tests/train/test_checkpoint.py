"""Checkpoints: exact state round trip, safe loading, identity checks, corrupt-file fallback."""

import pickle
import random

import numpy as np
import pytest
import torch

from wmhkit.train.checkpoint import (
    LAST_NAME,
    PREVIOUS_NAME,
    CheckpointError,
    architecture_signature,
    config_hash,
    load_checkpoint,
    load_resume_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from wmhkit.train.reproducibility import epoch_generator, seed_everything

CONFIG = config_hash({"lr": 0.1, "epochs": 3})


def _model(width: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))


def _train_step(model, optimizer, scheduler):
    loss = model(torch.randn(8, 3)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def test_resume_reproduces_the_uninterrupted_weights_bit_for_bit(tmp_path):
    seed_everything(0)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    _train_step(model, optimizer, scheduler)
    save_checkpoint(tmp_path / LAST_NAME, model=model, optimizer=optimizer, scheduler=scheduler,
                    epoch=1, best_metric=0.3, config_digest=CONFIG)
    _train_step(model, optimizer, scheduler)
    uninterrupted = {k: v.clone() for k, v in model.state_dict().items()}

    resumed = _model()
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=0.01)
    resumed_scheduler = torch.optim.lr_scheduler.StepLR(resumed_optimizer, step_size=1, gamma=0.5)
    payload = load_resume_checkpoint(tmp_path, model=resumed, config_digest=CONFIG)
    restore_training_state(payload, model=resumed, optimizer=resumed_optimizer, scheduler=resumed_scheduler)
    _train_step(resumed, resumed_optimizer, resumed_scheduler)

    assert payload["epoch"] == 1 and payload["best_metric"] == pytest.approx(0.3)
    for name, tensor in resumed.state_dict().items():
        assert torch.equal(tensor, uninterrupted[name]), name


def test_global_rng_states_are_restored(tmp_path):
    seed_everything(5)
    model = _model()
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=None, epoch=0, best_metric=None, config_digest=CONFIG)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(99)
    restore_training_state(load_checkpoint(tmp_path / "c.pt"), model=model)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt"
    with open(hostile, "wb") as handle:
        pickle.dump({"format": 1, "model": _Payload(str(marker))}, handle)
    with pytest.raises(CheckpointError, match="hostile.pt"):
        load_checkpoint(hostile)
    assert not marker.exists()


def test_other_architecture_and_other_config_are_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", model=_model(4), optimizer=None, epoch=1, best_metric=None, config_digest=CONFIG)
    with pytest.raises(CheckpointError, match="different network architecture"):
        load_checkpoint(tmp_path / "c.pt", model=_model(5))
    with pytest.raises(CheckpointError, match="different config"):
        load_checkpoint(tmp_path / "c.pt", model=_model(4), config_digest=config_hash({"lr": 1}))
    assert architecture_signature(_model(4)) != architecture_signature(_model(5))


def test_corrupt_last_checkpoint_falls_back_to_previous(tmp_path, caplog):
    model = _model()
    for epoch in (1, 2):
        save_checkpoint(tmp_path / LAST_NAME, model=model, optimizer=None, epoch=epoch, best_metric=None,
                        config_digest=CONFIG)
    assert (tmp_path / PREVIOUS_NAME).exists()
    data = (tmp_path / LAST_NAME).read_bytes()
    (tmp_path / LAST_NAME).write_bytes(data[: len(data) // 3])
    with caplog.at_level("WARNING", logger="wmhkit.train.checkpoint"):
        payload = load_resume_checkpoint(tmp_path, model=model, config_digest=CONFIG)
    assert payload["epoch"] == 1
    assert PREVIOUS_NAME in caplog.text


def test_no_checkpoint_means_fresh_start(tmp_path):
    assert load_resume_checkpoint(tmp_path, model=_model(), config_digest=CONFIG) is None


def test_epoch_generator_depends_only_on_seed_and_epoch():
    assert epoch_generator(1, 2).random() == epoch_generator(1, 2).random()
    assert epoch_generator(1, 2).random() != epoch_generator(1, 3).random()
