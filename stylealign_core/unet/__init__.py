"""The UNet route (SD1.x, SD2.x, SDXL): ComfyUI's attn1 patch, plus reference strength as an attention override."""
