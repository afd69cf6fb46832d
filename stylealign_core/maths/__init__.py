"""Maths both attention routes share: AdaIN statistics in float32 and the fused AdaIN + reference pass."""
