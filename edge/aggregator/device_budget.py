"""The devices' privacy policy as the aggregator knows it (``dp.device_policy``): checked
against the tickets at start, and used to turn the DP-SGD steps a device's sealed updates
report into its ε and the steps left of its budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import privacy
from edge.errors import ConfigError, EdgeError
from edge.formats.keys import ed25519_raw_public
from edge.formats.policy import PrivacyPolicy, verify_policy
from edge.formats.ticket import poisson_steps
from edge.secagg import distributed_dp
from edge.tee_abi import Sampling

from .config import AggregatorConfig


@dataclass
class DeviceBudget:
    """ε and steps left of a device after ``steps`` DP-SGD steps under ``policy``.

    ε is read from the policy's signed steps -> ε table, as the device's TA reads it: the
    entry at or above ``steps``, computed at the policy's sigma_min, rate and δ (the
    tickets' sigma is at least that, so this is an upper bound)."""

    policy: PrivacyPolicy

    def epsilon(self, steps: int) -> float:
        """ε at the policy's δ after ``steps`` steps, from its table."""
        return privacy.implied_epsilon(self.policy, steps)

    def left(self, steps: int) -> int:
        """Steps left of the policy's budget (0 when spent)."""
        return max(0, self.policy.step_budget - steps)


def load(config: AggregatorConfig, signer: Ed25519PrivateKey) -> DeviceBudget | None:
    """The configured policy, verified under the model signer and checked against the
    tickets' DP fields; None when ``dp.device_policy`` is not set."""
    path = config.dp.device_policy
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"dp.device_policy: cannot read {path}: {exc.strerror}") from None
    try:
        policy = verify_policy(data, ed25519_raw_public(signer))
    except EdgeError as exc:
        raise ConfigError(f"dp.device_policy: {path} is not a privacy policy signed by "
                          f"aggregator.model_signer_key ({exc.refusal}: {exc})") from None
    _check_tickets(config, policy)
    return DeviceBudget(policy)


def _check_tickets(config: AggregatorConfig, p: PrivacyPolicy) -> None:
    """ConfigError when the tickets would be weaker than the policy (the boards refuse them
    as weaker-than-policy every round), naming both fields."""
    dp = config.dp
    f32 = np.float32
    checks = [
        (f32(dp.noise_multiplier) < f32(p.noise_multiplier_min) and not p.no_dp,
         f"dp.noise_multiplier {dp.noise_multiplier:g} < policy sigma_min "
         f"{p.noise_multiplier_min:g}"),
        (f32(dp.example_clip) > f32(p.max_example_clip),
         f"dp.example_clip {dp.example_clip:g} > policy C_max {p.max_example_clip:g}"),
        (f32(dp.update_clip) > f32(p.max_update_clip),
         f"dp.update_clip {dp.update_clip:g} > policy U_max {p.max_update_clip:g}"),
    ]
    if p.sampling == Sampling.POISSON:
        steps = poisson_steps(dp.local_epochs, p.sampling_rate)
        checks.append((steps > p.max_steps_per_round,
                       f"dp.local_epochs {dp.local_epochs} takes {steps} steps per round > "
                       f"policy max_steps_per_round {p.max_steps_per_round}"))
    for weaker, what in checks:
        if weaker:
            raise ConfigError(f"{what}: the boards would refuse every ticket "
                              "(weaker-than-policy)")


def check_noise_room(config: AggregatorConfig, budget: DeviceBudget | None, params: int) -> None:
    """ConfigError when the secure-aggregation tickets' quantization scale and cohort bound
    leave no room in 32 bits for the policy's noise share: every board would refuse the round
    at seal (noise-share-unfit). Names the keys, their values and the finest scale that fits."""
    sa = config.secagg
    z = 0.0 if budget is None else budget.policy.min_noise_share
    if sa is None or z <= 0.0:
        return
    q = sa.params.quantizer
    if distributed_dp.NoiseShare(z, q.clip, q.scale_log2, params, q.cohort).fits():
        return
    finest = distributed_dp.finest_fitting_scale(z, q.clip, params, q.cohort)
    fix = ("no scale fits: lower rounds.cohort_size or dp.update_clip" if finest is None
           else f"set secagg.scale_log2 <= {finest}")
    raise ConfigError(
        f"secagg.scale_log2 {q.scale_log2} with rounds.cohort_size {q.cohort} (dp.update_clip "
        f"{q.clip:g}, {params} parameters) leaves no room in 32 bits for the policy's "
        f"min_noise_share {z:g}: {fix}; the boards would refuse every round at seal "
        f"(noise-share-unfit)")
