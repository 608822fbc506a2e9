"""Crisis keywords in voicemail transcripts: an editable list, its checks, and the scan.

A message that mentions suicide, self-harm or abuse must not wait until morning, so a
keyword hit makes it urgent. Pure: text in, hits out.

The list is data an administrator edits. Each entry has a canonical term, a category,
synonyms (the ways callers actually say it) and exclusions: longer phrases that contain
one of the entry's phrases but mean something else (不想活动 "don't feel like moving",
跳楼价 "rock-bottom price"). A hit lying inside an occurrence of one of its entry's
exclusions is dropped; anything else fires. When in doubt the defaults fire: a false
alarm costs a duty counsellor one listen, a miss leaves a young person waiting all night.

Transcripts come from vosk as Simplified Chinese, usually split into words by spaces
("我 不想 活 了"), sometimes with punctuation or none. Text and phrases are normalised
the same way (NFKC, lower case, whitespace, punctuation and symbols removed), so word
splits never matter; positions refer to the normalised text. The flip side: words that
were apart ("不想活 动不了") can join into an exclusion. That is rare and accepted.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

MIN_PHRASE_LENGTH = 2  # one character (死, 打) is in too many harmless words
SNIPPET_CONTEXT = 8    # characters shown on each side of a hit


class Category(StrEnum):
    SUICIDE = "suicide"
    SELF_HARM = "self_harm"
    SEXUAL_ABUSE = "sexual_abuse"
    DOMESTIC_VIOLENCE = "domestic_violence"
    VIOLENCE = "violence"  # beaten or bullied, wherever: home, school, a partner
    HARASSMENT = "harassment"
    OTHER = "other"


@dataclass(frozen=True)
class Keyword:
    term: str
    category: Category
    synonyms: tuple[str, ...] = ()
    exclusions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The admin API hands over strings and lists; keep the entry hashable and typed.
        object.__setattr__(self, "category", Category(self.category))
        object.__setattr__(self, "synonyms", tuple(self.synonyms))
        object.__setattr__(self, "exclusions", tuple(self.exclusions))

    @property
    def phrases(self) -> tuple[str, ...]:
        return (self.term, *self.synonyms)


@dataclass(frozen=True)
class KeywordProblem:
    entry: str  # the entry's term, or "#n" (its position) when the term is empty
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"entry": self.entry, "reason": self.reason}


class KeywordListError(ValueError):
    """An edited list that cannot be used; `problems` names each one."""

    def __init__(self, problems: Sequence[KeywordProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.entry}: {p.reason}" for p in self.problems))


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits become plain), lower case, and no whitespace,
    punctuation, symbols or control characters."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "ZPSC")


def validate_keywords(entries: Iterable[Keyword]) -> list[KeywordProblem]:
    """Every problem of an edited list; an empty list means it may be saved."""
    problems: list[KeywordProblem] = []
    owner: dict[str, tuple[int, str]] = {}  # normalised phrase → the entry that has it
    for index, entry in enumerate(entries):
        name = entry.term.strip() or f"#{index + 1}"
        phrases = []
        for phrase in entry.phrases:
            text = normalise(phrase)
            if not text:
                problems.append(KeywordProblem(name, f"empty term or synonym {phrase!r}"))
            elif len(text) < MIN_PHRASE_LENGTH:
                problems.append(KeywordProblem(
                    name, f"{text!r} is one character: it would fire inside harmless words"))
            elif text in owner:
                other, other_name = owner[text]
                where = "this entry" if other == index else f"entry {other_name!r}"
                problems.append(KeywordProblem(name, f"{text!r} is already listed in {where}"))
            else:
                owner[text] = (index, name)
                phrases.append(text)
        for exclusion in entry.exclusions:
            text = normalise(exclusion)
            if not text:
                problems.append(KeywordProblem(name, "empty exclusion"))
            elif text in phrases:
                problems.append(KeywordProblem(
                    name, f"exclusion {text!r} equals a term and would cancel every hit"))
            elif phrases and not any(phrase in text for phrase in phrases):
                problems.append(KeywordProblem(
                    name, f"exclusion {text!r} contains neither the term nor a synonym"))
    return problems


@dataclass(frozen=True)
class _Compiled:
    entry: Keyword
    phrases: tuple[str, ...]
    exclusions: tuple[str, ...]


@dataclass(frozen=True)
class KeywordList:
    """A validated list, ready to scan with; building one from a bad list raises
    KeywordListError."""

    entries: tuple[Keyword, ...]
    _compiled: tuple[_Compiled, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = tuple(self.entries)
        if problems := validate_keywords(entries):
            raise KeywordListError(problems)
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "_compiled", tuple(
            _Compiled(entry, tuple(normalise(p) for p in entry.phrases),
                      tuple(normalise(x) for x in entry.exclusions))
            for entry in entries))


@dataclass(frozen=True)
class Hit:
    term: str        # the phrase found, as normalised
    canonical: str   # its entry's term
    category: Category
    start: int       # [start, end) in the normalised text
    end: int
    snippet: str     # the hit with a little context, from the normalised text


@dataclass(frozen=True)
class ScanResult:
    text: str  # the normalised transcript the positions refer to
    hits: tuple[Hit, ...]

    @property
    def urgent(self) -> bool:
        return bool(self.hits)

    @property
    def categories(self) -> frozenset[Category]:
        return frozenset(hit.category for hit in self.hits)


def _occurrences(text: str, phrase: str) -> Iterator[int]:
    start = text.find(phrase)
    while start >= 0:
        yield start
        start = text.find(phrase, start + 1)


def scan(keywords: KeywordList, transcript: str) -> ScanResult:
    """Every hit of every entry in `transcript`, near-misses dropped, in text order.

    Per entry: each occurrence of the term or a synonym, unless an occurrence of one of
    the entry's exclusions covers it; of hits nested in a longer hit of the same entry
    (不想活 inside 不想活了) only the longest is kept. str.find per phrase is plenty for
    a few hundred phrases over a voicemail's transcript."""
    text = normalise(transcript)
    hits: list[Hit] = []
    for compiled in keywords._compiled:
        found = [(start, start + len(phrase), phrase) for phrase in compiled.phrases
                 for start in _occurrences(text, phrase)]
        if not found:
            continue
        excluded = [(start, start + len(exclusion)) for exclusion in compiled.exclusions
                    for start in _occurrences(text, exclusion)]
        found = [(s, e, p) for s, e, p in found
                 if not any(xs <= s and e <= xe for xs, xe in excluded)]
        found.sort(key=lambda f: (f[0], -f[1]))
        kept: list[tuple[int, int, str]] = []
        for start, end, phrase in found:
            if any(ks <= start and end <= ke for ks, ke, _ in kept):
                continue
            kept.append((start, end, phrase))
        entry = compiled.entry
        hits += [Hit(phrase, entry.term, entry.category, start, end,
                     text[max(0, start - SNIPPET_CONTEXT):end + SNIPPET_CONTEXT])
                 for start, end, phrase in kept]
    hits.sort(key=lambda hit: (hit.start, hit.end, hit.canonical))
    return ScanResult(text, tuple(hits))


