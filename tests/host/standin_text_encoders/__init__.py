"""A test-only ComfyUI node pack: stand-ins for the text encoders that cannot be built on the test machines.

T5-XXL (Flux.1), Qwen2.5-VL 7B (Qwen-Image), Qwen3 4B (Z-Image) and UMT5-XXL (Wan) are billions of parameters; no weights
can be downloaded here and a random model of their size would not fit the test budget. The end-to-end tests
install this pack into the test server's custom_nodes and put one node, StyleAlignedTestStandInTextEncoder,
in place of the shipped workflow's DualCLIPLoader / CLIPLoader (same node id, so every link stays as
shipped). It returns a real `comfy.sd.CLIP` built as the host's loader builds it for that type:

- the host's own tokenizer (FluxTokenizer: CLIP-L BPE + T5 sentencepiece padded to 256; QwenImageTokenizer
  and ZImageTokenizer: the Qwen2 BPE with the family's chat template; WanT5Tokenizer: UMT5's sentencepiece
  padded to 512);
- the host's own text-encoder classes (FluxClipModel, QwenImageTEModel with its template-dropping
  encode_token_weights, ZImageTEModel with attention masks and the second-to-last hidden layer), with the
  big encoder given a tiny configuration through the host's own per-model config override
  (`model_options["<name>_model_config"]`: 2–3 layers, width 32) and random weights;
- a fixed random linear map from that width to the family's true width (T5-XXL and UMT5-XXL 4096,
  Qwen2.5-VL 7B 3584, Qwen3 4B 2560), so the conditioning has the real shape ((1, 256, 4096) + CLIP-L pooled (1, 768) for
  Flux; (1, tokens, 3584) for Qwen-Image; (1, tokens, 2560) + attention mask for Z-Image);
- for Flux, CLIP-L is the real full-size model loaded from the file named in clip_name (as DualCLIPLoader
  loads its first file); Qwen2.5-VL's vision tower (images only) is dropped.
"""

from __future__ import annotations

import torch
from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

NODE_ID = "StyleAlignedTestStandInTextEncoder"
SEED = 424242
TINY_WIDTH = 32
TINY_T5 = {"d_model": TINY_WIDTH, "d_ff": 64, "d_kv": 16, "num_heads": 2, "num_layers": 2}
TINY_LLM = {"hidden_size": TINY_WIDTH, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
            "num_key_value_heads": 1}
# loader type -> (encoder attribute on the host's TE model, its tiny config, the real encoder's width)
FAMILIES = {
    "flux": ("t5xxl", TINY_T5, 4096),
    "qwen_image": ("qwen25_7b", TINY_LLM, 3584),
    "lumina2": ("qwen3_4b", TINY_LLM, 2560),
    "wan": ("umt5xxl", TINY_T5, 4096),
}


class WidthLift(torch.nn.Module):
    """The tiny encoder followed by a fixed random map to the real encoder's width (hidden states only)."""

    def __init__(self, inner: torch.nn.Module, width: int):
        super().__init__()
        self.inner = inner
        self.num_layers = inner.num_layers
        self.lift = torch.nn.Linear(TINY_WIDTH, width, bias=False)

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def set_input_embeddings(self, embeddings):
        return self.inner.set_input_embeddings(embeddings)

    def forward(self, *args, **kwargs):
        outputs = self.inner(*args, **kwargs)
        return tuple(self.lift(o.to(self.lift.weight.dtype)) if torch.is_tensor(o) and o.shape[-1] == TINY_WIDTH else o
                     for o in outputs)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """The host's ops leave weights uninitialised: deterministic, well-scaled values (norm scales 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.ndim >= 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / parameter[0].numel() ** 0.5)
            elif name.endswith("weight"):
                parameter.copy_(1.0 + 0.1 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator))


def tiny_sentencepiece() -> bytes:
    """A small sentencepiece model (UMT5's ids: pad 0, end 1) trained on a fixed text, deterministically."""
    import io

    import sentencepiece

    text = ("a fox running through a snowy forest an owl taking off from a branch a hare leaping across a meadow "
            "hand painted watercolor animation soft pastel colors paper texture blurry low quality jpeg artifacts "
            "static deformed watermark text the quick brown fox jumps over the lazy dog 0123456789 , . - :")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text.split(" a ") * 4), model_writer=model, vocab_size=120, model_type="bpe",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return model.getvalue()


def stand_in_clip(loader_type: str, clip_l_path: str | None = None):
    import comfy.sd
    import comfy.text_encoders.flux
    import comfy.text_encoders.qwen_image
    import comfy.text_encoders.wan
    import comfy.text_encoders.z_image
    import comfy.utils
    from comfy.supported_models_base import ClipTarget

    target = {
        "flux": lambda: ClipTarget(comfy.text_encoders.flux.FluxTokenizer, comfy.text_encoders.flux.flux_clip()),
        "qwen_image": lambda: ClipTarget(comfy.text_encoders.qwen_image.QwenImageTokenizer, comfy.text_encoders.qwen_image.te()),
        "lumina2": lambda: ClipTarget(comfy.text_encoders.z_image.ZImageTokenizer, comfy.text_encoders.z_image.te()),
        "wan": lambda: ClipTarget(comfy.text_encoders.wan.WanT5Tokenizer, comfy.text_encoders.wan.te()),
    }[loader_type]()
    name, tiny_config, width = FAMILIES[loader_type]
    # UMT5's sentencepiece model travels inside the encoder's file, which there is none of here.
    tokenizer_data = {"spiece_model": tiny_sentencepiece()} if loader_type == "wan" else {}
    clip = comfy.sd.CLIP(target=target, tokenizer_data=tokenizer_data,
                         model_options={f"{name}_model_config": dict(tiny_config), "dtype": torch.float32})
    encoder = getattr(clip.cond_stage_model, name)  # the host's SDClipModel around the big model
    if hasattr(encoder.transformer, "visual"):
        del encoder.transformer.visual
    encoder.transformer = WidthLift(encoder.transformer, width)
    _randomise(encoder.transformer, SEED)
    if clip_l_path:
        missing, _ = clip.load_sd(comfy.utils.load_torch_file(clip_l_path, safe_load=True))
        missing = [key for key in missing if not key.startswith("text_projection")]  # unused: Flux takes CLIP-L's unprojected pooled output
        if missing:
            raise RuntimeError(f"{NODE_ID}: CLIP-L file {clip_l_path} lacks {missing[:5]}")
    return clip


class StandInTextEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_ID,
            display_name="Test stand-in text encoder (tiny, random)",
            category="testing",
            description="Test only: the host's tokenizer and text-encoder classes for the type, with the big encoder "
            "replaced by a tiny random one whose output is mapped to the real width.",
            inputs=[
                io.Combo.Input("type", options=list(FAMILIES), tooltip="The CLIPLoader/DualCLIPLoader type it stands in for "
                               "(lumina2: Z-Image's Qwen3 4B)."),
                io.String.Input("clip_name", default="", tooltip="flux only: the CLIP-L file in models/text_encoders, "
                                "loaded for real as DualCLIPLoader's first file."),
            ],
            outputs=[io.Clip.Output()],
        )

    @classmethod
    def execute(cls, type: str, clip_name: str) -> io.NodeOutput:
        import folder_paths

        clip_l_path = folder_paths.get_full_path_or_raise("text_encoders", clip_name) if type == "flux" else None
        return io.NodeOutput(stand_in_clip(type, clip_l_path))


class StandInExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [StandInTextEncoder]


async def comfy_entrypoint() -> StandInExtension:
    return StandInExtension()
