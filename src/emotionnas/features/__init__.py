"""Both input streams of EmotionNAS: the handcrafted spectrogram and deep encoder features."""
