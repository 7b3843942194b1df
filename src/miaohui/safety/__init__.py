"""Crisis-risk assessment of seeker messages (CPU, about a millisecond a message).

Public API::

    from miaohui.safety import assess, emotions, topics, Assessment, TIERS
    a = assess("我现在在天台上，风好大")          # Assessment(tier="imminent", level=10, score=…, …)
    a = assess("好了，我准备好了", history=["我真的不想活了"])
    emotions("今天好开心")                         # [Emotion(label="happiness", zh="快乐", prob=…), …]
    topics("和男朋友分手了，睡不着")               # ("失恋/情感", "失眠")

Modules: ``knowledge`` (explicit patterns as data), ``model`` (stacked n-gram
model runtime), ``assess`` (rules, tiers, history), ``training`` (scikit-learn,
training time only).
"""

from miaohui.nlp.emotion import Emotion
from miaohui.nlp.emotion import classify as emotions
from miaohui.nlp.topics import detect_topics as topics
from miaohui.safety.assess import LEVEL_RANGE, RULES, TIERS, Assessment, assess, assess_many

__all__ = ["LEVEL_RANGE", "RULES", "TIERS", "Assessment", "Emotion", "assess", "assess_many", "emotions", "topics"]
