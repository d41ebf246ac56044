"""What a model is fed: task variants, cached features per variant, the batching strategies
(batching.py: clips of different lengths into batches), example spectrograms for the leaderboard. May import: core, audio, metrics, tasks."""
