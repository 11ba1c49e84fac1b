"""The intent names every part of nlu (and the bot) agrees on.

`FALLBACK_INTENT` is what a parse answers when no intent is confident enough,
Rasa's name for it; `OOS_INTENT` is the conventional label of out-of-scope
examples in training and test data (CLINC150, BANKING77-OOS), which both the
threshold calibration and the evaluation treat as "not understood".
"""

FALLBACK_INTENT = "nlu_fallback"
OOS_INTENT = "oos"
