"""The ``cosim`` command."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from cosim import bridge
from cosim.messages import RoundPlan
from cosim.scenario import ConfigError, ScenarioConfig
from cosim.simulation import Ns3Simulation, ScenarioNotBuilt, SimulationError

app = typer.Typer(help="Co-simulation of split federated LoRA over an ns-3 wireless network.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
shm_app = typer.Typer(help="Shared-memory segments of the ns-3 bridge (/dev/shm/cosim-*).",
                      no_args_is_help=True)
app.add_typer(shm_app, name="shm")
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


@shm_app.command("list")
def shm_list() -> None:
    """List cosim segments; a segment whose creating process is gone is stale."""
    segments = bridge.list_segments()
    if not segments:
        console.print("no cosim segments in /dev/shm")
        return
    width = max(len(s.name) for s in segments)
    print(f"{'name':<{width}}  {'size_bytes':>10}  {'python_pid':>10}  {'ns3_pid':>8}  state")
    for s in segments:
        state = "stale" if s.stale else "in use"
        print(f"{s.name:<{width}}  {s.size_bytes:>10}  {s.python_pid:>10}  {s.ns3_pid:>8}  {state}")


@shm_app.command("clean")
def shm_clean(
    all_: Annotated[bool, typer.Option("--all", help="also remove segments of running processes")] = False,
) -> None:
    """Remove stale segments (left by a process killed with SIGKILL, for instance)."""
    removed = bridge.clean_segments(include_live=all_)
    console.print(f"removed {len(removed)} segment(s)" + "".join(f"\n  {n}" for n in removed))


@app.command()
def simulate(
    devices: Annotated[int, typer.Option(help="number of devices K")] = 10,
    rounds: Annotated[int, typer.Option(help="rounds to simulate")] = 3,
    radio: Annotated[str, typer.Option(help="lte | ideal-fdma")] = "ideal-fdma",
    mobility: Annotated[str, typer.Option(help="constant | random-walk | random-waypoint | "
                                               "gauss-markov | ns2")] = "random-walk",
    trace_file: Annotated[str | None, typer.Option(help="ns-2 mobility trace (mobility=ns2)")] = None,
    payload_mb: Annotated[float, typer.Option(help="uplink and downlink payload per device (MB)")] = 1.0,
    deadline_s: Annotated[float, typer.Option(help="round deadline (s)")] = 10.0,
    rng_run: Annotated[int, typer.Option("--rng-run", help="ns-3 RngRun (replication)")] = 1,
) -> None:
    """Run the ns-3 scenario alone: every device every round with equal shares.

    Prints one line per round (scheduled, delivered, delays, energy). This exercises the
    simulator and the bridge without the learning side.
    """
    try:
        cfg = ScenarioConfig(devices=devices, radio=radio, mobility=mobility,
                             trace_file=trace_file, rng_run=rng_run)
    except ConfigError as e:
        _fail(str(e))
    payload = int(payload_mb * 1e6)
    table = Table("round", "sim_time_s", "mean_snr_db", "delivered", "max_delay_s",
                  "energy_j", title=f"{radio}, {devices} devices, {payload_mb:g} MB each way")
    try:
        with Ns3Simulation(cfg) as sim:
            for t in range(rounds):
                report = sim.channel_report()
                plan = RoundPlan.equal_shares(t, np.ones(devices, bool), payload, payload,
                                              deadline_s=deadline_s)
                out = sim.execute(plan)
                rec = out.records
                table.add_row(str(t), f"{report.sim_time_s:.2f}", f"{np.mean(report.snr_db):.1f}",
                              f"{int(out.delivered.sum())}/{devices}",
                              f"{np.nanmax(rec['completion_time_s']):.2f}" if out.delivered.any() else "-",
                              f"{rec['tx_energy_j'].sum():.3f}")
    except (ScenarioNotBuilt, SimulationError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        console.print("interrupted; the simulator was stopped and its segment removed")
        raise typer.Exit(130) from None
    console.print(table)

