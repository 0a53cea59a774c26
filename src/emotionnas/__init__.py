"""emotionnas: neural architecture search for speech emotion recognition.

Pipeline, one folder per stage:
    data -> features -> search (cnn, rnn) -> models (branches, fusion)
    -> training (loop, cross-validation, metrics) -> reports -> recognizer / cli
"""

__version__ = "0.1.0"
