"""Seeded synthetic data for the card-fraud and credit use cases.

Both generators are deterministic for a seed, vectorised, and carry a signal that a
model can learn and a fraud or credit analyst would recognise.

Card transactions (:func:`card_transactions`, :func:`iter_card_transactions`)
    About :data:`FRAUD_RATE` of rows are fraud. Legitimate cards keep habits (a home
    country, a handful of favourite merchants, an amount scale of their own, mostly
    daytime activity) and break them as people do: about 30% of cards go abroad once,
    for 2-12 days, and pay at new shops there; one payment in five is at a merchant the
    card does not usually use; some follow another within minutes; some come at night;
    and about 1% are big-ticket purchases (electronics, jewellery, hotels, flights) 4-25
    times the card's usual amount.

    Fraud comes in episodes on a compromised card; every row of an episode has
    ``is_fraud == 1``. Nine fraud rows in ten are loud, yet each episode shows only some
    of the patterns: a third open with a burst of 2-5 small "test" payments at online
    merchants within minutes; then come 1-3 purchases minutes apart, mostly online,
    half at risky merchants (electronics, jewellery, money transfer, digital goods), a
    quarter at the card's own shops, 60% of them 4-25 times the card's usual amount,
    the rest a little above it or cash from a machine; 45% of episodes are in a
    country foreign to the card; and they are spread almost evenly over day and night,
    so far more often at night than legitimate spending. The other tenth is quiet: one
    or two payments hours apart at the card's favourite shops, at home, by day, for
    typical amounts, just like the card's own spending. So a LightGBM model on the
    :data:`workbench.features.CARD_FRAUD` features of 200,000 rows scores a time-holdout
    AUC of about 0.92-0.96, as real card-fraud models do, not 1.

Credit applications (:func:`credit_applications`)
    ``default`` is drawn from a logistic model of the application fields (see
    :data:`DEFAULT_COEFFICIENTS`), with an intercept set so that about
    :data:`DEFAULT_RATE` of applications default.

Times are UTC, stored as timezone-naive ``datetime64[ns]`` in whole seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from workbench.errors import DataError

__all__ = [
    "CARD_COLUMNS",
    "CREDIT_COLUMNS",
    "DEFAULT_COEFFICIENTS",
    "DEFAULT_RATE",
    "FRAUD_RATE",
    "card_transactions",
    "credit_applications",
    "iter_card_transactions",
]

FRAUD_RATE = 0.01
"""Expected share of card transactions with ``is_fraud == 1``."""

DEFAULT_RATE = 0.07
"""Target share of credit applications with ``default == 1`` (realised within 0.5 points)."""

SPAN_DAYS = 90
"""Days of activity that a card-transaction data set covers, whatever its size."""

TXNS_PER_CARD = 120
"""Average transactions per card over :data:`SPAN_DAYS`; sets the number of cards."""

DEFAULT_CHUNK_SIZE = 100_000
"""Rows per chunk yielded by :func:`iter_card_transactions` unless told otherwise."""

CARD_COLUMNS = (
    "card_id",
    "account_id",
    "merchant_id",
    "mcc",
    "amount",
    "currency",
    "country",
    "channel",
    "event_time",
    "event_id",
    "is_fraud",
)
"""Columns of :func:`card_transactions`, in order."""

CREDIT_COLUMNS = (
    "application_id",
    "application_time",
    "income",
    "debt_to_income",
    "utilisation",
    "delinquencies",
    "months_on_file",
    "inquiries_6m",
    "requested_amount",
    "employment",
    "housing",
    "default",
)
"""Columns of :func:`credit_applications`, in order."""

# Rows are made in fixed blocks, each with its own random stream, so the data do not
# depend on how the caller chunks them.
_BLOCK_ROWS = 1 << 16
_NS = 1_000_000_000

_COUNTRIES = np.array(
    [
        "GB",
        "DE",
        "FR",
        "ES",
        "IT",
        "NL",
        "IE",
        "PL",
        "US",
        "PT",
        "BE",
        "AT",
        "SE",
        "DK",
        "CH",
        "CA",
        "AU",
        "BR",
        "MX",
        "TR",
        "AE",
        "TH",
        "ZA",
        "JP",
    ]
)
# Where cards are issued; the other countries only appear when a card travels or is abused.
_HOME_WEIGHTS = np.array([0.30, 0.15, 0.12, 0.08, 0.07, 0.07, 0.05, 0.06, 0.10])
_CURRENCIES = np.array(
    ["GBP", "EUR", "EUR", "EUR", "EUR", "EUR", "EUR", "PLN", "USD"]
    + ["EUR"] * (len(_COUNTRIES) - 9)
)
_CHANNELS = np.array(["pos", "ecom", "atm"])
_POS, _ECOM, _ATM = 0, 1, 2

# Merchant category codes: code, share of merchants, share of them online, amount factor.
_MCC_TABLE = (
    ("5411", 0.20, 0.05, 1.0),  # grocery
    ("5812", 0.12, 0.02, 1.0),  # restaurants
    ("5814", 0.10, 0.05, 0.35),  # fast food
    ("5541", 0.07, 0.00, 1.4),  # fuel
    ("5311", 0.06, 0.25, 1.5),  # department stores
    ("5691", 0.06, 0.35, 1.6),  # clothing
    ("5912", 0.05, 0.10, 0.6),  # pharmacy
    ("4111", 0.06, 0.30, 0.3),  # transport
    ("5999", 0.06, 0.40, 0.8),  # miscellaneous retail
    ("5732", 0.03, 0.50, 4.0),  # electronics
    ("5944", 0.01, 0.30, 5.0),  # jewellery
    ("4829", 0.01, 0.80, 4.0),  # money transfer
    ("5816", 0.04, 1.00, 0.4),  # digital goods
    ("7011", 0.02, 0.60, 5.0),  # hotels
    ("4511", 0.02, 0.90, 7.0),  # airlines
    ("6011", 0.08, 0.00, 2.0),  # cash machines
)
_MCC_CODES = np.array([row[0] for row in _MCC_TABLE])
_MCC_SHARE = np.array([row[1] for row in _MCC_TABLE])
_MCC_ECOM = np.array([row[2] for row in _MCC_TABLE])
_MCC_FACTOR = np.array([row[3] for row in _MCC_TABLE])
_MCC_ATM = len(_MCC_TABLE) - 1
_TEST_MCCS = np.flatnonzero(np.isin(_MCC_CODES, ["5816", "5999"]))
_HIGH_RISK_MCCS = np.flatnonzero(np.isin(_MCC_CODES, ["5732", "5944", "4829", "5816"]))

# Relative activity by hour of day (UTC): legitimate spending follows the day, loud fraud
# hardly does, so it is far more common than legitimate spending at night.
# fmt: off
_LEGIT_BY_HOUR = np.array([
    0.30, 0.18, 0.10, 0.08, 0.08, 0.12, 0.30, 0.60, 0.90, 1.00, 1.10, 1.20,
    1.40, 1.30, 1.10, 1.10, 1.20, 1.40, 1.50, 1.40, 1.20, 1.00, 0.75, 0.50,
])
# fmt: on
_FRAUD_BY_HOUR = np.array([0.9] * 6 + [0.6] * 3 + [0.9] * 9 + [1.0] * 6)

_FAVOURITES = 7
_FAVOURITE_CDF = np.cumsum(1 / np.arange(1, _FAVOURITES + 1)) / np.sum(
    1 / np.arange(1, _FAVOURITES + 1)
)

# Legitimate habits and the ways people break them: trips abroad (one at most per
# card), online shops abroad, new merchants, payments in quick succession, splurges.
_P_ATM, _P_FAVOURITE = 0.04, 0.80
_P_TRIP, _TRIP_DAYS = 0.30, (2.0, 12.0)
_P_CROSS_BORDER = 0.01
_P_SESSION, _SESSION_GAP_SECONDS = 0.08, 900.0
_P_SPLURGE = 0.012
_BIG_TICKET_MCCS = np.flatnonzero(np.isin(_MCC_CODES, ["5732", "5944", "7011", "4511"]))

# Fraud: a share of the rows is quiet; loud episodes show each pattern with its own
# chance. Tests per burst are 2-5 and purchases 1-3 (quiet: 1-2), hence the means.
_QUIET_SHARE = 0.10
_QUIET_MEAN_ROWS = 1.5
_P_TEST_BURST = 0.35
_LOUD_MEAN_ROWS = _P_TEST_BURST * 3.5 + 2.0
_P_ABROAD = 0.45
_P_RISKY_MERCHANT = 0.5
_P_FAMILIAR = 0.25
_P_LARGE = 0.6
_LARGE_TIMES = (4.0, 25.0)

_EMPLOYMENT = np.array(["employed", "self_employed", "unemployed", "retired", "student"])
_EMPLOYMENT_P = np.array([0.62, 0.12, 0.06, 0.12, 0.08])
_INCOME_MEDIAN = np.array([38_000.0, 42_000.0, 9_000.0, 22_000.0, 11_000.0])
_INCOME_SIGMA = np.array([0.5, 0.8, 0.5, 0.4, 0.5])
_HOUSING = np.array(["own", "mortgage", "rent", "other"])
_HOUSING_P = np.array([0.25, 0.35, 0.33, 0.07])

DEFAULT_COEFFICIENTS: dict[str, float] = {
    "intercept": -5.29,
    "utilisation": 2.2,
    "debt_to_income": 2.5,
    "delinquencies (capped at 5)": 0.45,
    "inquiries_6m": 0.18,
    "log(income / 30000)": -0.5,
    "months_on_file / 12 (capped at 20)": -0.07,
    "requested_amount / income": 1.5,
    "employment=self_employed": 0.3,
    "employment=unemployed": 0.9,
    "employment=retired": 0.1,
    "employment=student": 0.5,
    "housing=own": -0.3,
    "housing=mortgage": -0.2,
    "housing=rent": 0.2,
    "housing=other": 0.35,
}
"""Logit of the default probability, term by term (employed is the baseline)."""

_EMPLOYMENT_EFFECT = np.array([0.0, 0.3, 0.9, 0.1, 0.5])
_HOUSING_EFFECT = np.array([-0.3, -0.2, 0.2, 0.35])


def card_transactions(
    n: int,
    seed: int = 0,
    *,
    start: str | pd.Timestamp = "2026-01-01",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> pd.DataFrame:
    """Return ``n`` synthetic card transactions in event-time order.

    The rows are those of :func:`iter_card_transactions` put together, identical for
    any ``chunk_size``; see the module docstring for the fraud patterns.

    >>> frame = card_transactions(10_000, seed=7)
    >>> round(float(frame["is_fraud"].mean()), 2)
    0.01
    """
    chunks = list(iter_card_transactions(n, seed, start=start, chunk_size=chunk_size))
    if not chunks:
        return _World.build(0, seed, _utc_naive(start)).frame(_NO_ROWS, 0)
    return pd.concat(chunks) if len(chunks) > 1 else chunks[0]


def iter_card_transactions(
    n: int,
    seed: int = 0,
    *,
    start: str | pd.Timestamp = "2026-01-01",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[pd.DataFrame]:
    """Yield ``n`` synthetic card transactions as frames of ``chunk_size`` rows.

    Memory stays bounded by a chunk plus one internal block of 65,536 rows, so ten
    million rows can be written out piece by piece. The data depend only on ``n``,
    ``seed`` and ``start``: any chunking yields the same rows, with a running index
    0..n-1. The number of cards and merchants grows with ``n`` (about
    :data:`TXNS_PER_CARD` transactions a card over :data:`SPAN_DAYS` days from
    ``start``), so a smaller ``n`` is not a prefix of a larger one. Rows come sorted
    by ``event_time`` then ``event_id``; ``event_id`` is ``"tx<seed>-"`` and the row
    number in ten digits, unique within a data set.
    """
    _check_size(n, seed)
    if chunk_size < 1:
        raise DataError(f"chunk_size must be a positive number of rows, got {chunk_size!r}")
    world = _World.build(n, seed, _utc_naive(start))
    pending: list[pd.DataFrame] = []
    pending_rows = 0
    for block, low in enumerate(range(0, n, _BLOCK_ROWS)):
        high = min(low + _BLOCK_ROWS, n)
        pending.append(world.frame(world.block(block, low, high), low))
        pending_rows += high - low
        while pending_rows >= chunk_size or (high == n and pending_rows > 0):
            ready = pd.concat(pending) if len(pending) > 1 else pending[0]
            take = min(chunk_size, pending_rows)
            yield ready.iloc[:take]
            rest = ready.iloc[take:]
            pending, pending_rows = ([rest], len(rest)) if len(rest) else ([], 0)


def credit_applications(
    n: int, seed: int = 0, *, start: str | pd.Timestamp = "2026-01-01"
) -> pd.DataFrame:
    """Return ``n`` synthetic credit applications over a year from ``start``.

    ``default`` is drawn from the logistic model in :data:`DEFAULT_COEFFICIENTS`; about
    :data:`DEFAULT_RATE` of applications default, more often with high utilisation,
    high debt to income, past delinquencies, many recent inquiries, a short credit
    file, a large request for the income, and no employment.

    >>> frame = credit_applications(50_000, seed=1)
    >>> round(float(frame["default"].mean()), 2)
    0.07
    """
    _check_size(n, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))

    # Who applies: employment drives income, a short file for students.
    employment = _pick(rng, _EMPLOYMENT_P, n)
    income = np.round(
        _INCOME_MEDIAN[employment] * np.exp(_INCOME_SIGMA[employment] * rng.standard_normal(n)),
        -2,
    )
    housing = _pick(rng, _HOUSING_P, n)
    student = employment == 4
    months_on_file = np.minimum(
        np.round(np.where(student, rng.gamma(1.5, 12.0, n), rng.gamma(2.5, 40.0, n))),
        600,
    ).astype(np.int64)

    # Their credit: utilisation runs higher without a job, delinquencies follow it.
    utilisation = np.round(np.clip(rng.beta(1.3, 3.0, n) + 0.15 * (employment == 2), 0.0, 1.0), 4)
    debt_to_income = np.round(np.clip(rng.beta(2.0, 6.0, n) * 1.2, 0.0, 1.5), 4)
    delinquencies = rng.poisson(0.15 + 0.8 * utilisation**2).astype(np.int64)
    inquiries_6m = rng.poisson(0.6 + 0.8 * utilisation).astype(np.int64)
    requested_amount = np.clip(
        np.round(6_000.0 * np.exp(0.8 * rng.standard_normal(n)), -2), 500.0, 50_000.0
    )

    # The outcome.
    logit = _default_logit(
        income, debt_to_income, utilisation, delinquencies, months_on_file,
        inquiries_6m, requested_amount, employment, housing,
    )  # fmt: skip
    default = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    seconds = np.sort(rng.random(n)) * 365 * 86_400
    start_ns = _utc_naive(start).value
    return pd.DataFrame(
        {
            "application_id": _strings(_labels(f"app{seed}-", np.arange(n), _id_width(n))),
            "application_time": _as_times(start_ns + np.floor(seconds).astype(np.int64) * _NS),
            "income": income,
            "debt_to_income": debt_to_income,
            "utilisation": utilisation,
            "delinquencies": delinquencies,
            "months_on_file": months_on_file,
            "inquiries_6m": inquiries_6m,
            "requested_amount": requested_amount,
            "employment": _strings(_EMPLOYMENT).take(employment),
            "housing": _strings(_HOUSING).take(housing),
            "default": default,
        },
        columns=list(CREDIT_COLUMNS),
    )


def _default_logit(
    income: np.ndarray,
    debt_to_income: np.ndarray,
    utilisation: np.ndarray,
    delinquencies: np.ndarray,
    months_on_file: np.ndarray,
    inquiries_6m: np.ndarray,
    requested_amount: np.ndarray,
    employment: np.ndarray,
    housing: np.ndarray,
) -> np.ndarray:
    c = DEFAULT_COEFFICIENTS
    safe_income = np.maximum(income, 1_000.0)
    return (
        c["intercept"]
        + c["utilisation"] * utilisation
        + c["debt_to_income"] * debt_to_income
        + c["delinquencies (capped at 5)"] * np.minimum(delinquencies, 5)
        + c["inquiries_6m"] * inquiries_6m
        + c["log(income / 30000)"] * np.log(safe_income / 30_000.0)
        + c["months_on_file / 12 (capped at 20)"] * np.minimum(months_on_file / 12.0, 20.0)
        + c["requested_amount / income"] * requested_amount / safe_income
        + _EMPLOYMENT_EFFECT[employment]
        + _HOUSING_EFFECT[housing]
    )


@dataclass(frozen=True)
class _Clock:
    """Maps a share of the data set's activity to hours after ``start``.

    Activity is piecewise constant by hour, so cumulative activity is piecewise
    linear and ``np.interp`` inverts it exactly.
    """

    hours: np.ndarray
    legit: np.ndarray
    fraud: np.ndarray

    @classmethod
    def build(cls, start: pd.Timestamp) -> _Clock:
        hour_of_day = (start.hour + np.arange(SPAN_DAYS * 24)) % 24
        legit = np.concatenate([[0.0], np.cumsum(_LEGIT_BY_HOUR[hour_of_day])])
        fraud = np.concatenate([[0.0], np.cumsum(_FRAUD_BY_HOUR[hour_of_day])])
        hours = np.arange(SPAN_DAYS * 24 + 1, dtype=np.float64)
        return cls(hours, legit / legit[-1], fraud / fraud[-1])

    def legit_hours(self, share: np.ndarray) -> np.ndarray:
        return np.interp(share, self.legit, self.hours)

    def fraud_share(self, hours: np.ndarray) -> np.ndarray:
        return np.interp(hours, self.hours, self.fraud)

    def fraud_hours(self, share: np.ndarray) -> np.ndarray:
        return np.interp(share, self.fraud, self.hours)


@dataclass(frozen=True)
class _World:
    """The cards and merchants of one data set, and how to draw its blocks of rows."""

    n: int
    seed: int
    start_seconds: int
    clock: _Clock
    card_ids: ExtensionArray
    account_ids: ExtensionArray
    currencies: ExtensionArray
    countries: ExtensionArray
    home: np.ndarray
    scale: np.ndarray
    activity_cdf: np.ndarray
    favourites: np.ndarray
    usual_atm: np.ndarray
    trip_start: np.ndarray
    trip_end: np.ndarray
    trip_country: np.ndarray
    merchant_ids: ExtensionArray
    merchant_mccs: ExtensionArray
    merchant_channels: ExtensionArray
    merchant_mcc: np.ndarray
    merchant_channel: np.ndarray
    shops: np.ndarray
    online_shops: np.ndarray
    in_person_shops: np.ndarray
    big_ticket_shops: np.ndarray
    atms: np.ndarray
    test_shops: np.ndarray
    risky_online: np.ndarray
    risky_in_person: np.ndarray

    @classmethod
    def build(cls, n: int, seed: int, start: pd.Timestamp) -> _World:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
        n_cards = max(1, round(n / TXNS_PER_CARD))
        n_merchants = max(200, n_cards // 2)

        # Merchants: every category present both online and in person, the rest drawn.
        fixed = [(m, _POS) for m in range(len(_MCC_TABLE)) if _MCC_ECOM[m] < 1]
        fixed += [(m, _ECOM) for m in range(len(_MCC_TABLE)) if _MCC_ECOM[m] > 0]
        drawn = _pick(rng, _MCC_SHARE, n_merchants - len(fixed))
        mcc = np.concatenate([[m for m, _ in fixed], drawn]).astype(np.int64)
        online = np.concatenate(
            [
                [ch == _ECOM for _, ch in fixed],
                rng.random(len(drawn)) < _MCC_ECOM[drawn],
            ]
        )
        channel = np.where(mcc == _MCC_ATM, _ATM, np.where(online, _ECOM, _POS))
        risky = np.isin(mcc, _HIGH_RISK_MCCS)
        shops = np.flatnonzero(channel != _ATM)
        atms = np.flatnonzero(channel == _ATM)

        # Cards: a home country, an amount scale, how busy they are, usual merchants.
        home = _pick(rng, _HOME_WEIGHTS, n_cards)
        scale = np.exp(math.log(35.0) + 0.6 * rng.standard_normal(n_cards))
        activity = rng.lognormal(0.0, 0.8, n_cards)
        favourites = shops[rng.integers(0, len(shops), (n_cards, _FAVOURITES))]
        usual_atm = atms[rng.integers(0, len(atms), n_cards)]
        accounts = rng.integers(0, max(1, int(n_cards * 0.8)), n_cards)

        # Some cards go abroad once, for days, and pay there like a fraudster would.
        days = rng.uniform(*_TRIP_DAYS, n_cards)
        leaves = rng.random(n_cards) * (SPAN_DAYS - days) * 24.0
        trip_start = np.where(rng.random(n_cards) < _P_TRIP, leaves, np.inf)
        trip_country = (home + rng.integers(1, len(_COUNTRIES), n_cards)) % len(_COUNTRIES)

        return cls(
            n=n,
            seed=seed,
            start_seconds=start.value // _NS,
            clock=_Clock.build(start),
            card_ids=_strings(_labels("card-", np.arange(n_cards), _id_width(n_cards, 7))),
            account_ids=_strings(_labels("acct-", accounts, _id_width(n_cards, 7))),
            currencies=_strings(_CURRENCIES[home]),
            countries=_strings(_COUNTRIES),
            home=home,
            scale=scale,
            activity_cdf=np.cumsum(activity) / activity.sum(),
            favourites=favourites,
            usual_atm=usual_atm,
            trip_start=trip_start,
            trip_end=trip_start + days * 24.0,
            trip_country=trip_country,
            merchant_ids=_strings(
                _labels("merch-", np.arange(n_merchants), _id_width(n_merchants, 6))
            ),
            merchant_mccs=_strings(_MCC_CODES[mcc]),
            merchant_channels=_strings(_CHANNELS[channel]),
            merchant_mcc=mcc,
            merchant_channel=channel,
            shops=shops,
            online_shops=np.flatnonzero(channel == _ECOM),
            in_person_shops=np.flatnonzero(channel == _POS),
            big_ticket_shops=np.flatnonzero(np.isin(mcc, _BIG_TICKET_MCCS) & (channel != _ATM)),
            atms=atms,
            test_shops=np.flatnonzero(np.isin(mcc, _TEST_MCCS) & (channel == _ECOM)),
            risky_online=np.flatnonzero(risky & (channel == _ECOM)),
            risky_in_person=np.flatnonzero(risky & (channel == _POS)),
        )

    def frame(self, rows: dict[str, np.ndarray], low: int) -> pd.DataFrame:
        """The columns of :data:`CARD_COLUMNS` for rows drawn by :meth:`block`."""
        card, merchant = rows["card"], rows["merchant"]
        number = low + np.arange(len(card))
        seconds = self.start_seconds + np.floor(rows["hours"] * 3600.0).astype(np.int64)
        columns = {
            "card_id": self.card_ids.take(card),
            "account_id": self.account_ids.take(card),
            "merchant_id": self.merchant_ids.take(merchant),
            "mcc": self.merchant_mccs.take(merchant),
            "amount": rows["amount"].astype(np.float64),
            "currency": self.currencies.take(card),
            "country": self.countries.take(rows["country"]),
            "channel": self.merchant_channels.take(merchant),
            "event_time": _as_times(seconds * _NS),
            "event_id": _strings(_labels(f"tx{self.seed}-", number, _id_width(self.n))),
            "is_fraud": rows["is_fraud"].astype(np.int64),
        }
        return pd.DataFrame(columns, index=pd.RangeIndex(low, low + len(card)))

    def block(self, index: int, low: int, high: int) -> dict[str, np.ndarray]:
        """Rows ``low``..``high`` of the data set, drawn from the block's own stream."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1, index)))
        share = np.array([low / self.n, high / self.n])
        fraud = self._fraud(rng, share, cap=(high - low) // 2)
        legit = self._legit(rng, share, (high - low) - len(fraud["hours"]))

        # One block, in time order; ties keep episode order because the sort is stable.
        rows = {name: np.concatenate([legit[name], fraud[name]]) for name in legit}
        order = np.argsort(rows["hours"], kind="stable")
        return {name: values[order] for name, values in rows.items()}

    def _legit(self, rng: np.random.Generator, share: np.ndarray, m: int) -> dict:
        low, high = share
        last = self.clock.legit_hours(high)
        hours = self.clock.legit_hours(low + (high - low) * rng.random(m))
        card = np.minimum(
            np.searchsorted(self.activity_cdf, rng.random(m), side="right"),
            len(self.card_ids) - 1,
        )

        # Shopping sessions: some payments follow another of the same card within minutes.
        follows = rng.random(m) < _P_SESSION
        follows[:1] = False
        leads = np.flatnonzero(~follows)
        parent = leads[rng.integers(0, max(len(leads), 1), m)]
        gap = rng.exponential(_SESSION_GAP_SECONDS / 3600.0, m)
        card = np.where(follows, card[parent], card)
        hours = np.where(follows, np.minimum(hours[parent] + gap, last), hours)

        # Where: at home the usual cash machine or a favourite shop, now and then a new
        # one or a big-ticket splurge; on a trip, new shops abroad.
        away = (hours >= self.trip_start[card]) & (hours < self.trip_end[card])
        atm = rng.random(m) < _P_ATM
        splurge = ~atm & (rng.random(m) < _P_SPLURGE)
        favourite = ~atm & ~splurge & ~away & (rng.random(m) < _P_FAVOURITE)
        usual_atm = ~away & (rng.random(m) < 0.8)
        merchant = np.select(
            [atm & usual_atm, atm, splurge, favourite],
            [
                self.usual_atm[card],
                _draw(rng, self.atms, m),
                _draw(rng, self.big_ticket_shops, m),
                self.favourites[card, _favourite_rank(rng, m)],
            ],
            _draw(rng, self.shops, m),
        )
        online = self.merchant_channel[merchant] == _ECOM
        cross_border = online & (rng.random(m) < _P_CROSS_BORDER)
        abroad = (self.home[card] + rng.integers(1, len(_COUNTRIES), m)) % len(_COUNTRIES)
        country = np.where(
            away, self.trip_country[card], np.where(cross_border, abroad, self.home[card])
        )

        # How much: the card's scale times the category's, cash in round tens.
        mcc = self.merchant_mcc[merchant]
        amount = self.scale[card] * _MCC_FACTOR[mcc] * rng.lognormal(0.0, 0.6, m)
        amount = np.where(splurge, self._large(rng, card), amount)
        amount = np.where(
            atm,
            np.maximum(10.0, np.round(amount / 10.0) * 10.0),
            np.maximum(0.5, np.round(amount, 2)),
        )
        return {"hours": hours, "card": card, "merchant": merchant, "country": country,
                "amount": amount, "is_fraud": np.zeros(m, dtype=np.int64)}  # fmt: skip

    def _fraud(self, rng: np.random.Generator, share: np.ndarray, cap: int) -> dict:
        # Episodes land in this block's time slice in proportion to their kind's activity
        # there: loud ones by the fraud clock, quiet ones by the legitimate one.
        low, high = share
        first, last = self.clock.legit_hours(share)
        f_low, f_high = self.clock.fraud_share(np.array([first, last]))
        loud_rows = FRAUD_RATE * (1 - _QUIET_SHARE) * self.n * (f_high - f_low)
        quiet_rows = FRAUD_RATE * _QUIET_SHARE * self.n * (high - low)
        n_loud = int(rng.poisson(loud_rows / _LOUD_MEAN_ROWS))
        n_quiet = int(rng.poisson(quiet_rows / _QUIET_MEAN_ROWS))
        episodes = n_loud + n_quiet
        quiet = np.arange(episodes) >= n_loud

        # Each loud episode shows some of the patterns: a burst of tests, a foreign country.
        tests = np.where(
            ~quiet & (rng.random(episodes) < _P_TEST_BURST), rng.integers(2, 6, episodes), 0
        )
        buys = np.where(quiet, rng.integers(1, 3, episodes), rng.integers(1, 4, episodes))
        length = tests + buys
        episodes = int(np.searchsorted(np.cumsum(length), cap, side="right"))
        quiet, tests, length = quiet[:episodes], tests[:episodes], length[:episodes]
        card = rng.integers(0, len(self.card_ids), episodes)
        when = rng.random(episodes)
        begin = np.where(
            quiet,
            self.clock.legit_hours(low + (high - low) * when),
            self.clock.fraud_hours(f_low + (f_high - f_low) * when),
        )
        foreign = ~quiet & (rng.random(episodes) < _P_ABROAD)
        abroad = (self.home[card] + rng.integers(1, len(_COUNTRIES), episodes)) % len(_COUNTRIES)
        country = np.where(foreign, abroad, self.home[card])

        # Row by row within an episode: tests seconds apart, purchases minutes later;
        # quiet fraud keeps a card's pace of hours between payments.
        episode = np.repeat(np.arange(episodes), length)
        step = np.arange(len(episode)) - np.repeat(np.cumsum(length) - length, length)
        m = len(episode)
        calm, test, card = quiet[episode], step < tests[episode], card[episode]
        gap = np.where(test, rng.exponential(90.0, m), rng.exponential(300.0, m))
        gap = np.where(step == tests[episode], rng.exponential(1_200.0, m), gap)
        gap = np.where(calm, rng.exponential(4 * 3600.0, m), gap)
        gap[step == 0] = 0.0
        elapsed = np.cumsum(gap)
        elapsed -= np.repeat(elapsed[np.cumsum(length) - length], length)
        hours = np.minimum(begin[episode] + elapsed / 3600.0, last)

        # What: small online tests, then purchases mostly online, often at risky merchants;
        # quiet fraud at the card's own favourite shops.
        way = rng.random(m)
        channel = np.where(test | (way < 0.60), _ECOM, np.where(way < 0.88, _POS, _ATM))
        risky = rng.random(m) < _P_RISKY_MERCHANT
        familiar = calm | (~test & (rng.random(m) < _P_FAMILIAR))
        merchant = np.select(
            [familiar, test, channel == _ATM, risky & (channel == _ECOM), risky, channel == _ECOM],
            [
                self.favourites[card, _favourite_rank(rng, m)],
                _draw(rng, self.test_shops, m),
                _draw(rng, self.atms, m),
                _draw(rng, self.risky_online, m),
                _draw(rng, self.risky_in_person, m),
                _draw(rng, self.online_shops, m),
            ],
            _draw(rng, self.in_person_shops, m),
        )

        # How much: a few units to test, round cash, large sums or a little above usual.
        channel = self.merchant_channel[merchant]
        usual = (
            self.scale[card] * _MCC_FACTOR[self.merchant_mcc[merchant]] * rng.lognormal(0.0, 0.6, m)
        )
        large = ~calm & (rng.random(m) < _P_LARGE)
        amount = np.select(
            [test, channel == _ATM, calm, large],
            [
                rng.uniform(0.5, 3.0, m),
                20.0 * rng.integers(5, 26, m),
                usual,
                self._large(rng, card),
            ],
            usual * rng.lognormal(0.5, 0.4, m),
        )
        amount = np.where(channel == _ATM, amount, np.maximum(0.5, np.round(amount, 2)))
        return {"hours": hours, "card": card, "merchant": merchant,
                "country": country[episode], "amount": amount,
                "is_fraud": np.ones(m, dtype=np.int64)}  # fmt: skip

    def _large(self, rng: np.random.Generator, card: np.ndarray) -> np.ndarray:
        """A purchase far above the card's usual amounts, at least a hundred or so."""
        m = len(card)
        return np.maximum(
            self.scale[card] * rng.uniform(*_LARGE_TIMES, m), rng.uniform(100.0, 300.0, m)
        )


_NO_ROWS = {
    "hours": np.zeros(0),
    "card": np.zeros(0, dtype=np.int64),
    "merchant": np.zeros(0, dtype=np.int64),
    "country": np.zeros(0, dtype=np.int64),
    "amount": np.zeros(0),
    "is_fraud": np.zeros(0, dtype=np.int64),
}


def _favourite_rank(rng: np.random.Generator, m: int) -> np.ndarray:
    """Which of a card's favourite shops, the first ones most often."""
    rank = np.searchsorted(_FAVOURITE_CDF, rng.random(m), side="right")
    return np.minimum(rank, _FAVOURITES - 1)


def _draw(rng: np.random.Generator, pool: np.ndarray, m: int) -> np.ndarray:
    return pool[rng.integers(0, len(pool), m)]


def _pick(rng: np.random.Generator, weights: np.ndarray, m: int) -> np.ndarray:
    """Draw ``m`` indices with the given (unnormalised) weights."""
    cdf = np.cumsum(weights) / np.sum(weights)
    return np.minimum(np.searchsorted(cdf, rng.random(m), side="right"), len(weights) - 1)


def _labels(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` followed by each number zero-padded to ``width`` digits, vectorised."""
    numbers = np.asarray(numbers, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    size = len(prefix) + width
    codes = np.empty((len(numbers), size), dtype=np.uint8)
    codes[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    codes[:, len(prefix) :] = (numbers[:, None] // powers) % 10 + ord("0")
    return codes.view(f"S{size}").reshape(-1).astype(f"U{size}")


def _strings(values: np.ndarray) -> ExtensionArray:
    """The running pandas' default string array; ``take`` on it beats making new strings."""
    return pd.Series(values).array


def _id_width(count: int, digits: int = 10) -> int:
    """Digits for numbering ``count`` things: ``digits``, or more if they do not suffice."""
    return max(digits, len(str(count - 1)))


def _as_times(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns, dtype=np.int64).view("datetime64[ns]")


def _utc_naive(value: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.as_unit("ns")


def _check_size(n: int, seed: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"n must be a whole number of rows >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a whole number >= 0, got {seed!r}")
