"""warmup-research: learning-rate warmup studies in JAX/Flax/Optax."""
