"""What a pair measures: scoring (accuracy, mAP), MACs, throughput, memory, timing and the machine
reference. May import: core, audio, method, models, data."""
