"""Import every domain's models so metadata (and Alembic) sees all tables."""

from miaohui.accounts.models import AuthSession, User  # noqa: F401
from miaohui.chat.models import Conversation, Message, Participant  # noqa: F401
from miaohui.companion.models import CompanionMemory, CompanionProfile  # noqa: F401
from miaohui.core.db import Base  # noqa: F401
from miaohui.ledger.models import LedgerAccount, Transfer  # noqa: F401
from miaohui.listeners.models import DutyHour, ListenerProfile  # noqa: F401
from miaohui.matching.models import Favorite, ServedTopics  # noqa: F401
from miaohui.orders.models import Block, Dispute, Gift, Offering, Order, Turn  # noqa: F401
from miaohui.payments.models import Payment, SandboxIntent, Withdrawal  # noqa: F401
from miaohui.push.models import PushSubscription  # noqa: F401
from miaohui.reviews.models import Review  # noqa: F401
from miaohui.supervision.models import CaseEvent, RiskCase, TranscriptAccess  # noqa: F401
from miaohui.verification.models import (  # noqa: F401
    IdentityAttempt,
    IdentityCheck,
    ModerationAction,
    Qualification,
    Report,
    TrainingAttempt,
)
from miaohui.wellbeing.models import Budget, MoodCheck  # noqa: F401
