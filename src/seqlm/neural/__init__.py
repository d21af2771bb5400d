"""Neural language models: the models, batching, the training loop, optimisation, evaluation,
checkpoints and generation."""
