"""The companion's guided tools, as small step machines over plain data.

Each tool is a function ``step(tool_state, text, ctx) -> (reply, done)``
that reads what the seeker just wrote, keeps what it needs in
``tool_state["data"]`` (JSON-able; stored encrypted with the rest of the
companion state) and returns the next thing to say.  Tools run the same way
whichever engine holds the open conversation, so an exercise is predictable
and safe.

* 情绪命名 — name the feeling from their own words, rate it, hear its need;
* 想法整理 — a thought record with thinking-trap hints and Socratic questions;
* 睡不着 — brain-dump, 4-7-8 or box breathing, a body scan;
* 稳住自己 — 5-4-3-2-1 grounding, then paced breathing;
* 对话预演 — the companion plays the other person (still saying it is AI);
* 换个视角 — honest counterpoints instead of agreement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from miaohui.companion import guard
from miaohui.companion import traps as trap_table
from miaohui.nlp import lexicon
from miaohui.nlp.text import normalise


@dataclass(frozen=True)
class Tool:
    key: str
    name: str
    desc: str
    start_words: tuple[str, ...]  # a seeker message containing one of these starts the tool


TOOLS: tuple[Tool, ...] = (
    Tool("name_feeling", "情绪命名", "用你自己的话，给现在的感受找一个准确的名字。", ("情绪命名", "给情绪起名")),
    Tool("thought_record", "想法整理", "把让你难受的那个想法摊开，看看支持和反对它的证据。", ("想法整理", "整理想法", "整理一下想法")),
    Tool("sleep", "睡不着", "把脑子里的事先倒出来，再做一轮呼吸和身体扫描。", ("睡不着练习", "「睡不着」", "试试睡不着", "用睡不着")),
    Tool("grounding", "稳住自己", "用 5-4-3-2-1 着陆法和慢呼吸，让身体先安定下来。", ("稳住自己",)),
    Tool("rehearsal", "对话预演", "我来扮演你要谈话的那个人，你先练一练想说的话。", ("对话预演", "预演一下", "陪我练习")),
    Tool("counterpoint", "换个视角", "我不顺着你说，而是诚实地给出几个不同方向的看法。", ("换个视角", "唱反调", "反驳我", "挑战我")),
)
BY_KEY: dict[str, Tool] = {t.key: t for t in TOOLS}
BY_NAME: dict[str, Tool] = {t.name: t for t in TOOLS}

STOP_WORDS = ("不做了", "先不做", "不想做了", "算了", "停一下", "停止练习", "退出练习", "不练了", "结束练习")


def wanted_tool(text: str) -> Tool | None:
    """The tool a seeker asked for in ``text`` (the UI sends 「我想试试「X」」)."""
    t = normalise(text)
    for tool in TOOLS:
        if any(w in t for w in tool.start_words) or f"「{tool.name}」" in text:
            return tool
    return None


# The rehearsal tells the seeker to say "停": that word alone (with punctuation) stops too.
_STOP_ALONE = re.compile(r"^(停|停停|停吧|停下|停下来|先停|暂停)[。.!！~～,，]*$")


def wants_stop(text: str) -> bool:
    t = normalise(text)
    return len(t) <= 12 and (any(w in t for w in STOP_WORDS) or bool(_STOP_ALONE.match(t.replace(" ", ""))))


def _short(text: str, n: int = 40) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


def _number(text: str) -> int | None:
    m = re.search(r"(10|[0-9])", text)
    if m:
        return int(m.group(1))
    zh = "零一二三四五六七八九十"
    for i, c in enumerate(zh):
        if c in text:
            return i
    return None


def _feeling_names(text: str, fallback: str = "") -> list[str]:
    names = [f for f, _, _ in lexicon.feelings(normalise(text))]
    if not names and fallback:
        names = [fallback]
    return names


# ------------------------------------------------------------------ 情绪命名


def name_feeling(ts: dict, text: str, ctx: dict) -> tuple[str, bool]:
    d = ts.setdefault("data", {})
    step = ts.get("step", 0)
    if step == 0:
        ts["step"] = 1
        return ("好，我们来给现在的感受起个名字。不用想对错，用你自己的话说说：此刻心里是什么感觉？"
                "如果身体也有感觉（胸口闷、喉咙紧、胃里沉……），也可以一起说。"), False
    if step == 1:
        names = _feeling_names(text, ctx.get("emotion_zh", ""))
        d["words"] = _short(text, 30)
        d["candidates"] = names[:3]
        ts["step"] = 2
        if names:
            listed = "」「".join(names[:3])
            return (f"从你的话里，我听到了「{listed}」。哪一个最贴近？"
                    "如果都不太准，换一个你自己的词也完全可以。"), False
        return ("谢谢你描述得这么具体。如果要给它起个名字，你会叫它什么？"
                "可以参考：委屈、失落、焦虑、生气、孤独、疲惫、害怕、内疚……"), False
    if step == 2:
        picked = _feeling_names(text) or [c for c in d.get("candidates", []) if c in text]
        d["name"] = (picked[0] if picked else _short(text.strip("。！!？? "), 8)) or "这份感受"
        ts["step"] = 3
        return f"「{d['name']}」。如果 0 是一点没有、10 是最强烈，它现在大概几分？", False
    if step == 3:
        n = _number(text)
        d["level"] = n if n is not None else _short(text, 8)
        ts["step"] = 4
        return (f"{d['level']} 分，记下了。很多感受都在替我们说出一种需要——"
                f"你觉得「{d['name']}」在提醒你需要什么？比如被理解、休息、公平、陪伴，或者别的。"), False
    d["need"] = _short(text, 24)
    ts["step"] = 5
    return (f"我们一起给它起了名字：「{d['name']}」，现在 {d['level']} 分，它在说：{d['need']}。"
            "名字说出来，感受往往就没那么乱了。想接着聊聊引起它的那件事吗？"), True


# ------------------------------------------------------------------ 想法整理


def thought_record(ts: dict, text: str, ctx: dict) -> tuple[str, bool]:
    d = ts.setdefault("data", {})
    step = ts.get("step", 0)
    if step == 0:
        ts["step"] = 1
        return ("好，我们来做一份「想法整理」，一共几小步。第一步：是什么情境？"
                "简单说说发生了什么、在哪里、和谁。"), False
    if step == 1:
        d["situation"] = _short(text, 60)
        ts["step"] = 2
        return "第二步：那一刻，脑子里冒出的念头是什么？尽量照原样写下来，哪怕听起来很极端。", False
    if step == 2:
        d["thought"] = _short(text, 60)
        hits = trap_table.detect(text)
        d["traps"] = [h.key for h in hits]
        ts["step"] = 3
        return "第三步：这个念头带来了什么感受？有多强，0 到 10 分？", False
    if step == 3:
        names = _feeling_names(text)
        d["feeling"] = names[0] if names else _short(text, 10)
        d["before"] = _number(text)
        ts["step"] = 4
        return f"第四步：有哪些事实支持「{d['thought']}」这个想法？只写发生过的事。", False
    if step == 4:
        d["for"] = _short(text, 60)
        ts["step"] = 5
        hint = ""
        if d.get("traps"):
            trap = trap_table.BY_KEY[d["traps"][0]]
            hint = (f"我留意到这个想法里，可能有一点「{trap.name}」——{trap.explain}"
                    f"想一想：{trap.questions[0]} ")
        return (f"{hint}第五步：有没有哪些事实，不太符合这个想法，或者说明它不完全对？"
                "哪怕很小的也算。"), False
    if step == 5:
        d["against"] = _short(text, 60)
        ts["step"] = 6
        return ("第六步：把两边的证据放在一起，如果要写一个更平衡、也更公道的想法，你会怎么写？"
                "不需要很正面，只要比原来的更完整。"), False
    if step == 6:
        d["balanced"] = _short(text, 60)
        ts["step"] = 7
        return f"写得很好。现在再看「{d['feeling']}」这份感受，0 到 10 分，是几分？", False
    d["after"] = _number(text)
    ts["step"] = 8
    before, after = d.get("before"), d.get("after")
    change = ""
    if isinstance(before, int) and isinstance(after, int):
        change = (f"从 {before} 分到 {after} 分。" if after != before else f"还是 {after} 分，这也很正常，想法变了，感受往往慢一步。")
    traps = "、".join(f"「{trap_table.BY_KEY[k].name}」" for k in d.get("traps", []))
    trap_note = f"我们看到了可能的思维陷阱：{traps}。" if traps else ""
    return (f"我们的想法整理：\n情境：{d.get('situation', '')}\n原来的想法：{d.get('thought', '')}\n"
            f"感受：{d.get('feeling', '')}\n支持的证据：{d.get('for', '')}\n反对的证据：{d.get('against', '')}\n"
            f"更平衡的想法：{d.get('balanced', '')}\n{change}{trap_note}"
            "以后这个念头再冒出来，可以把这份平衡的想法拿出来看看。"), True


# --------------------------------------------------------------------- 睡不着


def sleep(ts: dict, text: str, ctx: dict) -> tuple[str, bool]:
    d = ts.setdefault("data", {})
    step = ts.get("step", 0)
    if step == 0:
        ts["step"] = 1
        return ("睡不着的时候，脑子常常停不下来。我们分三步：先倒空脑子，再调呼吸，最后放松身体。"
                "第一步：把现在脑子里转着的事一条一条丢给我，不用整理，不用写完整的句子。"), False
    if step == 1:
        items = [x.strip() for x in re.split(r"[，,。；;、\n]+", text) if x.strip()]
        d["dump"] = len(items)
        ts["step"] = 2
        return (f"收到了，{len(items) if items else '这些'}件事都先放在这里，明天它们还在，今晚你可以先不管它们。"
                "第二步，呼吸。想试 4-7-8（吸 4 秒、屏 7 秒、慢慢呼 8 秒），还是方块呼吸（吸 4、停 4、呼 4、停 4）？"
                "回我「4-7-8」或「方块」。"), False
    if step == 2:
        box = "方" in text or "box" in text.lower()
        d["breath"] = "box" if box else "478"
        ts["step"] = 3
        if box:
            return ("方块呼吸：用鼻子吸气，心里数 1、2、3、4；屏住，数 4 下；用嘴慢慢呼气，数 4 下；再停 4 下。"
                    "像沿着一个方块的四条边走。做 4 轮，做完回我一个字就好。"), False
        return ("4-7-8 呼吸：舌尖轻轻抵住上牙后面。用鼻子安静地吸气，数到 4；屏住呼吸，数到 7；"
                "用嘴慢慢呼气，发出轻轻的“呼——”，数到 8。这是一轮，做 4 轮就够了。做完回我一个字就好。"), False
    if step == 3:
        ts["step"] = 4
        return ("很好。最后是身体扫描：躺好，把注意力放到脚趾，感觉它们，然后让它们松下来；"
                "再慢慢往上——小腿、膝盖、大腿、肚子、胸口、肩膀、手臂、脖子、脸。哪里紧，就对那里说一声“可以松了”。"
                "不用回我，如果困了就直接睡。还醒着的话，回我一声。"), False
    ts["step"] = 5
    return ("还醒着也没关系，躺着休息本身也在恢复体力。不用逼自己睡着，"
            "让呼吸保持慢慢的就好。脑子里的事已经放在这里了，明天再处理。晚安，我一直在。"), True


# ------------------------------------------------------------------- 稳住自己


GROUNDING_STEPS = (
    "我在这里，我们一起慢下来。先看看四周：说出你现在能看到的 5 样东西，什么都行。",
    "很好。现在说出 4 样你能摸到的东西——衣服的布料、椅子、手机的边缘……感觉一下它们的温度和质地。",
    "接下来，仔细听，说出 3 种你能听到的声音，远的近的都可以。",
    "再说 2 种你能闻到的气味；闻不到也没关系，就说说空气是什么感觉。",
    "最后，1 样你能尝到的味道，或者一件此刻让你觉得安心一点的事。",
    "做得很好。最后一起慢呼吸：吸气数 4 下，呼气数 6 下，呼气比吸气长一点，重复 10 次。"
    "做完告诉我，现在紧张的程度，0 到 10 分大概几分？",
)


def grounding(ts: dict, text: str, ctx: dict) -> tuple[str, bool]:
    d = ts.setdefault("data", {})
    step = ts.get("step", 0)
    if step > 0:
        d.setdefault("answers", []).append(_short(text, 30))
    if step < len(GROUNDING_STEPS):
        ts["step"] = step + 1
        return GROUNDING_STEPS[step], False
    n = _number(text)
    ts["step"] = step + 1
    level = f"{n} 分，" if n is not None else ""
    return (f"{level}谢谢你陪自己做完这一轮。你刚才做的，是把注意力从脑子里的风暴带回到身边真实的东西上。"
            "以后慌起来的时候，随时可以再来一次。现在想聊聊刚才是什么让你慌的吗？"), True


# ------------------------------------------------------------------- 对话预演

REHEARSAL_REPLIES = (
    "……你怎么到现在才跟我说这些？",
    "我也有我的难处，你有没有想过我的感受？",
    "好吧，那你想要我怎么做？",
    "我没想到这件事对你影响这么大。",
)


def rehearsal(ts: dict, text: str, ctx: dict) -> tuple[str, bool]:
    d = ts.setdefault("data", {})
    step = ts.get("step", 0)
    if step == 0:
        ts["step"] = 1
        return "好，我们来预演。你想和谁谈？（比如妈妈、室友、领导）TA 是个什么样的人？", False
    if step == 1:
        d["who"] = _short(text, 16)
        ts["step"] = 2
        return "你最怕 TA 听了以后怎么回你？把那句最让你紧张的话写下来，我会照着它来演。", False
    if step == 2:
        feared = _short(text.strip("“”\"「」"), 40)
        # The AI speaks this line in character: never one that the output guard would stop
        # (a claim to be human, a method, romance), whoever wrote it.
        d["feared"] = "" if guard.check(feared) else feared
        d["round"] = 0
        ts["step"] = 3
        return (f"明白了。接下来我来扮演「{d['who']}」——提醒一下，我仍然是 AI，只是陪你练习。"
                "想停的时候说“停”。你先开口吧，就说你真正想说的那句话。"), False
    if step == 3:
        r = d.get("round", 0)
        d.setdefault("lines", []).append(_short(text, 40))
        if r == 0:
            line = d.get("feared") or REHEARSAL_REPLIES[0]
        else:
            line = REHEARSAL_REPLIES[min(r, len(REHEARSAL_REPLIES) - 1)]
        d["round"] = r + 1
        if d["round"] >= 3:
            ts["step"] = 4
            return (f"（{d['who']}）{line}\n\n——我们先从角色里出来。刚才这几句里，哪一句你说得最有力量？哪一刻最难开口？"), False
        return f"（{d['who']}）{line}", False
    d["reflection"] = _short(text, 40)
    ts["step"] = 5
    first = d.get("lines", [""])[0]
    return (f"你一开口就说了「{first}」，这需要勇气。真实的对话不会完全照剧本走，"
            "但你已经知道自己最想说什么、最怕听到什么了。要不要再换一种说法练一次，或者聊聊真去谈的时候，选在什么时间、什么地方比较好？"), True


# ------------------------------------------------------------------- 换个视角


COUNTERPOINTS = (
    "如果站在对方的位置上，这件事可能是这样看的：TA 也许有你没看到的顾虑。",
    "另一种可能：事情没你想的那么确定，现在下结论，可能早了一点。",
    "还有一个不太顺耳的角度：你对自己的要求，可能比你对任何别人都要严格。",
    "也可以反过来问：如果你最好的朋友这么说，你会完全同意TA吗？",
)


def counterpoint(ts: dict, text: str, ctx: dict) -> tuple[str, bool]:
    d = ts.setdefault("data", {})
    step = ts.get("step", 0)
    if step == 0:
        ts["step"] = 1
        return ("好，这次我不顺着你说。把你现在的看法告诉我——关于哪件事、哪个人，或者你对自己的某个判断。"
                "我会诚实地给出几个不同方向的看法，你可以一条条反驳我。"), False
    if step == 1:
        d["view"] = _short(text, 50)
        hits = trap_table.detect(text)
        points: list[str] = []
        for h in hits[:2]:
            trap = trap_table.BY_KEY[h.key]
            points.append(f"你说「{h.phrase}」，这里可能有「{trap.name}」的成分：{trap.explain}")
        for c in COUNTERPOINTS:
            if len(points) >= 3:
                break
            points.append(c)
        ts["step"] = 2
        body = "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1))
        return f"好，我来唱唱反调：\n{body}\n这几条里，你最不同意哪一条？为什么？", False
    d["reply"] = _short(text, 50)
    ts["step"] = 3
    return ("你的反驳很有分量——能说出为什么不同意，说明你对这件事想得很清楚。"
            "也许最后的答案在你原来的看法和这些反面之间。现在再看这件事，你的看法有没有哪怕一点点变化？"), True


STEPS: dict[str, Callable[[dict, str, dict], tuple[str, bool]]] = {
    "name_feeling": name_feeling, "thought_record": thought_record, "sleep": sleep, "grounding": grounding,
    "rehearsal": rehearsal, "counterpoint": counterpoint,
}


def start(key: str) -> dict:
    return {"key": key, "step": 0, "data": {}}


def advance(ts: dict, text: str, ctx: dict) -> tuple[str, bool]:
    """Run one step of the tool in ``ts``; returns ``(reply, done)``."""
    return STEPS[ts["key"]](ts, text, ctx)
