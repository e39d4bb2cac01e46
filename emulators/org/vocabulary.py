"""The synthetic org's vocabulary and random draws: names in four languages, places, companies,
and the small helpers the generator draws with. Pure data and functions; no state."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST = {
    "English": (
        "James",
        "Mary",
        "John",
        "Linda",
        "Robert",
        "Emma",
        "David",
        "Sarah",
        "Michael",
        "Olivia",
        "William",
        "Grace",
        "Thomas",
        "Chloe",
        "Daniel",
        "Hannah",
    ),
    "Persian": ("محمد", "زهرا", "علی", "فاطمه", "رضا", "مریم"),
    "Russian": ("Иван", "Ольга", "Дмитрий", "Анна", "Сергей", "Мария"),
    "Polish": ("Łukasz", "Małgorzata", "Paweł", "Agnieszka", "Wojciech", "Żaneta"),
}
LAST = {
    "English": (
        "Smith",
        "Johnson",
        "Brown",
        "Taylor",
        "Wilson",
        "Clarke",
        "Walker",
        "Hughes",
        "Turner",
        "Evans",
        "Baker",
        "Morgan",
    ),
    "Persian": ("رضایی", "احمدی", "حسینی", "کریمی", "موسوی", "صادقی"),
    "Russian": ("Петров", "Иванова", "Смирнов", "Кузнецова", "Попов", "Соколова"),
    "Polish": ("Wiśniewski", "Kowalska", "Wójcik", "Zieliński", "Szymańska", "Dąbrowski"),
}
LATIN = {
    "محمد": "mohammad",
    "زهرا": "zahra",
    "علی": "ali",
    "فاطمه": "fatemeh",
    "رضا": "reza",
    "مریم": "maryam",
    "رضایی": "rezaei",
    "احمدی": "ahmadi",
    "حسینی": "hosseini",
    "کریمی": "karimi",
    "موسوی": "mousavi",
    "صادقی": "sadeghi",
    "Иван": "ivan",
    "Ольга": "olga",
    "Дмитрий": "dmitry",
    "Анна": "anna",
    "Сергей": "sergey",
    "Мария": "maria",
    "Петров": "petrov",
    "Иванова": "ivanova",
    "Смирнов": "smirnov",
    "Кузнецова": "kuznetsova",
    "Попов": "popov",
    "Соколова": "sokolova",
}
POLISH_ASCII = str.maketrans("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")
LANGS = ("English", "Persian", "Russian", "Polish")
LANG_WEIGHTS = (85, 5, 5, 5)
COMPANIES = {
    "Persian": ("شرکت نوآوران", "شرکت پارس داده", "گروه صنعتی آریا", "شرکت فناوران سپهر"),
    "Russian": ("ООО Ромашка", "ООО Вектор", "АО Звезда", "ООО Горизонт"),
    "Polish": (
        "Zakład Żółć sp. z o.o.",
        "Łódzkie Młyny S.A.",
        "Przedsiębiorstwo Świt sp. z o.o.",
        "Gdańskie Jachty sp. j.",
    ),
}
EN_WORD = (
    "Acme",
    "Globex",
    "Northwind",
    "Contoso",
    "Blue Harbor",
    "Summit",
    "Pioneer",
    "Redwood",
    "Silverline",
    "Brightpath",
    "Ironclad",
    "Evergreen",
)
EN_KIND = (
    "Labs",
    "Systems",
    "Logistics",
    "Foods",
    "Analytics",
    "Holdings",
    "Media",
    "Health",
    "Energy",
    "Retail",
)
PLACES = {
    "English": (
        ("United States", "CA", "San Francisco"),
        ("United States", "NY", "New York"),
        ("United States", "TX", "Austin"),
        ("United Kingdom", "England", "London"),
        ("Canada", "ON", "Toronto"),
        ("Australia", "NSW", "Sydney"),
    ),
    "Persian": (("Iran", "Tehran", "Tehran"), ("Iran", "Isfahan", "Isfahan")),
    "Russian": (("Russia", "Moscow", "Moscow"), ("Russia", "Saint Petersburg", "Saint Petersburg")),
    "Polish": (("Poland", "Mazowieckie", "Warszawa"), ("Poland", "Małopolskie", "Kraków")),
}
INDUSTRIES = (
    "Software",
    "Manufacturing",
    "Retail",
    "Healthcare",
    "Finance",
    "Logistics",
    "Education",
    "Energy",
)
TITLES = (
    "CEO",
    "CFO",
    "Head of Sales",
    "IT Manager",
    "Operations Director",
    "Buyer",
    "Marketing Manager",
    "Engineer",
)
SOURCES = ("Web", "Referral", "Event", "Cold call", "Partner", "Paid search")
TEAM_WORDS = ("Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel")
REGIONS = ("EMEA", "NA", "APAC", "LATAM")


@dataclass(frozen=True)
class Person:
    """A generated name with its ASCII form (for emails) and language."""

    first: str
    last: str
    handle: str
    language: str


def ms_to_dt(ms: int) -> datetime:
    """Epoch milliseconds to an exact UTC datetime (a double holds ms/1000 to well under 1 us)."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def below(rng: random.Random, n: int) -> int:
    """A uniform integer in [0, n): cheaper than `randrange` and just as deterministic."""
    return int(rng.random() * n)


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """A uniform element: cheaper than `Random.choice`."""
    return items[int(rng.random() * len(items))]


class Weighted:
    """Weighted choice with the cumulative weights computed once."""

    def __init__(self, items: tuple[str, ...], weights: tuple[float, ...]) -> None:
        self.items = items
        self.cum: list[float] = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)
        self.total = total

    def pick(self, rng: random.Random) -> str:
        """One item, drawn with one `random()` call."""
        return self.items[bisect_right(self.cum, rng.random() * self.total)]


def dt_to_ms(value: datetime) -> int:
    """UTC datetime to epoch milliseconds."""
    return (value - EPOCH) // timedelta(milliseconds=1)


def pick_person(rng: random.Random) -> Person:
    """Mostly English names, some Persian, Russian and Polish."""
    lang = LANG_PICK.pick(rng)
    first, last = pick(rng, FIRST[lang]), pick(rng, LAST[lang])
    latin = [LATIN.get(p, p).translate(POLISH_ASCII).lower() for p in (first, last)]
    return Person(first, last, ".".join(latin), lang)


def company_name(rng: random.Random, lang: str) -> str:
    """A company name in the language's style."""
    if lang in COMPANIES:
        return pick(rng, COMPANIES[lang])
    return f"{pick(rng, EN_WORD)} {pick(rng, EN_KIND)}"


def phone(rng: random.Random) -> str:
    """A plausible international phone number."""
    return (
        f"+{pick(rng, (1, 44, 48, 98, 7))} {100 + below(rng, 900)} {10**6 + below(rng, 9 * 10**6)}"
    )


LANG_PICK = Weighted(LANGS, LANG_WEIGHTS)
