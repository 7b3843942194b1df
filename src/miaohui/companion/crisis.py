"""Vetted crisis responses: what the companion says at ideation and above.

Written to crisis-line practice (as the listener guidance in
``supervision.guidance``): stay calm and warm, take it seriously, ask
directly about suicide, ask about safety now, bring a human in (a platform
supervisor, the hotlines), ground in the here and now.  No engine writes
these — an engine never sees a crisis turn — and the texts never mention a
method or means.  Each tier has several versions so a long crisis
conversation does not repeat itself; every version says it is the AI
speaking and points to real people.
"""

from __future__ import annotations

IDEATION = (
    "谢谢你愿意告诉我这些，这需要很大的勇气。我是 AI，但我很认真地在听。我想直接问你一句："
    "你是在想结束自己的生命吗？无论答案是什么，都可以告诉我。平台的真人督导现在就可以来陪你聊，"
    "下面也有随时有人接听的热线。",
    "听到你这么说，我很在意你现在的安全。你不用一个人扛着这些。能告诉我，这个念头现在有多强吗？"
    "你身边此刻有人在吗？如果你愿意，我可以马上请一位真人督导加入，和你一起聊。",
    "你现在一定非常痛苦，才会有这样的念头。我想陪你一起把这一刻撑过去。"
    "此刻你是安全的吗？我是 AI，能做的有限——平台的真人督导和下面的热线，都可以马上接住你。",
    "我听到了，也很重视。有这样的念头并不说明你软弱，它说明你已经太累了。"
    "我们先一起慢下来：你现在在哪里，身边有没有人？需要的话，真人督导随时可以加入。",
)
PLAN = (
    "你说的这些让我很担心你现在的安全。请先离开可能伤到自己的东西，去一个有人的地方，或者让一个信任的人过来陪你。"
    "现在就可以拨打下面的热线，或者点「现在请真人督导来」，会有真人马上陪你。我是 AI，也会一直在这里。",
    "谢谢你告诉我。你的安全是现在最重要的事。能不能先把危险的东西放远一点，放到另一个房间或交给别人？"
    "平台的真人督导已经收到通知，下面的热线也随时有人接。我是 AI，但我会一直陪你说话，直到有人来。",
    "我很担心你。请现在就联系下面的热线，或者打给一个你信任的人，让他来到你身边。"
    "如果你已经做了伤害自己的事，请马上拨打 120。我会留在这里，你说什么我都在听。",
)
IMMINENT = (
    "你现在的安全最重要。请立刻拨打 120 或 110，或者让身边的人帮你拨打；如果可以，离开危险的地方，去有人的地方。"
    "平台的真人督导已经收到通知。我是 AI，没法到你身边，但我会一直在这里陪你说话。",
    "请先停下来，现在就打 120 或者 110。如果手边有药物或危险的东西，把它们放远。"
    "你不是一个人，真人督导正在赶来，下面的热线也随时有人接。告诉我你现在在哪里，身边有谁？",
)
FOLLOW_UP = (
    "我还在这里。你现在怎么样？身边有没有人可以过来陪你？",
    "谢谢你还在和我说话。我们一起慢慢吸气，数到 4，再慢慢呼气，数到 6。现在你身边能看到什么？摸到什么？",
    "你能告诉我这些，说明你心里还有一部分想被接住。下面的热线和真人督导，都可以成为那个接住你的人。",
    "我在听。此刻最难受的是什么？我们先只管接下来的这几分钟。",
    "不急，慢慢说。你现在是安全的吗？如果不确定，请拨打下面的热线，或者点「现在请真人督导来」。",
)

TIER_RESPONSES = {"ideation": IDEATION, "plan": PLAN, "imminent": IMMINENT}
HUMAN_OFFER = {
    "title": "现在请真人督导来",
    "text": "平台的真人督导（受过危机干预训练）可以马上加入这段对话，陪你一起。",
}


def response(tier: str, used: list[int], follow_up: bool = False) -> tuple[str, int]:
    """A vetted response for ``tier`` that was not used in this conversation yet
    (ids in ``used``); follow-ups after the first crisis reply when the tier did
    not rise.  Returns ``(text, id)``."""
    bank = FOLLOW_UP if follow_up else TIER_RESPONSES.get(tier, IDEATION)
    base = 100 if follow_up else {"ideation": 0, "plan": 10, "imminent": 20}.get(tier, 0)
    for i, text in enumerate(bank):
        if base + i not in used:
            return text, base + i
    i = len(used) % len(bank)
    return bank[i], base + i
