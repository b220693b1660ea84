"""Print docs/privacy.md's table of epsilon vs rounds for the demo's privacy settings.

Device-level (local DP-SGD, demo default: sigma 6, q = 1, 4 steps a round) and fleet-level
(the preset's central noise z = 1, every device in every round) epsilon at delta 1e-5
after R rounds, by dp_accounting's RDP and PLD accountants; then the sigma
``firmware-sign policy make --target-epsilon 8`` solves for over R rounds.

    .venv/bin/python scripts/privacy_table.py > /tmp/table.md
"""

from __future__ import annotations

import sys
import time

from edge import calibration
from edge.demo.settings import DEFAULT, PRESET, quiet_absl

ROUNDS = (1, 5, 10, 20, 50, 100)
TARGET = 8.0


def main() -> int:
    quiet_absl()
    started = time.monotonic()
    dp = DEFAULT
    s = dp.steps_per_round
    print(f"| rounds | DP-SGD steps | device ε, RDP | device ε, PLD | fleet ε (z = "
          f"{PRESET.central_noise_multiplier:g}), RDP | fleet ε, PLD | sigma for ε = {TARGET:g} "
          f"(RDP) | sigma for ε = {TARGET:g} (PLD) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in ROUNDS:
        eps = [calibration.epsilon(dp.sampling_rate, dp.noise_multiplier, r * s, dp.delta,
                                   accountant=a) for a in calibration.ACCOUNTANTS]
        fleet = [calibration.epsilon(1.0, PRESET.central_noise_multiplier, r, dp.delta,
                                     accountant=a) for a in calibration.ACCOUNTANTS]
        sig = [calibration.noise_for_target(TARGET, dp.delta, dp.sampling_rate, r * s,
                                            accountant=a).noise_multiplier
               for a in calibration.ACCOUNTANTS]
        print(f"| {r} | {r * s} | {eps[0]:.3g} | {eps[1]:.3g} | {fleet[0]:.3g} | "
              f"{fleet[1]:.3g} | {sig[0]:.4g} | {sig[1]:.4g} |")
    print(f"\n(computed in {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
