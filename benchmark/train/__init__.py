"""Making checkpoints: recipes.py (training settings), checkpoints.py (names, hashes, the saved
and the resumable state), augment.py, schedule.py (learning and keep rates), loop.py (the training
loop, scored by measure.evaluate as runs score), probe.py (linear probes on frozen encoders).
May import: core, audio, metrics, method, tasks, models, data, measure."""
