"""The built-in listener course (倾听师上岗培训) and its quiz.

The content is part of the product, in Chinese, versioned: a listener passes
the quiz of the current ``VERSION`` before their first order, and again when
the pass expires (``training_valid_days``) or the course changes.  Grading is
on the server; the questions go to the browser without their answers.

Pass mark: at least ``PASS_CORRECT`` of the questions, and *every* question
marked ``must`` (the crisis ones) right — a listener who does not know what
to do when someone says they have saved up pills does not start.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "2025.1"
PASS_CORRECT = 8


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    points: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    id: str
    section: str
    text: str
    options: tuple[str, ...]
    answer: int
    why: str
    must: bool = False

    def public(self) -> dict:
        return {"id": self.id, "section": self.section, "text": self.text, "options": list(self.options),
                "must": self.must}


SECTIONS: tuple[Section, ...] = (
    Section("listening", "一、积极倾听", (
        "先听完，再回应。对方需要的往往不是建议，而是有人认真听。",
        "复述和确认：「听起来你……，是这样吗？」让对方知道你听懂了，也给对方纠正你的机会。",
        "说出感受：「被当众批评，一定又委屈又难堪吧。」把对方没说出口的情绪轻轻点出来。",
        "多用开放式提问：「愿意多说一点吗？」「那一刻你在想什么？」少用只能答「是 / 不是」的问题。",
        "不评判、不说教、不比较。「别想太多」「比你惨的人多了」「你应该……」都会让对方关上门。",
        "秒回不是抢答：先用一句话让对方知道你在（「我在，慢慢说」），内容可以慢慢想。不要用模板话术凑回复数。",
    )),
    Section("boundaries", "二、边界与移情", (
        "你是陪伴者，不是治疗师，也不是恋人或现实中的朋友。倾听不是心理治疗，不做诊断，不给用药建议。",
        "移情：对方可能把对亲人、恋人的感情投射到你身上（「你是唯一懂我的人」「我好像爱上你了」）。"
        "温和地接住这份感受，同时说明倾听关系的边界；不回应暧昧，更不能借此让对方多下单。",
        "反移情：你也会被对方的故事触动、生气或难过。留意自己的情绪；服务后可以接受督导的复盘邀请。",
        "不承诺做不到的事（「我永远都在」「随时找我」），不透露自己的住址和私人联系方式。",
        "时间到了就温和地结束；对方还想聊，请在平台上续单或预约下一次，不要私下免费继续。",
    )),
    Section("crisis", "三、危机信号与应对", (
        "危机信号：说不想活了、活着没意义；谈到方法、时间、地点；告别、交代后事、把心爱的东西送人；"
        "说已经服药或受伤；情绪突然异常平静。",
        "直接、平静地问：「你是不是有结束生命的想法？有没有想过怎么做？」直接询问不会增加风险，反而让对方被看见。",
        "保持在线，不要结束对话，不要说教，不要让对方「保证不做傻事」就下线。平台的守护模式不会按时切断风险会话，超时费用由平台承担。",
        "马上点击「我担心对方」通知督导；督导会看到会话并可以加入。你不需要独自处理。",
        "把热线告诉对方：全国心理援助热线 12356（24 小时）、北京心理危机研究与干预中心 010-82951332、"
        "希望24热线 400-161-9995。有人身危险时拨打 110；已经服药或受伤时立刻拨打 120。",
        "鼓励对方联系身边可信任的人、离开危险的地方、远离药物和工具。危机中的信息不在保密范围内，平台会介入。",
    )),
    Section("privacy", "四、隐私", (
        "倾诉者是匿名的：不打听真实姓名、学校、单位和住址。",
        "不截图、不转发、不在任何地方讨论对话内容；和同事交流也只谈方法，不谈可以认出人的细节。",
        "聊天内容加密保存；督导查看会话会留下审计记录。保密的唯一例外是生命安全风险，这时平台会介入。",
    )),
    Section("off_platform", "五、不做平台外交易", (
        "不加微信、QQ、手机号，不私下转账，不接受「备注自愿赠与」的转账。",
        "离开平台就没有了托管、秒回合约、申诉和督导的保护——这是倾诉者最常被骗的方式，也会让你失去保障。",
        "对方主动提出时，温和拒绝并说明原因；想表达感谢可以用平台内的礼物功能。系统会遮挡联系方式并提醒督导。",
        "违反这一条会被暂停接单。",
    )),
)


QUESTIONS: tuple[Question, ...] = (
    Question("q1", "listening", "对方说「我今天又被领导当众骂了」，哪种回应最符合积极倾听？", (
        "你应该直接辞职，别受这个气",
        "当众被骂，一定又委屈又难堪吧。愿意说说发生了什么吗？",
        "领导骂人很正常，别想太多",
        "我之前也被骂过，比你惨多了",
    ), 1, "先反映感受，再用开放式问题邀请对方多说；建议、淡化和比较都会打断倾诉。"),
    Question("q2", "listening", "「秒回」的承诺意味着什么？", (
        "必须立刻给出解决方案",
        "很快让对方知道你在，内容可以慢慢想",
        "每条消息都要长篇回复",
        "可以用模板话术凑回复数",
    ), 1, "快速回应是「在场」，不是抢答；模板话术会被对方察觉，也违背倾听。"),
    Question("q3", "boundaries", "对方说「你是唯一懂我的人，我好像爱上你了」，你应该？", (
        "回应暧昧，让对方多下单",
        "立刻拉黑对方",
        "温和地接住这份感受，同时说明倾听关系的边界",
        "假装没看到，继续聊别的",
    ), 2, "这是常见的移情：既不利用，也不羞辱；承认感受，说明边界。"),
    Question("q4", "boundaries", "订单时间到了，对方还想继续聊，你应该？", (
        "私下免费继续聊",
        "温和结束，请对方在平台上续单或预约下一次",
        "让对方加你微信以后再聊",
        "直接不回了",
    ), 1, "时间边界也是边界；续单让双方都有合约和保护。"),
    Question("q5", "crisis", "对方说「活着真没意思，我把药都攒好了」，你首先应该？", (
        "转移话题，聊点开心的",
        "平静、直接地询问对方是否有结束生命的想法和计划，并保持在线",
        "告诉对方「别想太多，睡一觉就好了」",
        "结束订单，避免担责",
    ), 1, "提到了方法（攒药），是危机信号：直接询问、保持在线，并通知督导。", must=True),
    Question("q6", "crisis", "发现危机信号后，下面哪一项做法是对的？", (
        "独自处理，不告诉任何人，以示保密",
        "点击「我担心对方」通知督导，并把 12356 等心理援助热线告诉对方",
        "让对方保证不做傻事，然后下线",
        "告诉对方多吃几片安眠药好好睡一觉",
    ), 1, "你不需要独自面对：督导会介入；热线 12356 全天可拨。危机信息不在保密范围内。", must=True),
    Question("q7", "crisis", "对方说自己已经吃了很多药，你应该？", (
        "立刻请对方拨打 120（或联系身边的人帮忙拨打），同时通知督导，保持在线",
        "等对方冷静下来再说",
        "约对方明天再聊",
        "结束订单",
    ), 0, "已经服药或受伤是医疗急症：先 120，再通知督导，不要离开。", must=True),
    Question("q8", "privacy", "关于倾诉者的隐私，哪一项是对的？", (
        "可以打听对方的学校和住址，方便关心",
        "截图发到朋友圈，只要隐去昵称就可以",
        "不打听、不保存、不转发对话内容；督导只在必要时查看，并留有审计记录",
        "可以和其他倾听师讨论案例的具体细节",
    ), 2, "对方的匿名是信任的基础；可以认出人的细节一律不外传。"),
    Question("q9", "off_platform", "对方说「加个微信吧，以后直接转给你，便宜点」，你应该？", (
        "同意，双方都省钱",
        "温和拒绝，并说明平台外没有托管、合约和申诉的保护",
        "让对方先转账再说",
        "给对方你的 QQ 号",
    ), 1, "平台外交易是倾诉者最常被骗的方式，也是暂停接单的理由。"),
    Question("q10", "off_platform", "对方想「备注自愿赠与」私下转钱给你，你应该？", (
        "收下，备注了就没问题",
        "拒绝；对方想表达感谢，可以用平台内的礼物功能",
        "收下，但不告诉平台",
        "让对方分几次转，金额小一点",
    ), 1, "「自愿赠与」的备注不能让私下收款变得合规；平台内礼物可退、受保护。"),
)
_BY_ID = {q.id: q for q in QUESTIONS}


@dataclass(frozen=True)
class Grade:
    correct: int
    total: int
    passed: bool
    wrong: tuple[str, ...]  # question ids
    missed_must: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "correct": self.correct, "total": self.total, "passed": self.passed, "wrong": list(self.wrong),
            "missed_must": list(self.missed_must), "pass_correct": PASS_CORRECT,
            "explanations": {qid: _BY_ID[qid].why for qid in self.wrong},
        }


def grade(answers: dict[str, int]) -> Grade:
    """Unanswered or out-of-range answers count as wrong."""
    wrong = tuple(q.id for q in QUESTIONS if answers.get(q.id) != q.answer)
    correct = len(QUESTIONS) - len(wrong)
    missed = tuple(qid for qid in wrong if _BY_ID[qid].must)
    return Grade(correct, len(QUESTIONS), correct >= PASS_CORRECT and not missed, wrong, missed)


def answer_key() -> dict[str, int]:
    """For tests and the demo seed."""
    return {q.id: q.answer for q in QUESTIONS}


def public_course() -> dict:
    return {
        "version": VERSION,
        "pass_correct": PASS_CORRECT,
        "sections": [{"key": s.key, "title": s.title, "points": list(s.points)} for s in SECTIONS],
        "questions": [q.public() for q in QUESTIONS],
    }
