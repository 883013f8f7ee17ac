"""Draw the README's picture: ``docs/_static/trajectories.png``.

Run with ``make figures``. The figure is the panel ``make demo`` writes to
``demo_output/clients.png``: the demo's simulated trial (300 clients, seed
2018) labelled with the default rule.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import alliance_ts as at
from alliance_ts.demo import DEMO_TRIAL

OUT = Path(__file__).parent / "_static" / "trajectories.png"


def main() -> None:
    sim = at.simulate(300, rng=2018, **DEMO_TRIAL)
    res = at.detect(sim.scores, scale="wai-sr")
    axes = at.plot.panel(res, n=6, ncols=3)
    OUT.parent.mkdir(exist_ok=True)
    axes.flat[0].figure.savefig(OUT, dpi=80, metadata={"Software": None})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
