"""The UNet route (SD1.x, SD2.x, SDXL): ComfyUI's attn1 patch, plus reference strength as an attention override."""

# The UNet model families the route covers, as users know them (the node's texts and pyproject list them).
UNET_MODELS = ("SD1.x", "SD2.x", "SDXL")
