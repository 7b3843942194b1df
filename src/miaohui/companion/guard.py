"""Checks on what an engine wrote, before anyone sees it.

:func:`check` returns the first problem found in a reply (or ``None``):

* ``means`` — method or means information about self-harm or suicide (a named
  method, a drug with a dose, "how many pills", a lethal dose, where to jump)
  — the crisis knowledge table's method signals, plus a few phrases of our own;
* ``diagnosis`` — telling the person they have a disorder ("你这是抑郁症");
* ``romance`` — romantic or sexual role-play or endearments (我爱你, 宝贝,
  做你女朋友, anything sexual);
* ``human`` — a claim to be human ("我是真人", "我不是 AI").

The companion streams an engine's text sentence by sentence, and each
sentence is released only after the text so far passed :func:`check`; a
failure retracts what was shown and the skills engine answers instead.
"""

from __future__ import annotations

import re

from miaohui.nlp.text import normalise
from miaohui.safety.knowledge import detect as knowledge

_MEANS = re.compile(
    r"(致死量|致命剂量|多少片|几片.{0,4}(能|会|就)|吃多少|剂量|毫克|mg|克的?(安眠药|药)|安眠药|农药|百草枯|烧炭|木炭|"
    r"割腕|割脉|上吊|绳子|跳楼|跳河|跳桥|跳下去|几楼|多高.{0,4}(能|会)|卧轨|煤气|一氧化碳|服毒|毒药|氰化|"
    r"静脉|动脉|刀片|怎么(死|自杀)|无痛(的)?(死|自杀|方法)|自杀方法|死法)"
)
_DIAGNOSIS = re.compile(
    r"(你|您)(这|这是|应该是|可能是|就是|已经|肯定|得了|患了|患有|有)?.{0,4}"
    r"(抑郁症|焦虑症|双相|躁郁|精神分裂|人格障碍|强迫症|创伤后应激|ptsd|adhd|多动症|进食障碍|厌食症|精神病|边缘型)"
    r"|(诊断(为|是|你)|确诊(为|是))"
)
_ROMANCE = re.compile(
    r"(我(也)?(爱你|喜欢你|想你了|好想你)|爱上你|宝贝|亲爱的|"
    r"(叫我|我是你的?|做你的?|当你的?)(老公|老婆|男朋友|女朋友|男友|女友)|"
    r"亲亲你|吻你|抱着你睡|(陪你|和你)一起睡|上床|做爱|性爱|裸体|裸照|色色|约会吧|嫁给我|娶你|么么哒)"
)
# Checked on the text without spaces ("我不是 AI" = "我不是AI"): a first-person claim to be a person,
# or a denial of being a machine.  "我是人工智能" and "我不是真人" are honest and pass.
_HUMAN = re.compile(
    r"(我(也|当然|其实|真的|确实|可|就|本来就|毕竟)?(是|就是)(一个|一位|个|位)?"
    r"(真人|真正的人|真的人|真实的人|人类|活人|活生生的人|有血有肉|普通人|人(?![工格生性品物味家们均气]))|"
    r"我(也|当然|其实|真的|确实|可|并|又|才)?不是(一个|个)?(ai|机器人|机器|人工智能|程序|模型|bot|聊天机器人|电脑)|"
    r"作为(一个|一名)?(人|人类)(?![工格])|我有(身体|家人|孩子|男朋友|女朋友|老公|老婆)|"
    r"我是.{0,6}(心理咨询师|医生|倾听师)(?!.{0,4}(吗|？|\?)))"
)
# English, on the text as it is (lower case): "I'm a real person", "I am not a bot".
_HUMAN_EN = re.compile(
    r"\bi(\s+am|['’]m)\s+(a\s+|an\s+)?(real\s+)?(human|person|people)\b|"
    r"\bi(\s+am|['’]m)\s+not\s+(a\s+|an\s+)?(ai|bot|robot|machine|program|language model)\b"
)

REASONS = {"means": "提到了方式或工具", "diagnosis": "给出诊断", "romance": "恋爱或性相关的角色扮演",
           "human": "声称自己是真人"}


def check(text: str) -> str | None:
    """The first problem in ``text`` (``means``/``diagnosis``/``romance``/``human``), or ``None``."""
    t = normalise(text)
    if _MEANS.search(t):
        return "means"
    sig = knowledge(t, normalised=True).signals
    if sig.get("method", 0.0) >= 0.5 or sig.get("method_seeking", 0.0) >= 0.5 or sig.get("method_intent", 0.0) >= 0.5:
        return "means"
    if _DIAGNOSIS.search(t):
        return "diagnosis"
    if _ROMANCE.search(t):
        return "romance"
    if _HUMAN.search(t.replace(" ", "")) or _HUMAN_EN.search(t):
        return "human"
    return None


_SENTENCE_END = re.compile(r"[。！？!?\n…]")


def release_point(buffer: str) -> int:
    """How much of ``buffer`` forms complete sentences (what may be checked and shown)."""
    last = -1
    for m in _SENTENCE_END.finditer(buffer):
        last = m.end()
    return max(0, last)
