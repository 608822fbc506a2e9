"""Crisis keywords on Chinese transcripts: real phrases that must fire, near-misses that
must not, vosk's word splits and punctuation, and the checks of an edited list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.keywords import (
    DEFAULT_ENTRIES,
    DEFAULT_KEYWORDS,
    Category,
    Keyword,
    KeywordList,
    KeywordListError,
    normalise,
    scan,
    validate_keywords,
)


def _canonicals(text: str) -> list[str]:
    return [hit.canonical for hit in scan(DEFAULT_KEYWORDS, text).hits]


@pytest.mark.parametrize(("text", "canonical", "category"), [
    ("我真的不想活了", "自杀", Category.SUICIDE),
    ("我 不想 活 了", "自杀", Category.SUICIDE),
    ("活着 没 意思 真的 好 累", "自杀", Category.SUICIDE),
    ("我想死", "自杀", Category.SUICIDE),
    ("有时候 觉得 死了算了", "自杀", Category.SUICIDE),
    ("她 说 想 结束 自己 的 生命", "自杀", Category.SUICIDE),
    ("最近总有轻生的念头", "自杀", Category.SUICIDE),
    ("他昨天说要去跳楼", "跳楼", Category.SUICIDE),
    ("我 已经 吃 了 一 瓶 安眠药", "安眠药", Category.SUICIDE),
    ("割腕", "割腕", Category.SELF_HARM),
    ("我 会 用 刀 划手", "割腕", Category.SELF_HARM),
    ("我 被 继父 性侵 了", "性侵", Category.SEXUAL_ABUSE),
    ("老师 猥亵 我 同学", "性侵", Category.SEXUAL_ABUSE),
    ("妈妈 天天 被 爸爸 家暴", "家暴", Category.DOMESTIC_VIOLENCE),
    ("我爸喝醉了就打我", "被打", Category.VIOLENCE),
    ("在 学校 被 打 了 好 几 次", "被打", Category.VIOLENCE),
    ("有个人一直在网上骚扰我", "骚扰", Category.HARASSMENT),
    ("他说要把我的裸照发出去", "骚扰", Category.HARASSMENT),
    ("我 想 和 他 同归于尽", "同归于尽", Category.OTHER),
])
def test_real_phrases_fire(text: str, canonical: str, category: Category) -> None:
    result = scan(DEFAULT_KEYWORDS, text)
    assert result.urgent
    assert [hit.canonical for hit in result.hits] == [canonical]
    assert result.categories == {category}


@pytest.mark.parametrize("text", [
    "我今天不想活动",
    "下午 不想 活动 了 想 休息",
    "这个小孩很活泼",
    "我不想活泼，我喜欢安静",
    "商场跳楼价大甩卖",
    "老板 说 这 是 跳楼 价",
    "周末去游乐园玩了跳楼机",
    "年轻生命充满希望",
    "想 减轻 生活 压力",
    "妈妈，想死你了",
    "可想死我了",
    "上课 的 时候 一直 划手机",
    "同学 总 被打扰 没法 学习",
    "他 说话 老是 被打断",
    "比赛 被打败 了 有点 难过",
    "今天 去 医院 被打针 了",
    "你 有 空 打我 电话",
    "最近 老是 接到 骚扰电话",
    "周末 和 同学 玩 杀人游戏",
    "今天 心情 不错 谢谢 你们",
    "",
])
def test_near_misses_do_not_fire(text: str) -> None:
    result = scan(DEFAULT_KEYWORDS, text)
    assert not result.urgent, result.hits
    assert result.hits == ()


@pytest.mark.parametrize("text", [
    "我不想活了", "我 不想 活 了", "我不想活了！", "我，不想活了……", "我  不 想\t活\n了",
    "我「不想活」了", "我不想活了?", "我不想活了。。。",
])
def test_spaces_and_punctuation_do_not_matter(text: str) -> None:
    result = scan(DEFAULT_KEYWORDS, text)
    assert result.text == "我不想活了"
    assert [(h.term, h.start, h.end) for h in result.hits] == [("不想活", 1, 4)]


def test_full_width_and_case_are_folded() -> None:
    assert normalise("ＡＢＣ　１２３ 我 想死！") == "abc123我想死"


def test_a_near_miss_cancels_only_the_hit_it_covers() -> None:
    result = scan(DEFAULT_KEYWORDS, "我不想活动了，其实是不想活了")
    assert [(h.term, h.start) for h in result.hits] == [("不想活", 9)]


def test_every_hit_is_reported_in_text_order_with_a_snippet() -> None:
    text = "继父 性侵 我 我 想 跳楼 还 想过 割腕 " + "很 长 的 一段 话 " * 5 + "妈妈 被 家暴"
    result = scan(DEFAULT_KEYWORDS, text)
    assert [h.canonical for h in result.hits] == ["性侵", "跳楼", "割腕", "家暴"]
    for hit in result.hits:
        assert result.text[hit.start:hit.end] == hit.term
        assert hit.term in hit.snippet and len(hit.snippet) <= len(hit.term) + 16
    assert result.categories == {Category.SEXUAL_ABUSE, Category.SUICIDE,
                                 Category.SELF_HARM, Category.DOMESTIC_VIOLENCE}


def test_nested_phrases_of_one_entry_give_one_hit() -> None:
    keywords = KeywordList((Keyword("自杀", Category.SUICIDE, ("不想活", "不想活了")),))
    result = scan(keywords, "我不想活了")
    assert [(h.term, h.start, h.end) for h in result.hits] == [("不想活了", 1, 5)]


def test_each_occurrence_is_a_hit() -> None:
    assert _canonicals("想死 真的 想死") == ["自杀", "自杀"]


def test_the_defaults_are_valid_and_cover_the_issue_terms() -> None:
    assert validate_keywords(DEFAULT_ENTRIES) == []
    phrases = {normalise(p) for entry in DEFAULT_ENTRIES for p in entry.phrases}
    assert {"自杀", "轻生", "不想活", "跳楼", "割腕", "性侵", "骚扰", "家暴"} <= phrases
    assert {"想死", "活着没意思", "上吊", "强奸", "猥亵", "被打", "打我", "虐待"} <= phrases


def test_a_few_hundred_keywords_scan_correctly() -> None:
    many = [Keyword(f"词{n:03d}", Category.OTHER, (f"说{n:03d}",), (f"词{n:03d}号",))
            for n in range(300)]
    keywords = KeywordList((*DEFAULT_ENTRIES, *many))
    result = scan(keywords, "他 说 词123 和 词124号 还有 说299 不想活 了" * 20)
    assert [h.term for h in result.hits[:3]] == ["词123", "说299", "不想活"]
    assert len(result.hits) == 60


# -- checks of an edited list -------------------------------------------------------------

def _reasons(*entries: Keyword) -> list[str]:
    return [f"{p.entry}: {p.reason}" for p in validate_keywords(entries)]


def test_empty_terms_are_refused() -> None:
    assert _reasons(Keyword("  ", Category.SUICIDE), Keyword("自杀", Category.SUICIDE, ("",))) == [
        "#1: empty term or synonym '  '", "自杀: empty term or synonym ''"]


def test_one_character_terms_are_refused() -> None:
    [reason] = _reasons(Keyword("死", Category.SUICIDE))
    assert "'死' is one character" in reason


def test_duplicates_are_refused_across_and_within_entries() -> None:
    assert _reasons(Keyword("自杀", Category.SUICIDE, ("轻生", "轻 生")),
                    Keyword("跳楼", Category.SUICIDE, ("轻生",))) == [
        "自杀: '轻生' is already listed in this entry",
        "跳楼: '轻生' is already listed in entry '自杀'"]


def test_an_exclusion_must_contain_a_phrase_of_its_entry() -> None:
    assert _reasons(Keyword("跳楼", Category.SUICIDE, exclusions=("大甩卖", "跳楼价"))) == [
        "跳楼: exclusion '大甩卖' contains neither the term nor a synonym"]
    assert _reasons(Keyword("自杀", Category.SUICIDE, ("不想活",), ("不想活动",))) == []


def test_an_exclusion_equal_to_a_term_is_refused() -> None:
    [reason] = _reasons(Keyword("跳楼", Category.SUICIDE, exclusions=("跳 楼",)))
    assert "would cancel every hit" in reason


def test_building_a_bad_list_raises_with_every_problem() -> None:
    with pytest.raises(KeywordListError) as raised:
        KeywordList((Keyword("死", Category.SUICIDE), Keyword("", Category.OTHER)))
    assert isinstance(raised.value, ValueError)
    assert len(raised.value.problems) == 2
    assert "死: '死' is one character" in str(raised.value)
    assert raised.value.problems[1].as_dict() == {
        "entry": "#2", "reason": "empty term or synonym ''"}


def test_entries_from_the_api_are_coerced_or_refused() -> None:
    entry = Keyword("家暴", "domestic_violence", ["打骂"], ["反家暴法"])  # type: ignore[arg-type]
    assert entry.category is Category.DOMESTIC_VIOLENCE and entry.synonyms == ("打骂",)
    assert hash(entry)
    with pytest.raises(ValueError, match="self_hurt"):
        Keyword("割腕", "self_hurt")  # type: ignore[arg-type]


# -- property -------------------------------------------------------------------------------

_PIECES = st.sampled_from(["我", "不想", "活", "了", "动", "泼", "跳楼", "价", "被", "打",
                           "扰", "想死", "你", "家暴", "割腕", "今天", "同学"])
_NOISE = st.sampled_from([" ", "  ", "，", "。", "！", "？", "\t", "…", "　"])


@given(st.lists(st.tuples(_PIECES, st.lists(_NOISE, max_size=2)), max_size=12))
def test_spaces_and_punctuation_never_change_the_hits(parts: list[tuple[str, list[str]]]) -> None:
    plain = "".join(piece for piece, _ in parts)
    noisy = "".join(piece + "".join(noise) for piece, noise in parts)
    expected = scan(DEFAULT_KEYWORDS, plain)
    assert scan(DEFAULT_KEYWORDS, noisy) == expected
    for hit in expected.hits:
        assert expected.text[hit.start:hit.end] == hit.term
