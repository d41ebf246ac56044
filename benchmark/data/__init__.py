"""What a model is fed: task variants, cached features per variant, example spectrograms for the
leaderboard. May import: core, audio, metrics, tasks."""
