"""The built-in skills engine: a rule- and model-driven counselor (the default).

Per turn it reads the seeker's words with the emotion model
(``miaohui.nlp.emotion``), the lexicon (feelings in their own words), the
thinking-trap table and the topic detector, then composes a reply from
small phrase banks the way a counselor does — reflect, validate, then one
open or Socratic question — and offers a tool when it fits.  Crisis turns
never reach it (the safety layer answers those).

Variety: every sentence it says is remembered (a short hash in the
conversation's state) and a bank never repeats a sentence within a session;
choices rotate with the turn and the text, so two sessions differ too.
Everything is pure Python over small tables: a reply takes well under 50 ms
(``bench/companion.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field

from miaohui.companion import tools as toolbox
from miaohui.companion import traps as trap_table
from miaohui.companion.engine import Turn
from miaohui.nlp import emotion as emotion_model
from miaohui.nlp import lexicon
from miaohui.nlp.text import normalise
from miaohui.nlp.topics import detect_topics

NEGATIVE = ("sadness", "anger", "disgust", "fear")
POSITIVE = ("happiness", "like")
# Softer words than the model's labels, for reflections when the person named no feeling.
SOFT = {"sadness": ("难过", "失落", "沉重"), "anger": ("生气", "憋屈", "窝火"), "fear": ("不安", "担心", "紧张"),
        "disgust": ("反感", "厌烦", "受不了"), "surprise": ("意外", "措手不及", "没反应过来"),
        "happiness": ("开心", "轻松"), "like": ("在乎", "喜欢")}

REFLECT = (
    "听起来你现在挺{f}的。",
    "我听到了{f}，好像还压着不少东西。",
    "「{q}」——读到这句，能感到那份{f}。",
    "你说的这些，让我感觉到一种{f}。",
    "这份{f}，听起来已经跟了你一阵子了。",
    "{f}的感觉，好像把心里占满了。",
    "如果我没听错的话，此刻最明显的是{f}。",
    "这里面有{f}，对吗？",
    "你用了「{w}」这个词，这份{f}很真实。",
    "心里{f}的时候，很多事都会变得更难一点。",
    "嗯……{f}，而且好像不只是一点点。",
    "我能感到你话里的{f}。",
)
REFLECT_SHIFT = (
    "刚才你说到{p}，现在好像又多了一些{f}。",
    "从{p}到{f}，今晚你心里经历了不少。",
    "除了刚才的{p}，现在还有{f}在里面。",
)
VALIDATE = {
    "any": (
        "遇到这样的事，有这种感觉一点都不奇怪。",
        "换作是谁处在你的位置，大概都不会好受。",
        "这些感受是说得通的，不需要为它们道歉。",
        "你能把它说出来，已经很不容易了。",
        "难受的时候还愿意说，这本身就需要力气。",
        "你的反应是有原因的，不是你太敏感。",
        "这确实是件让人很难消化的事。",
        "有这样的情绪，说明这件事对你很重要。",
        "你不需要马上想明白，先允许自己有这份感受。",
        "这不是你一个人会有的感受，很多人在类似的处境里也会这样。",
    ),
    "anger": ("生气往往说明你在乎的界限被碰到了。", "被这样对待，会恼火是正常的。", "这股火气背后，可能还有委屈。"),
    "fear": ("害怕是身体在努力保护你。", "担心说明你在认真对待这件事。", "不确定的时候，人最容易慌，这很正常。"),
    "sadness": ("难过需要时间，不用急着让它过去。", "这份难过说明它对你有分量。", "累的时候，允许自己先停一停。"),
    "disgust": ("这么反感，说明有些东西真的让你受不了。", "会想远离让自己不舒服的东西，是一种自我保护。"),
}
OPEN_Q = (
    "能多说一点吗？当时发生了什么？",
    "这件事里，最让你放不下的是哪一部分？",
    "那一刻，你心里在想什么？",
    "你希望事情变成什么样？",
    "这种感觉大概是从什么时候开始的？",
    "现在想起来，身体有什么感觉吗？",
    "你自己怎么看这件事？",
    "身边有谁知道这件事吗？",
    "如果用一个画面形容现在的心情，会是什么样的？",
    "这些天，你是怎么撑过来的？",
    "此刻你更需要被听见，还是想一起想想办法？",
    "这件事对你来说意味着什么？",
    "还有什么想说、但还没说出口的吗？",
    "在这之前，你试过哪些让自己好受一点的办法？",
    "什么时候，这种感觉会轻一点？",
    "如果这份感受会说话，它最想说什么？",
)
TOPIC_Q = {
    "失恋/情感": ("这段关系里，你最舍不得的是什么？", "分开以后，哪个时刻最难熬？", "你们之间，最后一次好好说话是什么时候？"),
    "家庭": ("在家里，你通常是个什么样的角色？", "你希望家人怎样对待你？", "家里有没有一个人，是你比较能说上话的？"),
    "工作/职场": ("压力主要来自事情本身，还是来自人？", "如果能改变工作里的一件事，你会选哪件？", "下班以后，你还有属于自己的时间吗？"),
    "学业/考试": ("成绩之外，你最担心的是什么？", "这次考试对你来说意味着什么？", "复习的时候，最难熬的是哪一段？"),
    "失眠": ("躺下以后，脑子里通常在转些什么？", "睡不着这样有多久了？", "白天的精神还撑得住吗？"),
    "焦虑": ("你最担心会发生的是什么？", "这份担心落在身体上，是什么感觉？", "担心最重的时候，通常是一天里的什么时候？"),
    "抑郁/情绪低落": ("这种低落持续多久了？", "最近有没有哪件小事，还能让你稍微提起一点劲？", "每天最难熬的是哪个时段？"),
    "孤独": ("什么时候最觉得只有自己一个人？", "有没有哪个人，哪怕很久没联系，想起来会觉得温暖？"),
    "人际": ("你和 TA 之间发生了什么？", "你希望 TA 怎么做？", "在这段关系里，你最在意的是什么？"),
    "自我价值": ("这些对自己的评价，最早是从哪里听来的？", "在最了解你的人眼里，你是什么样的？"),
    "身体/健康": ("身体的状况，对你的生活影响大吗？", "现在有人在照顾你吗？"),
    "经济": ("现在压力最大的是哪一笔？", "有没有需要马上处理的事？"),
}
VAGUE = (
    "嗯，我在。想从哪儿说起都可以，慢慢来。",
    "不知道也没关系。要不先说说，今天过得怎么样？",
    "我在听，哪怕只是几个词也行。",
    "不急。愿意的话，可以先用一个词形容现在的心情。",
    "我还在这儿。你想说多少就说多少。",
    "有时候什么都说不出来，也是一种状态。我陪你待一会儿。",
    "嗯。要是愿意，可以从最近最常想到的那件事说起。",
)
ANNOYED = (
    "烦的感觉，会让人什么都不想做。是一件具体的事，还是好多事堆在一起？",
    "好烦……听得出来。最让你烦的是哪一件？",
    "烦到说不出来的时候，先说一个关键词也行。",
)
NEUTRAL = (
    "嗯，我听着。",
    "「{q}」，我记下了。",
    "明白，你说的这些我都在听。",
    "嗯，{q}……",
    "我在，接着说。",
    "好，我跟着你的节奏来。",
    "听你说「{q}」，我想多了解一点。",
    "嗯嗯，我在这儿。",
)
POSITIVE_R = (
    "真替你高兴！是什么让今天这么好？",
    "这份开心值得好好收下。能多说说吗？",
    "听得出你很在乎这个。",
    "好事情也值得被好好讲一遍——当时你是什么感觉？",
    "真好。你觉得是什么让这件事成了？",
    "听起来是个温暖的时刻。",
)
TRAP_INTRO = (
    "我注意到你说「{p}」。这里面可能有一点「{n}」的影子：{e}",
    "「{p}」这句，让我想到一种常见的思维陷阱，叫「{n}」——{e}",
    "有个地方想和你一起看看：「{p}」。这会不会有点「{n}」？{e}",
    "先轻轻停一下：「{p}」。心理学里管这种想法叫「{n}」，{e}",
)
OFFER = (
    "如果愿意，我们可以试试「{t}」：{d}想试的话说一声，或者点下面的按钮。",
    "要不要一起做个小练习——「{t}」？{d}",
    "有个方法也许用得上：「{t}」，{d}",
    "我们也可以换个方式：「{t}」。{d}",
)
GREETING = (
    "你好，我在。我是秒回的 AI 陪伴——不是真人，但随时都在。今天想聊点什么？",
    "嗨，我在这儿。提醒一下，我是 AI，不是真人。想说什么都可以，从哪儿开始都行。",
    "在的。我是 AI 陪伴，会认真听你说。今晚怎么样？",
)
IDENTITY = (
    "我是 AI，不是真人。我会认真听、帮你整理感受和想法；想和真人聊的话，点上面的「找真人倾听师」就可以。",
    "我是秒回的 AI 陪伴，不是真人。我没法真的陪在你身边，但在这里会一直认真回应你。需要真人的时候，随时可以换。",
    "实话实说：我是 AI，不是真人，也不是心理咨询师。想找真人聊的话，点「找真人倾听师」就好。",
)
THANKS = (
    "不客气。能陪你聊一会儿，我也觉得很好。还有什么想说的吗？",
    "谢谢你愿意说给我听。需要的时候，我一直在。",
    "不用谢。你今天做的，是在好好照顾自己。",
)
BYE = (
    "晚安。今天说出来的这些，都算数。想聊的时候，我一直在。",
    "好，去休息吧。照顾好自己，我们下次再聊。",
    "嗯，先到这里。谢谢你今天愿意说这么多。",
)
ADVICE_Q = (
    "你心里其实有没有一个倾向的选择？",
    "如果不考虑别人怎么看，你自己最想怎么做？",
    "每个选项里，最让你担心的分别是什么？",
)
NUDGES = (
    "另外想轻轻问一句：身边有没有一个人，你愿意把今天的事跟 TA 说一点点？",
    "我一直都在，不过现实里能抱抱你的人也很重要——最近有没有想联系、却一直没联系的人？",
    "也想提醒一下：朋友、家人，或者一位真人倾听师，都可以帮你分担一部分。",
    "等状态好一点的时候，约个信得过的人出去走走、吃点东西，也是照顾自己的一种方式。",
)
NAME_PREFIX = ("{n}，", "{n}，我在听。", "")

_GREET = re.compile(r"^(你好|您好|hi|hello|嗨|哈喽|在吗|在不在|有人吗)[!！。~?？啊呀]*$")
_IDENTITY = re.compile(r"(你是(不是)?(一个|个)?(真人|真的人|活人|ai|机器人|机器|人工智能|程序|人吗|人还是)|你是谁|"
                       r"(是|算)真人吗|真人吗|是ai吗|是机器人吗|是不是ai|是不是机器人|"
                       r"are you (a |an )?(real |human|person|bot|robot|ai))")


def asks_identity(text: str) -> bool:
    """Whether ``text`` asks who or what the companion is: always the skills engine's honest
    answer, whatever engine holds the conversation and whatever exercise is running."""
    t = normalise(text)
    return bool(_IDENTITY.search(t) or _IDENTITY.search(t.replace(" ", "")))
_THANKS = re.compile(r"^(谢谢|多谢|感谢|谢啦|thx|thanks)")
_BYE = re.compile(r"(晚安|拜拜|再见|我先睡了|去睡了|下次聊|先这样)")
_ANNOYED = re.compile(r"^(好烦|烦|烦死了|我好烦|好烦啊|心烦|烦躁)[啊呀!！。~]*$")
_ADVICE = re.compile(r"(怎么办|该不该|要不要|怎么选|选哪个|应该怎么做)")
_UNCLEAR = re.compile(r"(我到底怎么了|说不清|不知道自己怎么了|不知道什么感觉|说不上来)")
_PANIC = re.compile(r"(心跳好快|喘不过气|手在抖|发抖|慌得不行|好慌|惊恐|panic|快崩溃了)")
_SLEEP = re.compile(r"(睡不着|失眠|凌晨.{0,4}还醒|躺了好久)")
_TALK = re.compile(r"(不知道怎么(跟|和|对).{1,8}(说|开口|讲)|怎么开口|不敢(跟|和|对).{1,8}说)")
_CHALLENGE = re.compile(r"(别安慰我|说实话|你说我是不是|我是不是(太|很)|你觉得我(错|对))")


@dataclass
class Reply:
    text: str
    kind: str = "talk"  # talk | tool | greeting | identity | thanks | bye | vague
    offers: list[str] = field(default_factory=list)  # tool keys offered
    tool: str | None = None  # the tool running after this reply
    tool_done: str | None = None  # a tool that just finished
    feelings: list[str] = field(default_factory=list)
    traps: list[str] = field(default_factory=list)
    emotion: str = ""


_SENT = re.compile(r"(?<=[。！？?!\n])")


def _h(s: str) -> str:
    return hashlib.blake2s(s.encode(), digest_size=5).hexdigest()


class Chooser:
    """Picks bank entries no sentence of which was said in this session."""

    def __init__(self, state: dict, salt: str):
        self.said: list[str] = state.setdefault("said", [])
        self._set = set(self.said)
        self.salt = salt

    def fresh(self, s: str) -> bool:
        return all(_h(x.strip()) not in self._set for x in _SENT.split(s) if x.strip())

    def pick(self, bank: tuple[str, ...], key: str, **fmt) -> str | None:
        if not bank:
            return None
        start = int(_h(self.salt + key), 16) % len(bank)
        for i in range(len(bank)):
            s = bank[(start + i) % len(bank)].format(**fmt) if fmt else bank[(start + i) % len(bank)]
            if self.fresh(s):
                return s
        return None

    def note(self, text: str) -> None:
        for sentence in _SENT.split(text):
            s = sentence.strip()
            if s and _h(s) not in self._set:
                self._set.add(_h(s))
                self.said.append(_h(s))
        del self.said[:-400]


def _quote(text: str) -> str:
    """A short phrase of the person's own words to reflect back."""
    parts = [p for p in re.split(r"[，,。！!？?；;…\n]+", text) if len(p.strip()) >= 2]
    if not parts:
        return text[:16]
    best = max(parts, key=lambda p: (len(lexicon.scan(p)) > 0, -abs(len(p) - 10)))
    best = best.strip()
    return best if len(best) <= 18 else best[:17] + "…"


