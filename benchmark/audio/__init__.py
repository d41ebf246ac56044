"""Audio in, model input out: decoding files and the front ends (Kaldi fbank, Whisper log-mel), each
the one owner of its frame count. May import: core."""
