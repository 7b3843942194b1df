"""Hand-written Chinese emotion lexicon, negators, intensifiers and emoticon cues.

Written for this project (no third-party lexicon is copied).  Two uses:

* the emotion model (``miaohui.nlp.emotion``) counts hits per CLUE label — with
  negation and intensity — as extra features beside character n-grams;
* the companion names feelings *in the person's own words*: a hit on 委屈 is
  reflected back as 委屈, not as the coarse label 悲伤.

``FEELINGS`` maps a fine feeling name to ``(CLUE label, words)``; the first
word is the name itself.  Words are matched on normalised text (see
``miaohui.nlp.text.normalise``) by a longest-match scan over a trie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

LABELS = ("like", "happiness", "sadness", "anger", "disgust", "fear", "surprise")

FEELINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    # ---- sadness
    "难过": ("sadness", ("难过", "伤心", "难受", "心痛", "心疼自己", "心碎", "哭了", "想哭", "哭", "泪", "眼泪",
                          "泪目", "好惨", "悲伤", "悲哀", "哀伤", "痛苦", "心酸", "酸楚", "揪心", "扎心", "emo")),
    "委屈": ("sadness", ("委屈", "不被理解", "冤枉", "凭什么是我", "没人理解", "受气", "憋屈")),
    "失落": ("sadness", ("失落", "失望", "落空", "空落落", "没意思", "无趣", "可惜", "遗憾", "白费", "不甘心")),
    "孤独": ("sadness", ("孤独", "孤单", "寂寞", "一个人", "没人陪", "没有朋友", "没人懂", "被孤立", "冷清")),
    "疲惫": ("sadness", ("累", "好累", "疲惫", "心累", "疲倦", "没力气", "撑不住", "熬不住", "精疲力尽", "耗尽", "困")),
    "无助": ("sadness", ("无助", "无力", "无能为力", "没办法", "不知道怎么办", "走投无路", "绝望", "没希望", "迷茫",
                          "茫然", "无奈")),
    "想念": ("sadness", ("想念", "思念", "想你", "怀念", "舍不得", "再也见不到", "离开了", "分手", "失恋", "走了")),
    "内疚": ("sadness", ("内疚", "愧疚", "自责", "对不起", "后悔", "都怪我", "是我的错", "悔")),
    "低落": ("sadness", ("低落", "郁闷", "抑郁", "丧", "消沉", "提不起劲", "没动力", "心情不好", "不开心", "不高兴",
                          "沮丧", "灰心", "压抑", "闷")),
    # ---- fear
    "焦虑": ("fear", ("焦虑", "着急", "焦急", "坐立不安", "心慌", "慌", "不安", "忐忑", "压力", "压力大", "睡不着",
                       "失眠", "紧张", "心跳好快", "喘不过气")),
    "害怕": ("fear", ("害怕", "怕", "恐惧", "可怕", "吓", "吓人", "恐怖", "惊恐", "毛骨悚然", "不敢", "胆小", "畏惧")),
    "担心": ("fear", ("担心", "担忧", "忧虑", "顾虑", "万一", "怕的是", "提心吊胆", "发愁", "愁")),
    # ---- anger
    "生气": ("anger", ("生气", "气死", "气人", "愤怒", "火大", "恼火", "发火", "暴躁", "怒", "炸了", "抓狂", "崩溃",
                        "凭什么", "受够了", "忍无可忍", "混蛋", "滚", "妈的", "尼玛", "tmd", "靠")),
    "愤愤不平": ("anger", ("不公平", "不公", "欺负", "欺人太甚", "太过分", "过分", "无理", "霸道", "坑人", "骗子")),
    "烦躁": ("anger", ("烦", "好烦", "烦死", "烦躁", "心烦", "烦人", "闹心", "糟心", "窝火")),
    # ---- disgust
    "反感": ("disgust", ("讨厌", "厌恶", "恶心", "反感", "嫌弃", "受不了", "看不惯", "鄙视", "无语", "呵呵", "垃圾",
                          "丑", "脑残", "奇葩", "作死", "虚伪", "装", "恶心死")),
    "厌倦": ("disgust", ("厌倦", "腻了", "烦透", "够了", "不想再", "没劲", "无聊")),
    "对自己失望": ("disgust", ("讨厌自己", "恨自己", "我好差", "我真没用", "没用", "废物", "一无是处", "丢人", "丢脸",
                              "羞耻", "自卑")),
    # ---- surprise
    "惊讶": ("surprise", ("惊讶", "吃惊", "震惊", "没想到", "想不到", "居然", "竟然", "天哪", "天啊", "我的天", "卧槽",
                           "不敢相信", "意外", "突然", "惊呆", "吓一跳", "怎么会", "神奇")),
    # ---- happiness
    "开心": ("happiness", ("开心", "高兴", "快乐", "哈哈", "嘻嘻", "笑", "好开心", "太好了", "愉快", "欢乐", "爽",
                            "兴奋", "激动", "棒", "耶", "美滋滋", "乐")),
    "轻松": ("happiness", ("轻松", "放松", "舒服", "释然", "松了一口气", "安心", "踏实", "平静", "解脱", "自在")),
    "满足": ("happiness", ("满足", "幸福", "知足", "温暖", "暖", "感动", "值得", "充实", "欣慰")),
    "骄傲": ("happiness", ("骄傲", "自豪", "成就感", "做到了", "成功", "考过了", "赢了")),
    "期待": ("happiness", ("期待", "盼望", "希望", "憧憬", "等不及", "向往")),
    # ---- like
    "喜欢": ("like", ("喜欢", "爱", "好爱", "可爱", "萌", "美", "漂亮", "好看", "帅", "赞", "棒棒", "支持", "好喜欢",
                       "心动", "迷人", "宝贝", "亲爱的", "么么")),
    "感激": ("like", ("感谢", "谢谢", "感激", "感恩", "多亏", "幸亏有你")),
    "欣赏": ("like", ("欣赏", "佩服", "崇拜", "厉害", "了不起", "牛", "优秀", "靠谱", "给力")),
    "在乎": ("like", ("在乎", "珍惜", "心疼", "牵挂", "挂念", "关心")),
}

# Weibo-style bracket emoticons and emoji → label (a hint, the model learns the weights).
EMOTICONS: dict[str, str] = {
    "[泪]": "sadness", "[悲伤]": "sadness", "[伤心]": "sadness", "[失望]": "sadness", "[委屈]": "sadness",
    "[可怜]": "sadness", "[蜡烛]": "sadness", "[悲催]": "sadness", "[泪流满面]": "sadness", "[衰]": "sadness",
    "[拜拜]": "sadness", "[生病]": "sadness",
    "[怒]": "anger", "[怒骂]": "anger", "[抓狂]": "anger", "[哼]": "anger", "[崩溃]": "anger", "[吐]": "anger",
    "[最差]": "anger", "[草泥马]": "anger", "[愤怒]": "anger",
    "[鄙视]": "disgust", "[汗]": "disgust", "[挖鼻屎]": "disgust", "[黑线]": "disgust", "[囧]": "disgust",
    "[白眼]": "disgust", "[懒得理你]": "disgust", "[呵呵]": "disgust",
    "[哈哈]": "happiness", "[嘻嘻]": "happiness", "[偷笑]": "happiness", "[太开心]": "happiness",
    "[笑哈哈]": "happiness", "[鼓掌]": "happiness", "[偷乐]": "happiness", "[做鬼脸]": "happiness",
    "[太阳]": "happiness", "[蛋糕]": "happiness",
    "[爱你]": "like", "[心]": "like", "[赞]": "like", "[亲亲]": "like", "[给力]": "like", "[good]": "like",
    "[花心]": "like", "[鲜花]": "like", "[害羞]": "like", "[可爱]": "like",
    "[吃惊]": "surprise", "[晕]": "surprise", "[疑问]": "surprise", "[打哈气]": "surprise",
    "😭": "sadness", "😢": "sadness", "💔": "sadness", "😞": "sadness", "😔": "sadness",
    "😡": "anger", "😠": "anger", "🤬": "anger", "🙄": "disgust", "🤮": "disgust", "😒": "disgust",
    "😂": "happiness", "😄": "happiness", "😁": "happiness", "😊": "happiness", "🎉": "happiness",
    "❤": "like", "😍": "like", "🥰": "like", "👍": "like", "😘": "like",
    "😱": "fear", "😨": "fear", "😰": "fear", "😮": "surprise", "😲": "surprise", "😳": "surprise",
}

NEGATORS = ("不", "没", "没有", "别", "并不", "不是", "不太", "不怎么", "从不", "从没", "毫不", "无法", "未", "不再")
INTENSIFIERS = ("很", "好", "太", "非常", "特别", "超", "超级", "真的", "真", "极", "极其", "十分", "格外", "死了",
                "要命", "爆", "巨", "贼", "老", "越来越", "实在", "简直", "完全", "彻底", "一直", "总是")


@dataclass(frozen=True, slots=True)
class Hit:
    feeling: str  # fine feeling name (FEELINGS key), or "" for an emoticon
    label: str  # CLUE label
    word: str
    start: int
    negated: bool
    intense: bool


@lru_cache(maxsize=1)
def _trie() -> tuple[dict, int]:
    root: dict = {}
    longest = 1
    entries: list[tuple[str, str, str]] = []
    for name, (label, words) in FEELINGS.items():
        entries += [(w, name, label) for w in words]
    entries += [(e, "", label) for e, label in EMOTICONS.items()]
    for w, name, label in entries:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node.setdefault("", (name, label))  # first definition wins
        longest = max(longest, len(w))
    return root, longest


# Negations that stand a few characters away: 不会有人喜欢我, 没有人在乎.
_FAR_NEGATORS = ("不会有人", "没有人", "没人", "再也没有人", "再也不会")


_NOT_NEGATION = re.compile("特别|区别|分别|告别|别人|差别|个别|性别|级别|类别|识别|不错|没错|不得不")


def _before(text: str, i: int, words: tuple[str, ...], span: int = 3) -> bool:
    window = _NOT_NEGATION.sub("", text[max(0, i - span - 2):i])[-span:]
    return any(window.endswith(w) or (w in window and len(w) > 1) for w in words)


def scan(text: str) -> list[Hit]:
    """Lexicon hits in normalised ``text``, longest match first, left to right."""
    root, longest = _trie()
    out: list[Hit] = []
    i, n = 0, len(text)
    while i < n:
        node, best, j = root, None, i
        while j < n and j - i < longest:
            node = node.get(text[j])
            if node is None:
                break
            j += 1
            if "" in node:
                best = (j, node[""])
        if best is None:
            i += 1
            continue
        end, (name, label) = best
        word = text[i:end]
        negated = (_before(text, i, NEGATORS, 3) or _before(text, i, _FAR_NEGATORS, 6)) and not word.startswith(("不", "没"))
        intense = _before(text, i, INTENSIFIERS, 4) or text[end:end + 2] in ("死了", "极了") or text[end:end + 1] == "!"
        out.append(Hit(name, label, word, i, negated, intense))
        i = end
    return out


def feelings(text: str) -> list[tuple[str, str, str]]:
    """``(feeling, label, word)`` named in ``text`` (not negated), in order, each feeling once."""
    seen: dict[str, tuple[str, str, str]] = {}
    for h in scan(text):
        if h.feeling and not h.negated and h.feeling not in seen:
            seen[h.feeling] = (h.feeling, h.label, h.word)
    return list(seen.values())