def _clause(raw: str, phrase: str) -> str:
    """The clause of the person's message that contains ``phrase`` (quoted back whole)."""
    for part in re.split(r"[，,。！!？?；;…\n]+", raw):
        if phrase[:4] and phrase[:4] in normalise(part):
            part = part.strip()
            return part if len(part) <= 24 else part[:23] + "…"
    return phrase


def offer_for(t: str, topics: tuple[str, ...], traps: list, label: str) -> str | None:
    """The tool that fits what the seeker just said, if any."""
    if _PANIC.search(t):
        return "grounding"
    if _SLEEP.search(t) or "失眠" in topics:
        return "sleep"
    if _TALK.search(t):
        return "rehearsal"
    if _CHALLENGE.search(t):
        return "counterpoint"
    if _UNCLEAR.search(t):
        return "name_feeling"
    if len(traps) >= 2 or (traps and label in NEGATIVE):
        return "thought_record"
    return None


class SkillsEngine:
    name = "skills"

    def __init__(self, chunk_delay: float = 0.0):
        self.chunk_delay = chunk_delay

    # ---- the Engine interface --------------------------------------------------------------
    async def stream(self, turn: Turn):
        reply = self.reply(turn)
        turn.state["_offers"] = list(reply.offers)
        for i, chunk in enumerate(chunks(reply.text)):
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield chunk

    async def aclose(self) -> None:
        return None

    # ---- composing ---------------------------------------------------------------------------
    def reply(self, turn: Turn) -> Reply:
        st = turn.state
        st["turn"] = st.get("turn", 0) + 1
        raw = turn.text.strip()
        t = normalise(raw)
        ch = Chooser(st, f"{st['turn']}|{t}")
        r = self._compose(turn, t, raw, ch)
        ch.note(r.text)
        st["last_kind"] = r.kind
        return r

    def _tool_turn(self, turn: Turn, raw: str, ch: Chooser, ts: dict, label: str) -> Reply:
        st = turn.state
        text, done = toolbox.advance(ts, raw, {"emotion_zh": SOFT.get(label, ("",))[0]})
        if not ch.fresh(text.split("\n")[0]):
            text = "好，我们继续。" + text
        if done:
            st["tool"] = None
            st.setdefault("tools_done", []).append(ts["key"])
            return Reply(text, "tool", tool_done=ts["key"])
        st["tool"] = ts
        return Reply(text, "tool", tool=ts["key"])

    def _compose(self, turn: Turn, t: str, raw: str, ch: Chooser) -> Reply:
        st = turn.state
        scores = emotion_model(t, normalised=True)
        label = max(scores, key=scores.__getitem__)
        # ---- who am I talking to: answered first, honestly, even mid-exercise (which stays where it was)
        if asks_identity(raw):
            said = ch.pick(IDENTITY, "id") or f"再说一次：我是 AI，不是真人。（这是我们聊的第 {st['turn']} 句。）"
            if st.get("tool"):
                said += "\n\n刚才的练习还在，想继续就接着回答上一步；想停的话，说“停”就好。"
            return Reply(said, "identity")
        # ---- tools: a running one, a stop, or a new one asked for
        ts = st.get("tool")
        wanted = toolbox.wanted_tool(raw)
        if ts and toolbox.wants_stop(raw):
            st["tool"] = None
            name = toolbox.BY_KEY[ts["key"]].name
            return Reply(f"好，「{name}」先停在这里，随时可以再回来。"
                         + (ch.pick(OPEN_Q, "stopq") or "想接着聊点什么？"), "talk")
        if wanted is not None and (not ts or ts["key"] != wanted.key):
            return self._tool_turn(turn, raw, ch, toolbox.start(wanted.key), label)
        if ts:
            return self._tool_turn(turn, raw, ch, ts, label)
        # ---- small talk the counselor answers plainly
        for rx, bank, kind, short in ((_GREET, GREETING, "greeting", 12), (_THANKS, THANKS, "thanks", 14),
                                      (_BYE, BYE, "bye", 16)):
            if rx.search(t) and len(t) <= short:
                said = ch.pick(bank, kind)
                if said:  # a used-up bank falls through to an ordinary reply
                    return Reply(said, kind)
        feelings = lexicon.feelings(t)
        traps = trap_table.detect(t, normalised=True)
        topics = detect_topics(t, normalised=True)
        r = Reply("", "talk", feelings=[f for f, _, _ in feelings], traps=[h.key for h in traps], emotion=label)
        parts: list[str] = []
        memo_name = next((m["text"] for m in turn.memory if m.get("kind") == "name"), "")
        if memo_name and st["turn"] % 5 == 2:
            prefix = ch.pick(NAME_PREFIX[:2], "name", n=memo_name)
            if prefix:
                parts.append(prefix)
        if _ANNOYED.match(t):
            parts.append(ch.pick(ANNOYED, "annoy") or "烦的时候，说一个词也行。")
            r.kind = "vague"
        elif len(t) <= 5 and not feelings:
            parts.append(ch.pick(VAGUE, "vague") or f"嗯，“{raw}”。我在，你慢慢说。")
            r.kind = "vague"
        elif not traps and not any(lab in NEGATIVE for _, lab, _ in feelings) and (
                any(lab in POSITIVE for _, lab, _ in feelings) or (label in POSITIVE and scores[label] >= 0.75)):
            parts.append(ch.pick(POSITIVE_R, "pos") or "真好。")
            q = ch.pick(OPEN_Q[9:], "posq")
            if q and st["turn"] % 2:
                parts.append(q)
        elif not feelings and not traps and not (label in NEGATIVE and scores[label] >= 0.4):
            parts.append(ch.pick(NEUTRAL, "neutral", q=_quote(raw)) or "嗯。")
            parts.append(self._question(t, ch, topics, st))
        else:
            parts += self._reflect(st, t, raw, ch, feelings, label, scores)
            trap = next((h for h in traps if h.key not in st.get("traps_recent", [])[-3:]), None)
            if trap is not None:
                tr = trap_table.BY_KEY[trap.key]
                intro = ch.pick(TRAP_INTRO, "trap" + trap.key, p=_clause(raw, trap.phrase), n=tr.name, e=tr.explain)
                q = ch.pick(tr.questions, "tq" + trap.key)
                if intro and q:
                    parts += [intro, q]
                    st.setdefault("traps_recent", []).append(trap.key)
                    del st["traps_recent"][:-6]
                    trap = None
                else:
                    trap = True
            if trap is None and len(parts) >= 3:
                pass  # a trap question was asked: one question per turn
            else:
                parts.append(self._question(t, ch, topics, st))
        # ---- a tool offer when it fits (not every turn)
        key = offer_for(t, topics, traps, label)
        last_offer = st.get("offered_at", -9)
        if key and st["turn"] - last_offer >= 3 and key not in st.get("tools_done", [])[-2:]:
            tool = toolbox.BY_KEY[key]
            o = ch.pick(OFFER, "offer" + key, t=tool.name, d=tool.desc)
            if o:
                parts.append(o)
                r.offers.append(key)
                st["offered_at"] = st["turn"]
        if turn.nudge:
            n = ch.pick(NUDGES, "nudge")
            if n:
                parts.append(n)
        r.text = "".join(p if p.endswith(("\n", "。", "？", "！", "，", "：", "…", "?", "!")) else p + "。"
                         for p in parts if p)
        if feelings:
            st["prev_feeling"] = feelings[0][0]
        elif label in NEGATIVE:
            st["prev_feeling"] = SOFT[label][0]
        return r

    def _reflect(self, st: dict, t: str, raw: str, ch: Chooser, feelings, label: str, scores: dict) -> list[str]:
        if feelings:
            f, _, word = feelings[0]
        else:
            options = SOFT.get(label, ("不好受",)) if label in NEGATIVE else ("不好受",)
            f, word = options[st["turn"] % len(options)], ""
        prev = st.get("prev_feeling")
        out: list[str] = []
        s = None
        if prev and feelings and prev != f and st["turn"] % 3 == 0:
            s = ch.pick(REFLECT_SHIFT, "shift", p=prev, f=f)
        if s is None:
            bank = REFLECT if word else tuple(x for x in REFLECT if "{w}" not in x)
            s = ch.pick(bank, "reflect", f=f, q=_quote(raw), w=word)
        if s is None:  # every reflection was used: quote their words instead
            s = f"你说「{_quote(raw)}」，我记下了。"
            if not ch.fresh(s):
                s = f"{f}……我在听。"
        out.append(s)
        lab = feelings[0][1] if feelings else label
        if st["turn"] % 3 != 1 or lab in ("fear", "anger"):
            v = ch.pick(VALIDATE.get(lab, ()) + VALIDATE["any"], "validate" + lab)
            if v:
                out.append(v)
        return out

    def _question(self, t: str, ch: Chooser, topics: tuple[str, ...], st: dict) -> str:
        if _ADVICE.search(t):
            q = ch.pick(ADVICE_Q, "advice")
            if q:
                return q
        for topic in topics:
            q = ch.pick(TOPIC_Q.get(topic, ()), "topic" + topic)
            if q:
                return q
        q = ch.pick(OPEN_Q, "open")
        if q:
            return q
        return f"关于这件事，你还想到了什么？（第 {st['turn']} 次听你说，我都在。）"


def chunks(text: str, size: int = 12) -> list[str]:
    """Split a reply into streaming chunks at punctuation (about ``size`` characters each)."""
    out: list[str] = []
    buf = ""
    for piece in re.split(r"(?<=[，。！？；：、\n,!?])", text):
        buf += piece
        if len(buf) >= size:
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    return out or [text]
