"""What a pair measures: scoring (through the task's metric), MACs, throughput, memory, timing and
the machine reference. May import: core, audio, metrics, method, models, data."""
