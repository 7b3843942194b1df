"""Thinking traps (cognitive distortions) as data: patterns, examples, questions.

Each :class:`Trap` has cue patterns (regular expressions over normalised
text), a plain-Chinese explanation, Socratic questions (asked, never
lectured) and hand-written examples that the tests run through
:func:`detect` — positives that must fire and negatives that must not.

Detection is deliberately conservative: a trap is *offered* to the person
as a possibility ("听起来可能有一点…"), never asserted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from miaohui.nlp.text import normalise


@dataclass(frozen=True)
class Trap:
    key: str
    name: str  # Chinese name shown to the person
    explain: str  # one sentence, plain words
    patterns: tuple[str, ...]
    questions: tuple[str, ...]  # Socratic questions, one is asked
    examples: tuple[str, ...]  # must be detected
    not_examples: tuple[str, ...] = ()  # must not be detected
    blockers: tuple[str, ...] = ()  # patterns that cancel a hit (e.g. talking about others' habits)


TRAPS: tuple[Trap, ...] = (
    Trap(
        "catastrophising", "灾难化",
        "把一件事的后果一路想到最坏，好像最坏的结局已经注定。",
        (r"(完了|完蛋|毁了|全毁|死定了|天塌|彻底失败|再也.{0,6}(不|没)|这辈子.{0,4}(完|毁|没救)|一切都(完|毁)|没救了|后果不堪设想)",
         r"(肯定|一定|绝对).{0,8}(被开除|被辞退|挂科|分手|离婚|活不下去|崩溃|出大事|毁掉)"),
        ("如果最坏的情况真的发生了，你觉得自己会怎么应对？", "最坏、最好和最可能的结果，分别是什么样？",
         "一年以后回头看，这件事会有多大分量？"),
        ("这次面试搞砸了，我这辈子都完了", "报告写错一个数，老板肯定会把我开除，一切都完了", "考砸了，我的人生毁了"),
        ("今天的火锅太好吃了", "我把作业完成了"),
    ),
    Trap(
        "all_or_nothing", "非黑即白",
        "只用“全好”或“全坏”两格来看，中间的灰色地带不见了。",
        (r"(要么|不是).{1,12}(要么|就是).{1,12}", r"(一点|一无)(都|也)?(不|没|是处)", r"(完全|彻底|根本)(失败|没用|不行|做不好)",
         r"不完美.{0,4}(就|等于).{0,4}(失败|没意义)", r"(只要|一旦).{0,8}(就|等于).{0,4}(全|彻底)(失败|完|白费)",
         r"(做不到|不是|没考到|没拿到|没做到)(第一|满分|最好|完美).{0,6}(就|等于|都是).{0,4}(失败|没用|白费|废物)",
         r"一点(用|价值|意义)(都|也)(没有|没)"),
        ("在“全好”和“全坏”之间，有没有“部分做到”的位置？", "如果给这件事打个 0 到 10 分，会是几分？为什么不是 0？",
         "有没有哪一部分其实是做得还可以的？"),
        ("没考到满分就等于失败", "我一点用都没有", "要么做到最好，要么干脆别做", "这件事我彻底失败了"),
        ("这道题有点难", "我们一点半见"),
    ),
    Trap(
        "overgeneralising", "以偏概全",
        "从一两次经历推出“总是”“从来”“所有人”的结论。",
        (r"(总是|老是|每次|每一次|从来|永远|一直都).{0,10}(这样|失败|搞砸|被|不|没|做不好|倒霉)",
         r"(所有人|谁都|没有人|没人|全世界).{0,8}(讨厌|看不起|不喜欢|嫌弃|不在乎|欺负|针对|不理)"),
        ("有没有哪一次，事情不是这样的？", "“总是”这个词准确吗？大概是几次里有几次？", "除了这一次，还有别的证据吗？"),
        ("我每次都把事情搞砸", "所有人都讨厌我", "我永远都做不好", "我总是被人抛弃"),
        ("我每次去都点拿铁", "他一直都很照顾我"),
        blockers=(r"(每次|总是|一直都).{0,6}(点|喝|吃|很照顾|对我好|陪)",),
    ),
    Trap(
        "mind_reading", "读心术",
        "没有问过，就认定自己知道别人在想什么（通常是负面的）。",
        (r"(他|她|他们|她们|别人|大家|同事|老板|领导|老师|朋友|对方|爸妈|妈妈|爸爸).{0,6}(肯定|一定|绝对|应该|估计)?.{0,3}"
         r"(觉得|认为|在想|看不起|瞧不起|嫌弃|笑话|讨厌|烦)我",
         r"(他|她|他们|别人|大家|对方).{0,4}(肯定|一定|绝对)是(嫌|讨厌|烦|看不起|不想理|故意)",
         r"(他|她|对方|他们).{0,3}(肯定|一定|绝对)(已经)?(不爱|不在乎|不喜欢|讨厌|烦|看不起)(我|了)",
         r"(他|她|别人|大家)(心里|背地里).{0,6}(笑|骂|嫌|看不起)"),
        ("你是怎么知道对方是这么想的？有没有直接问过？", "对方这样做，还可能有哪些别的原因？",
         "如果朋友遇到同样的事，你会觉得别人一定在这么想吗？"),
        ("同事肯定觉得我很蠢", "他一定是嫌我烦了", "大家背地里都在笑我", "老板觉得我不行", "他肯定已经不爱我了"),
        ("他说他觉得我做得不错",),
        blockers=(r"(他|她|别人|大家|老板|朋友)(说|告诉我|夸).{0,6}(觉得|认为)",),
    ),
    Trap(
        "fortune_telling", "预言未来",
        "把还没发生的坏结果当成已经确定。",
        (r"(肯定|一定|注定|绝对|铁定)(会|要|不会|考不上|找不到|好不了|失败|被拒|没戏|没希望)",
         r"(以后|将来|明天|下次).{0,6}(肯定|一定|也)(会|不会).{0,6}(失败|搞砸|被拒|没人|孤独|一样)",
         r"(不会有人|没有人会|再也不会有人).{0,6}(喜欢|爱|要|在乎)我"),
        ("你有多大把握，这件事一定会这样发生？", "有没有过你以为会很糟、结果没那么糟的时候？", "还有没有别的可能的结果？"),
        ("我肯定考不上", "明天的汇报我一定会搞砸", "以后不会有人喜欢我了", "这病注定好不了"),
        ("明天肯定会下雨吧，带伞",),
        blockers=(r"(下雨|天气|带伞|放假|发工资)",),
    ),
    Trap(
        "should_statements", "应该思维",
        "用“应该”“必须”给自己或别人定下很硬的规矩，做不到就自责或生气。",
        (r"我(本来)?(应该|应当|必须|得要|早该|就该|不该|不应该).{0,12}", r"(他|她|别人|你)(应该|必须|就该|本来就该).{1,12}",
         r"(不可以|不能)(哭|软弱|示弱|失败|出错|让人失望)"),
        ("这条“应该”是谁定的？它一直都适合你吗？", "如果把“应该”换成“我希望”，感觉会有什么不同？",
         "你会用同样严格的标准要求你在乎的朋友吗？"),
        ("我应该更努力的", "我必须让所有人满意", "我不应该这么脆弱", "我不能哭"),
        ("明天应该会晴吧",),
        blockers=(r"应该(会|是)(晴|下雨|到了|没事)",),
    ),
    Trap(
        "labelling", "贴标签",
        "用一个负面的词给整个人下结论，而不是描述具体的行为。",
        (r"我(就是|真是|是个|是一个|简直是|真的是|是.{0,4}的)?(个)?(废物|失败者|loser|垃圾|白痴|笨蛋|蠢货|傻子|没用的人|累赘|扫把星|多余的人)",
         r"(他|她)(就是|是个)(混蛋|渣男|渣女|垃圾|废物|坏人)"),
        ("这件事是你做的一件事，还是你这个人的全部？", "如果只描述发生了什么，不用这个词，会怎么说？",
         "你身边在乎你的人，会用这个词来形容你吗？"),
        ("我就是个废物", "我真是个失败者", "我是家里的累赘", "我简直是个白痴"),
        ("我们聊聊废物利用",),
    ),
    Trap(
        "personalising", "个人化",
        "把不完全由自己控制的事，都揽成自己的错。",
        (r"(都是|全是|全都是|都怪|全怪)(我|因为我)", r"(因为我|是我害|是我让|要不是我).{0,10}(才|所以|就不会)?",
         r"我的错.{0,4}(让|害|导致)?"),
        ("这件事里，有哪些部分其实不在你的控制之内？", "如果给每个因素分一块“责任饼”，你的那块有多大？",
         "除了你，还有哪些人或情况也起了作用？"),
        ("爸妈吵架都是因为我", "项目失败全怪我", "要不是我，他们就不会分手", "都是我的错"),
        ("因为我喜欢画画，所以报了美术班",),
        blockers=(r"因为我(喜欢|想|要|爱)",),
    ),
    Trap(
        "emotional_reasoning", "情绪推理",
        "把感受当成事实：我觉得是这样，所以它就是这样。",
        (r"我(觉得|感觉)自己(很|好|太|真|是)?(个)?(没用|差劲|失败|糟糕|不配|多余|一无是处|很蠢|很笨)",
         r"(既然|因为)我(感觉|觉得|这么).{0,6}(所以|那)(肯定|一定|就是)",
         r"我(很|好|这么)(害怕|焦虑|慌|内疚|羞耻).{0,6}(说明|证明|肯定|一定)"),
        ("这个感觉很真实，不过它能当作证据吗？", "有没有什么事实，和这个感觉说的不一样？", "如果感觉会变，这个结论也会跟着变吗？"),
        ("我觉得自己很没用", "我这么害怕，说明肯定要出事", "我感觉自己是多余的"),
        ("我觉得这部电影很好看",),
    ),
    Trap(
        "discounting_positive", "否定正面",
        "好的事情被打折扣：“那不算”“只是运气”“谁都做得到”。",
        (r"(只是|不过是|纯属|全靠)(运气|侥幸|碰巧|客气|安慰我|可怜我)", r"(那|这)(不算|算不上|不代表|说明不了)什么",
         r"(谁都|任何人都|换谁都)(能|可以|做得到|会)", r"(他们|他|她|别人)(夸我|说我好).{0,8}(只是|不过是)(客气|安慰|礼貌)"),
        ("如果这是朋友做到的，你也会说“只是运气”吗？", "这件事里，有哪一部分是你自己的努力？", "把这件好事完整地收下，会有什么不舒服的地方吗？"),
        ("考过了也只是运气好", "他们夸我不过是客气", "这不算什么，谁都做得到"),
        ("今天运气不错，赶上了公交",),
    ),
)

BY_KEY: dict[str, Trap] = {t.key: t for t in TRAPS}


@dataclass(frozen=True)
class TrapHit:
    key: str
    name: str
    phrase: str  # the words that matched, quoted back gently


@lru_cache(maxsize=1)
def _compiled() -> tuple[tuple[Trap, tuple[re.Pattern, ...], tuple[re.Pattern, ...]], ...]:
    return tuple((t, tuple(re.compile(p) for p in t.patterns), tuple(re.compile(p) for p in t.blockers)) for t in TRAPS)


def detect(text: str, *, normalised: bool = False) -> list[TrapHit]:
    """Thinking traps that the words of ``text`` suggest, in table order."""
    t = text if normalised else normalise(text)
    out: list[TrapHit] = []
    for trap, pats, blockers in _compiled():
        if any(b.search(t) for b in blockers):
            continue
        for p in pats:
            m = p.search(t)
            if m:
                out.append(TrapHit(trap.key, trap.name, m.group(0)[:24]))
                break
    return out
