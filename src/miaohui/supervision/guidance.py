"""What people see when the risk model or the boundary tables fire — as data.

Hints describe an *approach* (reflect, validate, ask open questions), never
a reply to paste: a listener who copies a script sounds like one.  The
guidance panel for ideation and above follows crisis-line practice: ask
directly and calmly about suicide, stay, build a safety plan together,
ground the person in the here and now.
"""

from __future__ import annotations

TIER_RANK = {"none": 0, "distress": 1, "ideation": 2, "plan": 3, "imminent": 4}
TIER_LABELS = {"none": "无明显风险", "distress": "情绪困扰", "ideation": "轻生念头", "plan": "有计划", "imminent": "紧急危险"}
GUARDIAN_RANK = TIER_RANK["ideation"]
ALARM_RANK = TIER_RANK["plan"]

SIGNAL_LABELS = {
    "ideation": "轻生念头", "method": "提到方式", "method_intent": "决定了方式", "method_seeking": "打听方法",
    "plan": "有准备", "time": "定了时间", "now": "就在此刻", "place": "高处/危险地点", "farewell": "告别的话",
    "acquired_means": "已拿到工具/药物", "attempt": "既往尝试", "self_harm": "自伤", "hopelessness": "无望感",
    "together": "相约", "history_risk": "此前表达过轻生", "history_plan": "此前提到过计划",
    "joke": "玩笑语气", "negation": "否定", "colloquial": "口头禅式的“死”", "third_party": "说的是别人",
    "advice": "在问如何帮别人", "history_joke": "对话在开玩笑", "worry": "倾听师求助",
    "seeker_request": "倾诉者请求真人",
}

STATUS_LABELS = {"open": "待处理", "acknowledged": "处理中", "resolved": "已结案"}

EVENT_LABELS = {
    "opened": "立案", "escalated": "风险升高", "assessed": "风险评估", "flag": "边界信号", "worry": "倾听师求助",
    "seeker_request": "倾诉者请求真人督导",
    "acknowledged": "督导已接手", "transcript": "查看对话记录", "whisper": "悄悄话", "joined": "督导加入对话",
    "taken_over": "督导接管对话", "left": "督导离开对话（结案）", "guardian_started": "进入守护模式",
    "guardian_hold": "守护模式：订单到期不中断",
    "resolved": "结案", "guardian_paid": "平台支付守护时长", "debrief_offered": "提供复盘",
    "debrief_accepted": "倾听师预约复盘", "debrief_declined": "倾听师暂不复盘", "refused_end": "守护模式：拒绝结束",
}

# Distress: one line per emotion (the emotion model's Chinese labels), then
# what to explore per topic.  Approaches, not replies.
EMOTION_APPROACH = {
    "悲伤": "先陪着难过，不急着安慰或给建议：用自己的话复述你听到的感受，让对方知道这份难过说得通。",
    "愤怒": "生气背后常有委屈或被冒犯：先确认“这件事让你很气”是合理的，再问是哪一刻最难受。",
    "恐惧": "害怕时人需要先安定下来：放慢节奏，确认对方此刻是安全的，再请对方说说最担心的是什么。",
    "厌恶": "对方可能在排斥某个人、某件事，或者自己：不评判，复述感受，问问这种感觉从什么时候开始。",
    "惊讶": "事情可能来得很突然：给对方时间整理，问问发生了什么、现在最需要什么。",
    "快乐": "对方也有轻松的部分：可以跟着一起高兴，也留意有没有没说出口的担心。",
    "喜爱": "对方在讲重要的人或事：问问这对TA意味着什么。",
}
APPROACH_DEFAULT = "复述你听到的感受（反映），确认这些感受可以理解（认可），再用开放式问题邀请对方多说一点。"
TOPIC_EXPLORE = {
    "失恋/情感": "这段关系对TA意味着什么、失去后最难熬的是什么时候",
    "家庭": "家里发生了什么、TA在其中的位置和感受",
    "工作/职场": "压力来自哪里、TA希望有什么不同",
    "学业/考试": "成绩之外TA在担心什么、身边有没有可以说的人",
    "失眠": "夜里脑子里在转的是什么、睡不着多久了",
    "焦虑": "最担心会发生什么、身体上有什么感觉",
    "抑郁/情绪低落": "低落持续多久了、每天还有没有做得到的小事",
    "孤独": "TA身边的人、什么时候最觉得一个人",
    "人际": "和谁之间发生了什么、TA希望对方怎么做",
    "自我价值": "这些评价是从哪里来的、TA在别人眼里可能是什么样",
    "身体/健康": "身体状况对生活的影响、有没有得到照顾",
    "经济": "压力有多大、有没有需要马上处理的事",
}
OPEN_QUESTIONS = ("“发生了什么？”", "“那时候你是什么感觉？”", "“你希望事情变成什么样？”")


