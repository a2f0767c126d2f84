"""How close to an orbit must an ``ae-lift`` template be for the lift to be consistent?

``ae-lift`` aligns each network to its decoded template on its own. Two noisy
members of one orbit end up in one frame (a near-zero barrier) only if the
matching to the template picks the same group element for both, which depends on
how far the template sits from the orbit. This measures that dependence on the
run's test-split INRs, with the orbit-interpolation protocol of the experiments
(PD orbits, noise 0.005, pairs ``(O_i, Õ_(i+1))``, 40 alpha steps, loss: pixel MSE
to the base INR's render):

* ``decoded``: the autoencoder's own templates (one per network, as ``ae-lift`` does),
  with their measured distance to the lifted network;
* ``sigma = s``: one synthetic template per orbit, the base network plus Gaussian
  noise of ``s`` zoo RMS units per tensor (the ``param_scale`` of the run), i.e. a
  template at distance ``s`` from the orbit, in the units of ``template_distance``.

Reported per weight-matching strategy: the mean barrier divided by the naive one.

Then, how near can any template be? In the zoo's RMS units: the test networks'
residual after projecting their sorted (canonical) forms onto the top ``k``
principal components of the training split's (the best a linear decoder from a
``k``-dimensional code can do in that frame), and the distance from each of
``--networks`` test networks to the nearest of ``--neighbours`` training networks
after aligning it to each (``forward`` matching).

    python benchmarks/bench_lift_consistency.py --run RUN --zoo ZOO [--networks 8]
        [--orbit-size 24] [--sigmas 0,0.1,0.3,0.5,1,2] [--strategies forward,descent]
        [--pca 0,8,32,128,512] [--neighbours 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from symmerge.align import MatchOptions, sort_canonicalize, weight_matching
from symmerge.canon import AELiftCanonicalizer
from symmerge.experiments.common import (
    load_autoencoders,
    render_curves,
    sample_indices,
    split_members,
)
from symmerge.experiments.metrics import alpha_grid, barriers
from symmerge.experiments.report import markdown_table
from symmerge.experiments.results import SplitSettings
from symmerge.methods import lerp
from symmerge.symmetry import make_orbit
from symmerge.zoo import load_zoo


def reachable(spec, zoo, split: SplitSettings, scale: torch.Tensor, tests: torch.Tensor,
              components: list[int], neighbours: int) -> dict[str, object]:
    """How near a template can get (see the module docstring), in RMS units."""
    train, test = (zoo.get_params(split_members(zoo, name, split)).double()
                   for name in ("train", "test"))
    a, b = (sort_canonicalize(spec, x)[0] / scale for x in (train, test))
    mean = a.mean(0)
    basis = torch.linalg.svd(a - mean, full_matrices=False).Vh
    residual = {}
    for c in components:
        r = (b - mean) - (b - mean) @ basis[:c].T @ basis[:c]
        residual[str(c)] = float(r.square().mean().sqrt())
    pool = train[:neighbours]
    nearest = []
    for x in tests:
        aligned = weight_matching(spec, pool, x.expand(pool.shape[0], -1),
                                  MatchOptions(strategy="forward")).aligned
        nearest.append(float(((aligned - pool) / scale).square().mean(-1).sqrt().min()))
    return {"pca_residual_rms": residual, "nearest_train_rms": sum(nearest) / len(nearest),
            "neighbours": pool.shape[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="trained ScaleGMN autoencoder run")
    ap.add_argument("--zoo", required=True, help="the INR zoo the run was trained on")
    ap.add_argument("--networks", type=int, default=8, help="test-split base networks")
    ap.add_argument("--orbit-size", type=int, default=24)
    ap.add_argument("--sigmas", default="0,0.1,0.3,0.5,1,2")
    ap.add_argument("--strategies", default="forward,descent")
    ap.add_argument("--pca", default="0,8,32,128,512", help="principal components to try")
    ap.add_argument("--neighbours", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    strategies = args.strategies.split(",")

    zoo = load_zoo(args.zoo)
    spec = zoo.spec
    aes = load_autoencoders(spec, args.run)
    ae = aes.encoder("run")
    model = ae.model
    scale = model.param_scale.double()
    gen = torch.Generator().manual_seed(args.seed)
    chosen = sample_indices(split_members(zoo, "test", aes.split), args.networks, gen,
                            "networks")
    bases = zoo.get_params(chosen).double()
    alphas = alpha_grid(40)
    lifters = {st: AELiftCanonicalizer(spec, model, matching=MatchOptions(strategy=st))
               for st in strategies}
    k = args.orbit_size
    sums: dict[str, float] = {}
    tdist: list[torch.Tensor] = []
    t0 = time.perf_counter()
    for base in bases:
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        clean, _ = make_orbit(spec, base, k, "PD", generator=torch.Generator().manual_seed(seed))
        noisy, _ = make_orbit(spec, base, k, "PD", noise_std=0.005,
                              generator=torch.Generator().manual_seed(seed))
        a, b = clean, noisy.roll(-1, dims=0)
        fit = spec.render(base[None], 28)
        curves = render_curves(spec, {"render_mse": fit.expand(k, -1, -1)})

        def barrier(x: torch.Tensor, y: torch.Tensor, curves=curves) -> float:
            c = curves(lerp(x, y, alphas))["render_mse"].numpy()
            return float(barriers(c, alphas.numpy()).sum())

        rows = {"naive": barrier(a, b)}
        ta, tb = (ae(x.float()).double() for x in (a, b))  # the decoded templates
        synthetic = {s: (base + s * scale * torch.randn(base.shape, generator=gen,
                                                        dtype=base.dtype)).expand(k, -1)
                     for s in sigmas}  # one per orbit, shared by the strategies
        for st, lifter in lifters.items():
            la, lb = lifter.lift(a, ta)[0], lifter.lift(b, tb)[0]
            if st == strategies[0]:
                tdist.append(lifter.template_distance(la, ta))
            rows[f"decoded/{st}"] = barrier(la, lb)
            for s, tmpl in synthetic.items():
                rows[f"{s:g}/{st}"] = barrier(lifter.lift(a, tmpl)[0], lifter.lift(b, tmpl)[0])
        for name, v in rows.items():
            sums[name] = sums.get(name, 0.0) + v
    wall = time.perf_counter() - t0
    naive = sums["naive"]
    table = []
    for template in ["decoded", *[f"{s:g}" for s in sigmas]]:
        row: dict[str, object] = {"template": template if template == "decoded"
                                  else f"sigma = {template}"}
        for st in strategies:
            row[st] = sums[f"{template}/{st}"] / naive
        table.append(row)
    dist = float(torch.cat(tdist).mean()) if tdist else None
    reach = reachable(spec, zoo, aes.split, scale, bases,
                      [int(c) for c in args.pca.split(",")], args.neighbours)
    env = {
        "run": args.run, "zoo": args.zoo, "spec": spec.describe(), "networks": args.networks,
        "orbit_size": args.orbit_size, "pairs": args.networks * args.orbit_size,
        "decoded_template_distance": dist, **reach,
        "naive_mean_barrier": naive / (args.networks * k),
        "lift_seconds": wall, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(json.dumps(env, indent=1))
    print(markdown_table(table, [("template", "template"),
                                 *[(st, f"{st}: barrier ÷ naive") for st in strategies]]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": table}, f, indent=1)


if __name__ == "__main__":
    main()
