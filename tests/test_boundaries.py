"""The boundary tables (attachment, off-platform contact and payment) and the
masking of contact details: every example written in a table is tested here,
so adding a row adds its test."""

from __future__ import annotations

import re

import pytest

from miaohui.config import Settings
from miaohui.safety import boundaries as b
from miaohui.supervision import guidance

SIGNAL_EXAMPLES = [(s.name, text) for s in b.SIGNALS for text in s.examples]
SIGNAL_MISSES = [(s.name, text) for s in b.SIGNALS for text in s.near_misses]
MASK_EXAMPLES = [(m.name, src, want) for m in b.MASKS for src, want in m.examples]


@pytest.mark.parametrize(("name", "text"), SIGNAL_EXAMPLES)
def test_every_signal_example_fires(name, text):
    found = b.scan(text)
    assert name in found.attachment + found.off_platform, (name, text, found)


@pytest.mark.parametrize(("name", "text"), SIGNAL_MISSES)
def test_near_misses_do_not_fire(name, text):
    found = b.scan(text)
    assert name not in found.attachment + found.off_platform, (name, text, found)


@pytest.mark.parametrize(("name", "src", "want"), MASK_EXAMPLES)
def test_every_mask_example(name, src, want):
    found = b.scan(src)
    assert found.text == want
    assert name in found.masked
    assert b.OFF_PLATFORM in found.kinds


@pytest.mark.parametrize("text", b.MASK_NEAR_MISSES)
def test_hotlines_dates_and_amounts_are_never_masked(text):
    found = b.scan(text)
    assert found.text == text and not found.masked


def test_tables_are_well_formed():
    names = [s.name for s in b.SIGNALS] + [m.name for m in b.MASKS]
    assert len(names) == len(set(names))
    for s in b.SIGNALS:
        assert s.kind in (b.ATTACHMENT, b.OFF_PLATFORM) and s.label and s.examples
        re.compile(s.pattern)
    for m in b.MASKS:
        assert "(?P<x>" in m.pattern and m.examples


def test_whole_messages_from_either_side():
    s = b.scan("加我微信 abc_12345，或者打 138 1234 5678，私下转账备注自愿赠与就行")
    assert s.text == "加我微信 [账号已隐藏]，或者打 [号码已隐藏]，私下转账备注自愿赠与就行"
    assert set(s.off_platform) == {"contact_app", "pay_outside"} and set(s.masked) == {"contact_id", "mobile"}
    s = b.scan("你是唯一懂我的人，我好想见你，做我女朋友好不好")
    assert set(s.attachment) == {"only_you", "meet", "romance"} and s.kinds == (b.ATTACHMENT,)
    assert s.text == "你是唯一懂我的人，我好想见你，做我女朋友好不好"
    assert not b.scan("今天又被老板骂了，好累").flagged


def test_obfuscated_numbers_and_ids():
    assert b.scan("我手机 幺三八 一二三四 五六七八").text == "我手机 [号码已隐藏]"
    assert b.scan("vx：ＡＢＣ_１２３４５").text == "vx：[账号已隐藏]"
    assert b.scan("扣扣 1 2 3 4 5 6 7 8 9").text == "扣扣 [账号已隐藏]"
    assert b.scan("邮箱 Someone.Li@Example.COM 有事找我").text == "邮箱 [邮箱已隐藏] 有事找我"


def test_configured_hotlines_are_public_numbers():
    settings = Settings(regional_hotlines={"上海": [{"name": "上海心理热线", "number": "021-12345678"}]})
    public = b.PUBLIC_NUMBERS | guidance.hotline_numbers(settings)
    assert b.scan("可以打 021-12345678", public).text == "可以打 021-12345678"
    assert b.scan("可以打 021-12345678").text == "可以打 [号码已隐藏]"
    for line in settings.hotlines:  # the national card never masks itself
        assert b.scan(f"{line['name']} {line['number']}", public).masked == ()


def test_fold_keeps_positions():
    text = "ＶＸ：ａｂｃ１２３ 和 ① 号"
    assert len(b.fold(text)) == len(text)
    assert b.fold("ＡＢＣ１２３") == "abc123"
