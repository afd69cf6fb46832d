"""Per-image prompts: one conditioning whose batch gives each image its own prompt."""
