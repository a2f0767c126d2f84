"""``symmerge experiment ...``: interpolation, orbit collapse and latent maps."""

from __future__ import annotations

from pathlib import Path

import typer

from symmerge.cli.app import app
from symmerge.cli.devices import device_option, use_device
from symmerge.cli.errors import flag_names, option_flags
from symmerge.limits import MAX_ORBIT, MAX_PERTURBATION, MAX_RESTARTS, MAX_SEED, MAX_STEPS
from symmerge.methods import RESOURCES, method_names, methods_needing
from symmerge.utils.io import check_output_dir

experiment_app = typer.Typer(
    help="Run the experiments (metrics.json, arrays, PNG plots and report.md in --out).",
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")

_ZOO = typer.Option(..., help="Zoo file.")
_OUT = typer.Option(..., help="Output directory.")
_RUN = typer.Option(
    None, help=f"ScaleGMN autoencoder run ({', '.join(methods_needing('run'))}).")
_PNA = typer.Option(
    None, "--pna-run",
    help=f"Permutation-only autoencoder run ({', '.join(methods_needing('pna_run'))}).")
_METHODS = typer.Option(
    None, help="Comma-separated methods, of "
               f"{', '.join(method_names('interpolate'))} (default: all that apply).")
_SPLIT = typer.Option(
    "test", help="Networks from split train | val | test | heldout (val+test) | all."
)
_SEED = typer.Option(0, min=0, max=MAX_SEED, help="Seed: same seed, same numbers.")
_RESTARTS = typer.Option(0, min=0, max=MAX_RESTARTS, help="Weight-matching random restarts.")
_MAPS = typer.Option(
    "umap,tsne", help="Comma-separated maps: umap, tsne (or empty). UMAP needs umap-learn "
                      "(pip install 'symmerge[umap]'); without it t-SNE is used, as the "
                      "report notes.")
_DEVICE = device_option()
_QUIET = typer.Option(False, "--quiet", help="No progress bars.")
_GEN_ZOO = typer.Option(None, help="Zoo file: orbits are generated from its networks.")
_ORBIT_ZOO = typer.Option(
    None, "--orbit-zoo",
    help="A published orbit (`symmerge zoo import dwsnets ORBIT_FOLDER`): its orbits, one per "
         "image, instead of generated ones.",
)
_TRANSFORM = typer.Option(None, help="P | D | PD (default PD; generated orbits only).")
_GEN_SPLIT = typer.Option(
    None, help="Networks from split train | val | test | heldout (val+test) | all "
               "(default test; of --zoo)."
)


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def _matching(restarts: int, seed: int):  # noqa: ANN202 - typed by MatchOptions
    from symmerge.align import MatchOptions

    return MatchOptions(restarts=restarts, seed=seed)


def _save(result, out: Path) -> None:  # noqa: ANN001 - any experiment result
    for note in getattr(result.settings, "notes", ()):
        typer.echo(f"note: {note}", err=True)
    result.save(out)
    typer.echo(f"report: {result.report_path}")


def _print_interpolation(result, out: Path, ctx: typer.Context) -> None:  # noqa: ANN001
    flags = option_flags(ctx.command)
    for m, s in result.methods.items():
        c = s[result.primary_metric]
        typer.echo(f"{m:>14}: barrier {c.barrier_mean:.4g} ± {c.barrier_std:.2g}  "
                   f"AUC {c.auc_mean:.4g}  L(0) {c.start_mean:.4g}  "
                   f"L(1) {c.end_mean:.4g}  {1000 * s.seconds_per_pair:.3g} ms/pair")
    for m, why in result.skipped.items():
        typer.echo(f"{m:>14}: skipped ({flag_names(why, flags, RESOURCES)})")
    from symmerge.experiments.evidence import MIN_PAIRS, Count

    typer.echo(f"(barriers: mean ± std over {result.pairs} pairs)")
    caveat = Count(result.pairs, "pairs", MIN_PAIRS).caveat("each barrier")
    if caveat:
        typer.echo(f"note: {caveat}", err=True)
    _save(result, out)


@experiment_app.command("orbit-interpolation")
def orbit_interpolation_cmd(
    ctx: typer.Context,
    zoo: Path | None = _GEN_ZOO, out: Path = _OUT, orbit_zoo: Path | None = _ORBIT_ZOO,
    run: Path | None = _RUN, pna_run: Path | None = _PNA,
    methods: str | None = _METHODS,
    runs: int | None = typer.Option(
        None, min=1, help="Base networks, one orbit each (default 10); with --orbit-zoo, at "
                          "most this many of its orbits (default all)."),
    orbit_size: int | None = typer.Option(
        None, min=2, max=MAX_ORBIT,
        help="Orbit members = pairs per network (default 512; generated orbits only)."),
    transform: str | None = _TRANSFORM,
    perturbation: float = typer.Option(0.005, min=0.0, max=MAX_PERTURBATION,
                                       help="Noise std of the second orbit."),
    steps: int = typer.Option(40, min=2, max=MAX_STEPS, help="Alpha steps."),
    split: str | None = _GEN_SPLIT,
    data: str | None = typer.Option(
        None, help="Image source (default: the zoo's). A published orbit of an MNIST image "
                   "needs mnist:DIR (the IDX files) for the ground truth; without it the loss "
                   "is the MSE to the orbit's own render."),
    seed: int = _SEED, restarts: int = _RESTARTS, device: str = _DEVICE, quiet: bool = _QUIET,
) -> None:
    """Interpolate between orbit members of INRs (METHOD.md 6.1)."""
    from symmerge.experiments import orbit_interpolation

    check_output_dir(out)
    _print_interpolation(orbit_interpolation(
        zoo, orbit_zoo=orbit_zoo, run=run, pna_run=pna_run, methods=_list(methods),
        runs=runs, orbit_size=orbit_size, transform=transform, perturbation=perturbation,
        steps=steps, split=split, data=data, seed=seed, matching=_matching(restarts, seed),
        device=use_device(device), progress=not quiet,
    ), out, ctx)


@experiment_app.command("pair-interpolation")
def pair_interpolation_cmd(
    ctx: typer.Context,
    zoo: Path = _ZOO, out: Path = _OUT, run: Path | None = _RUN, pna_run: Path | None = _PNA,
    methods: str | None = _METHODS,
    pairs: int | None = typer.Option(None, min=1, help="At most this many pairs (default all)."),
    steps: int = typer.Option(40, min=2, max=MAX_STEPS, help="Alpha steps."),
    split: str = typer.Option("heldout", help="train | val | test | heldout (val+test) | all."),
    data: str | None = typer.Option(None, help="Image source (default: the zoo's)."),
    seed: int = _SEED, restarts: int = _RESTARTS, device: str = _DEVICE, quiet: bool = _QUIET,
) -> None:
    """Interpolate between INRs fitted to the same image from different seeds."""
    from symmerge.experiments import pair_interpolation

    check_output_dir(out)
    _print_interpolation(pair_interpolation(
        zoo, run=run, pna_run=pna_run, methods=_list(methods), pairs=pairs, steps=steps,
        split=split, data=data, seed=seed, matching=_matching(restarts, seed),
        device=use_device(device), progress=not quiet,
    ), out, ctx)


@experiment_app.command("cnn-interpolation")
def cnn_interpolation_cmd(
    ctx: typer.Context,
    zoo: Path = _ZOO, out: Path = _OUT, run: Path | None = _RUN, pna_run: Path | None = _PNA,
    methods: str | None = _METHODS,
    pairs: int = typer.Option(20, min=1, help="Disjoint pairs."),
    steps: int = typer.Option(21, min=2, max=MAX_STEPS, help="Alpha steps."),
    top: int | None = typer.Option(1500, min=2, help="Keep the most accurate networks first."),
    split: str = _SPLIT,
    images: str | None = typer.Option(None, help="Evaluation image source (default: the zoo's)."),
    eval_images: int | None = typer.Option(10000, min=1, help="Held-out images to evaluate on."),
    seed: int = _SEED, restarts: int = _RESTARTS, device: str = _DEVICE, quiet: bool = _QUIET,
) -> None:
    """Interpolate between independently trained CNNs of a zoo; failed networks (diverged or
    at chance level) are left out."""
    from symmerge.experiments import cnn_interpolation

    check_output_dir(out)
    _print_interpolation(cnn_interpolation(
        zoo, run=run, pna_run=pna_run, methods=_list(methods), pairs=pairs, steps=steps,
        top=top, split=split, images=images, eval_images=eval_images, seed=seed,
        matching=_matching(restarts, seed), device=use_device(device), progress=not quiet,
    ), out, ctx)


@experiment_app.command("orbit-collapse")
def orbit_collapse_cmd(
    zoo: Path | None = typer.Option(
        None, help="Zoo file: orbits are generated from its networks; with --orbit-zoo, the "
                   "background networks (optional)."),
    out: Path = _OUT, orbit_zoo: Path | None = _ORBIT_ZOO,
    run: Path | None = _RUN, pna_run: Path | None = _PNA,
    networks: int | None = typer.Option(
        None, min=1, help="Networks, one orbit each (default 10, at least 2); with "
                          "--orbit-zoo, at most this many of its orbits (default all)."),
    orbit_size: int | None = typer.Option(
        None, min=2, max=MAX_ORBIT, help="Orbit members (default 64; generated orbits only)."),
    transform: str | None = _TRANSFORM,
    background: int = typer.Option(500, min=5, help="Background networks in the maps."),
    map_orbits: int = typer.Option(3, min=0, help="Orbits overlaid on the maps."),
    maps: str = _MAPS, split: str | None = _GEN_SPLIT, seed: int = _SEED,
    device: str = _DEVICE, quiet: bool = _QUIET,
) -> None:
    """Latent distances within vs. between orbits, and maps with orbits overlaid."""
    from symmerge.experiments import orbit_collapse

    check_output_dir(out)
    result = orbit_collapse(
        zoo, orbit_zoo=orbit_zoo, run=run, pna_run=pna_run, networks=networks,
        orbit_size=orbit_size, transform=transform, background=background,
        map_orbits=map_orbits, maps=_list(maps) or [], split=split, seed=seed,
        device=use_device(device), progress=not quiet,
    )
    for s in result.encoders.values():
        typer.echo(f"{s.encoder}: within {s.within_mean:.4g}, between {s.between_mean:.4g}, "
                   f"ratio {s.ratio:.4g}, within / latent norm {s.within_vs_latent_norm:.4g}")
    _save(result, out)


@experiment_app.command("latent-map")
def latent_map_cmd(
    zoo: Path = _ZOO, out: Path = _OUT, run: Path | None = _RUN, pna_run: Path | None = _PNA,
    split: str = _SPLIT,
    max_points: int = typer.Option(2000, min=5, help="At most this many networks."),
    maps: str = _MAPS, seed: int = _SEED, device: str = _DEVICE, quiet: bool = _QUIET,
) -> None:
    """UMAP and t-SNE of a zoo split's latents, coloured by label."""
    from symmerge.experiments import latent_map

    check_output_dir(out)
    result = latent_map(zoo, run=run, pna_run=pna_run, split=split, max_points=max_points,
                        maps=_list(maps) or [], seed=seed, device=use_device(device),
                        progress=not quiet)
    for s in result.encoders.values():
        typer.echo(f"{s.encoder}: 5-NN accuracy {s.knn_accuracy:.4g}, "
                   f"silhouette {s.silhouette:.4g}")
    _save(result, out)
