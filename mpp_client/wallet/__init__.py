"""The agent wallet: spend policy, scoped budgets, payment journal, key store, ``Wallet``.

Amounts are integers of base units (``mpp_client.money``); caps can be written in dollars with
``usd("0.50")``. See docs/wallet.md for the model and the safe defaults.
"""

from mpp_client.wallet.budget import BudgetScope, active_budgets
from mpp_client.wallet.journal import (
    Journal,
    PaymentRecord,
    PaymentState,
    SqliteJournal,
    default_journal_path,
)
from mpp_client.wallet.keystore import (
    EncryptedFileKeyStore,
    KeyringKeyStore,
    KeyStore,
    Secret,
    SecretKind,
    open_keystore,
)
from mpp_client.wallet.policy import DEFAULT_LIMITS, USD_PEGGED, Limit, SpendPolicy
from mpp_client.wallet.prices import USD, PriceSource, StaticPrices, usd
from mpp_client.wallet.quote import WalletQuote
from mpp_client.wallet.reconcile import Reconciled
from mpp_client.wallet.wallet import Approval, Wallet, WalletReservation

__all__ = [
    "DEFAULT_LIMITS",
    "USD",
    "USD_PEGGED",
    "Approval",
    "BudgetScope",
    "EncryptedFileKeyStore",
    "Journal",
    "KeyStore",
    "KeyringKeyStore",
    "Limit",
    "PaymentRecord",
    "PaymentState",
    "PriceSource",
    "Reconciled",
    "Secret",
    "SecretKind",
    "SpendPolicy",
    "SqliteJournal",
    "StaticPrices",
    "Wallet",
    "WalletQuote",
    "WalletReservation",
    "active_budgets",
    "default_journal_path",
    "open_keystore",
    "usd",
]
