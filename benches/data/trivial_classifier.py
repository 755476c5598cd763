"""The cheapest useful custom classifiers, for benches/router_python.rs: what they cost is the
price of calling into Python from the router."""

from lora_router import Classification, ClassificationRequest

TECHNICAL = Classification("technical", confidence=1.0)


def classify(request: ClassificationRequest) -> Classification:
    return TECHNICAL


async def classify_async(request: ClassificationRequest) -> Classification:
    return TECHNICAL
