"""Training: losses, rollouts, SFT and GRPO recipes, checkpoints (on accelerate)."""
