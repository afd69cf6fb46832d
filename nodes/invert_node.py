"""StyleAlignedInvertReference: a real image (its VAE latent) -> a reference for StyleAlignedPatch."""

from __future__ import annotations

import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from ..stylealign_core import ReferenceTrajectory, StyleAlignedError, invert, inversion_sigmas
from ..stylealign_core.real_image.inversion import NonFiniteInversion
from .input_checks import check_finite, check_inputs, check_latent
from ..stylealign_core.real_image.noised_reference import INVERSION, METHOD_KEY, METHODS, NOISED, noised_reference
from .host_model import model_family, noise_scaling, to_model_latent
from .patch_set import has_patch_set
from .reference_type import StyleAlignedReference
from .text_encoding import encode_prompt
from .schema_features import search_words

NODE_ID = "StyleAlignedInvertReference"


def _inversion_sampler(clean_model_latent: torch.Tensor, scaling, result: dict):
    """A sampler function (ComfyUI's KSAMPLER contract) that inverts instead of sampling, so the host
    prepares the model, conditioning and devices exactly as for sampling."""

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = extra_args or {}
        ones = x.new_ones([x.shape[0]])
        clean = clean_model_latent.to(device=x.device, dtype=x.dtype)
        ascending = inversion_sigmas(sigmas)

        def denoise(latent, sigma):
            return model(latent.to(x.dtype), ones * sigma, **extra_args)

        def on_step(step, total, latent, denoised):
            if callback is not None:
                callback({"i": step - 1, "denoised": denoised, "x": latent, "sigma": ascending[step]})

        result["sigmas"], result["noise"] = invert(denoise, clean, sigmas, scaling, on_step)
        # The host un-scales what this returns at the schedule's last sigma (0): the clean latent is a
        # finite answer for every model type (a flow model's un-scaling divides by 1 - sigma).
        return clean

    return sample


class StyleAlignedInvertReference(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_ID,
            display_name="StyleAligned Invert Reference Image",
            **search_words("style from image", "image inversion", "ddim inversion", "real image style"),
            category="model_patches/style_aligned",
            description=(
                "Inverts a real image (its latent from VAE Encode) into a noise trajectory with the model, "
                "deterministically (DDIM-style), so StyleAlignedPatch can use the image as the style reference. "
                "method 'noised' skips the inversion: the reference slot is held on the image noised afresh at "
                "every step with one seeded noise (AlignedGen's appendix)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model you will sample with, before StyleAlignedPatch."),
                io.Clip.Input("clip", tooltip="The text encoder, to encode the prompt that describes the image."),
                io.Latent.Input("latent", tooltip="The reference image encoded with VAE Encode (one image)."),
                io.String.Input(
                    "prompt", multiline=True, default="a photo",
                    tooltip="A short description of the reference image; a faithful one inverts more accurately.",
                ),
                io.Int.Input(
                    "steps", default=50, min=2, max=1000,
                    tooltip="Steps of the inversion schedule. The sampler may use any other step count and scheduler later.",
                ),
                io.Combo.Input(
                    "scheduler", options=list(comfy.samplers.SCHEDULER_NAMES), default="normal",
                    tooltip="The sigma schedule to invert along.",
                ),
                io.Conditioning.Input(
                    "conditioning", optional=True,
                    tooltip="Optional: the conditioning to invert with, used instead of encoding prompt with clip, "
                    "e.g. CLIPTextEncode -> FluxGuidance for a guidance-distilled model (without it such a model inverts at "
                    "the host's default guidance, 3.5). One prompt, not a batch.",
                ),
                io.Combo.Input(
                    "method", options=list(METHODS), default=INVERSION, optional=True,
                    tooltip="inversion: invert the image along the schedule (one model pass per step, before sampling); "
                    "the slot follows the image's own noise trajectory. noised: no inversion pass (instant): at every "
                    "step the slot is the image noised with one fixed, seeded noise (AlignedGen's appendix); clip, "
                    "prompt, steps, scheduler and conditioning are then unused. Both decode to the image.",
                ),
                io.Int.Input(
                    "noise_seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, optional=True,
                    tooltip="method noised only: the seed of the fixed noise the image is mixed with at every step.",
                ),
            ],
            outputs=[StyleAlignedReference.Output(display_name="reference", tooltip="Connect to StyleAlignedPatch's reference input, or save it.")],
        )

    @classmethod
    def execute(
        cls, model, clip, latent, prompt: str, steps: int, scheduler: str, conditioning=None,
        method: str = INVERSION, noise_seed: int = 0,
    ) -> io.NodeOutput:
        check_inputs(cls, locals())
        samples = check_latent(NODE_ID, "latent", latent)
        check_finite(NODE_ID, "latent", samples, "encode the reference image again with VAE Encode.")
        if samples.ndim not in (4, 5) or samples.shape[0] != 1:
            raise StyleAlignedError(
                f"{NODE_ID}: latent holds {samples.shape[0]} images; invert one image at a time "
                f"(pick one with 'Latent From Batch')."
            )
        if method not in METHODS:
            raise StyleAlignedError(f"{NODE_ID}: method '{method}' is not one of {', '.join(METHODS)}.")
        if method == NOISED:
            sigma_max = float(model.get_model_object("model_sampling").sigma_max)
            metadata = {"model_family": model_family(model)}
            return io.NodeOutput(noised_reference(samples, noise_seed, sigma_max, metadata))
        if has_patch_set(model):  # any route: the UNet's attn1 patch and the transformer route alike
            raise StyleAlignedError(
                f"{NODE_ID}: model already carries StyleAlignedPatch; connect the model from before the patch "
                f"(straight from the checkpoint loader or LoRA)."
            )
        positive = [list(encode_prompt(clip, prompt, NODE_ID))] if conditioning is None else _one_prompt(conditioning)
        model_sampling = model.get_model_object("model_sampling")
        # The schedule in the host's sampling order (descending, ending at 0); the sampler inverts along it
        # ascending.
        sigmas = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps).float()
        scaling = noise_scaling(model)
        result: dict = {}
        sampler = comfy.samplers.KSAMPLER(_inversion_sampler(to_model_latent(model, samples), scaling, result))
        try:
            comfy.sample.sample_custom(
                model, torch.zeros_like(samples), 1.0, sampler, sigmas, positive, positive, samples,
                callback=latent_preview.prepare_callback(model, max(1, len(inversion_sigmas(sigmas)) - 1)),
                disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=0,
            )
        except NonFiniteInversion as error:
            raise StyleAlignedError(
                f"{NODE_ID}: {error}. Try another scheduler or more steps, or the model in float32 "
                f"(fp16 can overflow); check that model and latent belong together."
            ) from error
        reference = ReferenceTrajectory(
            clean_latent=samples.detach().float().cpu(),
            sigmas=result["sigmas"].cpu(),
            noise=result["noise"].detach().float().cpu(),
            metadata={
                "model_family": model_family(model),
                "prompt": prompt if conditioning is None else "(the conditioning input)",
                "steps": str(steps),
                "scheduler": scheduler,
                METHOD_KEY: INVERSION,
            },
        )
        return io.NodeOutput(reference)


def _one_prompt(conditioning) -> list:
    if any(cond.shape[0] != 1 for cond, _ in conditioning):
        raise StyleAlignedError(
            f"{NODE_ID}: the conditioning input holds a batch of prompts; the inversion needs the one prompt that "
            f"describes the image (CLIPTextEncode, optionally FluxGuidance), not a prompt batch."
        )
    return [[cond, dict(extras)] for cond, extras in conditioning]