def _k(term: str, category: Category, synonyms: str = "", exclusions: str = "") -> Keyword:
    return Keyword(term, category, tuple(synonyms.split()), tuple(exclusions.split()))


# The defaults a new site starts with. Redundant spellings are left out on purpose: a
# phrase also fires inside longer ones (不想活 covers 不想活了, 性侵 covers 性侵犯,
# 骚扰 covers 性骚扰, 安眠药 covers 吃安眠药 and 吃了一瓶安眠药).
DEFAULT_ENTRIES: tuple[Keyword, ...] = (
    # 自杀式袭击 (news) is NOT excluded: at a youth crisis line the word deserves an ear.
    # 不想死 and 想死的心都有了 still fire through 想死, on purpose.
    _k("自杀", Category.SUICIDE,
       "轻生 寻短见 寻死 不想活 活不下去 活着没意思 活着没有意思 活着没意义 结束生命 "
       "结束自己 想死 想去死 死了算了 不如死了",
       # 年轻生活/年轻生命 and 减轻生活压力 contain 轻生; 想死你了 means "miss you".
       "不想活动 不想活泼 不想活跃 年轻生 减轻生 轻生活 想死你 想死我了"),
    _k("跳楼", Category.SUICIDE, "跳河 跳江 上吊 卧轨 烧炭",
       # Sales slogans and the amusement-park drop tower.
       "跳楼价 跳楼甩卖 跳楼大甩卖 跳楼机"),
    _k("安眠药", Category.SUICIDE, "喝农药 百草枯 老鼠药"),
    _k("割腕", Category.SELF_HARM, "自残 自伤 割手 划手 割自己 伤害自己 拿刀划",
       "划手机"),  # 划手机 is swiping a phone
    _k("性侵", Category.SEXUAL_ABUSE, "强奸 强暴 猥亵 迷奸 诱奸 被侵犯 摸我下面"),
    # 虐待 fires on 虐待动物 too: a child hurting animals is worth a call as well.
    _k("家暴", Category.DOMESTIC_VIOLENCE, "家庭暴力 虐待 打骂"),
    # Being beaten, at home or at school. 被打 and 打我 are broad but how children say
    # it ("我在家天天被打", "他又打我"); the exclusions are the everyday compounds.
    _k("被打", Category.VIOLENCE, "打我 挨打 霸凌 校园暴力",
       "被打扰 被打断 被打击 被打败 被打动 被打针 被打分 被打开 被打湿 被打乱 被打破 "
       "被打印 被打包 被打卡 被打折 被打电话 打我电话 打我手机 打我的电话 打我的手机 "
       "落后就要挨打"),
    # 骚扰电话/骚扰短信 almost always mean spam; a person harassing by phone still
    # fires when the caller says 他骚扰我 or 一直骚扰.
    _k("骚扰", Category.HARASSMENT, "跟踪我 偷拍 裸照 网暴 网络暴力",
       "骚扰电话 骚扰短信"),
    # Threats to others; 杀人游戏 is a party game popular with students.
    _k("同归于尽", Category.OTHER, "杀了他 杀了她 杀人", "杀人游戏"),
)

DEFAULT_KEYWORDS = KeywordList(DEFAULT_ENTRIES)
