"""``assess(text, history)``: learned score + knowledge signals + rules → tier, level, score.

How the parts combine, in order:

1. ``knowledge.detect`` normalises the text, masks colloquial and negated death
   words and collects the signals.
2. ``model.RiskModel`` (stacked n-gram model, trained on SOS-1K + SmileChat)
   gives the probability of SOS-1K high risk and a level estimate.
3. A base tier from the model: ``plan`` when the probability passes the trained
   threshold; ``ideation`` when the probability is close to it and the level
   estimate is at least 4 (wish to die); ``distress`` for hopelessness, pain,
   self-harm, past attempts or mostly negative emotions (the emotion model);
   else ``none``.
4. ``RULES`` (below, data with examples), in three passes: *soft floors*
   (what a signal means on the SOS-1K scale: a wish to die → ideation, a
   decided method or a date → plan), then *caps* (negation, jokes, colloquial
   死 only), then *hard floors*, which carry what SOS-1K cannot teach — the
   means in hand, standing at a height, last words, the conversation's history
   — and win over every cap, so "药已经吃下去了哈哈" is still imminent.
   Rules are explicit rather than learned because these cases are rare, high
   stakes and must be auditable: each names what it needs and what it sets.

``score`` is monotone in the model probability, rescaled so that ``score ≥ 0.5``
exactly when the tier is ``plan`` or ``imminent`` (floors lift it to at least
0.75 / 0.9, caps below ``plan`` hold it under 0.5). ``level`` is the model's
level estimate clipped into the tier's range on the SOS-1K scale
(none 0, distress 1–3, ideation 4–5, plan 6–8, imminent 9–10).

``history`` (the same person's recent messages, oldest first) adds the
pseudo-signals ``history_risk`` (an earlier message reached ideation or more),
``history_plan`` (one reached plan or more) and ``history_joke`` (one of the last
two joked). Each history message is assessed alone, memoised, so a product that
assesses every message on arrival pays for history only once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from miaohui.nlp.emotion import default_model as emotion_model
from miaohui.nlp.linear import BatchScorer, JointScorer, softmax
from miaohui.nlp.text import normalise, normalise_many
from miaohui.nlp.topics import detect_topics
from miaohui.safety.knowledge import detect, detect_many
from miaohui.safety.model import RiskModel, default_model

TIERS: tuple[str, ...] = ("none", "distress", "ideation", "plan", "imminent")
_RANK = {t: i for i, t in enumerate(TIERS)}
_INTERNAL = {"risk_context", "model_confident"}  # gate signals, not shown in assessments
LEVEL_RANGE: dict[str, tuple[int, int]] = {
    "none": (0, 0), "distress": (1, 3), "ideation": (4, 5), "plan": (6, 8), "imminent": (9, 10)
}
HISTORY_WINDOW = 8

@dataclass(frozen=True)
class Rule:
    """One row of the rule table. ``examples`` are (text, history, allowed tiers "a|b") and are tested."""

    name: str
    all_of: dict[str, float]  # every signal at least this strong
    any_of: dict[str, float] = field(default_factory=dict)  # at least one (when given)
    none_of: dict[str, float] = field(default_factory=dict)  # none this strong
    floor: str | None = None
    cap: str | None = None
    hard: bool = False  # a hard floor overrides caps (jokes, negation); a soft floor does not
    examples: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    note: str = ""

    def applies(self, s: dict[str, float]) -> bool:
        # Plain loops with early exits: this runs for every rule on every seeker message.
        get = s.get
        for k, v in self.all_of.items():
            if get(k, 0.0) < v:
                return False
        if self.any_of:
            for k, v in self.any_of.items():
                if get(k, 0.0) >= v:
                    break
            else:
                return False
        for k, v in self.none_of.items():
            if get(k, 0.0) >= v:
                return False
        return True


# Signals that keep a joke or a negation from lowering anything.
_SERIOUS = {"acquired_means": 0.5, "place": 0.6, "attempt": 0.5, "plan": 0.9, "farewell": 0.8}
# Not the writer's own current intent: the past, ambivalence held back, someone else, comfort.
_NOT_CURRENT = {"past": 0.6, "protective": 0.7, "third_party": 0.7, "advice": 0.7}
_RISK_CONTEXT = {"history_risk": 1.0, "ideation": 0.5, "method": 0.6, "method_intent": 0.5, "self_harm": 0.5,
                 "hopelessness": 0.7, "attempt": 0.5}

RULES: tuple[Rule, ...] = (
    # ---- soft floors: what the signals say on their own (SOS-1K scale) ----
    Rule("wish_to_die", {"ideation": 0.5}, none_of={"negation": 0.5, "advice": 0.7, "third_party": 0.7},
         floor="ideation", examples=(("不想活了", (), "ideation"), ("活着没意思", (), "ideation"))),
    Rule("method_intent", {"method_intent": 0.5}, none_of=_NOT_CURRENT, floor="plan",
         examples=(("我打算吃安眠药", (), "plan"), ("我也有过想跳下去的冲动，但为了爸妈不敢", (), "distress|ideation|plan")),
         note="SOS-1K level 7: method decided"),
    Rule("date_set", {"time": 0.6}, any_of={"method_intent": 0.5, "method": 0.6, "ideation": 0.5},
         none_of=_NOT_CURRENT, floor="plan", examples=(("等过完生日我就去死", (), "plan"),),
         note="SOS-1K level 8: a date is roughly set"),
    Rule("place_mentioned", {"place": 0.7}, floor="ideation", examples=(("我在楼顶", (), "ideation|plan"),),
         note="ask gently; no alarm on the place alone"),
    Rule("preparations_made", {"preparation": 1.0}, none_of=_NOT_CURRENT, floor="plan",
         examples=(("我把遗书写好了", (), "plan|imminent"), ("我那时候遗书都写好了，现在好多了", (), "none|distress|ideation|plan")),
         note="a preparatory act done (will written, date chosen): SOS-1K level 6-8"),
    Rule("at_height", {"place": 0.8}, floor="plan", examples=(("我在天台上，风好大", (), "plan|imminent"),)),
    # ---- caps ----
    Rule("negated", {"negation": 0.5},
         none_of={**_SERIOUS, "ideation": 0.5, "method_intent": 0.5, "farewell": 0.4, "time": 0.6,
                  "self_harm": 0.5, "together": 0.5},
         cap="distress", examples=(("我从来没想过自杀", (), "none|distress"), ("我不想死，只是有点累", (), "none|distress")),
         note="a negated wish to die with nothing else risky stays below ideation"),
    Rule("joke", {"joke": 0.6}, none_of=_SERIOUS, cap="ideation",
         examples=(("我要去跳楼了（狗头）", (), "none|distress|ideation"), ("考试又挂了不想活了哈哈哈", (), "ideation")),
         note="joke markers: the listener may still ask, but no alarm"),
    Rule("joke_context", {"history_joke": 1.0}, none_of=_SERIOUS, cap="ideation",
         examples=(("我要去跳楼", ("哈哈哈今天又被老板骂了", "开玩笑的啦"), "none|distress|ideation"),),
         note="the conversation is joking"),
    Rule("colloquial_only", {"colloquial": 1.0},
         none_of={**_SERIOUS, "ideation": 0.5, "method": 0.6, "method_intent": 0.5, "farewell": 0.4,
                  "together": 0.5, "method_seeking": 0.5},
         cap="distress", examples=(("累死了", (), "none|distress"), ("笑死我了", (), "none|distress"),
                                   ("饿死了", (), "none|distress")),
         note="累死了, 笑死, 死线: intensifiers, not risk"),
    Rule("wish_without_plan", {"ideation": 0.5},
         none_of={"model_confident": 1.0, "history_risk": 1.0, "method": 0.6, "method_intent": 0.5,
                  "method_seeking": 0.5, "together": 0.5, "plan": 0.5, "time": 0.6, "farewell": 0.4, "attempt": 0.5,
                  "self_harm": 0.5, "place": 0.6, "acquired_means": 0.5},
         cap="ideation", examples=(("活着没意思", (), "ideation"), ("我真的好想死", (), "ideation")),
         note="SOS-1K levels 4-5: a wish to die with no method, plan, partner, date, farewell or attempt is "
              "ideation unless the model is confident (p >= 0.8) it is more"),
    Rule("thin_context", {"risk_context": 0.3},
         none_of={"model_confident": 1.0, "history_risk": 1.0, "ideation": 0.5, "hopelessness": 0.4, "method": 0.3,
                  "death_word": 0.5,
                  "method_intent": 0.5, "method_seeking": 0.5, "together": 0.5, "plan": 0.5, "time": 0.6,
                  "now": 0.6, "place": 0.3, "acquired_means": 0.5, "farewell": 0.4, "attempt": 0.5, "self_harm": 0.5},
         cap="distress", examples=(("我们一起去吃饭吧", (), "none|distress"), ("周末约了朋友去唱歌", (), "none|distress"),
                                   ("群里有人在吗", (), "none|distress"), ("合上电脑前写的最后一句。", (), "none|distress"),
                                   ("这是我最后一条消息了", (), "plan|imminent")),
         note="only a gate word (一起, 最后, 约, 群, 走 …) and no sign of death, harm, a plan or leaving: the "
              "n-gram model, trained on suicide-context texts only, has no ground to call it ideation or worse "
              "unless it is confident"),
    Rule("no_risk_context", {},
         none_of={"risk_context": 0.3, "history_risk": 1.0, "method": 0.3, "method_intent": 0.5, "method_seeking": 0.5,
                  "together": 0.5, "plan": 0.9, "farewell": 0.6, "attempt": 0.5, "ideation": 0.5, "self_harm": 0.5,
                  "place": 0.3, "acquired_means": 0.8},
         cap="distress", examples=(("周末去爬山了", (), "none|distress"), ("今天吃了火锅", (), "none"),
                                   ("好了，我准备好了", (), "none|distress")),
         note="the n-gram model knows suicide-context texts only (SOS-1K); with no word of death, harm or leaving "
              "and no risky history it may not raise an alarm"),
    Rule("medical_use", {"medical": 0.8},
         none_of={"history_risk": 1.0, "ideation": 0.5, "method_intent": 0.5, "method_seeking": 0.5, "together": 0.5,
                  "plan": 0.9, "time": 0.6, "farewell": 0.4, "attempt": 0.5, "self_harm": 0.5, "place": 0.6,
                  "acquired_means": 0.5},
         cap="distress", examples=(("我在吃安眠药治疗失眠", (), "none|distress"), ("医生开的安眠药，每晚吃一片", (), "none|distress"),
                                   ("医生开的安眠药我都攒好了", (), "imminent")),
         note="a drug named as treatment taken as prescribed is not a method; stockpiling it still is"),
    Rule("everyday_invitation", {"everyday": 1.0},
         none_of={"history_risk": 1.0, "ideation": 0.5, "death_word": 0.5, "method": 0.6, "method_intent": 0.5,
                  "method_seeking": 0.5, "plan": 0.5, "acquired_means": 0.5, "farewell": 0.4, "attempt": 0.5,
                  "self_harm": 0.5, "place": 0.6, "hopelessness": 0.7},
         cap="distress", examples=(("有人约我一起吃饭", (), "none|distress"), ("要不要一起去看电影", (), "none|distress"),
                                   ("约我一起吃饭的人都走了，我也想一起死", (), "ideation|plan|imminent")),
         note="一起/约 about a meal or an outing is not a partner search, however sure the n-gram model is"),
    Rule("greeting_only", {"greeting": 1.0}, none_of={"history_risk": 1.0}, cap="none",
         examples=(("你好", (), "none"), ("在吗", (), "none"), ("您好呀", (), "none")),
         note="a bare greeting carries no risk of its own (the emotion model misreads texts this short)"),
    Rule("greeting_after_risk", {"greeting": 1.0, "history_risk": 1.0}, cap="ideation",
         examples=(("在吗？", ("我真的不想活了",), "none|distress|ideation"),),
         note="after a risky message a greeting keeps the conversation at ideation, not an alarm of its own"),
    # ---- hard floors: what SOS-1K cannot teach; they win over every cap ----
    Rule("means_in_hand", {"acquired_means": 0.8}, floor="imminent", hard=True,
         examples=(("药已经吃下去了，谢谢你陪我聊天", (), "imminent"), ("安眠药买好了", (), "imminent"),
                   ("药已经吃下去了哈哈", (), "imminent")),
         note="SOS-1K level 10: possibly in progress"),
    Rule("means_after_risk", {"acquired_means": 0.5, "history_risk": 1.0}, floor="imminent", hard=True,
         examples=(("买好了", ("我想吃安眠药死掉",), "imminent"),)),
    Rule("at_height_now", {"place": 0.6}, any_of={"now": 0.5, "farewell": 0.4, **_RISK_CONTEXT}, floor="imminent",
         hard=True,
         examples=(("我现在在天台上，风好大", (), "imminent"), ("我坐在窗台上", ("我真的不想活了",), "imminent"))),
    Rule("last_words", {"farewell": 0.8}, floor="plan", hard=True,
         examples=(("这是我最后一条消息了", (), "plan|imminent"),
                   ("我把猫托付给朋友了，存款也转给我妈了", (), "plan|imminent"))),
    Rule("farewell_after_risk", {"farewell": 0.4}, any_of=_RISK_CONTEXT, floor="plan", hard=True,
         examples=(("谢谢你陪我聊天", ("我真的不想活了",), "plan|imminent"),)),
    Rule("ready_after_risk", {"plan": 0.5, "history_risk": 1.0}, floor="plan", hard=True,
         examples=(("好了，我准备好了", ("我真的不想活了",), "plan|imminent"),)),
    Rule("escalation", {"history_plan": 1.0},
         any_of={"farewell": 0.4, "plan": 0.5, "time": 0.6, "now": 0.5, "acquired_means": 0.5, "place": 0.6},
         floor="imminent", hard=True, examples=(("好了，我准备好了", ("我打算今晚吃安眠药",), "imminent"),),
         note="after a plan, readiness, time or farewell means it is happening"),
    Rule("method_now", {"method_intent": 0.5, "now": 0.5}, none_of={"joke": 0.6}, floor="imminent", hard=True,
         examples=(("我现在就准备去跳楼", (), "imminent"),), note="SOS-1K level 10: method decided, now"),
)


@dataclass(frozen=True)
class Assessment:
    tier: str
    level: int
    score: float
    signals: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    emotions: tuple[tuple[str, float], ...] = ()  # (Chinese label, probability), best first
    topics: tuple[str, ...] = ()

    @property
    def high_risk(self) -> bool:
        return _RANK[self.tier] >= _RANK["plan"]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["signals"], d["rules"], d["topics"] = list(self.signals), list(self.rules), list(self.topics)
        d["emotions"] = [{"label": lab, "prob": p} for lab, p in self.emotions]
        d["high_risk"] = self.high_risk
        return d


def _rescale(p: float, thr: float) -> float:
    return 0.5 * p / thr if p < thr else 0.5 + 0.5 * (p - thr) / max(1e-9, 1.0 - thr)


def _rules_by_first_signal() -> tuple[tuple[int, ...], dict[str, tuple[int, ...]]]:
    """The rules (by index in ``RULES``) that need no signal, and the others by the first signal
    they need above zero: a rule whose first signal is absent cannot apply.  A message has a
    few signals, so the rules to try are gathered from them (and put back in table order)
    rather than the whole table walked for each message."""
    always: list[int] = []
    by_first: dict[str, list[int]] = {}
    for i, r in enumerate(RULES):
        first = next((k for k, v in r.all_of.items() if v > 0), None)
        if first is None:
            always.append(i)
        else:
            by_first.setdefault(first, []).append(i)
    return tuple(always), {k: tuple(v) for k, v in by_first.items()}


_RULES_ALWAYS, _RULES_BY_FIRST = _rules_by_first_signal()


def _fired(sig: dict[str, float]) -> list[Rule]:
    """The rules that apply to ``sig``, in table order."""
    idx = [*_RULES_ALWAYS]
    for k in sig:
        if (more := _RULES_BY_FIRST.get(k)) is not None:
            idx += more
    idx.sort()
    return [r for i in idx if (r := RULES[i]).applies(sig)]


@lru_cache(maxsize=4)
def _scorer(model: RiskModel) -> JointScorer:
    return JointScorer([model.text_model, emotion_model().text_model])


@lru_cache(maxsize=4)
def _batch_scorer(model: RiskModel) -> BatchScorer:
    return BatchScorer([model.text_model, emotion_model().text_model])


def _base(text: str, model: RiskModel, det=None,
          outs=None) -> tuple[str, float, float, dict[str, float], list[float]]:
    """Tier from the model alone, plus score (0.5 = threshold), level estimate, signals and the emotions' probabilities.
    ``det`` and ``outs`` (risk and emotion outputs) when :func:`assess_many` computed them already."""
    det = det or detect(text, normalised=True)
    if outs is not None:
        risk_out, emo_out = outs
    elif det.text == text:  # nothing masked: one n-gram pass for both models
        risk_out, emo_out = _scorer(model).decisions(text)
    else:
        risk_out, emo_out = model.text_model.decision(det.text), emotion_model().text_model.decision(text)
    # Emotion objects are only built when an assessment shows them (extras), not for every message.
    emo = softmax(emo_out)
    negative = _negative_share(emo, model.tiering.get("distress_emotion", 0.6))
    rs = model.score(det, risk_out)
    s, t = det.signals, model.tiering
    if rs.high:
        tier = "plan"
    elif rs.prob >= t.get("ideation_prob", 0.3) and rs.level >= t.get("ideation_level", 4.0):
        tier = "ideation"
    elif _distressed(s, negative, model):
        tier = "distress"
    else:
        tier = "none"
    sig = dict(s)
    if rs.prob >= t.get("confident_prob", 0.8):
        sig["model_confident"] = 1.0
    sig[_NEGATIVE_SHARE] = negative
    return tier, _rescale(rs.prob, model.threshold), rs.level, sig, emo


_NEGATIVE = frozenset(("sadness", "anger", "disgust", "fear"))


def _negative_share(probs: list[float], threshold: float) -> float:
    """The share of negative emotions as ``Emotion.prob`` rounds them, or a number on the same
    side of ``threshold`` (all that is asked of it: :func:`_distressed`).  Rounding four
    probabilities to 4 places moves their sum by at most 2e-4, so the exact sum of the rounded
    ones (four ``round`` calls, ~3 µs) is only needed when the plain sum is that close."""
    idx = _negative_idx()
    share = sum(probs[i] for i in idx)
    if abs(share - threshold) > 1e-3:
        return share
    return math.fsum(round(probs[i], 4) for i in idx)


@lru_cache(maxsize=1)
def _negative_idx() -> tuple[int, ...]:
    return tuple(i for i, lab in enumerate(emotion_model().labels) if lab in _NEGATIVE)
_NEGATIVE_SHARE = "negative_emotion"  # carried in the signal dict for the caps, never shown


def _distressed(s: dict[str, float], negative: float, model: RiskModel) -> bool:
    t = model.tiering
    return (s.get("hopelessness", 0.0) >= 0.4 or s.get("self_harm", 0.0) >= 0.5 or s.get("attempt", 0.0) >= 0.5
            or negative >= t.get("distress_emotion", 0.6))


@lru_cache(maxsize=4096)
def _cached_tier(text: str) -> tuple[str, bool]:
    a = _assess(text, (), default_model())
    return a.tier, "joke" in a.signals


def _history_signals(history: list[str] | tuple[str, ...], model: RiskModel) -> dict[str, float]:
    recent = [normalise(h) for h in history[-HISTORY_WINDOW:] if h and h.strip()]
    if not recent:
        return {}
    if model is default_model():
        seen = [_cached_tier(h) for h in recent]
    else:
        seen = [(a.tier, "joke" in a.signals) for a in (_assess(h, (), model) for h in recent)]
    return history_signals_from([(_RANK[t], j) for t, j in seen])


def history_signals_from(seen: list[tuple[int, bool]] | tuple[tuple[int, bool], ...]) -> dict[str, float]:
    """The history pseudo-signals from what the same person's earlier messages were *alone*:
    ``(tier rank, joking)`` each, oldest first (the last ``HISTORY_WINDOW`` count).  A caller
    that remembers those (``supervision.monitor``) passes this dict as ``history`` instead of
    the texts, so history costs nothing to re-read."""
    seen = seen[-HISTORY_WINDOW:]
    if not seen:
        return {}
    top = max(r for r, _ in seen)
    out: dict[str, float] = {}
    if top >= _RANK["ideation"]:
        out["history_risk"] = 1.0
    if top >= _RANK["plan"]:
        out["history_plan"] = 1.0
    if any(j for _, j in seen[-2:]):
        out["history_joke"] = 1.0
    return out


def _assess(text: str, history: list[str] | tuple[str, ...], model: RiskModel, extras: bool | str = False,
            det=None, outs=None) -> Assessment:
    base_tier, score, level_est, sig, emo = _base(text, model, det, outs)
    if isinstance(history, dict):  # history signals computed by the caller (history_signals_from)
        sig.update(history)
    elif history:
        sig.update(_history_signals(history, model))
    if sig.get("joke", 0.0) >= 0.6 or sig.get("history_joke"):
        score *= 0.5
    negative = sig.pop(_NEGATIVE_SHARE, 0.0)
    fired = _fired(sig)
    tier = base_tier
    for r in fired:  # soft floors, then caps, then hard floors
        if r.floor and not r.hard and _RANK[tier] < _RANK[r.floor]:
            tier = r.floor
    for r in fired:
        if r.cap and _RANK[tier] > _RANK[r.cap]:
            tier = r.cap
            if tier == "distress" and not _distressed(sig, negative, model):
                # Capped down from a model tier that had no ground (no word of
                # death, harm or leaving): distress only if the message itself
                # shows it, else nothing — "在吗" / "加我微信" are not distress.
                tier = "none"
    for r in fired:
        if r.floor and r.hard and _RANK[tier] < _RANK[r.floor]:
            tier = r.floor
    if _RANK[tier] >= _RANK["plan"]:
        score = max(score, 0.9 if tier == "imminent" else 0.75)
    else:
        score = min(score, 0.49)
    lo, hi = LEVEL_RANGE[tier]
    level = int(min(hi, max(lo, round(level_est))))
    signals = tuple(k for k, v in sorted(sig.items(), key=lambda kv: -kv[1]) if v > 0 and k not in _INTERNAL)
    emotions: tuple[tuple[str, float], ...] = ()
    topics: tuple[str, ...] = ()
    if extras is True or (extras == "risk" and tier != "none"):
        emotions = tuple((e.zh, e.prob) for e in emotion_model().from_probs(emo, top=2))
        topics = detect_topics(text, normalised=True)
    return Assessment(tier, level, round(min(1.0, max(0.0, score)), 4), signals,
                      tuple(r.name for r in fired if (r.floor or r.cap)), emotions, topics)


def assess(text: str, history: list[str] | dict[str, float] | None = None, *, model: RiskModel | None = None,
           extras: bool | str = True) -> Assessment:
    """Assess one message of a seeker, optionally with their recent earlier messages (oldest first),
    or with the signals :func:`history_signals_from` made of them.

    ``extras=False`` skips emotions and topics (only the risk fields are filled).
    """
    return _assess(normalise(text or ""), _history_arg(history), model or default_model(), extras)


def _history_arg(history):
    return history if isinstance(history, dict) else tuple(history or ())


def rank_alone(a: Assessment) -> tuple[int, bool]:
    """What :func:`history_signals_from` needs of an assessment made without history."""
    return _RANK[a.tier], "joke" in a.signals


def assess_many(items: list[tuple[str, list[str] | tuple[str, ...] | dict[str, float] | None]], *,
                model: RiskModel | None = None,
                extras: bool | str = True) -> list[Assessment]:
    """:func:`assess` for several messages at once: ``[(text, history), …]`` → the same assessments.

    The n-gram models score the whole batch in one vectorised pass
    (:class:`~miaohui.nlp.linear.BatchScorer`), which is most of the cost of a
    message; the knowledge table and the rules still run per message.  This is
    what the message path uses (``supervision.monitor``): it assesses the
    seeker messages of each writer batch together, after COMMIT.
    ``extras="risk"`` fills emotions and topics only when the tier is above
    ``none`` (the only case anything shows them).
    """
    model = model or default_model()
    norm, dets, outs = _batch_outputs([t for t, _ in items], model)
    return [_assess(norm[i], _history_arg(h), model, extras, dets[i], outs[i]) for i, (_, h) in enumerate(items)]


def assess_many_alone(items: list[tuple[str, dict[str, float] | None]], *, model: RiskModel | None = None,
                      extras: bool | str = True) -> list[tuple[Assessment, tuple[int, bool]]]:
    """:func:`assess_many` paired with :func:`rank_alone` of each message
    assessed *without* its history — what the monitor remembers as history
    for the next ones.  History signals only enter the rules, so a message
    with history is read once (normalised, the table, the n-gram and dense
    models) and only its rules run twice: equal to assessing it again alone."""
    model = model or default_model()
    norm, dets, outs = _batch_outputs([t for t, _ in items], model)
    out = []
    for i, (_, h) in enumerate(items):
        a = _assess(norm[i], _history_arg(h), model, extras, dets[i], outs[i])
        alone = a if not h else _assess(norm[i], (), model, False, dets[i], outs[i])
        out.append((a, rank_alone(alone)))
    return out


def _batch_outputs(texts: list[str], model: RiskModel):
    """Normalised texts, table detections and model outputs of a batch."""
    norm = normalise_many([t or "" for t in texts])
    dets = detect_many(norm)
    docs = list(norm)
    masked: dict[int, int] = {}
    for i, d in enumerate(dets):
        if d.text != norm[i]:  # the risk model reads the masked text, the emotion model the original
            masked[i] = len(docs)
            docs.append(d.text)
    outs = _batch_scorer(model).decisions_many(docs)
    # the dense view too, for the whole batch at once (RiskModel.score would do it per message)
    dense = (model.dense.decisions_many([d.text for d in dets]).tolist() if model.dense is not None
             else [[] for _ in dets])
    return norm, dets, [(outs[masked.get(i, i)][0] + dense[i], outs[i][1]) for i in range(len(norm))]
