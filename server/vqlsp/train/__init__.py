"""Training: data sources from packages, codebook fitting, heads, fine-tuning."""
