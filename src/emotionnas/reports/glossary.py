"""The words report.md uses, said once at its top, so a reader who has not read the code can
follow the numbers: what UA and WA average, what inner CV is and what it never sees, what the
budget and the first inner fold are, what an ensemble and a baseline are here, and how to read
a candidate's name (its fields are those of `space.pipeline.Candidate.name`).
"""
from __future__ import annotations

GLOSSARY = [
    ("UA", "unweighted accuracy: the recall of each class, averaged over the classes (each emotion "
           "counts the same however rare it is). The score every choice is made on."),
    ("WA", "weighted accuracy: the share of utterances recognised (frequent classes count more)."),
    ("Test speakers", "each fold holds some speakers out; they are scored once, at the end, by a model "
                      "chosen and trained without them."),
    ("Inner CV", "inner cross-validation: inside a selection group (speakers of no test fold of the "
                 "group) the speakers are split into inner folds; a candidate is trained without one "
                 "inner fold and scored on it, in turn. Its out-of-fold UA is what models are chosen by; "
                 "no test speaker is read."),
    ("Budget, first inner fold", "the budget is how many candidates a selection group trains "
                                 "(`selection.budget`, baselines included). Every candidate is first scored "
                                 "on the first inner fold(s) only; the best of them go on to every inner fold "
                                 "(successive halving), so most candidates have a first-fold score only."),
    ("Ensemble", "the top k candidates by out-of-fold UA, their probabilities combined (averaged, or "
                 "stacked); k is chosen on the same out-of-fold predictions. Each fold's score is its "
                 "group's ensemble, refit on the fold's training speakers."),
    ("Baselines", "hand-designed models a researcher would build without a search (points of the same "
                  "space), refit on the same folds and scored the same way, to show what the search adds."),
]

NAME_PARTS = [
    ("`lstm`", "the deep-stream model over the encoder's hidden states (linear, mlp, rnn, gru, lstm, "
               "`cell` = the group's searched recurrent cell, `tune*` = fine-tuned encoder blocks)"),
    ("`256`", "its width (hidden units; absent for models without one)"),
    ("`L2.3`", "the encoder layers it reads (`Lall`: a learned mix of every layer)"),
    ("`p4`", "encoder frames averaged per step (the cache holds 25 frames/s; p4 = 6.25 steps/s)"),
    ("`attention`", "how the frames become one vector (attention, mean, meanstd = mean and std)"),
    ("`-d0.3`", "dropout, shown only when it is not 0.2"),
    ("`darts+…`", "a spectrogram model in front (`darts`/`emodarts`: the group's searched CNN cells, "
                  "`resnet*`: a hand-designed CNN), joined to the deep model by the fusion at the end "
                  "(`-concat`, `-ism`, `-sum`, `-max`, `-min`)"),
    ("`-s1`", "a seed replica: the same model trained with other seeds (`selection.seeds`)"),
]


def glossary_lines() -> list[str]:
    """The glossary section, placed under the report's title."""
    lines = ["## Words used here\n"]
    lines += [f"- **{term}**: {text}" for term, text in GLOSSARY]
    lines.append("- **Candidate names** read like `lstm256-L2.3-p4-attention`: "
                 + "; ".join(f"{part} {text}" for part, text in NAME_PARTS) + ".")
    lines.append("")
    return lines
