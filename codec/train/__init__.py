"""Training: data, losses, the trainer and evaluation."""
