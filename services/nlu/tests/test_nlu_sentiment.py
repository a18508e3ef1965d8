"""Sentiment, emotion and urgency: domain rules on a fake polarity, clear cases end to end on VADER."""

import pytest

from parley.nlu.adapters.sentiment import VaderPolarity
from parley.nlu.domain.sentiment import SentimentAnalyzer, sentiment_label


class FixedPolarity:
    """A PolarityScorer (our own port) that returns one score."""

    def __init__(self, score):
        self.score = score
        self.seen = []

    def polarity(self, text):
        self.seen.append(text)
        return self.score


@pytest.fixture(scope="module")
def analyzer():
    return SentimentAnalyzer(VaderPolarity())


@pytest.mark.parametrize(
    ("score", "label"), [(0.05, "positive"), (0.049, "neutral"), (-0.049, "neutral"), (-0.05, "negative")]
)
def test_label_thresholds(score, label):
    assert sentiment_label(score) == label
    assert SentimentAnalyzer(FixedPolarity(score)).analyze("whatever").label == label


def test_urgent_complaint_is_negative_angry_and_high_urgency(analyzer):
    result = analyzer.analyze("This is URGENT, my order never arrived!!!")
    assert result.label == "negative"
    assert result.score < -0.3
    assert result.emotion == "anger"
    assert result.urgency == "high"
    assert result.urgency_confidence >= 0.8


def test_thanks_is_positive_joy_and_normal_urgency(analyzer):
    result = analyzer.analyze("Thanks, that was great!")
    assert (result.label, result.emotion, result.urgency) == ("positive", "joy", "normal")


@pytest.mark.parametrize(
    "text", ["where is my order?", "I need help with my order", "please cancel my order", "Hello"]
)
def test_plain_support_requests_are_neutral(analyzer, text):
    result = analyzer.analyze(text)
    assert (result.label, result.emotion, result.urgency) == ("neutral", "neutral", "normal"), text


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("I am so scared my package got lost", "fear"),
        ("This food is disgusting", "disgust"),
        ("wow, I did not expect that!?", "surprise"),
        ("I'm really disappointed with the service", "sadness"),
        ("The package arrived damaged and I am furious", "anger"),
    ],
)
def test_emotions(analyzer, text, emotion):
    assert analyzer.analyze(text).emotion == emotion


def test_negated_joy_is_sadness_not_joy():
    emotion, confidence = SentimentAnalyzer(FixedPolarity(-0.4)).emotion("I'm not happy with this", -0.4)
    assert emotion == "sadness"
    assert 0 < confidence <= 0.95


def test_calm_cues_make_urgency_low_even_around_urgency_words():
    analyzer = SentimentAnalyzer(FixedPolarity(0.0))
    assert analyzer.urgency("no rush, whenever you have time", 0.0)[0] == "low"
    assert analyzer.urgency("it's not urgent", 0.0)[0] == "low"
    assert analyzer.urgency("it's urgent", 0.0)[0] == "high"


def test_time_pressure_shouting_and_negativity_add_up():
    analyzer = SentimentAnalyzer(FixedPolarity(0.0))
    assert analyzer.urgency("I need it by tomorrow, please hurry", 0.0)[0] == "high"
    assert analyzer.urgency("WHERE IS MY ORDER", 0.0)[0] == "high"
    assert analyzer.urgency("where is my order", 0.0)[0] == "normal"
    assert analyzer.urgency("where is my order!", -0.6)[0] == "normal"
    assert analyzer.urgency("where is my order!!", -0.6)[0] == "high"
    assert analyzer.urgency("the NYC and DHL people", 0.0)[0] == "normal"  # acronyms are not shouting


def test_support_adjustments_fix_what_plain_vader_gets_wrong():
    text = "This is URGENT, my order never arrived!!!"
    assert VaderPolarity(support_adjustments=False).polarity(text) > 0.05  # plain VADER: positive
    assert VaderPolarity().polarity(text) < -0.05
    assert VaderPolarity().polarity("I would like to change my address") == pytest.approx(0.0)
