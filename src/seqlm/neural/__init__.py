"""Neural language models: the models, batching, the training loop, evaluation, checkpoints."""
