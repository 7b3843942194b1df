"""A tiny topic detector: a keyword table, for listener hints and matching.

Each topic is a regular expression over normalised text; ``detect_topics``
returns every topic that matches, in table order. Keep it small and obvious —
this is a hint for a human listener, not a classifier.
"""

from __future__ import annotations

import re

from miaohui.nlp.text import normalise

TOPICS: tuple[tuple[str, str], ...] = (
    ("失恋/情感", r"分手|失恋|前任|前男友|前女友|男朋友|女朋友|男友|女友|恋爱|暗恋|表白|喜欢的人|出轨|劈腿|冷暴力|异地|复合|婚姻|离婚|老公|老婆|对象|相亲"),
    ("家庭", r"爸|妈|父母|父亲|母亲|家里|家人|家庭|原生家庭|弟弟|妹妹|哥哥|姐姐|孩子|儿子|女儿|婆婆|公公|亲戚|重男轻女"),
    ("工作/职场", r"工作|上班|加班|老板|领导|同事|辞职|离职|裁员|失业|找工作|面试|职场|工资|kpi|996|绩效|升职"),
    ("学业/考试", r"考试|学习|成绩|作业|老师|高考|中考|考研|考公|挂科|论文|毕业|学校|上学|同学|宿舍|班主任|复习|分数|留级|休学"),
    ("失眠", r"失眠|睡不着|睡不好|熬夜|早醒|做噩梦|噩梦|安眠|入睡"),
    ("焦虑", r"焦虑|紧张|担心|害怕|恐慌|心慌|不安|惊恐|压力|慌"),
    ("抑郁/情绪低落", r"抑郁|低落|没动力|提不起|空虚|麻木|不开心|难过|想哭|丧|emo"),
    ("孤独", r"孤独|孤单|一个人|没有朋友|没朋友|没人理|没人陪|寂寞|被孤立"),
    ("人际", r"朋友|人际|社交|室友|被排挤|排挤|霸凌|欺负|合不来|讨好|孤立|闺蜜"),
    ("自我价值", r"自卑|没用|废物|自我否定|不自信|一无是处|讨厌自己|配不上|失败"),
    ("身体/健康", r"生病|病了|住院|疼|身体|医院|确诊|手术|怀孕|减肥|身材|容貌"),
    ("经济", r"钱|借钱|欠债|网贷|还款|房贷|穷|负债|贷款|信用卡"),
)
_COMPILED = tuple((name, re.compile(rx)) for name, rx in TOPICS)


def detect_topics(text: str, *, normalised: bool = False) -> tuple[str, ...]:
    t = text if normalised else normalise(text)
    return tuple(name for name, rx in _COMPILED if rx.search(t))
