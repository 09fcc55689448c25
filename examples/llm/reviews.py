"""What the review examples share: their data types, prompts and the shipping tool (the shapes
of upstream Flink Agents' quickstart)."""

from __future__ import annotations

from pydantic import BaseModel

from flink_agents_async import ChatMessage, MessageRole, Prompt


class ProductReview(BaseModel):
    id: str
    review: str


class ProductReviewAnalysisRes(BaseModel):
    id: str
    score: int
    reasons: list[str]


class ProductReviewSummary(BaseModel):
    id: str
    score_hist: list[str]
    unsatisfied_reasons: list[str]


class ProductSuggestion(BaseModel):
    id: str
    score_hist: list[str]
    suggestions: list[str]


class AspectResponse(BaseModel):
    aspect: str
    result: str


class SummaryResponse(BaseModel):
    summary: str


REVIEW_ANALYSIS_SYSTEM = """\
Analyse a product review: rate the customer's satisfaction with a score from 1 (very
unhappy) to 5 (very happy), and give the reasons for it in a few words each.
If the customer is unhappy with the delivery (a damaged, late or lost parcel), first notify the
shipping manager with the notify_shipping_manager tool.
Answer with a JSON object only, like {"id": "12", "score": 3, "reasons": ["too small"]}."""

review_analysis_prompt = Prompt.from_messages(
    [
        ChatMessage(role=MessageRole.SYSTEM, content=REVIEW_ANALYSIS_SYSTEM),
        ChatMessage(role=MessageRole.USER, content='"input": {input}'),
    ]
)

review_analysis_react_prompt = Prompt.from_messages(
    [
        ChatMessage(role=MessageRole.SYSTEM, content=REVIEW_ANALYSIS_SYSTEM),
        ChatMessage(role=MessageRole.USER, content='"id": {id}, "review": {review}'),
    ]
)

product_suggestion_prompt = Prompt.from_text(
    """\
Based on a product's score histogram (the share of each score from 1 to 5) and the reasons
customers were unhappy, suggest how to improve the product.
Answer with a JSON object only, like {"suggestion_list": ["first", "second"]}.

input:
{input}"""
)


def notify_shipping_manager(id: str, review: str) -> None:
    """Notify the shipping manager when a product was damaged, late or lost in delivery.

    Parameters
    ----------
    id : str
        The id of the product the review is about.
    review : str
        The text of the review.
    """
    print(f"  (the shipping manager hears about product {id}: {review!r})")


REVIEWS = [
    ProductReview(id="p1", review="Great kettle, boils fast and looks nice."),
    ProductReview(id="p1", review="The box arrived damaged and the kettle was broken."),
    ProductReview(id="p2", review="Lovely tea, I will buy it again."),
    ProductReview(id="p2", review="The parcel was two weeks late, the tea was fine."),
    ProductReview(id="p1", review="Does what it should."),
]
