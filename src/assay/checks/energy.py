"""Energy from measured time and a stated power model.

Where the machine exposes Intel RAPL counters (``/sys/class/powercap``), the
package energy is read around the timed calls. Otherwise energy is measured
time x power, with the power figure stated in the evidence: for the CPU,
codecarbon's fallback (half of an 85 W TDP, scaled by the share of logical
cores torch uses); for a GPU, the board power torch reports when it can,
else 250 W. CO2e uses a grid intensity in g/kWh (default 475, the world
average IEA figure codecarbon also uses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

CPU_TDP_W = 85.0  # codecarbon's default when the CPU model is unknown
CPU_LOAD = 0.5  # ... at which it assumes half of TDP
GPU_DEFAULT_W = 250.0
GRID_G_PER_KWH = 475.0
_RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


@dataclass(frozen=True)
class PowerModel:
    watts: float
    source: str


def power_model(device: torch.device) -> PowerModel:
    """The power drawn while the model runs on ``device``, and where the figure comes from."""
    if device.type == "cuda":
        try:
            return PowerModel(torch.cuda.power_draw(device) / 1000.0, "measured GPU board power (torch.cuda.power_draw)")
        except Exception:  # pynvml missing or not supported: fall back to a stated figure
            return PowerModel(GPU_DEFAULT_W, f"stated GPU power {GPU_DEFAULT_W:.0f} W")
    share = min(1.0, torch.get_num_threads() / (os.cpu_count() or 1))
    watts = CPU_TDP_W * CPU_LOAD * share
    return PowerModel(watts, f"stated CPU power: {CPU_LOAD:.0%} of {CPU_TDP_W:.0f} W TDP x {share:.0%} of cores = {watts:.1f} W")


def rapl_joules() -> float | None:
    """The package energy counter in joules, or None where RAPL is not readable."""
    try:
        return int(_RAPL.read_text()) / 1e6
    except (OSError, ValueError):
        return None


def co2e_grams(joules: float, grid_g_per_kwh: float = GRID_G_PER_KWH) -> float:
    return joules / 3.6e6 * grid_g_per_kwh
