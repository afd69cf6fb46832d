"""Real-image reference: inversion (50-step pass before sampling) against "noised" (no pass).

    python tests/benchmarks/bench_noised_reference.py              # tiny SD1.5 UNet and tiny Flux.1, CPU
    python tests/benchmarks/bench_noised_reference.py --latent 32 --steps 50 --repeats 3

For each model: the time of StyleAlignedInvertReference with method "inversion" (the node's default
steps, 50) and "noised" (median of repeats), then one set (the image's slot + 3 targets, 20 euler steps,
the same noise and prompts) sampled with each reference, and with StyleAligned off. How far the targets'
style differs between the two methods is read with the set score core (stylealign_core/scoring:
cosine similarity of embeddings): with a real image encoder out of reach here, the embedding of a
target is its per-channel latent mean and standard deviation (AdaIN's style statistics) over the final
latent. Printed: each set's consistency and similarity to the reference, the mean cosine similarity of
each target under inversion to the same target under noised, and how far noised moves the targets
relative to how far StyleAligned moves them at all (|noised - inversion| / |inversion - unpatched|,
relative L2 over the targets' latents). Random weights: the figures show the mechanics, not a trained
model's pictures. A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS_DIR))
sys.path.append(str(TESTS_DIR.parent))


def style_embedding(latents):
    import torch

    flat = latents.float().flatten(2)
    return torch.cat([flat.mean(dim=2), flat.std(dim=2)], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent", type=int, default=32, help="latent side (32 = 256 px)")
    parser.add_argument("--steps", type=int, default=50, help="inversion steps (the node's default is 50)")
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="sd15,flux")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from host.comfy_env import host_node_class, load_host

    pack = load_host()
    import comfy.sample

    from host.sampling import run_node, seeded_noise, style_aligned
    from host.tiny_clip import tiny_clip
    from host.tiny_dit_models import StandInT5Clip, dit_conditioning, dit_noise, tiny_dit
    from host.tiny_models import tiny_model

    scoring = pack.stylealign_core.scoring.similarity
    print(f"torch {torch.__version__}, CPU, 1 thread, latent {args.latent}x{args.latent}, inversion steps {args.steps}, "
          f"sampling {args.sample_steps} euler steps, repeats {args.repeats}")
    for kind in args.models.split(","):
        generator = torch.Generator().manual_seed(21)
        channels = 16 if kind == "flux" else 4
        coarse = torch.nn.functional.interpolate(torch.randn(1, channels, 4, 4, generator=generator), size=(args.latent,) * 2, mode="bilinear")
        image = coarse * 2 + 0.5 * torch.randn(1, channels, args.latent, args.latent, generator=generator)
        if kind == "flux":
            model, clip = tiny_dit("flux"), StandInT5Clip("flux")
            positive, negative, cfg = dit_conditioning("flux", seed=1), dit_conditioning("flux", seed=2), 1.0
            noise = dit_noise("flux", 4, seed=3, size=args.latent)
        else:
            model, clip = tiny_model("sd15"), tiny_clip("sd15")
            encode = host_node_class("CLIPTextEncode")()
            positive, negative, cfg = encode.encode(clip, "a toy")[0], encode.encode(clip, "")[0], 3.0
            noise = seeded_noise(4, seed=3, size=args.latent)

        def make(method):
            return run_node("StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image},
                            prompt="a red toy", steps=args.steps, scheduler="normal", method=method, noise_seed=0)[0]

        times, references = {}, {}
        for method in ("inversion", "noised"):
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                references[method] = make(method)
                runs.append(time.perf_counter() - start)
            times[method] = statistics.median(runs)
        latent = torch.cat([image, torch.zeros(3, *image.shape[1:])])

        def sample(patched):
            start = time.perf_counter()
            out = comfy.sample.sample(patched, noise, args.sample_steps, cfg, "euler", "normal", positive, negative, latent,
                                      seed=0, disable_pbar=True)
            return out, time.perf_counter() - start

        sets = {name: sample(style_aligned(model, reference=references[name])) for name in ("inversion", "noised")}
        unpatched, _ = sample(model)
        print(f"\n[{kind}] time to a usable reference: inversion {times['inversion'] * 1000:.0f} ms, noised "
              f"{times['noised'] * 1000:.2f} ms; sampling the set {sets['inversion'][1] * 1000:.0f} ms")
        for name, (out, _) in sets.items():
            score = scoring.score_set(style_embedding(out), 0)
            print(f"  {name:9s}: reference slot off the image by {float((out[0] - image[0]).abs().max()):.1e}; "
                  f"style-statistics set consistency {score.set_consistency:.4f}, similarity to the reference "
                  f"{score.reference_similarity:.4f}")
        plain = scoring.score_set(style_embedding(torch.cat([image, unpatched[1:]])), 0)
        print(f"  unpatched: set consistency {plain.set_consistency:.4f}, similarity to the image {plain.reference_similarity:.4f}")
        inverted_targets, noised_targets = sets["inversion"][0][1:], sets["noised"][0][1:]
        matrix = scoring.cosine_matrix(torch.cat([style_embedding(inverted_targets), style_embedding(noised_targets)]))
        same_target = [float(matrix[i, i + 3]) for i in range(3)]
        moved = float((noised_targets - inverted_targets).norm() / (inverted_targets - unpatched[1:]).norm())
        print(f"  each target, inversion vs noised: style-statistics cosine {statistics.mean(same_target):.4f} "
              f"(min {min(same_target):.4f}); |noised - inversion| / |inversion - unpatched| = {moved:.3f}")


if __name__ == "__main__":
    main()