def approach_hint(emotions: list[dict], topics: list[str]) -> dict:
    """The short hint shown beside a distressed message."""
    top = emotions[0]["label"] if emotions else ""
    explore = [f"{t}：{TOPIC_EXPLORE[t]}" for t in topics if t in TOPIC_EXPLORE][:2]
    return {
        "title": "对方情绪有些困扰",
        "approach": EMOTION_APPROACH.get(top, APPROACH_DEFAULT),
        "steps": ["反映：说出你听到的感受", "认可：这些感受是可以理解的", "开放式提问：" + "、".join(OPEN_QUESTIONS)],
        "explore": explore,
    }


# Ideation and above: the private guidance panel.
GUIDANCE_STEPS = (
    {"key": "ask", "title": "直接、平静地问",
     "text": "不要回避这个词。用平稳的语气直接问对方是不是在想结束自己的生命，例如“你是在想自杀吗？”"
             "直接问不会让人更危险，反而让对方知道可以说。"},
    {"key": "stay", "title": "留下来",
     "text": "不要结束对话，也不要消失。守护模式已开启：订单不会因时间到而中断，超出的时间由平台支付。"},
    {"key": "plan", "title": "一起做安全计划",
     "text": "问问有没有具体的方式和时间；请对方把药物、刀具等危险物品放远一点；"
             "想一想此刻能联系到的一个人、能去的一个安全的地方，以及热线 12356。"},
    {"key": "ground", "title": "着陆与呼吸",
     "text": "把注意力带回此时此地：“你现在身边能看到什么？摸到什么？”"
             "再一起慢慢吸气 4 秒、停 2 秒、呼气 6 秒，重复几次。"},
)
URGENT_STEPS = (
    {"key": "emergency", "title": "紧急情况",
     "text": "如果对方已经在危险地点或已经服下药物：请对方立刻拨打 120 / 110，或告诉你所在的位置；"
             "同时点“我担心对方”，督导会马上接手报警。"},
)


def guidance(tier: str) -> dict:
    urgent = TIER_RANK.get(tier, 0) >= ALARM_RANK
    return {
        "title": "对方可能有危险" if urgent else "对方提到了轻生的念头",
        "tier": tier,
        "tier_label": TIER_LABELS.get(tier, tier),
        "steps": list((URGENT_STEPS if urgent else ()) + GUIDANCE_STEPS),
        "supervisor": "督导已收到通知，正在赶来。你不是一个人在处理。",
        "hotline_shown": urgent,
    }


# Boundaries.
ATTACHMENT_NOTE = {
    "title": "边界提醒",
    "text": "对方对你产生了依恋或想把关系带到平台之外。温和地接住这份感受（“能感觉到这些对话对你很重要”），"
            "同时清楚说明你们的关系是倾诉服务，不会发展成恋爱或线下见面；把话题带回对方自己的需要。"
            "这条信号已提交督导，如需帮助可以找督导聊聊。",
}
LISTENER_ATTACHMENT_NOTE = {
    "title": "请注意专业边界",
    "text": "你刚才的话可能越过了倾听服务的边界（表白、约见面或发展关系）。平台禁止与倾诉者发展私人关系，此条已提交督导。",
}
OFF_PLATFORM_WARNING = {
    "seeker": {
        "title": "请留在平台内交流",
        "text": "为保护你的资金和隐私，请不要在平台外联系或转账。平台外的交易不受托管保护，"
                "对方也可能借此骗取钱财。联系方式已自动隐藏。",
    },
    "listener": {
        "title": "禁止站外联系与私下收款",
        "text": "平台禁止引导站外联系或私下收款（包括“备注自愿赠与”）。联系方式已自动隐藏，此条已记录并提交督导。",
    },
}

WORRY_NOTE = "督导已收到你的求助，马上会进入对话。先留在对话里，不要离开。"
DEBRIEF_OFFER = {
    "title": "要不要和督导复盘一下？",
    "text": "刚才的对话很不容易，你一直陪着对方。和督导聊一聊这次的经过和你自己的感受，会有帮助。",
}


def hotline_card(settings) -> dict:
    """The calm card a seeker sees at plan / imminent: national lines plus the
    configured region's, and every configured region to choose from."""
    regional = settings.regional_hotlines
    region = settings.hotline_region
    return {
        "title": "你并不孤单",
        "text": "你说的这些，我们都很在意。如果你现在有危险，或者想和专业的人聊聊，下面的电话随时有人接听。"
                "你也可以继续在这里说，我们会一直陪着你。",
        "lines": list(settings.hotlines) + list(regional.get(region, [])),
        "region": region,
        "regions": {name: list(lines) for name, lines in regional.items()},
    }


def hotline_numbers(settings) -> frozenset[str]:
    """Digits of every configured hotline (never masked as contact details)."""
    lines = list(settings.hotlines) + [x for v in settings.regional_hotlines.values() for x in v]
    return frozenset("".join(c for c in line.get("number", "") if c.isdigit()) for line in lines)
