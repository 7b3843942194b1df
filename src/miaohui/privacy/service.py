"""Download my data, close my account.

A person may take a copy of everything the platform holds about them and
may close their account (个人信息保护法: access, copy, deletion; app stores
in China require 注销).  Each domain answers for its own tables:
``export_for`` gives its part of the copy, ``closing_blockers`` says what
must finish first, ``forget`` deletes what closing deletes.

Closing never writes off money or cuts a service short: it waits until no
order is running, booked or inside its dispute window, no gift is held,
the wallet and earnings are empty (a seeker takes unused balance back with
a 余额退款, a listener withdraws) and no top-up is on its way.  Then, in
one transaction: the account can no longer sign in and its names are gone
(others see 已注销用户), every session ends (sockets too), and the AI
companion's conversation, memories and state, the budget, the real-name
check, training records and qualifications (with their proof files), 收藏
(the account's own and its place in others'), 心情 answers (a seeker's own,
and those about a listener's sittings), and a listener's measured on-duty
minutes are deleted (关闭页面后也提醒's devices go with the sessions).  Kept, without a name: conversations with
listeners (the other side's record, and the evidence a dispute may need),
orders, reviews and the ledger (money records are kept by law), and safety
case records.
"""

from __future__ import annotations

import logging

from miaohui.accounts import service as accounts
from miaohui.accounts.models import User
from miaohui.chat import service as chat
from miaohui.companion import service as companion
from miaohui.core.db import begin_write
from miaohui.core.errors import AppError
from miaohui.ledger import service as ledger
from miaohui.listeners import duty
from miaohui.listeners import service as listeners
from miaohui.matching import favorites
from miaohui.orders import service as orders
from miaohui.payments import service as payments
from miaohui.push import service as push
from miaohui.verification import service as verification
from miaohui.wellbeing import mood
from miaohui.wellbeing import service as wellbeing

log = logging.getLogger(__name__)

CONFIRM_WORD = "注销"
CLOSABLE_ROLES = ("seeker", "listener")


async def blockers(db, ctx, user: User) -> list[str]:
    """What has to finish before this account can close (empty: nothing)."""
    if user.role not in CLOSABLE_ROLES:
        return ["工作人员账号由管理员注销"]
    return [*await orders.closing_blockers(db, user.id, ctx.settings.dispute_window_hours),
            *await ledger.closing_blockers(db, user.id),
            *await payments.closing_blockers(db, user.id, ctx.clock.now())]


async def export(ctx, user: User) -> dict:
    """Everything held about ``user``, readable (decrypted), as JSON-ready data."""
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        return {
            "exported_at": now,
            "account": accounts.account_export(user),
            "conversations": await chat.export_for(db, ctx.keyring, user.id),
            "orders": await orders.export_for(db, user.id, now),
            "money": await ledger.export_for(db, user.id),
            "budget": await wellbeing.export_for(db, user.id),
            "moods": await mood.export_for(db, user.id),
            "companion": await companion.export_for(db, ctx.keyring, user.id),
            "verification": await verification.export_for(db, ctx, user.id),
            "favorites": await favorites.export_for(db, user.id),
            "duty_hours": await duty.export_for(db, user.id),
            "push_devices": await push.export_for(db, user.id),
        }


async def close(ctx, user: User, password: str, confirm: str, ip: str) -> None:
    """Close ``user``'s account (see the module docstring).  The password is
    checked under the login rate limit, so a stolen session alone cannot
    close an account, nor guess its password here."""
    if confirm.strip() != CONFIRM_WORD:
        raise AppError("confirm_word", f"请输入“{CONFIRM_WORD}”两个字确认", f"type {CONFIRM_WORD} to confirm", 400)
    if user.role not in CLOSABLE_ROLES:
        raise AppError("staff_account", "工作人员账号由管理员注销", "staff accounts are closed by an admin", 403)
    async with ctx.sessionmaker() as db:
        try:
            await accounts.login(db, ctx.clock, ctx.login_limiter, user.username, password, ip)
        except AppError as e:
            if e.code != "bad_credentials":
                raise
            raise AppError("wrong_password", "密码不对", "wrong password", 403) from None
    async with ctx.sessionmaker() as db:
        db.info[accounts.BROKER_INFO] = ctx.broker  # the ended sessions' sockets close after COMMIT
        await begin_write(db)
        if user.role == "listener":
            await listeners.lock_for_purchase(db, user.id)  # PostgreSQL: no purchase from them meanwhile
        if problems := await blockers(db, ctx, user):
            err = AppError("account_busy", "暂时还不能注销：" + "；".join(problems) + "。",
                           "the account cannot close yet", 409)
            err.extra = {"blocking": problems}
            raise err
        if not await accounts.close_account(db, user.id):
            raise AppError("account_closed", "这个账号已经注销", "the account is already closed", 409)
        await companion.forget(db, user.id)
        await wellbeing.forget(db, user.id)
        await mood.forget(db, user.id)
        await favorites.forget(db, user.id)
        await duty.forget(db, user.id)
        proof_ids = await verification.forget(db, user.id)
        await db.commit()
    verification.remove_proofs(ctx.settings.data_dir, proof_ids)
    log.info("account closed user=%s", user.id)
