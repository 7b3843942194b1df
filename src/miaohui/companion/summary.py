"""A draft summary for the handoff to a human listener.

Built only from the seeker's own messages in the companion conversation and
the tools they finished; shown to them in an editable box first, and sent
only if they choose to.  It names topics and feelings in their words, what
they tried with the companion, and leaves the last line for them.
"""

from __future__ import annotations

from collections import Counter

from miaohui.companion import tools as toolbox
from miaohui.companion import traps as trap_table
from miaohui.nlp import lexicon
from miaohui.nlp.text import normalise
from miaohui.nlp.topics import detect_topics

HEADER = "【我和 AI 陪伴聊过，这是我确认过的摘要】\n"


def draft(seeker_messages: list[str], state: dict) -> str:
    topics: Counter[str] = Counter()
    feelings: dict[str, None] = {}
    traps: dict[str, None] = {}
    for text in seeker_messages:
        t = normalise(text)
        if toolbox.wanted_tool(text) is not None:
            continue
        topics.update(detect_topics(t, normalised=True))
        for f, _, _ in lexicon.feelings(t):
            feelings.setdefault(f)
        for h in trap_table.detect(t, normalised=True):
            traps.setdefault(h.name)
    lines = []
    if topics:
        lines.append("最近困扰我的：" + "、".join(k for k, _ in topics.most_common(3)) + "。")
    if feelings:
        lines.append("我的感受：" + "、".join(list(feelings)[:5]) + "。")
    if traps:
        lines.append("我发现自己容易有的想法：" + "、".join(list(traps)[:3]) + "。")
    done = [toolbox.BY_KEY[k].name for k in dict.fromkeys(state.get("tools_done", [])) if k in toolbox.BY_KEY]
    if done:
        lines.append("和 AI 一起做过的练习：" + "、".join(done) + "。")
    if not lines:
        lines.append("我想找个真人聊一聊。")
    lines.append("我希望你能：（写下你最希望倾听师知道或做的事）")
    return "\n".join(lines)
