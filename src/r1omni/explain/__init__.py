"""Explanations: how much each modality drives an answer, and whether the reasoning is faithful.

* :mod:`r1omni.explain.attribution`: counterfactual runs without the audio, the frames, the
  subtitle (and both media), measuring the change in the log-probability of the model's own
  answer and whether the answer flips.
* :mod:`r1omni.explain.balance`: the modality-balance diagnosis of one model: how often the answer
  changes without the video and without the audio, the media-to-text token norm ratios as the
  language model receives them, and a linear probe of the face's emotion from its last prompt state.
* :mod:`r1omni.explain.reasoning`: format rate, whether the reasoning cites visual and audio
  evidence (and, on clips one modality carries alone, that modality), whether the emotion it argues
  for is the answer, and (where true cues are known, as in the generated benchmark) the
  hallucination rate of its cue claims; and :func:`~r1omni.explain.reasoning.segments`, one reasoning
  cut into clauses with their evidence and checked claims, as the terminal and the web page show it.
  Attribution rows also carry each cue claim's verdict (:func:`r1omni.inference.check_answers`,
  against the true or the measured cues).
"""
