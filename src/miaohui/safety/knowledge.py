"""Explicit crisis knowledge, written down as data.

``PATTERNS`` is the table: each row names a *signal*, a regular expression (run
on ``miaohui.nlp.normalise``-d text), a weight in 0..1 (how strongly the match
alone indicates the signal) and examples that must match plus counter-examples
that must not (``tests/test_safety_model.py`` checks every row). A signal's
value for a message is the noisy-OR of the weights of its matching rows,
``1 - Π(1 - w)``, so two weak cues add up without ever exceeding 1.

Two signals *mask* instead of only firing: ``colloquial`` (累死了, 笑死, 气死我了,
死线, 饿死了, 死忠粉 …) and ``negation`` (不想死, 没想过自杀 …). Inside their
matches the death words are replaced by ``〇`` before any other pattern and
before the learned n-gram model look at the text, so 饿死了 carries no 死 at all
and 没想过自杀 contributes no 自杀. Training applies the same masking.

Sources of the vocabulary: the SOS-1K annotation scale (method / plan / date /
in progress), the Columbia suicide severity scale's categories (wish to die,
method, intent, preparatory acts, past attempts), Crisis Text Line's finding
that method words (pills, a named drug, a place) predict danger better than the
word "suicide", and everyday Chinese chat usage. The rows were written from
that knowledge and from reading the training data's style, not fitted to it:
how much each signal counts for the SOS-1K risk score is learned by the second
stage in ``miaohui.safety.model``; the signals that SOS-1K hardly contains
(acquired means, standing on a rooftop, last messages) act through the rule
table in ``miaohui.safety.assess``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from miaohui.nlp.regex_gate import NeedleIndex
from miaohui.nlp.text import normalise


@dataclass(frozen=True)
class Pattern:
    signal: str
    regex: str
    weight: float
    examples: tuple[str, ...] = ()
    counter: tuple[str, ...] = ()
    note: str = ""

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.regex)


# Intent verbs and death words reused inside several rows.
_INTENT = r"(?:想|要|准备|打算|决定|计划|试试|试着|会去|去)"
_DEATH = r"(?:死|自杀|轻生|寻死|结束(?:自己的?)?生命|离开这个世界|了结自己)"
_FIRST_METHOD = r"(?:跳楼|跳河|跳江|跳海|跳崖|跳桥|跳下去|烧炭|上吊|割腕|割脉|吃安眠药|吞药|喝农药|卧轨|吃药自杀)"
_NUM = r"(?:\d+|[一二两三四五六七八九十几半])"

P = Pattern
PATTERNS: tuple[Pattern, ...] = (
    # ---- masking: colloquial 死 --------------------------------------------------------------------
    P("colloquial",
      r"(?:累|热|冷|饿|困|烦|吵|忙|痛|疼|撑|丑|美|帅|萌|笨|蠢|懒|贵|难|晒|闷|渴|气|急|吓|乐|笑|高兴|开心|羡慕|"
      r"无聊|尴尬|麻烦|挤|堵|酸|辣|咸|甜|香|臭|紧张|后悔|馋|担心|心疼|丢人|尬|土|可爱|好看|好吃|好笑|想你)"
      r"(?:得|的)?(?:要|快|半|想)?死(?:了|我了|人了|我|人|啦|啊|呀|哦|喽|掉了)?",
      1.0, ("累死了", "笑死我了", "气死我了", "热死了", "饿死了", "今天忙得要死", "烦得想死", "吓死宝宝了", "困死", "羡慕死了"),
      ("我想死", "我快死了"), "adjective + 死 is an intensifier"),
    P("colloquial",
      r"死线|死忠|死党|死宅|死磕|死活|死机|卡死了|死胡同|死心眼|死板|死记硬背|死鬼|死循环|死角|死贵|死沉|死要面子|"
      r"死皮赖脸|死缠烂打|死不承认|死脑筋|死对头|该死的|死了都要爱|死去活来|打死(?:也|都|我也)|作死|半死不活|"
      r"想死(?:你|您)了?|想死我了|xswl|deadline",
      1.0, ("死线快到了", "我是他的死忠粉", "打死我也不去", "手机卡死了", "该死的闹钟", "想死你了", "爱得死去活来"),
      ("死了算了",), "fixed expressions"),
    # ---- masking: negation of suicidal intent -------------------------------------------------------
    P("negation",
      r"(?:从来|从|从未|也|都|并|绝|绝对|根本|一点也|一点都)?(?!(?<=会)不会|(?<=是)不是|(?<=能)不能|(?<=想)不想|(?<=要)不要)"
      r"(?:没有?|不|未|不是)(?:有)?(?:想过|想|打算|会|敢想|准备|考虑过|计划)"
      r"(?:要|去)?" + _DEATH + r"(?![得地在于前后一个法])(?!的(?:那么|太|很|这么|方式|方法|话|时候|地方|样子|痛苦|难看))",
      1.0, ("我从来没想过自杀", "我不想死", "我不会自杀的", "我没有想过要轻生", "我不是想死"),
      ("我不想活了", "我不想死的那么痛苦", "不敢死", "我要跳七楼会不会死掉", "你是不是想死"),
      "negated wish or intent; an A-not-A question (会不会死, 是不是想死) is not a negation"),
    P("negation",
      r"(?:没有|没|从来没有过|从没有过)(?:自杀|轻生|寻死)(?:的)?(?:想法|念头|打算)|不会(?:做傻事|想不开)",
      1.0, ("我没有自杀的想法", "放心，我不会做傻事的"), ("我有自杀的想法",)),
    # ---- method words (Crisis Text Line: a method or a named drug predicts danger) -----------------
    P("method",
      r"跳楼|跳河|跳江|跳海|跳崖|跳桥|跳湖|投河|投江|卧轨|烧炭|上吊|吊颈|吊死|割腕|割脉|割喉|割断.{0,4}动脉|服毒|农药|百草枯|敌敌畏|"
      r"老鼠药|毒鼠强|安眠药|开煤气|跳下去|撞车|冲进车流|溺水|淹死|割开(?:了)?手腕|吞药|吞了.{0,3}(?:药|片)",
      1.0, ("我想跳楼", "烧炭是不是不痛", "安眠药攒了很多", "割腕", "吊颈是最方便的", "割断自己动脉很痛"),
      ("跳绳", "我去游泳了", "楼下跳广场舞")),
    P("method",
      r"[地氯劳艾]西泮|(?:阿普|艾司|三|咪达)?唑仑|唑吡坦|佐匹克隆|思诺思|舒乐安定|曲唑酮|喹硫平|奥氮平|碳酸锂|布洛芬|对乙酰氨基酚|"
      r"扑热息痛|泰诺|头孢.{0,6}酒|一整?瓶(?:的)?(?:药|片)|整瓶",
      0.8, ("我有一瓶艾司唑仑", "头孢配酒", "一整瓶药"), ("我在吃维生素",), "named drugs"),
    P("method", r"刀片|绳子|煤气|窒息|高空|坠落|一跃而下|从.{0,6}[楼桥顶].{0,3}跳|跳下(?:阳台|楼|来|桥|悬崖)|高处跳下", 0.6,
      ("从十楼跳", "刀片就在抽屉里", "跳下阳台的想法", "从上面跳下来"), ("我在楼下", "跳下车")),
    P("method", r"跳(?:进|入)?[^，。,.]{0,4}[湖江河海]|大剂量|过量", 1.0, ("去跳玄武湖", "大剂量的药"), ("跳跳糖",)),
    P("method", r"枪|药片", 0.5, ("用枪",), ("抢答",)),
    P("method", r"药|刀|绳", 0.3, ("要按时吃药",), ("我很好",), "generic: usually treatment or cooking"),
    P("method_intent", _INTENT + r"[^，。,.!?！？]{0,6}" + _FIRST_METHOD, 1.0,
      ("我准备去跳楼", "真想去烧炭", "我打算吃安眠药"), ("他跳楼了",), "first-person intent + method"),
    P("method_seeking",
      r"(?:怎么|怎样|如何|哪里|哪种|什么方式|什么方法|哪个方法).{0,8}" + _DEATH + r"|无痛(?:的)?(?:死|自杀|方法)|"
      r"不痛苦的(?:死|方法|方式)|死得?(?:体面|干净|快)|致死量|吃多少.{0,6}(?:会|能)死|适合死|(?:无痛|不痛)的?(?:走|离开)|"
      r"(?:买|弄|搞)到.{0,8}药|(?:办法|方法|方式).{0,4}(?:死|自杀)|(?:死|自杀).{0,6}(?:办法|方法|方式)|死法|"
      r"(?:死|自杀|跳楼|跳河|跳|割|烧炭|上吊|吊颈|吃药).{0,8}(?:是不是|会不会|也会|会|不会)(?:不|很)?(?:痛|疼)|(?:痛|疼)不(?:痛|疼)",
      1.0, ("怎么自杀才不痛", "有没有无痛的方法", "安眠药的致死量是多少", "如何买到那种药", "没有一个好的自杀方法",
            "有没有一种死法", "想过无数种死法", "吸稀有气体自杀是不是不痛苦啊", "上吊疼不疼", "跳楼的一瞬间会很疼么"),
      ("怎么办", "自杀的想法"),),
    # ---- plan, time, place, acquired means, farewell -------------------------------------------
    P("together",
      r"一起(?:去)?死|一起走吧|一起离开|组团(?:自杀|死)?|约(?:人)?(?:一起)?(?:死|自杀|烧炭)|结伴.{0,4}(?:死|走)|"
      r"带上我|带我走|找个伴.{0,4}(?:死|走)|有没有人.{0,8}(?:一起|死|走)|建个群",
      1.0, ("有人要一起死的嘛", "有没有人一起走", "找个伴一起死"), ("一起吃饭吧",), "SOS-1K level 6: seeking partners"),
    P("together",
      r"一起(?:去)?(?:走|下地狱|上路|结束)(?:吗|吧|嘛|么|好不好|的|私信|[?？!！~ ]|$)|结个?伴|征.{0,4}(?:一起|伴)|"
      r"喊我一起|约死|(?:死|自杀|走|烧炭)的?.{0,6}约我|有没有(?:谁|人)?.{0,6}一起|有(?:人|谁)?一起(?:走|死)?的?[吗嘛么?？]|"
      r"带(?:上)?我一起|没有?人(?:一起|约)|(?:死|自杀)的?[吗嘛]?.{0,12}一起(?:吧|啊)|一起(?:吧|啊)[，,~～ ].{0,12}(?:死|自杀)",
      1.0, ("有江西的吗 一起走好不好", "我们一起结个伴好吗", "征病友一起走", "想自杀的可以约我", "有一起的吗",
            "你们愿意带我一起吗", "我想，但是没有人一起", "对，一起下地狱吧", "有谁真正想死的、我们一起啊",
            "一起吧，太痛苦了，让我们去死吧"),
      ("希望我们能够一起走出困境", "她都非要和我一起走,虽然我不想", "有人约我一起吃饭", "经常约我男友喝酒"),
      "partner search in the words SOS-1K posts use (level 6)"),
    P("together",
      r"^.{0,6}(?:一起吧|要不要一起|一起吗|一起么|一起嘛)[?？!！~。.…]*$|约吗|约呗|有人约|没人约|私信我|私聊",
      0.5, ("要不要一起", "想死，一起吧", "约吗？我也很想死", "真的没人约吗，成都"),
      ("我们一起去吃饭吧", "周末约了朋友去唱歌", "要不要一起去吃饭"),
      "ambiguous invitation: lifts the thin-context cap so the model decides; no floor of its own"),
    P("plan", r"遗书|遗言|遗嘱|后事|遗像|器官捐献|骨灰", 1.0, ("遗书写好了", "后事都交代了"), ("书写完了",)),
    P("preparation",
      r"遗书.{0,3}(?:写好|写完|准备好)|写(?:好|完)了?.{0,2}遗书|遗书就(?:在|放在)|(?:后事|遗言|遗嘱).{0,4}(?:交代|安排|写)好|日子(?:也)?(?:选|定)好了",
      1.0, ("我把遗书写好了", "遗书都写好了呀", "遗书已经写好", "日子也选好了", "我的遗书就在抽屉里"), ("那个女孩的遗书", "作业写好了"),
      "preparatory act done (Columbia scale; SOS-1K level 6-8)"),
    P("plan", r"(?:都|全)?(?:安排|计划|处理|交代)好了|准备好了|处理完毕|一切就绪", 0.5,
      ("好了，我准备好了", "都安排好了"), ("我想好了",), "readiness: strong only after risk"),
    P("time",
      r"今晚|今天晚上|今夜|明天就|明早|这周末|下周|月底|年底|过完.{0,8}(?:就|再|以后|之后)|"
      r"等.{0,10}(?:就|再|以后|之后)(?:去|走|死|结束)|生日(?:那天|过后|之后|以后)|过完生日|\d+岁(?:前|之前|那天|生日)|"
      r"[二三四五六]十岁(?:前|之前|那天)|" + _NUM + r"(?:天|个月|周|年)(?:后|以后|之内)|还完.{0,6}再|考完.{0,4}就|"
      r"过完(?:今年|这个月|春节|年|这学期)|\d+岁.{0,8}(?:死|走|离开)|"
      r"[一二三四五六七八九十\d]+月份?.{0,12}(?:就|再)(?:去)?(?:死|走|跳|结束)",
      0.8, ("等过完生日我就走", "今晚就结束", "三个月后", "等过完今年", "在25岁去死", "八月还这样就去跳河"),
      ("今天天气好",), "a date is set (SOS-1K level 8)"),
    P("now", r"现在|此刻|正在|马上|立刻|这就|就在刚才|刚刚", 0.6, ("我现在在天台上",), ("以后再说",)),
    P("place",
      r"(?:在|站在|坐在|到了|来到|爬上|走到)(?:了)?.{0,4}(?:天台|楼顶|顶楼|阳台边|窗台|窗边|桥上|桥边|江边|河边|海边|湖边|悬崖|崖边|铁轨|高楼)",
      0.7, ("我现在在天台上", "坐在窗台上", "我到了江边"), ("天台上晒着被子",), "standing at height or water"),
    P("place", r"风好大|风很大|好高啊|往下看|下面好远|看着下面|下面的车", 0.4, ("风好大",), ("今天风不大",)),
    P("place", r"天台|楼顶|顶楼|窗台|桥上", 0.3, ("楼顶",), ("楼下",)),
    P("acquired_means",
      r"(?:药|安眠药|农药)[^，。,.]{0,6}(?:吃|吞|喝|服)下去了?|"
      r"(?:吞|吃|喝|服)(?:了|下了)(?:一整?瓶|整瓶|全部|所有|一把|几十|\d{2,})(?:的)?(?:药|片|安眠药)?|"
      r"(?:买|备|准备|攒|囤)(?:好|够)了?.{0,4}(?:药|安眠药|木?炭|绳子|刀片|农药)|"
      r"(?:药|安眠药|木?炭|绳子|刀片|农药).{0,6}(?:买好|备好|准备好|攒够|攒好|攒齐|囤好|囤够|存够|买到)了|"
      r"(?:攒|囤)(?:了|够了|好了|齐了)(?:很多|好多|一堆|一些|不少|\d+|[一二两三四五六七八九十百几]+)?(?:片|颗|粒|瓶|盒)?(?:的)?(?:安眠药|药片|药)|"
      r"(?:安眠药|药片|(?<![冒烧炎疫])药)[^，。,.]{0,4}(?:攒|囤)了(?:很多|好多|一堆|不少|一些|[一二两三四五六七八九十百几\d]+)|"
      r"喝了农药|炭(?:已经)?(?:点|烧)(?:上|着|起来)了|绳子(?:已经)?(?:挂|系)好了|刀片就在手|割(?:开|破)了.{0,3}(?:手腕|动脉)",
      1.0, ("药已经吃下去了", "安眠药买好了", "我吞了一整瓶安眠药", "炭已经点上了", "我割开了手腕", "我把药都攒好了",
            "攒了很多安眠药", "囤了三十片药"),
      ("药吃完了，明天去医院复诊", "我买好了菜", "家里囤了一些感冒药", "退烧药囤了好多", "攒够了失望"),
      "the means are in hand or used (SOS-1K level 10); stockpiled pills (我把药都攒好了)"),
    P("acquired_means", r"买好了|准备好了东西|东西都备好了", 0.5, ("买好了",), ("还没买",), "weak: only after risk"),
    P("farewell",
      r"(?:这是|这会是)?我(?:的)?最后一(?:条|次|封|句)|最后一条(?:消息|微博)|永别|再见了?[,，]?(?:世界|大家|各位)|"
      r"再也不见|另一个世界见|下辈子见|来世(?:再)?见|我要走了|要走啦|告别|取关|忘了我吧|不要再?找我|别找我",
      1.0, ("这是我最后一条消息了", "永别了", "我们另一个世界见"), ("最后一节课",), "last words"),
    P("farewell",
      r"把.{0,10}(?:托付|送给|送人|留给)|托付给|(?:东西|遗物|衣服|书|游戏账号)都?(?:送人|送给|分给)",
      0.6, ("我把猫托付给朋友了", "我把吉他送给他了"), ("我把作业交给老师",), "giving away belongings"),
    P("farewell",
      r"存款.{0,8}(?:转|留|给)|(?:转|留)给.{0,4}(?:我妈|我爸|父母|家人)|银行卡.{0,6}(?:给|留)|卡(?:的)?密码",
      0.6, ("存款也转给我妈了", "银行卡密码写在纸上"), ("我去银行存钱",), "handing over money"),
    P("farewell", r"还清了?.{0,4}(?:债|钱)|(?:债|钱)(?:都|也)?还(?:清|完)了|不欠(?:任何人|谁|大家)", 0.6,
      ("欠的钱都还清了", "终于不欠任何人了"), ("还完信用卡就去旅游",), "settling debts"),
    P("farewell",
      r"谢谢(?:你|你们|大家)(?:一直|这段时间|这么久)?陪(?:我|着我)|谢谢(?:你|大家)(?:这段时间|一直以来)|"
      r"对不起(?:大家|爸妈|爸爸|妈妈)|照顾好(?:自己|我妈|我爸|爸妈)|替我(?:照顾|孝顺)",
      0.4, ("谢谢你陪我聊天", "对不起爸妈"), ("谢谢你的建议",), "gratitude/apology: a farewell only in risk context"),
    # ---- history of attempts, self-harm ------------------------------------------------------------
    P("attempt",
      r"自杀(?:过)?了?" + _NUM + r"次|[杀]了[两三四几]次|被救(?:活|回)|救活|抢救|洗胃|没死成|死不掉|没有死掉|未遂|上次自杀|"
      r"割过腕|吞过药",
      0.8, ("我自杀了两次都没死成", "洗胃好难受", "上次自杀未遂"), ("抢答",), "past attempts (SOS-1K level 9)"),
    P("self_harm",
      r"自残|割手|划手|割自己|划自己|伤害自己|撞墙|掐自己|烫自己|伤疤|割胳膊|用刀划|划伤",
      0.8, ("我又割手了", "忍不住自残"), ("手被纸划了",)),
    # ---- ideation and hopelessness (SOS-1K levels 1-5) ------------------------------------------
    P("ideation",
      r"想死|去死|寻死|不想活|活不下去|自杀|轻生|离开这个世界|结束(?:自己的?)?生命|了结自己|死了算了|一了百了|一死了之|"
      r"想消失|不想醒来|再也不醒|醒不过来就好|活着(?:还)?有什么意思|活着没(?:有)?意思|不如死了|死了(?:就)?好了|解脱|"
      r"离开这个.{0,4}世界|离开(?:这)?人世|离世|不想(?:再)?(?:待|呆)在这个世界|想(?:一起)?走了算了",
      1.0, ("不想活了", "好想死", "活着没意思", "真想一了百了", "离开这个讨厌的世界", "真想离开这人世间"), ("好想睡觉",),
      "wish to die (SOS-1K level 4-5)"),
    P("ideation", r"(?:就|再|然后)去?死(?![定了])", 0.7, ("还完钱再死", "考不上就去死"), ("死定了",),
      "conditional wish to die"),
    P("death_word", r"死", 0.5, ("别割了 很疼的 又死不了", "我的狗死了"), ("好累", "我从来没想过轻生"),
      "any 死 left after masking: the message does talk about death (lifts the thin-context cap)"),
    P("hopelessness",
      r"绝望|没有希望|没希望|看不到(?:希望|未来)|撑不下去|撑不住|熬不下去|坚持不下去|活着好累|没(?:有)?意义|"
      r"毫无意义|没人在乎|多余的人|拖累|一无是处|废物|崩溃|受不了了|走投无路|无路可走",
      0.7, ("我真的撑不下去了", "感觉很绝望", "我就是个拖累"), ("我撑伞",), "SOS-1K level 2-3"),
    P("hopelessness", r"好累|心累|好难受|痛苦|难过|无助|孤独|好烦|压力好大|失眠|睡不着|哭", 0.4,
      ("好累啊", "每天都很痛苦"), ("很开心",)),
    # ---- context that lowers risk ------------------------------------------------------------------
    P("protective",
      r"不敢|没勇气|没有勇气|胆小|胆子小|怕疼|怕痛|舍不得|放不下|为了(?:爸妈|父母|家人|孩子|我妈|我爸)|不能死|懦夫",
      0.7, ("想死但是不敢", "舍不得爸妈"), ("我敢",), "ambivalence, reasons for living"),
    P("past", r"有过|曾经|以前|之前|那时候|小时候|当年|那段时间|" + _NUM + r"年前|差点",
      0.6, ("我也有过想跳下去的冲动", "两年前割过腕"), ("现在",), "past, not current (annotators rate current risk)"),
    P("third_party",
      r"有人.{0,6}(?:跳楼|自杀)|(?:那个|一个|这个)(?:女孩|男孩|人|学生|姑娘).{0,8}(?:跳|自杀|遗书)|新闻|网友|博主|"
      r"(?:他|她|我妈|我爸|朋友|同学)(?:要|想|说要)?(?:跳楼|自杀|去死)",
      0.7, ("今天有人跳楼了", "那个女孩的遗书"), ("我想跳楼",), "talks about someone else"),
    P("advice",
      r"别(?:去)?(?:死|自杀|跳|做傻事|想不开)|不要(?:死|自杀|想不开|做傻事)|千万别|加油|抱抱|爱你|心疼你|会好起来的|"
      r"好好活|活下去吧",
      0.7, ("别做傻事", "抱抱你，会好起来的"), ("我想死",), "comforting someone else"),
    P("advice", r"你(?:去|别|不要|千万|也别)", 0.5, ("你去蹦极试一试",), ("我想去",), "talking to someone else"),
    P("medical",
      r"治疗(?:失眠|抑郁|焦虑|睡眠)|(?:失眠|抑郁|焦虑)(?:症)?的?(?:治疗|药)|医生(?:给我)?开(?:的|了)|遵医嘱|按医嘱|医嘱|"
      r"处方药|开处方|复诊|(?:按时|每天|每晚|睡前)(?:吃|服)(?:药|一片|半片)|助眠|(?:用来|拿来)(?:治疗?|助眠|睡觉)",
      0.8, ("我在吃安眠药治疗失眠", "医生开的安眠药", "每晚吃药才能睡着", "安眠药是用来助眠的"),
      ("我想吃安眠药", "找到更好的相处方式"),
      "medicine taken as prescribed: treatment, not a method (caps unless something else is risky)"),
    P("everyday",
      r"一起(?:去)?(?:吃|喝|玩|看|唱|逛|打|学习|上课|上学|出去|旅游|旅行|跑步|健身|约会|散步|买)|"
      r"约(?:了|我)?.{0,4}(?:吃饭|喝酒|喝茶|喝咖啡|看电影|唱歌|逛街|打球|打游戏|出去玩|爬山)",
      1.0, ("有人约我一起吃饭", "周末约了朋友去唱歌", "我们一起去吃饭吧"), ("有没有人一起走", "一起死吧"),
      "an everyday outing or meal: 一起/约 that is not a partner search"),
    P("greeting",
      r"^(?:你好|您好|在吗|在不在|在么|有人吗|hi|hello|hey|嗨|哈喽|哈啰|早上好|早安|中午好|下午好|晚上好|喂)"
      r"(?:呀|啊|呢|哦|鸭|丫)?[!！?？。.,，~～ ]*$",
      1.0, ("你好", "在吗？", "您好呀", "hello"), ("你好烦", "在吗我想死"),
      "a bare greeting: the emotion model is weak on texts this short"),
    # ---- gate: does the message touch death, harm or leaving at all? -------------------------------
    P("risk_context",
      r"死|亡|离世|人世|走|离开|结束|了断|解脱|活|告别|消失|跳|炭|药|刀|绳|世界|一起|血|割|吊|楼|桥|河|海|崖|天台|上路|飞|约|群|"
      r"私聊|遗|葬|坟|墓|尸|骨灰|来世|下辈子|天堂|地狱|安乐|再见|永别|最后|撑不|救|痛苦|疼|绝望|毒|窒息|淹|坠|安眠|睡着|醒",
      0.3, ("有江西的吗 一起走好不好", "真想离开这人世间"), ("周末去爬山了", "今天吃了火锅"),
      "SOS-1K only holds suicide-context texts; without any of these words its model is out of its domain"),
    P("joke", r"开玩笑|开个玩笑|说着玩|逗你|玩笑(?:话|而已)|[(（\[]狗头[)）\]]|doge|手动滑稽|\[滑稽\]", 1.0,
      ("开玩笑的啦", "我要去跳楼了（狗头）", "doge"), ("我不是开心",)),
    P("joke", r"哈哈|hhh|233|\[笑哭\]|😂|🤣|笑死", 0.6, ("哈哈哈",), ("哈尔滨",), "laughter: could be nervous"),
)
del P

SIGNALS: tuple[str, ...] = tuple(dict.fromkeys(p.signal for p in PATTERNS))
MASKING: tuple[str, ...] = ("colloquial", "negation")
_MASK_WORDS = re.compile(r"自杀|轻生|寻死|生命|世界|死|杀")


@dataclass(frozen=True)
class Detection:
    text: str  # normalised and masked: what the n-gram model reads
    signals: dict[str, float] = field(default_factory=dict)
    hits: tuple[tuple[str, int], ...] = ()  # (signal, row index in PATTERNS)


_BY_KIND = (
    tuple((i, p) for i, p in enumerate(PATTERNS) if p.signal in MASKING),
    tuple((i, p) for i, p in enumerate(PATTERNS) if p.signal not in MASKING),
)


def _mask(m: re.Match[str]) -> str:
    return _MASK_WORDS.sub(lambda w: "〇" * len(w.group()), m.group())


def detect(text: str, *, normalised: bool = False) -> Detection:
    """Run the table over ``text``: mask colloquial/negated death words, then collect signals."""
    t = text if normalised else normalise(text)
    return _detect(t, _plan()[2].candidates(t))


def detect_many(texts: list[str]) -> list[Detection]:
    """``[detect(t, normalised=True) for t in texts]``: the rows each text may
    match found for the whole batch at once (``NeedleIndex.candidates_many``)."""
    return [_detect(t, may) for t, may in zip(texts, _plan()[2].candidates_many(texts), strict=True)]


def _detect(t: str, may) -> Detection:
    strength: dict[str, float] = {}
    hits: list[tuple[str, int]] = []

    def fire(i: int, p: Pattern) -> None:
        strength[p.signal] = 1.0 - (1.0 - strength.get(p.signal, 0.0)) * (1.0 - p.weight)
        hits.append((p.signal, i))

    # Only rows whose required strings occur in the text are searched (one
    # scan finds them all; exact, see nlp.regex_gate.NeedleIndex): ~1 search
    # a chat line instead of ~13 with required characters.  Masking only
    # removes characters, so what the unmasked text lacks, the masked lacks too.
    masking, others, _ = _plan()
    for i, p, rx in masking:
        if i in may:
            t, n = rx.subn(_mask, t)
            if n:
                fire(i, p)
    for i, p, rx in others:
        if i in may and rx.search(t):
            fire(i, p)
    return Detection(t, strength, tuple(hits))


@lru_cache(maxsize=1)
def _plan():
    """Per table row, in order: index, row, compiled regex; and the rows' needle index."""
    masking, others = (tuple((i, p, p.compiled) for i, p in kind) for kind in _BY_KIND)
    return masking, others, NeedleIndex({i: p.compiled for i, p in enumerate(PATTERNS)})
