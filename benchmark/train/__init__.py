"""Making checkpoints: training recipes, the training loop and augmentation, linear probes on frozen
encoders. May import: core, audio, method, tasks, models, data, measure."""
