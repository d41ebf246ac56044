"""What a pair measures: scoring (through the task's metric), MACs, throughput (per batching
strategy over clip lengths: strategies.py), memory, timing and the machine reference. May import: core, audio, metrics, method, models, data."""
